import { Readable, Writable } from 'node:stream';
import { fsError } from './errors.js';
import { checkPath } from './paths.js';
import type { DriverWriter, FileInfo, FileReader, PutOptions, StageOptions, Staged, StorageDriver, WriterOptions } from './types.js';

/**
 * A file. Renames move the object, and a reader or an append writer holds the object, not the
 * name: like an inode, it keeps following the file through a move and is cut off by a replace.
 * `data` is never changed in place (a write swaps in a new Buffer), so streams may hold slices.
 */
interface Entry {
  data: Buffer;
  mtimeMs: number;
  version: number;
}

/** A directory exists while something is beneath it (as a key prefix in an object store). */
interface Dir {
  children: Set<string>;
  mtimeMs: number;
}

/** Bytes that have no name yet, as FsDriver's files in `_tmp/`: sweepTemp forgets them once old. */
interface Unnamed {
  readonly started: number;
  /** Swept while still open: as for a temp file removed under FsDriver, its commit fails. */
  swept: boolean;
}

/** What a reader hands out at once, as FsDriver's streams do. */
const CHUNK = 1 << 20;

function split(path: string): [dir: string, name: string] {
  const i = path.lastIndexOf('/');
  return i < 0 ? ['', path] : [path.slice(0, i), path.slice(i + 1)];
}

/** `data` cut or zero-extended to `length`, as ftruncate does. */
function truncated(data: Buffer, length: number): Buffer {
  if (length <= data.length) return data.subarray(0, length);
  return Buffer.concat([data, Buffer.alloc(length - data.length)]);
}

function* slices(data: Buffer): Generator<Buffer> {
  // Copies, as a file read gives: a consumer that changes its chunk cannot change the store.
  for (let at = 0; at < data.length; at += CHUNK) yield Buffer.from(data.subarray(at, at + CHUNK));
}

/**
 * A StorageDriver in process memory, for tests and throwaway registries: the same contract as
 * FsDriver (src/testkit/driver-suite.ts runs against both), nothing survives the process.
 */
export class MemoryDriver implements StorageDriver {
  private readonly files = new Map<string, Entry>();
  private readonly dirs = new Map<string, Dir>([['', { children: new Set(), mtimeMs: Date.now() }]]);
  private readonly unnamed = new Set<Unnamed>();
  private seq = 0;

  async stat(path: string): Promise<FileInfo | undefined> {
    checkPath(path);
    const f = this.files.get(path);
    if (f) return { size: f.data.length, mtimeMs: f.mtimeMs, isDir: false, version: String(f.version) };
    const d = this.dirs.get(path);
    return d && { size: 0, mtimeMs: d.mtimeMs, isDir: true };
  }

  async get(path: string): Promise<Buffer | undefined> {
    const f = this.files.get(checkPath(path));
    return f && Buffer.from(f.data);
  }

  async put(path: string, data: Uint8Array | string, opts: PutOptions = {}): Promise<void> {
    checkPath(path);
    // Copied now: the caller may reuse its buffer as soon as put() has returned.
    const bytes = Buffer.from(data);
    await opts.after;
    this.link(path, this.entry(bytes));
  }

