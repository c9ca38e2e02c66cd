import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { OciError, parseDigest, type Digest, WharfError, isKnownError } from '../../spec/index.js';
import { OFF_THREAD_MIN, runningDigest } from '../../content/index.js';
import type { RegistryStore } from '../store/index.js';
import type { Staged } from '../driver/index.js';
import { drained, giveBuffer, readPooled } from '../io/index.js';
import { bodyBytesConsumed } from '../io/young-gc.js';

export interface FillOptions {
  /** Where the verified blob goes: staged while it arrives, then committed as the stored blob. */
  store: RegistryStore;
  digest: Digest;
  /** The size the upstream announced (Content-Length); undefined when it did not. */
  size: number | undefined;
  /** The upstream body. */
  body: AsyncIterable<Buffer>;
  /** Called with every chunk's length as it arrives from upstream. */
  onBytes?: (n: number) => void;
}

/**
 * Bytes last received kept in memory, so that readers keeping pace need no disk read and need not
 * wait for one (2 MiB per fill: memory stays flat; 4 MiB made 20 concurrent fills cost 131 MiB).
 * A reader that falls further behind than this reads the file once the appender wrote that far.
 */
const RECENT = 2 << 20;
/**
 * A reader keeping pace waits until this much is ready before it writes again (after its first
 * write, which goes at once): one corked write of many upstream chunks costs the loopback a
 * fraction of what a write per 16-64 KiB chunk does. A slow upstream does not hold bytes back
 * longer than BATCH_MS, so its clients still see the body move.
 */
const BATCH = 512 << 10;
const BATCH_MS = 50;

/**
 * One upstream download of a blob, written to a staging file that any number of readers follow
 * while it grows: readers that keep pace take the bytes from memory as they arrive, the others from
 * the file, and every later request for the same digest joins this fill instead of going upstream
 * again. The content is hashed on
 * the way in; only a complete blob whose digest and size match is renamed into the blob store.
 * Readers never see their stream end before that check passed: on a mismatch or a broken upstream
 * they get an error instead, and nothing is cached.
 */
export class BlobFill {
  readonly digest: Digest;
  readonly size: number | undefined;
  /** Resolves once the blob is verified and in the store; rejects when the fill failed. */
  readonly done: Promise<void>;
  private state: 'running' | 'verified' | 'done' | 'failed' = 'running';
  /** Set once the whole content matched its digest: from then on readers may end. */
  private verified = false;
  private error: Error | undefined;
  private refs = 1; // the fill's own
  /** Bytes received from upstream (hashed; in memory or on disk). */
  private received = 0;
  private readonly recent: Array<{ start: number; buf: Buffer }> = [];
  private recentBytes = 0;
  private closed = false;

  private constructor(
    private readonly opts: FillOptions,
    private readonly staged: Staged,
    private readonly events: EventEmitter,
  ) {
    this.digest = opts.digest;
    this.size = opts.size;
    this.done = this.run();
    // Readers observe failures through their streams; nobody may be awaiting `done`.
    this.done.catch(() => undefined);
  }

  static async start(opts: FillOptions): Promise<BlobFill> {
    // Readers wait on 'progress': new bytes in memory or on disk, or the end.
    const events = new EventEmitter().setMaxListeners(0);
    const staged = await opts.store.stageBlob({ ...(opts.size !== undefined ? { size: opts.size } : {}), onWritten: () => events.emit('progress') });
    return new BlobFill(opts, staged, events);
  }

  /** True once the fill has ended, well or not: new readers must not join it any more. */
  get settled(): boolean {
    return this.state === 'done' || this.state === 'failed';
  }

  get bytesWritten(): number {
    return this.staged.written;
  }

  private async run(): Promise<void> {
    const { digest, size, store } = this.opts;
    // Hashed on the digest thread, beside the disk writes and the readers' socket writes. A size
    // the upstream did not announce counts as large: small blobs come with a Content-Length.
    const hash = runningDigest(parseDigest(digest).algorithm, size ?? OFF_THREAD_MIN);
    try {
      for await (const chunk of this.opts.body) {
        this.opts.onBytes?.(chunk.length);
        // Each chunk is a buffer of its own, freed while young only if a minor collection comes
        // soon (see bodyBytesConsumed); else full collections, started by the external memory,
        // took as much CPU as the rest of the fill (measured: 7 per 256 MiB).
        bodyBytesConsumed(chunk.length);
        if (size !== undefined && this.received + chunk.length > size) {
          throw new OciError('SIZE_INVALID', `upstream sent more than the ${size} bytes it announced for ${digest}`);
        }
        const hashed = hash.update(chunk);
        // Readers get the bytes from memory as they arrive, not after the disk has them.
        this.recent.push({ start: this.received, buf: chunk });
        this.recentBytes += chunk.length;
        this.received += chunk.length;
        while (this.recentBytes > RECENT && this.recent.length > 1) this.recentBytes -= this.recent.shift()!.buf.length;
        this.events.emit('progress');
        // Backpressure: the upstream waits while the disk or the digest thread is behind.
        await Promise.all([this.staged.append([chunk]), hashed]);
      }
      if (size !== undefined && this.received !== size) {
        throw new OciError('SIZE_INVALID', `upstream sent ${this.received} of the ${size} bytes of ${digest}`);
      }
      const got = await hash.digest();
      if (got !== digest) throw new OciError('DIGEST_INVALID', `upstream content of ${digest} has digest ${got}; not cached`);
      // Verified: readers may end now. Making it durable and visible in the store follows.
      this.state = 'verified';
      this.verified = true;
      this.events.emit('progress');
      await store.commitBlob(this.staged, digest);
      this.state = 'done';
    } catch (err) {
      const error = isKnownError(err) ? err : new OciError('UNAVAILABLE', `fetching ${digest} from upstream failed: ${(err as Error).message}`, { cause: err });
      const body = this.opts.body as Partial<Readable>;
      if (typeof body.destroy === 'function') body.destroy();
      // Gone before anyone hears of the failure: a retry never meets the broken bytes.
      await this.staged.cancel().catch(() => undefined);
      this.error = error;
      this.state = 'failed';
      throw error;
    } finally {
      this.recent.length = 0;
      this.recentBytes = 0;
      this.events.emit('progress');
      await this.release();
    }
  }

