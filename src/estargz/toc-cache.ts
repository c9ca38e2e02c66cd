import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createDigester, parseDigest } from '../spec/index.js';

/** Where the cache lives unless told: `$WHARF_ESTARGZ_CACHE`, else `$XDG_CACHE_HOME/wharf/estargz`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WHARF_ESTARGZ_CACHE) return env.WHARF_ESTARGZ_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'wharf', 'estargz');
}

export interface CachedToc {
  tocOffset: number;
  blobSize: number;
  json: Buffer;
}

export interface CacheInfo {
  dir: string;
  tocs: number;
  chunks: number;
  /** Whole plain (not eStargz) layers. */
  blobs: number;
  bytes: number;
  oldest?: Date;
  newest?: Date;
}

export interface PruneOptions {
  /** Drop entries not used for this many milliseconds. */
  maxAgeMs?: number;
  /** Then drop the least recently used until the cache holds at most this many bytes. */
  maxSize?: number;
  now?: number;
}

interface FileInfo {
  path: string;
  size: number;
  used: number;
}

/**
 * A local cache of eStargz TOCs (by layer digest) and of uncompressed chunks (by chunk digest),
 * and of whole plain tar.gz layers (by digest), so that a second `ls` or `cat` needs no network. Content-addressed and immutable: a chunk
 * shared by two layers is stored once. Every read is hashed again, and a damaged entry is
 * dropped and read as a miss. Writes are a temp file and a rename. The mtime of an entry is its
 * last use, for `prune`. A cache that cannot write is only slower: its errors never fail a read.
 */
export class EstargzCache {
  constructor(readonly dir: string) {}

