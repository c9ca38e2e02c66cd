import { existsSync } from 'node:fs';
import type { WharfConfig } from './config.js';
import { collectGarbage, listCache, pruneCache, type CachedImage, type GcOptions, type GcReport, type PruneReport, type RegistryStore } from './store/index.js';
import { globToRegExp, loadCache, upstreamsOf, type LoadOptions, type LoadReport } from './proxy/index.js';
import { connectDatabase, openStore } from './storage.js';
import { alone, pgJournal, type Database } from './db/index.js';
import { AuditDb, JournalApplier, readShared } from './audit/index.js';

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
  /** Releases the storage's and the database's connections. */
  close(): Promise<void>;
}

/** gc's advisory lock (docs/SCALE-OUT.md): one collection at a time, whichever replica or host runs it. */
export const GC_LOCK = 0x7768617267;

export async function openAdmin(config: WharfConfig): Promise<Admin> {
  const db = await connectDatabase(config);
  let store: RegistryStore;
  try {
    store = await openStore(config, db);
  } catch (err) {
    await db?.close();
    throw err;
  }
  return {
    gc: (opts = {}) => (db ? oneAtATime(db, () => collectGarbage(store, opts)) : collectGarbage(store, opts)),
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
    close: async () => {
      await store.driver.close?.();
      await db?.close();
    },
  };
}

/**
 * Runs `fn` under gc's advisory lock (db's alone): a second collection, here or on another host, is
 * refused rather than queued (it would redo the same work).
 */
async function oneAtATime<T>(db: Database, fn: () => Promise<T>): Promise<T> {
  const r = await alone(db, GC_LOCK, fn);
  if (!r) throw new Error('another garbage collection is running on this registry (the database holds its lock); try again once it ends');
  return r.value;
}

/**
 * The audit log for `wharf audit`, at `path`. Replicas (database.url) keep the log in PostgreSQL
 * and this database is an index of it: it is first brought up to date, so that the command
 * shows what every replica recorded, on any host that has the config. Safe beside a running
 * server, which reads into the same index (its position only moves forward).
 */
export async function openAuditIndex(config: WharfConfig, path: string): Promise<{ db: AuditDb; close(): Promise<void> } | undefined> {
  const database = await connectDatabase(config);
  if (!database) {
    if (!existsSync(path)) return undefined;
    const db = new AuditDb(path, { readonly: true });
    return { db, close: async () => db.close() };
  }
  try {
    const db = new AuditDb(path);
    try {
      await readShared(new JournalApplier(db, config.audit.groupWindow), db, pgJournal(database));
    } catch (err) {
      db.close();
      throw err;
    }
    return {
      db,
      close: async () => {
        db.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}

export { parseConfig, readConfigFile, ConfigError, type WharfConfig } from './config.js';
// The audit log and the users file, read and written by `wharf audit` and `wharf user` beside a running server.
export { AuditDb, auditFilter, recordsToCsv } from './audit/index.js';
export { assertUserName, defaultHtpasswdPath, hashPassword, readHtpasswd, writeHtpasswd } from './auth/index.js';
