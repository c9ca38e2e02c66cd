import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { pruneCache, type PruneOptions, type RegistryStore } from '../store/index.js';
import type { ProxyConfig } from './config.js';
import { createProxyMetrics, type ProxyMetrics } from './metrics.js';
import { PullThrough, type PullThroughOptions, type ProxyTarget } from './pull-through.js';
import type { FillLeases } from './leases.js';
import { Upstream } from './upstream.js';
import { loadCache, type LoadOptions } from './load.js';

export { ProxyConfigSchema, UpstreamSchema, type ProxyConfig, type ProxyConfigInput, type UpstreamConfig } from './config.js';
export { PullThrough, type ProxyTarget } from './pull-through.js';
export type { FillLeases } from './leases.js';
export { Upstream, UpstreamDown, globToRegExp } from './upstream.js';
export { createProxyMetrics, type ProxyMetrics } from './metrics.js';
export { loadCache, CacheTarget, type LoadOptions, type LoadReport } from './load.js';

export interface PullThroughHandle {
  /** The registry backend: the store, with the cached namespaces answered through the upstreams. */
  backend: PullThrough;
  upstreams: Upstream[];
  metrics: ProxyMetrics;
  close(): Promise<void>;
}

export interface StartOptions {
  store: RegistryStore;
  log: Logger;
  metrics: Registry;
  /** Every request that reaches an upstream; for tests. */
  onUpstream?: ((t: ProxyTarget, what: string) => void) | undefined;
  /** Replicas: the database's leases on fills (PullThroughOptions.leases). */
  leases?: FillLeases | undefined;
}

/** The upstreams of a proxy config, each with its own connection pool and credentials. */
export function upstreamsOf(config: ProxyConfig): Upstream[] {
  return config.upstreams.map((u) => new Upstream(u, { offline: config.offline }));
}

/**
 * Starts the pull-through cache of a server config: undefined when no upstream is configured.
 * Preloads `proxy.preload` sources and starts background pruning when configured.
 */
export async function startPullThrough(config: { proxy: ProxyConfig }, opts: StartOptions): Promise<PullThroughHandle | undefined> {
  const pc = config.proxy;
  if (pc.upstreams.length === 0) return undefined;
  const upstreams = upstreamsOf(pc);
  const metrics = createProxyMetrics(opts.metrics);
  const ptOpts: PullThroughOptions = { metrics, log: opts.log };
  if (pc.defaultNamespace !== undefined) ptOpts.defaultNamespace = pc.defaultNamespace;
  if (opts.onUpstream) ptOpts.onUpstream = opts.onUpstream;
  if (opts.leases) ptOpts.leases = opts.leases;
  const timers: NodeJS.Timeout[] = [];
  const handle: PullThroughHandle = {
    backend: new PullThrough(opts.store, upstreams, ptOpts),
    upstreams,
    metrics,
    close: async () => {
      for (const t of timers) clearInterval(t);
      await Promise.all(upstreams.map((u) => u.close()));
    },
  };
  const loadOpts: LoadOptions = { store: opts.store, upstreams, log: (line) => opts.log.info(line) };
  if (pc.defaultNamespace !== undefined) loadOpts.defaultNamespace = pc.defaultNamespace;
  try {
    for (const src of pc.preload) {
      const r = await loadCache(src, loadOpts);
      opts.log.info({ source: src, images: r.images.length }, `preloaded ${r.images.length} image(s) from ${src}`);
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  const pr = pc.prune;
  if (pr.interval !== undefined && (pr.maxIdle !== undefined || pr.maxAge !== undefined || pr.maxSize !== undefined)) {
    const prune = async (): Promise<void> => {
      try {
        const popts: PruneOptions = { namespaces: upstreams.map((u) => u.namespace) };
        if (pr.maxIdle !== undefined) popts.maxIdle = pr.maxIdle;
        if (pr.maxAge !== undefined) popts.maxAge = pr.maxAge;
        if (pr.maxSize !== undefined) popts.maxSize = pr.maxSize;
        const r = await pruneCache(opts.store, popts);
        if (r.images.length > 0) opts.log.info({ images: r.images.length, blobs: r.blobs, bytes: r.bytes, remaining: r.remaining }, 'pruned the pull-through cache');
      } catch (err) {
        opts.log.warn({ err }, 'cache pruning failed');
      }
    };
    const timer = setInterval(() => void prune(), Math.max(pr.interval, 1000));
    timer.unref();
    timers.push(timer);
  }
  return handle;
}