  async open(path: string): Promise<FileReader> {
    const f = this.file(path);
    let closed = false;
    return {
      read: async (into, position) => {
        if (closed) throw new Error(`read of ${path} after close`);
        if (position >= f.data.length) return 0;
        return f.data.copy(into, 0, position, Math.min(f.data.length, position + into.length));
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const f = this.file(path);
    if (range && range.start > range.end) {
      // As createReadStream refuses it.
      const err: NodeJS.ErrnoException = new RangeError(`range ${range.start}-${range.end} ends before it starts`);
      err.code = 'ERR_OUT_OF_RANGE';
      throw err;
    }
    return Readable.from(slices(range ? f.data.subarray(range.start, range.end + 1) : f.data), { objectMode: false, highWaterMark: CHUNK });
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<DriverWriter> {
    checkPath(path);
    const at = opts.appendAt;
    if (at === undefined) {
      const tmp = this.startUnnamed();
      return new MemoryWriter({
        commit: (chunks) => {
          this.unnamed.delete(tmp);
          if (tmp.swept) throw fsError('ENOENT', 'rename', path);
          if (opts.ifAbsent && this.files.has(path)) throw fsError('EEXIST', 'rename', path);
          this.link(path, this.entry(Buffer.concat(chunks)));
        },
        cancel: () => this.unnamed.delete(tmp),
      });
    }
    const f = this.file(path);
    return new MemoryWriter({
      // The file ends where this write ends, whatever it held past `at`.
      commit: (chunks) => this.rewrite(f, Buffer.concat([truncated(f.data, at), ...chunks])),
      // FsDriver cuts the file back to `at`, which is where it stands unless it held more.
      cancel: () => {
        if (f.data.length !== at) this.rewrite(f, truncated(f.data, at));
      },
    });
  }

  async list(path: string): Promise<string[]> {
    const d = this.dirs.get(path === '' ? '' : checkPath(path));
    return d ? [...d.children] : [];
  }

  async move(from: string, to: string): Promise<void> {
    checkPath(from);
    checkPath(to);
    const f = this.files.get(from);
    if (f) {
      if (from === to) return;
      this.link(to, f);
      this.unlink(from);
      return;
    }
    if (!this.dirs.has(from)) throw fsError('ENOENT', 'rename', from);
    if (from === to) return;
    // As rename(2): not into itself, not onto a file, and a directory only onto an empty one,
    // which never exists here.
    if (to.startsWith(`${from}/`)) throw fsError('EINVAL', 'rename', to);
    if (this.files.has(to)) throw fsError('ENOTDIR', 'rename', to);
    if (this.dirs.has(to)) throw fsError('ENOTEMPTY', 'rename', to);
    this.checkFree(to);
    for (const p of this.filesUnder(from)) {
      const e = this.files.get(p)!;
      this.unlink(p);
      this.link(to + p.slice(from.length), e);
    }
  }

  async delete(path: string): Promise<void> {
    for (const p of this.filesUnder(checkPath(path))) this.unlink(p);
  }

  async touch(path: string): Promise<FileInfo | undefined> {
    const before = await this.stat(path);
    const f = this.files.get(path);
    if (f) {
      f.mtimeMs = Date.now();
      f.version = ++this.seq;
    }
    const d = this.dirs.get(path);
    if (d) d.mtimeMs = Date.now();
    return before;
  }

  async stage(opts: StageOptions = {}): Promise<Staged> {
    const tmp = this.startUnnamed();
    const chunks: Buffer[] = [];
    /** Where each chunk starts, for reads at a position. */
    const starts: number[] = [];
    let written = 0;
    let settled = false;
    let closed = false;
    const settle = (): void => {
      if (settled) throw new Error('staged bytes were already committed or cancelled');
      settled = true;
      this.unnamed.delete(tmp);
    };
    return {
      append: async (bufs) => {
        if (settled) throw new Error('append to staged bytes already committed or cancelled');
        const before = written;
        for (const b of bufs) {
          if (b.length === 0) continue;
          starts.push(written);
          chunks.push(b);
          written += b.length;
        }
        if (written > before) opts.onWritten?.();
      },
      get written() {
        return written;
      },
      read: async (into, position) => {
        if (closed) throw new Error('read of staged bytes after close');
        return readChunks(chunks, starts, written, into, position);
      },
      commit: async (path) => {
        settle();
        checkPath(path);
        if (tmp.swept) throw fsError('ENOENT', 'rename', path);
        // One copy the store owns: the caller's buffers stay lent to reads until close().
        this.link(path, this.entry(Buffer.concat(chunks, written)));
      },
      cancel: async () => {
        if (!settled) settle();
      },
      close: async () => {
        if (!settled) settle();
        closed = true;
        chunks.length = 0;
        starts.length = 0;
      },
    };
  }

  /** Forgets writes begun over `maxAgeMs` ago and never finished; there are no files to remove. */
  async sweepTemp(maxAgeMs: number): Promise<number> {
    const now = Date.now();
    let n = 0;
    for (const u of this.unnamed) {
      if (now - u.started > maxAgeMs) {
        u.swept = true;
        this.unnamed.delete(u);
        n++;
      }
    }
    return n;
  }

  private entry(data: Buffer): Entry {
    return { data, mtimeMs: Date.now(), version: ++this.seq };
  }

  private rewrite(f: Entry, data: Buffer): void {
    f.data = data;
    f.mtimeMs = Date.now();
    f.version = ++this.seq;
  }

  private startUnnamed(): Unnamed {
    const u = { started: Date.now(), swept: false };
    this.unnamed.add(u);
    return u;
  }

  /** The file at `path`, or the error open(2) would give. */
  private file(path: string): Entry {
    const f = this.files.get(checkPath(path));
    if (f) return f;
    throw fsError(this.dirs.has(path) ? 'EISDIR' : 'ENOENT', 'open', path);
  }

  /** Refuses a file name where a directory is, or beneath a file, as the file system would. */
  private checkFree(path: string): void {
    if (this.dirs.has(path)) throw fsError('EISDIR', 'rename', path);
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
      if (this.files.has(path.slice(0, i))) throw fsError('ENOTDIR', 'rename', path);
    }
  }

  /** Names `entry` `path`, replacing a file there and making the parents. */
  private link(path: string, entry: Entry): void {
    this.checkFree(path);
    const existed = this.files.has(path);
    this.files.set(path, entry);
    if (existed) return;
    const now = Date.now();
    for (let p = path; ; ) {
      const [dir, name] = split(p);
      let d = this.dirs.get(dir);
      const made = d === undefined;
      if (d === undefined) this.dirs.set(dir, (d = { children: new Set(), mtimeMs: now }));
      d.children.add(name);
      d.mtimeMs = now;
      if (!made) return;
      p = dir;
    }
  }

  /** Removes the file `path`, and the directories it leaves empty. */
  private unlink(path: string): void {
    this.files.delete(path);
    const now = Date.now();
    for (let p = path; ; ) {
      const [dir, name] = split(p);
      const d = this.dirs.get(dir)!;
      d.children.delete(name);
      d.mtimeMs = now;
      if (dir === '' || d.children.size > 0) return;
      this.dirs.delete(dir);
      p = dir;
    }
  }

  /** The file `path`, or every file beneath the directory `path`. */
  private filesUnder(path: string): string[] {
    if (this.files.has(path)) return [path];
    if (!this.dirs.has(path)) return [];
    const out: string[] = [];
    const todo = [path];
    for (let dir = todo.pop(); dir !== undefined; dir = todo.pop()) {
      for (const name of this.dirs.get(dir)!.children) {
        const p = `${dir}/${name}`;
        if (this.files.has(p)) out.push(p);
        else todo.push(p);
      }
    }
    return out;
  }
}

/** Copies what `chunks` hold at `position` into `into`; 0 at `written` and past it. */
function readChunks(chunks: Buffer[], starts: number[], written: number, into: Uint8Array, position: number): number {
  if (position >= written || into.length === 0) return 0;
  // The last chunk that starts at or before `position`.
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= position) lo = mid;
    else hi = mid - 1;
  }
  let n = 0;
  for (let i = lo; i < chunks.length && n < into.length; i++) {
    const c = chunks[i]!;
    const from = i === lo ? position - starts[i]! : 0;
    n += c.copy(into, n, from, Math.min(c.length, from + into.length - n));
  }
  return n;
}

/**
 * Keeps the chunks written until commit: until then the file is as it was (an append in FsDriver
 * writes in place, but nothing may read those bytes before commit, and cancel undoes them).
 */
class MemoryWriter extends Writable implements DriverWriter {
  private chunks: Buffer[] = [];
  private settled = false;

  constructor(private readonly ops: { commit(chunks: Buffer[]): void; cancel(): void }) {
    super({ highWaterMark: CHUNK });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    cb();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.chunks.push(c.chunk);
    cb();
  }

  async commit(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    if (!this.writableFinished) await new Promise<void>((res, rej) => this.end((err?: Error | null) => (err ? rej(err) : res())));
    const chunks = this.chunks;
    this.chunks = [];
    this.ops.commit(chunks);
  }

  async cancel(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.destroy();
    this.chunks = [];
    this.ops.cancel();
  }
}
