import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate, utimes, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { DriverWriter, FileInfo, StorageDriver } from './types.js';

export interface FsDriverOptions {
  /** fsync files and their directories on commit (default true): acknowledged means on disk. */
  fsync?: boolean;
}

/** Paths are built from validated names, but a driver is the last line: nothing leaves the root. */
export function checkPath(path: string): string {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) throw new Error(`storage path "${path}" is not relative`);
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`storage path "${path}" has an illegal segment`);
  }
  return path;
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A StorageDriver on a local directory. Temporary files live in `<root>/_tmp`, same filesystem. */
export class FsDriver implements StorageDriver {
  readonly root: string;
  private readonly fsync: boolean;
  private readonly tmp: string;

  constructor(root: string, opts: FsDriverOptions = {}) {
    this.root = resolve(root);
    this.fsync = opts.fsync ?? true;
    this.tmp = join(this.root, '_tmp');
  }

  private abs(path: string): string {
    const p = join(this.root, checkPath(path));
    if (!p.startsWith(this.root + sep)) throw new Error(`storage path "${path}" escapes the root`);
    return p;
  }

  private async tempPath(): Promise<string> {
    await mkdir(this.tmp, { recursive: true });
    return join(this.tmp, `${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  private async syncDir(dir: string): Promise<void> {
    if (!this.fsync) return;
    let fh: FileHandle | undefined;
    try {
      fh = await open(dir, 'r');
      await fh.sync();
    } catch {
      // Some filesystems refuse fsync on directories; the rename itself is still atomic.
    } finally {
      await fh?.close();
    }
  }

  /** Renames into place, creating parents; fsyncs the parent so the rename survives a crash. */
  private async install(tmp: string, dst: string): Promise<void> {
    try {
      await rename(tmp, dst);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await mkdir(dirname(dst), { recursive: true });
      await rename(tmp, dst);
    }
    await this.syncDir(dirname(dst));
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const s = await stat(this.abs(path));
      return { size: s.size, mtimeMs: s.mtimeMs, isDir: s.isDirectory() };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.abs(path));
    } catch (err) {
      if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
      throw err;
    }
  }

  async put(path: string, data: Uint8Array | string): Promise<void> {
    const dst = this.abs(path);
    const tmp = await this.tempPath();
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        if (this.fsync) await fh.sync();
      } finally {
        await fh.close();
      }
      await this.install(tmp, dst);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const p = this.abs(path);
    // Open first so that a missing file is an error here, not later on the stream.
    const fh = await open(p, 'r');
    return createReadStream('', { fd: fh, highWaterMark: 1 << 20, ...(range ?? {}) });
  }

  async writer(path: string, opts: { appendAt?: number } = {}): Promise<DriverWriter> {
    const dst = this.abs(path);
    if (opts.appendAt !== undefined) {
      const at = opts.appendAt;
      const fh = await open(dst, 'r+');
      const ws = createWriteStream('', { fd: fh, start: at, autoClose: false, highWaterMark: 1 << 20 });
      return makeWriter(ws, {
        commit: async () => {
          if (this.fsync) await fh.sync();
          await fh.close();
        },
        cancel: async () => {
          await fh.close().catch(() => undefined);
          await truncate(dst, at);
        },
      });
    }
    const tmp = await this.tempPath();
    const fh = await open(tmp, 'w');
    const ws = createWriteStream('', { fd: fh, autoClose: false, highWaterMark: 1 << 20 });
    return makeWriter(ws, {
      commit: async () => {
        if (this.fsync) await fh.sync();
        await fh.close();
        await this.install(tmp, dst);
      },
      cancel: async () => {
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
      },
    });
  }

  async list(path: string): Promise<string[]> {
    try {
      return await readdir(path === '' ? this.root : this.abs(path));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }

  async move(from: string, to: string): Promise<void> {
    await this.install(this.abs(from), this.abs(to));
  }

  async delete(path: string): Promise<void> {
    await rm(this.abs(path), { recursive: true, force: true });
  }

  async touch(path: string): Promise<void> {
    const now = new Date();
    try {
      await utimes(this.abs(path), now, now);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Removes temporary files older than `maxAgeMs`, left by a crash mid-write. */
  async sweepTemp(maxAgeMs: number): Promise<number> {
    let n = 0;
    const now = Date.now();
    for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
      const started = Number(name.split('-')[0]);
      if (Number.isFinite(started) && now - started > maxAgeMs) {
        await rm(join(this.tmp, name), { force: true });
        n++;
      }
    }
    return n;
  }
}

function makeWriter(ws: WriteStream, ops: { commit(): Promise<void>; cancel(): Promise<void> }): DriverWriter {
  const w = ws as WriteStream & DriverWriter;
  let settled = false;
  w.commit = async () => {
    if (settled) return;
    settled = true;
    if (!ws.writableFinished) await new Promise<void>((res, rej) => ws.end((err?: Error | null) => (err ? rej(err) : res())));
    await ops.commit();
  };
  w.cancel = async () => {
    if (settled) return;
    settled = true;
    ws.destroy();
    await ops.cancel();
  };
  return w;
}
