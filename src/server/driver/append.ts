import { closeSync, constants, fdatasync as fdatasyncCb, ftruncateSync, openSync, read as readCb, readSync, unlinkSync, write as writeCb, writeSync, writev as writevCb, writevSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { alignedBlocks, isPageAligned } from '../io/aligned.js';

const pwrite = promisify(writeCb);
const pread = promisify(readCb);
const writev = promisify(writevCb);
const fdatasync = promisify(fdatasyncCb);

/**
 * Direct I/O (O_DIRECT) wants the memory address, file offset and length of every write aligned
 * to the device's logical block; 4 KiB covers every common one.
 */
const ALIGN = 4096;
/** Bytes per direct write: large enough that the disk, not the per-request cost, sets the pace. */
const BLOCK = 1 << 20;
/** Writes expected to be smaller than this go through the page cache: one padded block gains nothing. */
const DIRECT_MIN = BLOCK;
/** Blocks made at a time (see alignedBlocks). */
const PER_MEMORY = 4;
/** The most blocks that ever exist, for all files together: memory stays flat (16 MiB). */
const MAX_BLOCKS = 16;
/** Direct writes in flight per file: one on the disk while the next one fills. */
const IN_FLIGHT = 2;
/** A buffered appender makes its caller wait once this much is queued behind the write in flight. */
const QUEUE_MAX = 8 << 20;
/**
 * A buffered write this small goes to the page cache synchronously: it takes microseconds, while a
 * trip through libuv's thread pool costs ~60 us of main-thread CPU here (and a 1 KiB blob push
 * makes one such write).
 */
const SYNC_WRITE_MAX = 64 << 10;

/**
 * Appends bytes to an open file at a running position, overlapping the writes with the caller's
 * next bytes. The bytes pushed are kept (not copied) until written: callers hand over their
 * buffers.
 */
export interface Appender {
  /** Takes bytes to append; resolves when the caller may push more. Rejects once a write failed. */
  push(bufs: Buffer[]): Promise<void>;
  /** Bytes of the file, from its start, that are written (readable through another descriptor). */
  readonly written: number;
  /** Where the bytes pushed so far end in the file. */
  readonly end: number;
  /** Writes out all that was pushed; the file then ends at `end`. The appender is done after it. */
  flush(): Promise<void>;
  /** Waits for the writes in flight and drops the bytes not yet written. */
  abort(): Promise<void>;
}

// ---- aligned blocks ----

const freeBlocks: Buffer[] = [];
const blockWaiters: Array<(b: Buffer) => void> = [];
let blocksMade = 0;

/**
 * A page-aligned block of BLOCK bytes, from a shared set of at most MAX_BLOCKS. Blocks are only
 * held for the length of one write, so a writer waiting for one never waits long.
 */
function takeBlock(): Buffer | Promise<Buffer> {
  const b = freeBlocks.pop();
  if (b) return b;
  if (blocksMade < MAX_BLOCKS) {
    freeBlocks.push(...alignedBlocks(PER_MEMORY, BLOCK));
    blocksMade += PER_MEMORY;
    return freeBlocks.pop()!;
  }
  return new Promise((resolve) => blockWaiters.push(resolve));
}

function giveBlock(b: Buffer): void {
  const waiter = blockWaiters.shift();
  if (waiter) waiter(b);
  else freeBlocks.push(b);
}

const directByDir = new Map<string, boolean>();

/**
 * Whether files in `dir` take direct writes: one aligned block is written to a probe file, once
 * per directory. Where they do not (some file systems refuse O_DIRECT, or refuse it only on
 * write), writes go through the page cache as usual.
 */
function directWritesWork(dir: string): boolean {
  let ok = directByDir.get(dir);
  if (ok !== undefined) return ok;
  // Named like a temporary file, so that the temp sweep removes one a crash left behind.
  const probe = join(dir, `${Date.now()}-direct-probe-${randomBytes(6).toString('hex')}`);
  ok = false;
  // Its own aligned page: the shared blocks may all be in use by writers meanwhile.
  const block = Buffer.from(new WebAssembly.Memory({ initial: 1, maximum: 1 }).buffer, 0, ALIGN);
  try {
    const fd = openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o600);
    try {
      ok = writeSync(fd, block, 0, ALIGN, 0) === ALIGN;
    } finally {
      closeSync(fd);
    }
  } catch {
    ok = false;
  } finally {
    try {
      unlinkSync(probe);
    } catch {
      // Never made, or gone already.
    }
  }
  directByDir.set(dir, ok);
  return ok;
}

/**
 * Whether to write `size` bytes (undefined: not known) to a file in `dir` with O_DIRECT: when they
 * are many and the file system takes it.
 */
export function writeDirect(dir: string, size: number | undefined): boolean {
  return (size === undefined || size >= DIRECT_MIN) && directWritesWork(dir);
}

