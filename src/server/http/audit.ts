import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, isDigest } from '../../spec/index.js';
import type { Authenticator } from '../auth/index.js';
import { auditFilter, nextAuditId, recordsToCsv, type AuditAction, type AuditLog, type AuditRecord, type RecordExtra } from '../audit/index.js';
import { identityOf } from './access.js';
import { contextOf, splitUrl } from './context.js';
import type { Route } from './route.js';

/** Receives every finished content request: the audit log, webhooks. */
export interface RequestSink {
  /** Before the final bytes leave. */
  journal?(rec: AuditRecord, extra: RecordExtra): void;
  /** For a sink whose journal() only queues: `then` runs once the queued lines are durable. */
  settle?(then: () => void): void;
  /** Makes the queued lines durable at once (before a write that cannot wait). */
  sync?(): void;
  complete(rec: AuditRecord, extra: RecordExtra): void;
}

function actionOf(route: Route | undefined, method: string, status: number, q: Record<string, unknown>): AuditAction {
  if (!route) return 'other';
  switch (route.kind) {
    case 'manifest':
      return method === 'GET' ? 'pull' : method === 'HEAD' ? 'stat' : method === 'PUT' ? 'push' : method === 'DELETE' ? 'delete' : 'other';
    case 'blob':
      return method === 'GET' ? 'pull' : method === 'HEAD' ? 'stat' : method === 'DELETE' ? 'delete' : 'other';
    case 'upload':
      if (method === 'POST' && q.mount !== undefined && status === 201) return 'mount';
      if (status === 201) return 'push';
      return 'upload';
    case 'tags':
    case 'referrers':
    case 'catalog':
      return 'list';
    default:
      return 'other';
  }
}

function userOf(req: FastifyRequest): string | null {
  const id = identityOf(req);
  if (id.kind !== 'anonymous') return id.user ?? null;
  // A failed login: the name that was tried (never the password).
  const h = req.headers.authorization;
  if (h && /^basic /i.test(h)) {
    const raw = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const i = raw.indexOf(':');
    if (i > 0) return raw.slice(0, i).slice(0, 128);
  }
  return null;
}

/** fastify hands its headers to writeHead(), where res.getHeader() cannot see them: ask the reply too. */
const header = (reply: FastifyReply, name: string): string | null => {
  const v = reply.getHeader(name) ?? reply.raw.getHeader(name);
  return v === undefined ? null : String(v);
};

/**
 * Records every /v2 request but the base check. The response's write() and end() are wrapped:
 * bytes are counted, and the record is journaled just before the chunk that completes the body
 * goes to the socket; when the response closes the final record goes to every sink.
 */
export function installAudit(app: FastifyInstance, sinks: RequestSink[]): void {
  // Sinks whose journal() only queues (the audit log): a response's final end() waits until their
  // lines are written, once per turn of the event loop for every response that ended in it.
  const queued = sinks.filter((s): s is RequestSink & Required<Pick<RequestSink, 'settle' | 'sync'>> => s.settle !== undefined && s.sync !== undefined);
  const settle = (then: () => void): void => {
    let left = queued.length;
    for (const s of queued) s.settle(() => --left === 0 && then());
  };
  // A callback hook, not an async one: it never waits, and a promise per request costs.
  app.addHook('onRequest', (req, reply, done) => {
    const { path } = splitUrl(req.raw.url ?? '/');
    if (!path.startsWith('/v2/') || path === '/v2/') return done();
    const route = contextOf(req).route;
    const t0 = Date.now();
    const h0 = process.hrtime.bigint();
    // Read now: once a client that went away mid-body has its socket destroyed, req.ip is
    // undefined, and a record without an address was dropped (its NOT NULL column refused it).
    const ip = req.ip ?? '';
    const res = reply.raw;
    let bytes = 0;
    let journaled = false;
    let manifest: Buffer | undefined;
    const wantBody = route?.kind === 'manifest' && req.method === 'GET';

    const build = (outcome: AuditRecord['outcome']): AuditRecord => {
      const status = res.statusCode;
      const q = req.query as Record<string, string | undefined>;
      let digest: string | null = null;
      let reference: string | null = null;
      let mediaType: string | null = null;
      if (route?.kind === 'manifest') {
        reference = route.reference;
        digest = header(reply, 'docker-content-digest') ?? (isDigest(route.reference) ? route.reference : null);
        if (status < 300) mediaType = req.method === 'PUT' ? (req.headers['content-type'] ?? null) : header(reply, 'content-type');
      } else if (route?.kind === 'blob' || route?.kind === 'referrers') {
        digest = route.digest;
      } else if (route?.kind === 'upload') {
        digest = header(reply, 'docker-content-digest') ?? q.mount ?? q.digest ?? null;
        if (q.from !== undefined) reference = q.from;
      }
      return {
        id: 0,
        time: t0,
        user: userOf(req),
        ip,
        userAgent: (req.headers['user-agent'] ?? '').slice(0, 256) || null,
        method: req.method,
        action: actionOf(route, req.method, status, q),
        repo: route && 'name' in route ? route.name : null,
        reference,
        digest,
        mediaType,
        artifactType: null,
        status,
        bytes,
        durationMs: Math.round(Number(process.hrtime.bigint() - h0) / 1e4) / 100,
        outcome,
      };
    };
    const id = nextAuditId();
    let first: AuditRecord | undefined;
    const journal = (): void => {
      if (journaled) return;
      journaled = true;
      first = { ...build('completed'), id };
      for (const s of sinks) {
        try {
          s.journal?.(first, { kind: route?.kind ?? 'other', manifest });
        } catch (err) {
          // An audit or webhook store that fails (a full disk) never costs the client its response.
          req.log.error({ err }, 'audit: a sink failed to take a record');
        }
      }
    };
    let expected = -1;
    const size = (chunk: unknown, enc?: unknown): number =>
      typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof enc === 'string' ? (enc as BufferEncoding) : 'utf8') : chunk instanceof Uint8Array ? chunk.length : 0;

    const write = res.write;
    const end = res.end;
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]): boolean {
      bytes += size(chunk, rest[0]);
      // Headers are out by the first write: read the length once.
      if (expected === -1) expected = Number(header(reply, 'content-length') ?? NaN);
      if (bytes < expected) return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      journal();
      if (queued.length === 0) return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      for (const s of queued) s.sync();
      // The chunk that completes the body waits for the record to be durable. On a local journal
      // it is (sync above); a shared one commits asynchronously: the chunk is held, the stream
      // that pipes into this response pauses (false), and 'drain' resumes it once the chunk is out.
      let held = false;
      let result: boolean | undefined;
      settle(() => {
        const ok = (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
        if (!held) result = ok;
        else if (ok) this.emit('drain');
      });
      held = true;
      return result ?? false;
    } as ServerResponse['write'];
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]): ServerResponse {
      if (chunk !== undefined && typeof chunk !== 'function') {
        bytes += size(chunk, rest[0]);
        // Kept by reference (no copy): only read later, when the batch groups downloads.
        if (wantBody && res.statusCode === 200) manifest = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      }
      journal();
      if (queued.length === 0) return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
      settle(() => (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest));
      return this;
    } as ServerResponse['end'];
    res.once('close', () => {
      const outcome: AuditRecord['outcome'] = res.writableFinished ? 'completed' : 'aborted';
      const durationMs = Math.round(Number(process.hrtime.bigint() - h0) / 1e4) / 100;
      const rec = first ? { ...first, outcome, bytes, durationMs } : { ...build(outcome), id };
      for (const s of sinks) {
        try {
          s.complete(rec, { kind: route?.kind ?? 'other', manifest });
        } catch (err) {
          req.log.error({ err }, 'audit: a sink failed to take a record');
        }
      }
    });
    done();
  });
}

