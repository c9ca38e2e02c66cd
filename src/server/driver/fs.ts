import { closeSync, constants, createReadStream, fstatSync, fsync as fsyncCb, open as openCb, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createAppender, fitsDirectRead, preadDirect, readDirect, writeDirect, type Appender, type AppenderOptions } from './append.js';
import { fsError } from './errors.js';
import { checkPath } from './paths.js';
import type { DriverWriter, FileInfo, FileReader, PutOptions, StageOptions, Staged, StorageDriver, WriterOptions } from './types.js';

const fsync = promisify(fsyncCb);
const openFd = promisify(openCb);

/** How often a buffered writer starts a background writeback (see append.ts). */
const FLUSH_EVERY = 4 << 20;

export interface FsDriverOptions {
  /** fsync files and their directories on commit (default true): acknowledged means on disk. */
  fsync?: boolean;
  /** Write large files with O_DIRECT where the file system takes it (default true; see append.ts). */
  directIO?: boolean;
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * A StorageDriver on a local directory. Temporary files live in `<root>/_tmp`, same filesystem.
 *
 * Calls that only touch metadata (close, rename, stat, unlink, utimes, a small write) are made
 * synchronously: on a local disk each costs microseconds, while handing it to libuv's thread pool
 * and back cost ~60 us of main-thread CPU per call on our 2-core machine, and a small push makes
 * dozens. What may take long goes through the pool, so the event loop never waits on the disk:
 * fsync, bulk reads and writes, and creating a file (ext4 here spent 0.03-1 ms per new inode,
 * scanning for inodes it had freed recently).
 */
export class FsDriver implements StorageDriver {
  readonly root: string;
  private readonly fsync: boolean;
  private readonly directIO: boolean;
  private readonly tmp: string;

  constructor(root: string, opts: FsDriverOptions = {}) {
    this.root = resolve(root);
    this.fsync = opts.fsync ?? true;
    this.directIO = opts.directIO ?? true;
    this.tmp = join(this.root, '_tmp');
  }

  private abs(path: string): string {
    // A checked path has nothing for join() to normalise.
    return this.root + sep + checkPath(path);
  }

  private tmpReady = false;

  /** `_tmp`, made once, not on every write (a syscall per request). */
  private tmpDir(): string {
    if (!this.tmpReady) {
      mkdirSync(this.tmp, { recursive: true });
      this.tmpReady = true;
    }
    return this.tmp;
  }

  /** This driver's part of temp file names: another process writing into the same root has another. */
  private readonly tmpTag = randomBytes(6).toString('hex');
  private tmpSeq = 0;

  /** A fresh temp file name: its creation time (for sweepTemp), this driver's tag, a counter. */
  private tempPath(): string {
    return `${this.tmpDir()}${sep}${Date.now()}-${this.tmpTag}${(this.tmpSeq++).toString(36)}`;
  }

  /** Writers start writing back every this many bytes while they go (see FileWriter). */
  private get flushEvery(): number {
    return this.fsync ? FLUSH_EVERY : Infinity;
  }