  private async release(): Promise<void> {
    if (--this.refs === 0 && !this.closed) {
      this.closed = true;
      await this.staged.close().catch(() => undefined);
    }
  }

  /** Bytes [pos, end) from the latest writes still in memory, as slices (no copy); [] when they are not. */
  private fromMemory(pos: number, end: number): Buffer[] {
    const r = this.recent;
    if (r.length === 0 || pos < r[0]!.start) return [];
    for (let i = r.length - 1; i >= 0; i--) {
      const { start, buf } = r[i]!;
      if (start > pos) continue;
      if (pos >= start + buf.length) return [];
      const out = [buf.subarray(pos - start, Math.min(buf.length, end - start))];
      let at = start + buf.length;
      for (let j = i + 1; j < r.length && at < end; j++) {
        const b = r[j]!.buf;
        out.push(b.subarray(0, Math.min(b.length, end - at)));
        at += b.length;
      }
      return out;
    }
    return [];
  }

  private progress(): Promise<void> {
    return new Promise((resolve) => this.events.once('progress', resolve));
  }

  /**
   * Writes the blob, or the inclusive range [start, end] of it, to `res` as the fill goes: bytes
   * still in memory go out as they are (several per system call, corked), the others are read
   * from the file into reused buffers. The last byte goes out only after the whole blob was
   * verified; a failed fill throws, and the caller cuts the response short.
   */
  async sendTo(res: ServerResponse, range?: { start: number; end: number }): Promise<void> {
    this.refs++;
    let closed = false;
    res.once('close', () => (closed = true));
    try {
      let pos = range?.start ?? 0;
      let lastWrite: number | undefined;
      for (;;) {
        if (closed) return;
        const whole = this.verified ? this.received - 1 : this.size !== undefined ? this.size - 1 : Number.MAX_SAFE_INTEGER;
        const end = range ? range.end : whole;
        if (pos > end) break;
        // The last byte of every response is held back until the whole blob has been verified, so
        // no client (trusting Content-Length) ever holds a complete body of unverified content.
        const limit = this.verified ? end + 1 : end;
        const ready = Math.min(this.received, limit);
        if (lastWrite !== undefined && this.state === 'running' && pos < ready && ready - pos < BATCH && ready < end && Date.now() - lastWrite < BATCH_MS) {
          await this.progress();
          continue;
        }
        const mem = pos < ready ? this.fromMemory(pos, ready) : [];
        if (mem.length > 0) {
          lastWrite = Date.now();
          res.cork();
          let ok = true;
          for (const b of mem) {
            ok = res.write(b);
            pos += b.length;
          }
          res.uncork();
          if (!ok) await drained(res);
          continue;
        }
        const avail = Math.min(this.staged.written, limit);
        if (pos < avail) {
          const at = pos;
          const { buf, n } = await readPooled((into) => this.staged.read(into, at), avail - pos);
          if (n === 0) {
            giveBuffer(buf);
            throw new OciError('INTERNAL', `staged bytes of ${this.digest} are shorter than written`);
          }
          pos += n;
          if (!res.write(buf.subarray(0, n), () => giveBuffer(buf))) await drained(res);
          continue;
        }
        if (this.state === 'failed' && !this.verified) throw this.error!;
        if (this.verified && pos >= this.received) throw new WharfError('RANGE_INVALID', `range ends past the ${this.received} bytes of ${this.digest}`);
        // Bytes received but neither in memory any more nor written yet: the staging file's
        // writes catch up (a store whose commit is slow, such as S3, leaves them time to lag).
        await this.progress();
      }
      // The last byte is only released as valid once the whole blob has been checked.
      while (this.state === 'running') await this.progress();
      if (this.state === 'failed' && !this.verified) throw this.error!;
    } finally {
      void this.release();
    }
  }
}
