import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AuditLog, nextAuditId, type AuditRecord } from './audit/index.js';
import { Authenticator, type SharedAuthState } from './auth/index.js';
import type { WharfConfig } from './config.js';
import { installAccess } from './http/access.js';
import { installAudit, type RequestSink } from './http/audit.js';
import type { StaleUpload } from './store/index.js';
import { Webhooks } from './webhooks/index.js';

export interface RequestHooks {
  auth: Authenticator | undefined;
  audit: AuditLog | undefined;
  webhooks: Webhooks | undefined;
  /** Where finished content requests go (the audit log, webhooks): the web UI's downloads too. */
  sinks: RequestSink[];
  /** Hooks and routes for createApp. */
  extensions: Array<(app: FastifyInstance) => void>;
  /** Records upload sessions purged unfinished in the audit log. */
  abandoned(uploads: StaleUpload[]): void;
  /** Flushes the audit log and stops background work. */
  close(): Promise<void>;
}

/** Access control, the audit log and webhooks, wired onto the app as fastify hooks. */
export async function startRequestHooks(config: WharfConfig, deps: { dataDir: string; log: Logger; shared?: SharedAuthState | undefined }): Promise<RequestHooks> {
  const extensions: RequestHooks['extensions'] = [];
  const auth = config.auth ? await Authenticator.create(config.auth, deps.dataDir, deps.shared) : undefined;
  let audit: AuditLog | undefined;
  const sinks: RequestSink[] = [];
  if (config.audit.enabled) {
    const dbPath = config.audit.path ?? join(deps.dataDir, 'audit', 'audit.db');
    audit = AuditLog.open({
      dbPath,
      journalDir: join(dbPath, '..', 'journal'),
      flushInterval: config.audit.flushInterval,
      groupWindow: config.audit.groupWindow,
      retention: config.audit.retention,
      log: deps.log,
    });
    sinks.push(audit);
  }
  let webhooks: Webhooks | undefined;
  if (config.webhooks.length > 0) {
    const w = new Webhooks(join(deps.dataDir, 'webhooks', 'queue.db'), config.webhooks, { source: config.listen, log: deps.log });
    webhooks = w;
    sinks.push({ journal: (rec) => w.journal(rec), complete: (rec) => w.complete(rec) });
  }
  // The audit hook first: it must see the requests that access control refuses.
  if (sinks.length > 0) extensions.push((app) => installAudit(app, sinks));
  if (auth) extensions.push((app) => installAccess(app, { auth }));
  return {
    auth,
    audit,
    webhooks,
    sinks,
    extensions,
    abandoned: (uploads) => {
      // One row per session: no request ended it, so no user or address; the bytes the client
      // had sent, the session id as the reference, how long it lay idle as the duration, 410 and
      // "aborted" because it never completed.
      for (const u of uploads) {
        const rec: AuditRecord = { id: nextAuditId(), time: Date.now(), user: null, ip: '', userAgent: null, method: 'PURGE', action: 'upload', repo: u.repo, reference: u.id, digest: null, mediaType: null, artifactType: null, status: 410, bytes: u.bytes, durationMs: u.idleMs, outcome: 'aborted' };
        audit?.complete(rec, { kind: 'upload' });
      }
    },
    close: async () => {
      audit?.close();
      await webhooks?.close();
    },
  };
}
