import type { WharfConfig } from './config.js';
import { collectGarbage, listCache, pruneCache, type CachedImage, type GcOptions, type GcReport, type PruneReport, type RegistryStore } from './store/index.js';
import { globToRegExp, loadCache, upstreamsOf, type LoadOptions, type LoadReport } from './proxy/index.js';
import { openStore } from './storage.js';

export interface CachePruneOptions {
  namespaces?: string[];
  maxIdle?: number;
  maxAge?: number;
  /** `*` and `?` globs over `repo`, `repo:tag` and `repo@digest`. */
  patterns?: string[];
  maxSize?: number;
  dryRun?: boolean;
  log?: (line: string) => void;
}

/**
 * The registry's storage for the admin commands (`wharf gc`, `wharf cache ls|load|prune`): the
 * one entry point they use, so that they work on whatever storage the config names, as the
 * server does, and the CLI reaches into no server module. Safe beside a running server.
 */
export interface Admin {
  gc(opts?: GcOptions): Promise<GcReport>;
  cacheList(namespaces?: string[]): Promise<CachedImage[]>;
  cachePrune(opts: CachePruneOptions): Promise<PruneReport>;
  /** Loads images into the pull-through cache (see loadCache); online sources use the configured upstreams. */
  cacheLoad(sources: string[], opts?: { repo?: string; log?: (line: string) => void }): Promise<LoadReport['images']>;
}

export async function openAdmin(config: WharfConfig): Promise<Admin> {
  const store: RegistryStore = await openStore(config);
  return {
    gc: (opts = {}) => collectGarbage(store, opts),
    cacheList: (namespaces) => listCache(store, namespaces?.length ? { namespaces } : {}),
    cachePrune: ({ patterns, namespaces, ...rest }) => pruneCache(store, { ...rest, ...(namespaces?.length ? { namespaces } : {}), ...(patterns?.length ? { patterns: patterns.map(globToRegExp) } : {}) }),
    cacheLoad: async (sources, opts = {}) => {
      const upstreams = upstreamsOf(config.proxy);
      const lo: LoadOptions = { store, upstreams };
      if (opts.log) lo.log = opts.log;
      if (opts.repo !== undefined) lo.repo = opts.repo;
      if (config.proxy.defaultNamespace !== undefined) lo.defaultNamespace = config.proxy.defaultNamespace;
      const loaded: LoadReport['images'] = [];
      try {
        for (const s of sources) loaded.push(...(await loadCache(s, lo)).images);
      } finally {
        await Promise.all(upstreams.map((u) => u.close()));
      }
      return loaded;
    },
  };
}

export { parseConfig, readConfigFile, ConfigError, type WharfConfig } from './config.js';
// The audit log and the users file, read and written by `wharf audit` and `wharf user` beside a running server.
export { AuditDb, auditFilter, recordsToCsv } from './audit/index.js';
export { assertUserName, defaultHtpasswdPath, hashPassword, readHtpasswd, writeHtpasswd } from './auth/index.js';
