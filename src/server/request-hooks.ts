import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AuditLog, nextAuditId, type AuditRecord, type SharedJournal } from './audit/index.js';
import { Authenticator, type SharedAuthState } from './auth/index.js';
import type { WharfConfig } from './config.js';
import { installAccess } from './http/access.js';
import { installAudit, type RequestSink } from './http/audit.js';
import type { StaleUpload } from './store/index.js';
import { JournalWebhooks, Webhooks, type WebhookLedger } from './webhooks/index.js';

export interface RequestHooks {
  auth: Authenticator | undefined;
  audit: AuditLog | undefined;
  webhooks: Webhooks | JournalWebhooks | undefined;
  /** Where finished content requests go (the audit log, webhooks): the web UI's downloads too. */
  sinks: RequestSink[];
  /** Hooks and routes for createApp. */
  extensions: Array<(app: FastifyInstance) => void>;
  /** Records upload sessions purged unfinished in the audit log. */
  abandoned(uploads: StaleUpload[]): void;
  /** Flushes the audit log and stops background work. */
  close(): Promise<void>;
}

/** What replicas share through PostgreSQL: the journal of finished requests, and where each webhook endpoint is in it. */
export interface ReplicatedHooks {
  journal: SharedJournal;
  ledger: WebhookLedger;
}

/** Access control, the audit log and webhooks, wired onto the app as fastify hooks. */
export async function startRequestHooks(
  config: WharfConfig,
  deps: { dataDir: string; log: Logger; shared?: SharedAuthState | undefined; replicated?: ReplicatedHooks | undefined },
): Promise<RequestHooks> {
  const extensions: RequestHooks['extensions'] = [];
  const auth = config.auth ? await Authenticator.create(config.auth, deps.dataDir, deps.shared) : undefined;
  const sinks: RequestSink[] = [];
  const replicated = deps.replicated;
  // Replicas' webhooks read the shared journal, so it is written even with the audit log off.
  let journal: AuditLog | undefined;
  if (config.audit.enabled || (replicated && config.webhooks.length > 0)) {
    const dbPath = config.audit.path ?? join(deps.dataDir, 'audit', 'audit.db');
    journal = AuditLog.open({
      dbPath,
      journalDir: join(dbPath, '..', 'journal'),
      flushInterval: config.audit.flushInterval,
      groupWindow: config.audit.groupWindow,
      retention: config.audit.retention,
      log: deps.log,
      ...(replicated ? { shared: replicated.journal, index: config.audit.enabled && config.audit.index } : {}),
    });
    sinks.push(journal);
  }
  const audit = config.audit.enabled && config.audit.index ? journal : undefined;
  let webhooks: RequestHooks['webhooks'];
  if (config.webhooks.length > 0 && replicated) {
    webhooks = await JournalWebhooks.start(replicated.journal, replicated.ledger, config.webhooks, { source: config.listen, log: deps.log, pruneDelivered: !config.audit.enabled });
  } else if (config.webhooks.length > 0) {
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
        journal?.complete(rec, { kind: 'upload' });
      }
    },
    close: async () => {
      await webhooks?.close();
      await journal?.close();
    },
  };
}
