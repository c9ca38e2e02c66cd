import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RegistryStore } from './store/index.js';
import { randomBytes } from 'node:crypto';
import { connectDatabase, openStore } from './storage.js';
import { alone, claimSlot, fillLeases, pgJournal, pgWebhookLedger, sharedFailures, sharedSecrets } from './db/index.js';
import { ID_SLOTS, noAuditIndex, setAuditIdSlot } from './audit/index.js';
import { createApp } from './http/app.js';
import { parseConfig, type WharfConfig, type WharfConfigInput } from './config.js';
import { Counter, Gauge, Registry as MetricsRegistry } from 'prom-client';
import { startRequestHooks, type RequestHooks } from './request-hooks.js';
import { REDACT_PATHS } from './auth/index.js';
import { reloadTls, tlsOptions } from './tls.js';
import type { Server as TlsServer } from 'node:tls';
import { installWeb, signedInAdmin, type WebDeps } from './web/index.js';
import { adminsOnly, installAuditApi } from './http/audit.js';
import { startPullThrough, type PullThroughHandle, type ProxyTarget } from './proxy/index.js';

export interface ServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  deleteEnabled?: boolean;
  logLevel?: string;
  /** Any other settings, in the config file's shape. */
  config?: WharfConfigInput;
  logger?: Logger;
  /** Called for every request the pull-through cache sends upstream (tests count them). */
  onUpstream?: (t: ProxyTarget, what: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  config: WharfConfig;
  store: RegistryStore;
  app: FastifyInstance;
  /** The pull-through cache, when upstreams are configured. */
  proxy: PullThroughHandle | undefined;
  /** Access control, the audit log and webhooks (src/server/request-hooks.ts). */
  hooks: RequestHooks;
  /** Re-reads the TLS certificate, key and client CA (SIGHUP); open connections are kept. */
  reloadTls(): Promise<void>;
  /** Stops accepting, finishes the requests in flight, then resolves. */
  close(): Promise<void>;
}

/** The upload purge's advisory lock ("wharfp" in ASCII): one replica at a time. */
const PURGE_LOCK = 0x776861726670;

