import { createReadStream, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, truncate, utimes, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import type { DriverWriter, FileInfo, FileReader, StorageDriver } from './types.js';

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

  private tmpReady: Promise<unknown> | undefined;

  /** A fresh temp file name; `_tmp` is made once, not on every write (a syscall per request). */
  private async tempPath(): Promise<string> {
    this.tmpReady ??= mkdir(this.tmp, { recursive: true }).catch((err: unknown) => {
      this.tmpReady = undefined;
      throw err;
    });
    await this.tmpReady;
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

  // stat() and get() are synchronous inside: on a local disk a stat or a small read costs a few
  // microseconds, while the thread pool's round trips (open, fstat, read, close) cost far more than
  // the rest of a manifest GET. Large content goes through reader() and writer(), which stream.
  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const s = statSync(this.abs(path), { bigint: true });
      return { size: Number(s.size), mtimeMs: Number(s.mtimeMs), isDir: s.isDirectory(), version: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(path: string): Promise<Buffer | undefined> {
    try {
      return readFileSync(this.abs(path));
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
        // An empty file (a link) has no data to sync: the parent's fsync makes its name durable.
        if (this.fsync && data.length > 0) await fh.sync();
      } finally {
        await fh.close();
      }
      await this.install(tmp, dst);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async open(path: string): Promise<FileReader> {
    const fh = await open(this.abs(path), 'r');
    return {
      read: async (into, position) => (await fh.read(into, 0, into.length, position)).bytesRead,
      close: () => fh.close(),
    };
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
      return new FileWriter(fh, at, {
        // The file ends where this write ends: bytes a crashed earlier write left past `at` go.
        commit: async (end) => {
          await fh.truncate(end);
          if (this.fsync) await fh.sync();
        },
        cancel: async () => {
          await truncate(dst, at);
        },
      });
    }
    const tmp = await this.tempPath();
    const fh = await open(tmp, 'w');
    return new FileWriter(fh, 0, {
      commit: async () => {
        if (this.fsync) await fh.sync();
        await fh.close();
        await this.install(tmp, dst);
      },
      cancel: async () => {
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

  async touch(path: string): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.abs(path), now, now);
      return true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return false;
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

/**
 * Writes at explicit positions through a FileHandle it owns. (An fs.WriteStream over a FileHandle
 * with autoClose off keeps a reference that makes a later close() or sync() hang.)
 */
class FileWriter extends Writable implements DriverWriter {
  private settled = false;

  constructor(
    private readonly fh: FileHandle,
    private position: number,
    private readonly ops: { commit(end: number): Promise<void>; cancel(): Promise<void> },
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    let total = 0;
    for (const b of bufs) total += b.length;
    const { bytesWritten } = await this.fh.writev(bufs, this.position);
    if (bytesWritten !== total) throw new Error(`short write: ${bytesWritten} of ${total} bytes`);
    this.position += total;
  }

  async commit(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    if (!this.writableFinished) await new Promise<void>((res, rej) => this.end((err?: Error | null) => (err ? rej(err) : res())));
    try {
      await this.ops.commit(this.position);
    } finally {
      await this.fh.close().catch(() => undefined);
    }
  }

  async cancel(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.destroy();
    await this.fh.close().catch(() => undefined);
    await this.ops.cancel();
  }
}
