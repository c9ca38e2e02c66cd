import type { Readable } from 'node:stream';
import { checkPath } from './paths.js';
import type { DriverWriter, FileInfo, FileReader, KeptStats, PutOptions, StageOptions, Staged, StorageDriver, Touched, WriterOptions } from './types.js';

/**
 * Which driver keeps a path: the registry's small files (tags, links, referrer descriptors, upload
 * records) are `meta`, which every replica reads at once (PostgreSQL); the bytes of blobs and of
 * uploads in progress are `data` (the object store). Paths come from src/server/store/paths.ts.
 */
export function isMetaPath(path: string): boolean {
  if (!path.startsWith('repositories/')) return false;
  const at = path.indexOf('/_uploads/');
  // An upload's bytes stay with the blobs they become (a move, not a copy); its record is small.
  return at < 0 || path.endsWith('.info');
}

/**
 * Whether a delete of `path` may find files on both sides: a repository (or a directory above
 * one), whose links are meta and whose uploads' bytes are data, or a directory of upload sessions.
 * Any other path under a repository is a `_`-prefixed directory or file of one side only (repository
 * name components never start with `_`), so deleting a tag or an upload's record costs the object
 * store no request.
 */
function mayHoldBoth(path: string): boolean {
  if (path === 'repositories') return true;
  if (!path.startsWith('repositories/')) return false;
  const parts = path.split('/');
  const at = parts.findIndex((c, i) => i > 0 && c.startsWith('_'));
  return at < 0 || (parts[at] === '_uploads' && at === parts.length - 1);
}

/**
 * Two drivers as one: each path goes to the one that keeps it (isMetaPath). A directory of upload
 * sessions is listed from both, as its records and its bytes are apart; no other listing (the
 * catalog, tags, referrers) touches the object store.
 */
export class SplitDriver implements StorageDriver {
  readonly objectStore: boolean;

  constructor(
    private readonly meta: StorageDriver,
    private readonly data: StorageDriver,
  ) {
    this.objectStore = data.objectStore === true;
    // The small files are the meta driver's: its marks are the ones get() takes.
    if (meta.tick) this.tick = () => meta.tick!();
    if (meta.keptStats) this.keptStats = () => meta.keptStats!();
    if (data.storeRequests) this.storeRequests = () => data.storeRequests!();
  }

  readonly tick?: () => number;
  readonly keptStats?: () => KeptStats;
  readonly storeRequests?: () => ReadonlyMap<string, number>;

  private on(path: string): StorageDriver {
    return isMetaPath(checkPath(path)) ? this.meta : this.data;
  }

  stat(path: string): Promise<FileInfo | undefined> {
    return this.on(path).stat(path);
  }
  get(path: string, opts?: { since?: number | undefined }): Promise<Buffer | undefined> {
    return this.on(path).get(path, opts);
  }
  put(path: string, data: Uint8Array | string, opts?: PutOptions): Promise<void> {
    return this.on(path).put(path, data, opts);
  }
  open(path: string, opts?: { sequential?: boolean; size?: number }): Promise<FileReader> {
    return this.on(path).open(path, opts);
  }
  reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    return this.on(path).reader(path, range);
  }
  writer(path: string, opts?: WriterOptions): Promise<DriverWriter> {
    return this.on(path).writer(path, opts);
  }

  async list(path: string): Promise<string[]> {
    // The root, and a directory of upload sessions, have entries on both sides.
    if (path === '' || /^repositories\/.+\/_uploads$/.test(checkPath(path))) {
      const [m, d] = await Promise.all([this.meta.list(path), this.data.list(path)]);
      return [...new Set([...m, ...d])];
    }
    return this.on(`${path}/x`).list(path);
  }

  async move(from: string, to: string): Promise<void> {
    const a = this.on(from);
    const b = this.on(to);
    if (a === b) return a.move(from, to);
    // Between the two (none of the registry's moves is): copy, then remove the source.
    const bytes = await a.get(from);
    if (bytes === undefined) return a.move(from, to);
    await b.put(to, bytes);
    await a.delete(from);
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    // A directory may have files on both sides (a repository: its links and its uploads' bytes).
    if (mayHoldBoth(path)) await Promise.all([this.meta.delete(path), this.data.delete(path)]);
    else await this.on(path).delete(path);
  }

  touch(path: string): Promise<Touched | undefined> {
    return this.on(path).touch(path);
  }
  /** Staged bytes become blobs (pull-through fills). */
  stage(opts?: StageOptions): Promise<Staged> {
    return this.data.stage(opts);
  }
  async sweepTemp(maxAgeMs: number): Promise<number> {
    return (await this.meta.sweepTemp(maxAgeMs)) + (await this.data.sweepTemp(maxAgeMs));
  }
  async ping(): Promise<void> {
    // Both asked at once; each failure named by its side.
    const [m, d] = await Promise.allSettled([this.meta.ping?.(), this.data.ping?.()]);
    const failed = [m.status === 'rejected' ? `database: ${(m.reason as Error).message}` : '', d.status === 'rejected' ? `storage: ${(d.reason as Error).message}` : ''].filter(Boolean);
    if (failed.length > 0) throw new Error(failed.join('; '));
  }
  urlFor(path: string): Promise<string | undefined> {
    return this.on(path).urlFor?.(path) ?? Promise.resolve(undefined);
  }
  async close(): Promise<void> {
    await this.meta.close?.();
    await this.data.close?.();
  }
}
