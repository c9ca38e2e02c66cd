import Fastify, {
  LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OciError, WharfError, type ErrorCode } from '../../spec/index.js';
import type { RegistryBackend } from '../store/index.js';
import { contextOf, installRouting } from './context.js';
import { dropUnreadBody, handleV2, type V2Options } from './v2.js';
import { requestEnded } from '../io/young-gc.js';

export interface AppOptions extends Partial<V2Options> {
  /** What /v2 serves: the registry store, or the pull-through cache over it. */
  backend: RegistryBackend;
  logger: Logger;
  /** The registry /metrics serves; a new one by default. */
  metrics?: Registry;
  /** Hooks and routes of other parts (access control, audit), added before the /v2 routes. */
  extensions?: Array<(app: FastifyInstance) => void>;
  /** Serve HTTPS with these options (src/server/tls.ts). */
  https?: import('node:https').ServerOptions;
  /** Throws, naming what failed, when the storage (or the database) does not answer: /healthz then says 503. */
  health?: () => Promise<void>;
}

const ABORTED = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED', 'EPIPE']);
/** Out of disk space, or over the user's disk quota: 507 Insufficient Storage. */
const STORAGE_FULL = new Set(['ENOSPC', 'EDQUOT']);

/**
 * A local failure as an answer on the wire. distribution-spec "Error Codes": the code of a 4xx
 * JSON body must be one of its fourteen, so each goes out as the nearest of them, with its status
 * and message: an unsatisfiable read range as SIZE_INVALID, a chunk out of order as
 * BLOB_UPLOAD_INVALID (both 416), a bad argument or a path that is no endpoint as UNSUPPORTED.
 */
function onTheWire(e: WharfError, req: FastifyRequest): OciError {
  const code: ErrorCode = e.code === 'RANGE_INVALID' ? (req.method === 'GET' || req.method === 'HEAD' ? 'SIZE_INVALID' : 'BLOB_UPLOAD_INVALID') : 'UNSUPPORTED';
  return new OciError(code, e.message, { status: e.status, detail: e.detail });
}