/**
 * Whether to read a file of `size` bytes in `dir` with O_DIRECT, start to end: when it is large
 * and the file system takes direct I/O. Such files were written that way too (writeDirect), so the
 * page cache does not hold them; a buffered read would first fill fresh pages, which on this
 * machine cost 3-4 s of CPU per GiB, where a direct read costs none.
 */
export function readDirect(dir: string, size: number): boolean {
  return size >= DIRECT_MIN && directWritesWork(dir);
}

/** Whether preadDirect takes a read of `length` bytes at `position`. */
export function fitsDirectRead(position: number, length: number): boolean {
  return position % ALIGN === 0 && length <= BLOCK;
}

/**
 * Reads up to `into.length` bytes (at most one block) at `position` of `fd`, a descriptor opened
 * with O_DIRECT. Whole aligned pages of an alignedBuffer are read into directly; anything else
 * goes through an aligned block and is copied into `into`, so callers may bring any buffer.
 * `position` must be a multiple of ALIGN; returns the bytes read (fewer at the end).
 */
export async function preadDirect(fd: number, into: Uint8Array, position: number): Promise<number> {
  if (!fitsDirectRead(position, into.length)) throw new Error(`a direct read of ${into.length} bytes at ${position} does not fit a block`);
  if (isPageAligned(into) && into.length % ALIGN === 0) {
    return (await pread(fd, into, 0, into.length, position)).bytesRead;
  }
  const block = await takeBlock();
  try {
    const { bytesRead } = await pread(fd, block, 0, Math.ceil(into.length / ALIGN) * ALIGN, position);
    const n = Math.min(bytesRead, into.length);
    block.copy(into, 0, 0, n);
    return n;
  } finally {
    giveBlock(block);
  }
}

/**
 * Appends through O_DIRECT writes of whole aligned blocks: the bytes go from our block to the disk
 * and never into the page cache. On the VMs we measure on, the kernel's first touch of a page it
 * has not used for a while costs ~13 us (the hypervisor hands the page in), so buffered writes of a
 * large blob into fresh page cache crawl at ~300 MiB/s while the disk takes 1.4 GB/s direct; a
 * registry rarely reads back soon what it was just sent, either. The last block is padded, and the
 * file is cut back to its true end.
 */
class DirectAppender implements Appender {
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Where the first pending byte goes; always aligned. */
  private pos: number;
  private readonly inflight: Array<{ at: number; done: Promise<void> }> = [];
  private error: unknown;
  private finished = false;
  private closed = false;

  /** Owns `fd` (opened O_DIRECT): it is closed once flush() or abort() has waited for the writes. */
  constructor(
    private readonly fd: number,
    start: number,
    prefix: Buffer,
    private readonly onWritten: () => void,
  ) {
    this.pos = start - prefix.length;
    if (prefix.length > 0) this.pending.push(prefix);
    this.pendingBytes = prefix.length;
  }

  get written(): number {
    return this.inflight[0]?.at ?? this.pos;
  }

  get end(): number {
    return this.pos + this.pendingBytes;
  }