/** Builds the store and app from a validated config and listens. */
export async function startFromConfig(config: WharfConfig, logger?: Logger, testing: Pick<ServerOptions, 'onUpstream'> = {}): Promise<RunningServer> {
  const log = logger ?? pino({ level: config.log.level, redact: REDACT_PATHS });
  const dataDir = resolve(config.data);
  await mkdir(dataDir, { recursive: true });
  const db = await connectDatabase(config, log);
  const secrets = db ? sharedSecrets(db) : undefined;
  let store: RegistryStore;
  try {
    // Replicas share the UI's session key (unless the config sets one), as they share the token key.
    if (secrets && config.ui.sessionSecret === undefined) {
      config = { ...config, ui: { ...config.ui, sessionSecret: await secrets('ui-session', async () => randomBytes(32).toString('hex')) } };
    }
    store = await openStore(config, db, log);
  } catch (err) {
    // Its connections would keep the process alive.
    await db?.close();
    throw err;
  }
  const metrics = new MetricsRegistry();
  // The caches' bounds are in bytes they really hold (store/memo.ts); shown so that RSS can be read against them.
  const cacheEntries = new Gauge({ name: 'wharf_store_cache_entries', help: 'Entries in the store caches (manifests, verified files; kept: tags and links a replica keeps)', labelNames: ['cache'] as const, registers: [metrics] });
  new Gauge({
    name: 'wharf_store_cache_bytes',
    help: 'Memory the store caches count as held (manifests, verified files; kept: tags and links a replica keeps), bytes',
    labelNames: ['cache'] as const,
    registers: [metrics],
    collect() {
      const c = store.cacheSizes();
      this.set({ cache: 'manifests' }, c.manifests.bytes);
      this.set({ cache: 'verified' }, c.verified.bytes);
      cacheEntries.set({ cache: 'manifests' }, c.manifests.entries);
      cacheEntries.set({ cache: 'verified' }, c.verified.entries);
      const kept = store.driver.keptStats?.();
      if (kept) {
        this.set({ cache: 'kept' }, kept.bytes);
        cacheEntries.set({ cache: 'kept' }, kept.entries);
      }
    },
  });
  if (store.driver.keptStats) {
    // Replicas: how tags and links were read. Answers from memory need this replica to hear every change (docs/SCALE-OUT.md).
    new Counter({
      name: 'wharf_kept_reads_total',
      help: 'Reads of tags, links and referrers: answered from memory, or asked of the database',
      labelNames: ['from'] as const,
      registers: [metrics],
      collect() {
        const k = store.driver.keptStats?.();
        this.reset();
        this.inc({ from: 'memory' }, k?.fromMemory ?? 0);
        this.inc({ from: 'database' }, k?.fromDatabase ?? 0);
      },
    });
  }
  if (store.driver.storeRequests) {
    // What the object store is asked, for its bill and for a push or pull's cost in requests.
    new Counter({
      name: 'wharf_object_store_requests_total',
      help: 'Requests sent to the object store, by operation',
      labelNames: ['op'] as const,
      registers: [metrics],
      collect() {
        this.reset();
        for (const [op, n] of store.driver.storeRequests?.() ?? []) this.inc({ op }, n);
      },
    });
  }
  const proxy = await startPullThrough(config, { store, log, metrics, onUpstream: testing.onUpstream, leases: db ? fillLeases(db) : undefined });
  const shared = db && secrets ? { secrets, failures: sharedFailures(db), onError: (err: unknown) => log.warn({ err }, 'auth: cannot count a failed login in the database') } : undefined;
  // Record ids carry a slot of this replica's, so that replicas writing one log never repeat an id.
  const slot = db ? await claimSlot(db, ID_SLOTS, { onSlot: setAuditIdSlot, log }) : undefined;
  const replicated = db ? { journal: pgJournal(db), ledger: pgWebhookLedger(db) } : undefined;
  const hooks = await startRequestHooks(config, { dataDir, log, shared, replicated });
  const backend = proxy?.backend ?? store;
  const webDeps: WebDeps = { config, backend, store, auth: hooks.auth, audit: hooks.audit, sinks: hooks.sinks, proxy, log };
  const extensions = [...hooks.extensions];
  // The audit log's API: with the UI on, its check also knows the UI's session cookie.
  const audit = hooks.audit;
  const admit = config.ui.enabled ? (req: FastifyRequest, reply: FastifyReply) => signedInAdmin(req, reply, webDeps) : adminsOnly(hooks.auth);
  extensions.push((a) => installAuditApi(a, audit ?? noAuditIndex(config.audit), admit));
  if (config.ui.enabled) extensions.push((a) => installWeb(a, webDeps));
  const app = createApp({
    backend,
    logger: log,
    pageSize: config.pagination.pageSize,
    metrics,
    extensions,
    health: async () => store.driver.ping?.(),
    ...(config.tls ? { https: await tlsOptions(config.tls) } : {}),
  });

  // Purge abandoned upload sessions and crash leftovers now and then; never on the request path.
  const purge = async (): Promise<void> => {
    try {
      // Replicas purge one at a time: two at once would each end, and record, the same sessions.
      const run = (): ReturnType<RegistryStore['purgeUploads']> => store.purgeUploads(config.uploads.purgeAfter);
      const gone = db ? (await alone(db, PURGE_LOCK, run))?.value : await run();
      if (!gone) return;
      hooks.abandoned(gone.uploads);
      if (gone.uploads.length + gone.temp > 0) log.info({ uploads: gone.uploads.length, temp: gone.temp }, 'purged abandoned uploads');
    } catch (err) {
      log.warn({ err }, 'upload purge failed');
    }
  };
  const timer = setInterval(() => void purge(), Math.min(Math.max(config.uploads.purgeAfter / 4, 1000), 3600e3));
  timer.unref();
  void purge();

  const i = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
  try {
    await app.listen({ host, port: Number(config.listen.slice(i + 1)) });
  } catch (err) {
    // EADDRINUSE and the like: stop what started above, or its timers keep the process alive.
    clearInterval(timer);
    await app.close().catch(() => undefined);
    await proxy?.close();
    await hooks.close();
    await slot?.release();
    await store.driver.close?.();
    await db?.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `${config.tls ? 'https' : 'http'}://${shown}:${port}`,
    port,
    config,
    store,
    app,
    proxy,
    hooks,
    reloadTls: async () => {
      if (config.tls) await reloadTls(app.server as unknown as TlsServer, config.tls);
    },
    close: async () => {
      clearInterval(timer);
      // close() ends the connections idle at that moment; one whose request is in flight goes idle
      // when it ends, and a keep-alive client would hold it open until keepAliveTimeout (65 s).
      const idle = setInterval(() => app.server.closeIdleConnections(), 100);
      try {
        await app.close();
      } finally {
        clearInterval(idle);
      }
      await proxy?.close();
      await hooks.close();
      await slot?.release();
      await store.driver.close?.();
      await db?.close();
    },
  };
}

/** Starts a registry: the programmatic twin of `wharf serve`. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const input: Record<string, unknown> = { ...(opts.config ?? {}) };
  input.data = opts.dataDir;
  input.listen = `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`;
  if (opts.deleteEnabled !== undefined) input.delete = { enabled: opts.deleteEnabled };
  if (opts.logLevel !== undefined) input.log = { level: opts.logLevel };
  return startFromConfig(parseConfig(input), opts.logger, { onUpstream: opts.onUpstream });
}

export { parseConfig, readConfigFile, ConfigError, setPath, type WharfConfig, type WharfConfigInput } from './config.js';
export { REDACT_PATHS } from './auth/index.js';
export { RegistryStore } from './store/index.js';
export { FsDriver, type StorageDriver } from './driver/index.js';
export { createApp } from './http/app.js';
export { tightenHeapGrowth } from './io/young-gc.js';