  private chunkPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'chunks', algorithm, hex.slice(0, 2), hex);
  }

  private blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  /**
   * A whole plain tar.gz layer kept by digest, or undefined. Its reader checks the digest as it
   * reads it; a damaged one is dropped with `dropBlob`.
   */
  async blobFile(digest: string, size?: number): Promise<string | undefined> {
    const p = this.blobPath(digest);
    try {
      const st = await stat(p);
      if (size !== undefined && st.size !== size) {
        await rm(p, { force: true });
        return undefined;
      }
      const now = new Date();
      await utimes(p, now, now).catch(() => undefined);
      return p;
    } catch {
      return undefined;
    }
  }

  /** A temp file name inside the cache, for `adoptBlob`. */
  async tempFile(): Promise<string | undefined> {
    try {
      await mkdir(join(this.dir, 'tmp'), { recursive: true });
      return join(this.dir, 'tmp', `${randomBytes(8).toString('hex')}.tmp`);
    } catch {
      return undefined;
    }
  }

  /** Moves a verified copy of a layer into the cache. */
  async adoptBlob(digest: string, tmp: string): Promise<void> {
    try {
      const p = this.blobPath(digest);
      await mkdir(dirname(p), { recursive: true });
      await rename(tmp, p);
    } catch {
      // Only slower.
    }
  }

  async dropBlob(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  private tocPath(layerDigest: string): string {
    const { algorithm, hex } = parseDigest(layerDigest);
    return join(this.dir, 'tocs', algorithm, hex);
  }

  private async put(path: string, data: Buffer): Promise<void> {
    try {
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(tmp, data);
      await rename(tmp, path);
    } catch {
      // Only slower.
    }
  }

  private async get(path: string): Promise<Buffer | undefined> {
    try {
      const b = await readFile(path);
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined);
      return b;
    } catch {
      return undefined;
    }
  }

  async getChunk(digest: string): Promise<Buffer | undefined> {
    const p = this.chunkPath(digest);
    const b = await this.get(p);
    if (!b) return undefined;
    const { algorithm, hex } = parseDigest(digest);
    if (createDigester(algorithm).update(b).digest('hex') !== hex) {
      await rm(p, { force: true });
      return undefined;
    }
    return b;
  }

  async putChunk(digest: string, data: Buffer): Promise<void> {
    await this.put(this.chunkPath(digest), data);
  }

  /** The TOC of a layer; `tocDigest`, when known, must match or the entry is dropped. */
  async getToc(layerDigest: string, tocDigest?: string): Promise<CachedToc | undefined> {
    const p = this.tocPath(layerDigest);
    const b = await this.get(p);
    if (!b) return undefined;
    const nl = b.indexOf(0x0a);
    try {
      const meta = JSON.parse(b.subarray(0, nl).toString('utf8')) as { tocOffset: number; blobSize: number; tocDigest: string };
      const json = b.subarray(nl + 1);
      const got = `sha256:${createDigester().update(json).digest('hex')}`;
      if (got !== meta.tocDigest || (tocDigest && got !== tocDigest)) throw new Error('damaged');
      return { tocOffset: meta.tocOffset, blobSize: meta.blobSize, json };
    } catch {
      await rm(p, { force: true });
      return undefined;
    }
  }

  async putToc(layerDigest: string, toc: CachedToc): Promise<void> {
    const tocDigest = `sha256:${createDigester().update(toc.json).digest('hex')}`;
    const meta = Buffer.from(`${JSON.stringify({ tocOffset: toc.tocOffset, blobSize: toc.blobSize, tocDigest })}\n`);
    await this.put(this.tocPath(layerDigest), Buffer.concat([meta, toc.json]));
  }

  private async files(): Promise<Array<FileInfo & { kind: 'toc' | 'chunk' | 'blob' }>> {
    const out: Array<FileInfo & { kind: 'toc' | 'chunk' | 'blob' }> = [];
    const walk = async (d: string, kind: 'toc' | 'chunk' | 'blob'): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(d);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(d, n);
        const st = await stat(p).catch(() => undefined);
        if (!st) continue;
        if (st.isDirectory()) await walk(p, kind);
        else if (!n.endsWith('.tmp')) out.push({ path: p, size: st.size, used: st.mtimeMs, kind });
      }
    };
    await walk(join(this.dir, 'tocs'), 'toc');
    await walk(join(this.dir, 'chunks'), 'chunk');
    await walk(join(this.dir, 'blobs'), 'blob');
    return out;
  }

  async info(): Promise<CacheInfo> {
    const files = await this.files();
    const info: CacheInfo = { dir: this.dir, tocs: 0, chunks: 0, blobs: 0, bytes: 0 };
    for (const f of files) {
      if (f.kind === 'toc') info.tocs++;
      else if (f.kind === 'chunk') info.chunks++;
      else info.blobs++;
      info.bytes += f.size;
      if (!info.oldest || f.used < info.oldest.getTime()) info.oldest = new Date(f.used);
      if (!info.newest || f.used > info.newest.getTime()) info.newest = new Date(f.used);
    }
    return info;
  }

  /** Removes entries older than `maxAgeMs`, then the least recently used over `maxSize`. */
  async prune(opts: PruneOptions): Promise<{ removed: number; freed: number }> {
    const now = opts.now ?? Date.now();
    const files = (await this.files()).sort((a, b) => a.used - b.used);
    let total = files.reduce((n, f) => n + f.size, 0);
    let removed = 0;
    let freed = 0;
    for (const f of files) {
      const old = opts.maxAgeMs !== undefined && now - f.used > opts.maxAgeMs;
      const over = opts.maxSize !== undefined && total > opts.maxSize;
      if (!old && !over) continue;
      await rm(f.path, { force: true });
      total -= f.size;
      freed += f.size;
      removed++;
    }
    return { removed, freed };
  }

  async clear(): Promise<{ removed: number; freed: number }> {
    const files = await this.files();
    await rm(join(this.dir, 'tocs'), { recursive: true, force: true });
    await rm(join(this.dir, 'chunks'), { recursive: true, force: true });
    await rm(join(this.dir, 'blobs'), { recursive: true, force: true });
    await rm(join(this.dir, 'tmp'), { recursive: true, force: true });
    return { removed: files.length, freed: files.reduce((n, f) => n + f.size, 0) };
  }
}