  async push(bufs: Buffer[]): Promise<void> {
    if (this.finished) throw new Error('push after the appender finished');
    for (const b of bufs) {
      if (b.length === 0) continue;
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
    while (this.pendingBytes >= BLOCK) await this.writeBlock(BLOCK);
    if (this.error) throw this.error;
  }

  /** Copies the next `n` pending bytes (n <= BLOCK) into a block and starts writing it. */
  private async writeBlock(n: number): Promise<void> {
    while (this.inflight.length >= IN_FLIGHT) await this.inflight[0]!.done;
    if (this.error) throw this.error;
    const block = await takeBlock();
    let filled = 0;
    while (filled < n) {
      const head = this.pending[0]!;
      const take = Math.min(head.length, n - filled);
      head.copy(block, filled, 0, take);
      filled += take;
      if (take === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(take);
    }
    const len = Math.ceil(n / ALIGN) * ALIGN;
    // The padding is cut off at the end, but a crash before that must not leave another blob's bytes.
    block.fill(0, n, len);
    const at = this.pos;
    this.pos += n;
    this.pendingBytes -= n;
    const entry = { at, done: Promise.resolve() };
    // A write cut short (a disk that just filled up takes what fits) goes on from where it
    // stopped, so that the next one reports why: ENOSPC, which the client is told.
    const writeAll = async (): Promise<void> => {
      for (let done = 0; done < n; ) {
        const { bytesWritten } = await pwrite(this.fd, block, done, len - done, at + done);
        if (bytesWritten === 0) throw Object.assign(new Error(`a write at ${at + done} took no bytes`), { code: 'ENOSPC' });
        done += bytesWritten;
      }
    };
    entry.done = writeAll()
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => {
        giveBlock(block);
        this.inflight.splice(this.inflight.indexOf(entry), 1);
        this.onWritten();
      });
    this.inflight.push(entry);
  }

  async flush(): Promise<void> {
    if (this.finished) return;
    try {
      while (this.pendingBytes > 0) await this.writeBlock(Math.min(this.pendingBytes, BLOCK));
      this.finished = true;
      await this.idle();
      if (this.error) throw this.error;
      if (this.pos % ALIGN !== 0) ftruncateSync(this.fd, this.pos);
    } finally {
      await this.close();
    }
  }

  async abort(): Promise<void> {
    this.finished = true;
    this.pending.length = 0;
    this.pendingBytes = 0;
    await this.close();
  }

  /** Once only, after the writes in flight: a descriptor number closed twice may by then belong to another file. */
  private async close(): Promise<void> {
    await this.idle();
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private async idle(): Promise<void> {
    while (this.inflight.length > 0) await this.inflight[0]!.done;
  }
}

/**
 * Appends through the page cache: one writev in flight, the bytes pushed meanwhile gathered into
 * the next. With `flushEvery`, a background fdatasync starts every that many bytes, so that the
 * disk works while bytes still arrive and a final fsync waits only for the tail.
 */
class BufferedAppender implements Appender {
  private queue: Buffer[] = [];
  private queued = 0;
  private writing: Promise<void> | undefined;
  private flushing: Promise<unknown> | undefined;
  private flushedTo: number;
  private error: unknown;
  /** Bytes of the writev in flight. */
  private writingBytes = 0;
  written: number;

  constructor(
    private readonly fd: number,
    start: number,
    private readonly flushEvery: number,
    private readonly onWritten: () => void,
  ) {
    this.written = start;
    this.flushedTo = start;
  }

  get end(): number {
    return this.written + this.queued + this.writingBytes;
  }

  async push(bufs: Buffer[]): Promise<void> {
    if (this.error) throw this.error;
    for (const b of bufs) {
      this.queue.push(b);
      this.queued += b.length;
    }
    this.kick();
    if (this.queued >= QUEUE_MAX) await this.writing;
    if (this.error) throw this.error;
  }

  private kick(): void {
    if (this.writing || this.queued === 0) return;
    this.writing = this.drain()
      .catch((err: unknown) => {
        this.error ??= err;
        this.queue = [];
        this.queued = 0;
      })
      .finally(() => {
        this.writing = undefined;
        this.writingBytes = 0; // also when the writev failed
      });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const bufs = this.queue;
      const n = this.queued;
      this.queue = [];
      this.queued = 0;
      this.writingBytes = n;
      let done = n <= SYNC_WRITE_MAX ? writevSync(this.fd, bufs, this.written) : (await writev(this.fd, bufs, this.written)).bytesWritten;
      if (done < n) {
        const rest = Buffer.concat(bufs, n);
        while (done < n) done += (await pwrite(this.fd, rest, done, n - done, this.written + done)).bytesWritten;
      }
      this.written += n;
      this.writingBytes = 0;
      this.onWritten();
      if (!this.flushing && this.written - this.flushedTo >= this.flushEvery) {
        this.flushedTo = this.written;
        this.flushing = fdatasync(this.fd)
          .catch(() => undefined)
          .finally(() => (this.flushing = undefined));
      }
    }
  }

  async flush(): Promise<void> {
    this.kick();
    while (this.writing) await this.writing;
    await this.flushing;
    if (this.error) throw this.error;
  }

  async abort(): Promise<void> {
    this.queue = [];
    this.queued = 0;
    while (this.writing) await this.writing;
    await this.flushing;
  }
}

export interface AppenderOptions {
  /** Write with O_DIRECT (decide with writeDirect). */
  direct: boolean;
  /** For buffered writes: start a background fdatasync every this many bytes (Infinity: never). */
  flushEvery: number;
  /** Called whenever `written` moved on. */
  onWritten?: () => void;
}

/**
 * An appender for the file at `path`, open (read-write) as `fd`, writing from `start` on. A direct
 * appender opens its own O_DIRECT descriptor and closes it when flushed or aborted; the bytes
 * before an unaligned `start` are read back so that its first block can be whole.
 */
export function createAppender(path: string, fd: number, start: number, opts: AppenderOptions): Appender {
  const onWritten = opts.onWritten ?? ((): void => undefined);
  if (!opts.direct) return new BufferedAppender(fd, start, opts.flushEvery, onWritten);
  const prefix = Buffer.allocUnsafe(start % ALIGN);
  for (let got = 0; got < prefix.length; ) {
    const n = readSync(fd, prefix, got, prefix.length - got, start - prefix.length + got);
    if (n === 0) throw new Error(`${path} ends before ${start}`);
    got += n;
  }
  return new DirectAppender(openSync(path, constants.O_WRONLY | constants.O_DIRECT), start, prefix, onWritten);
}