function isLoopback(ip: string): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';
}

/** Lets a request read the audit log, or throws the error to answer. */
export type AuditAdmit = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** Who may read the audit log when the web UI is off: admins by their credentials, with auth off loopback clients. */
export function adminsOnly(auth: Authenticator | undefined): AuditAdmit {
  return async (req, reply) => {
    if (auth) {
      const id = await auth.identify({ authorization: req.headers.authorization, ip: req.ip });
      if (id.kind === 'anonymous') {
        reply.header('www-authenticate', `Basic realm="${auth.config.service}"`);
        throw new OciError('UNAUTHORIZED', 'authentication required');
      }
      if (!auth.isAdmin(id)) throw new OciError('DENIED', 'the audit log is for admins');
    } else if (!isLoopback(req.ip)) {
      throw new OciError('DENIED', 'with auth off the audit log answers local clients only');
    }
  };
}

/**
 * `GET /api/v1/audit`: for those `check` lets in (adminsOnly, or the web UI's check, which also
 * knows its session cookie). Filters repo, user, digest, action, since, until; `limit` and the
 * `before` cursor page through it (newest first, a Link header names the next page);
 * `format=csv` exports.
 */
export function installAuditApi(app: FastifyInstance, audit: AuditLog | string, check: AuditAdmit): void {
  if (typeof audit === 'string') {
    // No index here (the message says why): the endpoint says so, after the same check.
    app.get('/api/v1/audit', async (req: FastifyRequest, reply: FastifyReply) => {
      await check(req, reply);
      throw new OciError('UNSUPPORTED', audit, { status: 404 });
    });
    return;
  }
  const admit = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    await check(req, reply);
    await audit.catchUp();
  };
  const json = (reply: FastifyReply, body: unknown): FastifyReply => reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));

  app.get('/api/v1/audit', async (req: FastifyRequest, reply: FastifyReply) => {
    await admit(req, reply);
    const q = req.query as Record<string, string | undefined>;
    const f = auditFilter(q);
    const limit = Math.min(Math.max(Number(q.limit ?? 100) || 100, 1), 10_000);
    const before = q.before !== undefined ? Number(q.before) : undefined;
    const rows = audit.db.query(f, before !== undefined && Number.isFinite(before) ? { limit, before } : { limit });
    if (rows.length === limit) {
      const next = new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined && e[0] !== 'before'));
      next.set('before', String(rows[rows.length - 1]!.id));
      reply.header('link', `</api/v1/audit?${next}>; rel="next"`);
    }
    if (q.format === 'csv') {
      return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="wharf-audit.csv"').send(recordsToCsv(rows));
    }
    return json(reply, { records: rows });
  });

  // Artifact downloads (a manifest pull and its blobs), and downloads per artifact and per user.
  app.get('/api/v1/audit/downloads', async (req: FastifyRequest, reply: FastifyReply) => {
    await admit(req, reply);
    const q = req.query as Record<string, string | undefined>;
    return json(reply, { downloads: audit.db.downloads(auditFilter(q), Math.min(Math.max(Number(q.limit ?? 100) || 100, 1), 10_000)) });
  });
  app.get('/api/v1/audit/stats', async (req: FastifyRequest, reply: FastifyReply) => {
    await admit(req, reply);
    return json(reply, audit.db.stats(auditFilter(req.query as Record<string, string | undefined>)));
  });
}
