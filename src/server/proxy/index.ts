import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { RegistryStore } from '../store/index.js';
import type { ProxyConfig } from './config.js';
import { ProxyCache, type ProxyTarget } from './cache.js';
import { createProxyMetrics, type ProxyMetrics } from './metrics.js';
import { ProxyRouter } from './router.js';
import { Upstream } from './upstream.js';
import { loadCache, type LoadOptions } from './load.js';
import { pruneCache, type PruneOptions } from './prune.js';

export { ProxyConfigSchema, UpstreamSchema, type ProxyConfig, type ProxyConfigInput, type UpstreamConfig } from './config.js';
export { ProxyCache, type ProxyTarget, type CachedManifest } from './cache.js';
export { ProxyRouter, type V2Interceptor } from './router.js';
export { Upstream, globToRegExp } from './upstream.js';
export { BlobFill } from './fill.js';
export { createProxyMetrics, type ProxyMetrics } from './metrics.js';
export { listCache, pruneCache, cachedNamespaces, type CachedImage, type PruneOptions, type PruneReport } from './prune.js';
export { loadCache, CacheTarget, saveCachedManifest, type LoadOptions, type LoadReport } from './load.js';

export interface PullThrough {
  router: ProxyRouter;
  cache: ProxyCache;
  upstreams: Upstream[];
  metrics: ProxyMetrics;
  close(): Promise<void>;
}

export interface PullThroughOptions {
  store: RegistryStore;
  /** The FsDriver's root (the data directory). */
  root: string;
  fsync: boolean;
  /** Write large fills with O_DIRECT where the file system takes it (storage.directIO). */
  directIO: boolean;
  log: Logger;
  metrics: Registry;
  pageSize: number;
  /** Every request that reaches an upstream; for tests. */
  onUpstream?: (t: ProxyTarget, what: string) => void;
}

/** The pull-through cache for the configured upstreams, ready to hand to createApp({ proxy }). */
export function createPullThrough(config: ProxyConfig, opts: PullThroughOptions): PullThrough {
  const upstreams = config.upstreams.map((u) => new Upstream(u, { offline: config.offline }));
  const metrics = createProxyMetrics(opts.metrics);
  const cacheOpts: ConstructorParameters<typeof ProxyCache>[1] = { root: opts.root, fsync: opts.fsync, directIO: opts.directIO, metrics, log: opts.log };
  if (opts.onUpstream) cacheOpts.onUpstream = opts.onUpstream;
  const cache = new ProxyCache(opts.store, cacheOpts);
  const routerOpts: ConstructorParameters<typeof ProxyRouter>[2] = { pageSize: opts.pageSize };
  if (config.defaultNamespace !== undefined) routerOpts.defaultNamespace = config.defaultNamespace;
  const router = new ProxyRouter(cache, upstreams, routerOpts);
  return {
    router,
    cache,
    upstreams,
    metrics,
    close: async () => {
      await Promise.all(upstreams.map((u) => u.close()));
    },
  };
}

/**
 * Starts the pull-through cache of a server config: undefined when no upstream is configured.
 * Preloads `proxy.preload` sources and starts background pruning when configured.
 */
export async function startPullThrough(
  config: { proxy: ProxyConfig; storage: { fsync: boolean; directIO: boolean }; pagination: { pageSize: number } },
  opts: Omit<PullThroughOptions, 'fsync' | 'directIO' | 'pageSize' | 'onUpstream'> & { onUpstream?: PullThroughOptions['onUpstream'] | undefined },
): Promise<PullThrough | undefined> {
  if (config.proxy.upstreams.length === 0) return undefined;
  const { onUpstream, ...rest } = opts;
  const o: PullThroughOptions = { ...rest, fsync: config.storage.fsync, directIO: config.storage.directIO, pageSize: config.pagination.pageSize };
  if (onUpstream) o.onUpstream = onUpstream;
  const p = createPullThrough(config.proxy, o);
  const loadOpts: LoadOptions = { store: opts.store, upstreams: p.upstreams, log: (line) => opts.log.info(line) };
  if (config.proxy.defaultNamespace !== undefined) loadOpts.defaultNamespace = config.proxy.defaultNamespace;
  try {
    for (const src of config.proxy.preload) {
      const r = await loadCache(src, loadOpts);
      opts.log.info({ source: src, images: r.images.length }, `preloaded ${r.images.length} image(s) from ${src}`);
    }
  } catch (err) {
    await p.close();
    throw err;
  }
  const pr = config.proxy.prune;
  if (pr.interval !== undefined && (pr.maxIdle !== undefined || pr.maxAge !== undefined || pr.maxSize !== undefined)) {
    const prune = async (): Promise<void> => {
      try {
        const popts: PruneOptions = { namespaces: p.upstreams.map((u) => u.namespace) };
        if (pr.maxIdle !== undefined) popts.maxIdle = pr.maxIdle;
        if (pr.maxAge !== undefined) popts.maxAge = pr.maxAge;
        if (pr.maxSize !== undefined) popts.maxSize = pr.maxSize;
        const r = await pruneCache(opts.store.driver, popts);
        if (r.images.length > 0) opts.log.info({ images: r.images.length, blobs: r.blobs, bytes: r.bytes, remaining: r.remaining }, 'pruned the pull-through cache');
      } catch (err) {
        opts.log.warn({ err }, 'cache pruning failed');
      }
    };
    const timer = setInterval(() => void prune(), Math.max(pr.interval, 1000));
    timer.unref();
    const close = p.close;
    p.close = async () => {
      clearInterval(timer);
      await close();
    };
  }
  return p;
}