/** Renders any error as the spec's JSON error body. Only a true bug is a 500, and it is logged. */
function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  let e: OciError;
  if (err instanceof OciError) e = err;
  else if (err instanceof WharfError) e = onTheWire(err, req);
  else if (STORAGE_FULL.has((err as NodeJS.ErrnoException).code ?? '')) {
    // Checked first: a failed write also ends the request body's stream, which would read as a
    // client that went away. What was acknowledged before stays; this request's bytes do not.
    e = new OciError('UNAVAILABLE', `the registry's storage is full (${(err as NodeJS.ErrnoException).code}); nothing of this request was kept`, { status: 507 });
  } else if (ABORTED.has((err as NodeJS.ErrnoException).code ?? '') || req.raw.destroyed) {
    // The client went away mid-body; nothing was committed and nobody is listening.
    e = new OciError('BLOB_UPLOAD_INVALID', 'the client closed the connection before the body was complete');
  } else if (typeof (err as { statusCode?: unknown }).statusCode === 'number' && (err as { statusCode: number }).statusCode < 500) {
    e = new OciError('UNSUPPORTED', (err as Error).message, { status: (err as { statusCode: number }).statusCode });
  } else {
    req.log.error({ err }, 'unexpected error');
    e = new OciError('INTERNAL', 'internal error; see the server log');
  }
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  const body = JSON.stringify(e.toJSON());
  reply.code(e.status).headers({ 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  if (e.code === 'UNAUTHORIZED') {
    // A script's request (the web UI's, marked by X-Requested-With) gets a challenge no browser
    // answers with its own password dialog; the page shows its sign-in form instead.
    if (req.headers['x-requested-with'] !== undefined) reply.header('www-authenticate', 'Session realm="wharf"');
    else if (!reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Basic realm="wharf"');
  }
  dropUnreadBody(req.raw);
  reply.send(body);
}

/**
 * Requests whose response is still being produced, by socket: bytes that do not parse as HTTP
 * (after a body shorter than its Content-Length, say) must not cut off the answer in flight.
 */
const inFlight = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();

/**
 * Node's parser refused the bytes on a connection. With a request in flight there, that request
 * still gets its own answer and the connection closes after it; otherwise the client gets 400 with
 * the spec's error body (fastify's default body is not one).
 */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const cur = inFlight.get(socket);
  if (cur && cur.req.complete && !cur.res.writableFinished && !socket.destroyed) {
    // The request's whole body arrived: let it be answered, then close.
    cur.res.once('close', () => socket.destroy());
    return;
  }
  // A body cut short (EOF before Content-Length) ends the request in flight: its handler sees the
  // stream fail and commits nothing.
  if (cur || !socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const e = tooLarge ? new OciError('UNSUPPORTED', 'request headers are too large', { status: 431 }) : new OciError('UNSUPPORTED', 'malformed HTTP request', { status: 400 });
  const body = JSON.stringify(e.toJSON());
  const reason = tooLarge ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(`HTTP/1.1 ${e.status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The fastify app: /v2 onto a RegistryStore, plus /healthz and /metrics. No listen() here. */
export function createApp(opts: AppOptions): FastifyInstance {
  const v2: V2Options = { pageSize: opts.pageSize ?? 1000 };
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    clientErrorHandler: clientError,
    // A URL fastify cannot decode (`/v2/%zz`) gets the spec's error body too, not fastify's.
    frameworkErrors: (err, req, reply) => sendError(new OciError('UNSUPPORTED', `malformed URL: ${err.message.slice(0, 200)}`, { status: 400 }), req, reply),
    loggerInstance: opts.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    routerOptions: { maxParamLength: 4096 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Uploads can take long; a stalled socket still times out.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 65_000,
  });

  // Bodies stay unread streams: blobs go to disk as they arrive, never into memory.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const metrics = opts.metrics ?? new Registry();
  collectDefaultMetrics({ register: metrics });
  // The defaults give RSS (process_resident_memory_bytes), the JS heap (nodejs_heap_size_*_bytes)
  // and external memory (nodejs_external_memory_bytes), but not the part of external memory held
  // by ArrayBuffers, the backing of every Buffer: request bodies, cached manifests. Read on scrape.
  new Gauge({
    name: 'wharf_process_memory_bytes',
    help: 'Memory of the process by kind, from process.memoryUsage(), beside the nodejs_* and process_* defaults',
    labelNames: ['kind'] as const,
    registers: [metrics],
    collect() {
      this.set({ kind: 'array_buffers' }, process.memoryUsage().arrayBuffers);
    },
  });
  const duration = new Histogram({
    name: 'wharf_http_request_duration_seconds',
    help: 'Request duration by endpoint, method and status',
    labelNames: ['endpoint', 'method', 'status'] as const,
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
    registers: [metrics],
  });
  const sent = new Counter({ name: 'wharf_http_response_bytes_total', help: 'Bytes sent, by endpoint', labelNames: ['endpoint'] as const, registers: [metrics] });

  const started = new WeakMap<FastifyRequest, { t: bigint; written: number; endpoint: string }>();
  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.socket) {
      const socket = req.raw.socket;
      const cur = { req: req.raw, res: reply.raw };
      inFlight.set(socket, cur);
      reply.raw.once('close', () => {
        if (inFlight.get(socket) === cur) inFlight.delete(socket);
      });
    }
    started.set(req, { t: process.hrtime.bigint(), written: req.raw.socket?.bytesWritten ?? 0, endpoint: 'other' });
  });
  // One log line per request: method, path, status, bytes, duration.
  app.addHook('onResponse', async (req, reply) => {
    requestEnded();
    const s = started.get(req);
    if (!s) return;
    const ms = Number(process.hrtime.bigint() - s.t) / 1e6;
    const bytes = Math.max(0, (req.raw.socket?.bytesWritten ?? s.written) - s.written);
    duration.labels(s.endpoint, req.method, String(reply.statusCode)).observe(ms / 1000);
    sent.labels(s.endpoint).inc(bytes);
    req.log.info({ method: req.method, path: req.url, status: reply.statusCode, bytes, ms: Math.round(ms * 10) / 10, ip: req.ip }, 'request');
  });

  installRouting(app, opts.backend);
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) => sendError(new WharfError('NOT_FOUND', `no endpoint at ${req.url.slice(0, 100)}`), req, reply));

  // A load balancer takes a replica out while this says 503, and back when it says 200 again.
  app.get('/healthz', async (_req, reply) => {
    try {
      await opts.health?.();
      return reply.type('application/json').send('{"status":"ok"}');
    } catch (err) {
      return reply.code(503).type('application/json').send(JSON.stringify({ status: 'unavailable', reason: (err as Error).message }));
    }
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  for (const extend of opts.extensions ?? []) extend(app);

  // Returns the reply: fastify must not treat the async handler's end as an empty response while a
  // stream is still being sent.
  const dispatch = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    const ctx = contextOf(req);
    if (ctx.invalid !== undefined) throw ctx.invalid;
    if (!ctx.route) throw new WharfError('NOT_FOUND', `no endpoint at ${(req.raw.url ?? '/').slice(0, 100)}`);
    const s = started.get(req);
    if (s) s.endpoint = ctx.route.kind;
    await handleV2(opts.backend, ctx, req, reply, v2);
    return reply;
  };
  app.route({ method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'], url: '/v2', handler: dispatch });
  app.route({ method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'], url: '/v2/*', handler: dispatch });
  return app;
}