  /** An appender for `fd`; the fd is closed if making one fails. */
  private appender(path: string, fd: number, at: number, how: AppenderOptions): Appender {
    try {
      return createAppender(path, fd, at, how);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** fsyncs an open file, unless syncing is off. */
  private async syncFd(fd: number): Promise<void> {
    if (this.fsync) await fsync(fd);
  }

  /** Per directory: the fsync running now, and the one queued behind it. */
  private readonly dirSyncs = new Map<string, DirSync>();

  /**
   * fsyncs a directory, so that the names just made in it survive a crash. Concurrent callers
   * share the work: a fsync already running may have started before the caller's rename, so the
   * caller waits for the next one, which starts when the running one ends and serves everyone
   * who asked meanwhile (concurrent pushes to a repository link blobs into the same directories).
   */
  private syncDir(dir: string): Promise<void> {
    if (!this.fsync) return Promise.resolve();
    const running = this.dirSyncs.get(dir);
    if (running) return (running.queued ??= running.done.then(() => this.startDirSync(dir)));
    return this.startDirSync(dir);
  }

  private startDirSync(dir: string): Promise<void> {
    const entry: DirSync = { done: fsyncDir(dir) };
    this.dirSyncs.set(dir, entry);
    return entry.done.finally(() => {
      if (this.dirSyncs.get(dir) === entry && entry.queued === undefined) this.dirSyncs.delete(dir);
    });
  }

  /** Runs `op` on a path; if its parent is missing, makes the parent and runs it again. */
  private async withParent<T>(dst: string, op: () => T | Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      mkdirSync(dirname(dst), { recursive: true });
      return op();
    }
  }

  /** Renames into place, creating parents; fsyncs the parent so the rename survives a crash. */
  private async install(tmp: string, dst: string, durable = true): Promise<void> {
    await this.withParent(dst, () => renameSync(tmp, dst));
    if (durable) await this.syncDir(dirname(dst));
  }

  // A small read is synchronous too (see above): a manifest GET is a stat and a read or two.
  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      // A missing file is common (is this blob stored yet?): undefined, not an exception.
      const s = statSync(this.abs(path), { bigint: true, throwIfNoEntry: false });
      if (!s) return undefined;
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

  async put(path: string, data: Uint8Array | string, opts: PutOptions = {}): Promise<void> {
    const dst = this.abs(path);
    const durable = opts.durable ?? true;
    if (data.length === 0) {
      await opts.after;
      return this.putEmpty(dst, durable);
    }
    const tmp = this.tempPath();
    try {
      const fd = await openFd(tmp, 'w');
      try {
        const buf = typeof data === 'string' ? Buffer.from(data) : data;
        for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
        if (durable) await this.syncFd(fd);
      } finally {
        closeSync(fd);
      }
      await opts.after;
      await this.install(tmp, dst, durable);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /**
   * An empty file (a link, a new upload) is made in place: there are no bytes to see half-written,
   * and a temporary file would cost a second inode, which on some file systems is the dearest part
   * of a small push. The parent's fsync makes the name durable.
   */
  private async putEmpty(dst: string, durable: boolean): Promise<void> {
    closeSync(await this.withParent(dst, () => openFd(dst, 'w')));
    if (durable) await this.syncDir(dirname(dst));
  }

  async open(path: string, opts: { sequential?: boolean } = {}): Promise<FileReader> {
    const p = this.abs(path);
    const fh = await open(p, 'r');
    const direct = opts.sequential && this.directIO ? this.openDirect(p, fh.fd) : undefined;
    // A raw descriptor, unlike the FileHandle, is not kept open for reads still queued on it.
    const reading = new Set<Promise<number>>();
    return {
      // Reads at block offsets of at most a block go direct; anything else (never, for a
      // sequential read in whole pages) through the page cache.
      read: async (into, position) => {
        if (direct === undefined || !fitsDirectRead(position, into.length)) return (await fh.read(into, 0, into.length, position)).bytesRead;
        const r = preadDirect(direct, into, position);
        reading.add(r);
        return r.finally(() => reading.delete(r));
      },
      close: async () => {
        if (direct !== undefined) {
          await Promise.allSettled(reading);
          closeSync(direct);
        }
        await fh.close();
      },
    };
  }

  /** A second, O_DIRECT descriptor for a large file read whole or in a large range (see readDirect), if wanted. */
  private openDirect(path: string, fd: number): number | undefined {
    if (!readDirect(this.tmpDir(), fstatSync(fd).size)) return undefined;
    try {
      return openSync(path, constants.O_RDONLY | constants.O_DIRECT);
    } catch {
      return undefined;
    }
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const p = this.abs(path);
    // Open first so that a missing file is an error here, not later on the stream.
    const fh = await open(p, 'r');
    return createReadStream('', { fd: fh, highWaterMark: 1 << 20, ...(range ?? {}) });
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<DriverWriter> {
    const dst = this.abs(path);
    const how = { direct: this.directIO && writeDirect(this.tmpDir(), opts.size), flushEvery: this.flushEvery };
    if (opts.appendAt !== undefined) {
      const at = opts.appendAt;
      const fd = openSync(dst, 'r+');
      return new FileWriter(fd, this.appender(dst, fd, at, how), {
        // The file ends where this write ends: bytes a crashed earlier write left past `at` go.
        commit: async (end) => {
          ftruncateSync(fd, end);
          await this.syncFd(fd);
        },
        cancel: async () => ftruncateSync(fd, at),
      });
    }
    const tmp = this.tempPath();
    const fd = await openFd(tmp, 'w+');
    return new FileWriter(fd, this.appender(tmp, fd, 0, how), {
      commit: async () => {
        await this.syncFd(fd);
        if (opts.ifAbsent && (await this.stat(path))) {
          unlinkSync(tmp);
          throw fsError('EEXIST', 'rename', path);
        }
        await this.install(tmp, dst);
      },
      cancel: async () => unlinkSync(tmp),
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
    const p = this.abs(path);
    // Most deletes are of one file: one unlink, where rm() would stat, then unlink.
    try {
      unlinkSync(p);
    } catch (err) {
      if (isNotFound(err)) return;
      await rm(p, { recursive: true, force: true });
    }
  }

  async touch(path: string): Promise<FileInfo | undefined> {
    // A stat first: most blobs a push asks about are not stored yet, and a failed utimes costs an exception.
    const before = await this.stat(path);
    if (!before) return undefined;
    const now = new Date();
    try {
      utimesSync(this.abs(path), now, now);
      return before;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return undefined;
    }
  }

  /**
   * A temp file that grows as bytes are appended and is read through its own descriptor while it
   * does; commit syncs it and renames it into place. Fills are written without the periodic
   * writeback of other writers: readers follow them, and a fill's pages are read back at once.
   */
  async stage(opts: StageOptions = {}): Promise<Staged> {
    const tmp = this.tempPath();
    const fh = await open(tmp, 'w+');
    let app: Appender;
    try {
      app = createAppender(tmp, fh.fd, 0, { direct: this.directIO && writeDirect(this.tmpDir(), opts.size), flushEvery: Infinity, ...(opts.onWritten ? { onWritten: opts.onWritten } : {}) });
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    let settled = false;
    return {
      append: (bufs) => app.push(bufs),
      get written() {
        return app.written;
      },
      read: async (into, position) => (await fh.read(into, 0, into.length, position)).bytesRead,
      commit: async (path) => {
        if (settled) throw new Error('staged bytes were already committed or cancelled');
        settled = true;
        try {
          const dst = this.abs(path);
          await app.flush();
          await this.syncFd(fh.fd);
          await this.install(tmp, dst);
        } catch (err) {
          await app.abort();
          await rm(tmp, { force: true });
          throw err;
        }
      },
      cancel: async () => {
        if (settled) return;
        settled = true;
        await app.abort();
        await rm(tmp, { force: true });
      },
      close: async () => {
        await app.abort();
        await fh.close().catch(() => undefined);
      },
    };
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

interface DirSync {
  done: Promise<void>;
  queued?: Promise<void>;
}

/** fsyncs a directory. */
async function fsyncDir(dir: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    await fsync(fd);
  } catch {
    // Some file systems refuse fsync on directories; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes through an Appender at explicit positions of a file descriptor it owns, and closes it when
 * settled. (An fs.WriteStream over a FileHandle with autoClose off keeps a reference that makes a
 * later close() or sync() hang; a raw fd also spares a thread-pool round trip to open and to close.)
 */
class FileWriter extends Writable implements DriverWriter {
  private settled = false;

  constructor(
    private readonly fd: number,
    private readonly appender: Appender,
    private readonly ops: { commit(end: number): Promise<void>; cancel(): Promise<void> },
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.appender.push([chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.appender.push(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.appender.flush().then(() => cb(), cb);
  }

  async commit(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    try {
      if (!this.writableFinished) await new Promise<void>((res, rej) => this.end((err?: Error | null) => (err ? rej(err) : res())));
      await this.ops.commit(this.appender.end);
    } finally {
      // The fd is closed only after the writes in flight, or its number could be reused under them.
      await this.appender.abort();
      this.closeFd();
    }
  }

  async cancel(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.destroy();
    await this.appender.abort();
    try {
      await this.ops.cancel();
    } finally {
      this.closeFd();
    }
  }

  /** Runs once: commit() and cancel() each return early once the writer is settled. */
  private closeFd(): void {
    try {
      closeSync(this.fd);
    } catch {
      // Closing can only fail on a bad fd; the data was synced (or is being thrown away) already.
    }
  }
}
