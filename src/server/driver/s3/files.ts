import { Writable, type Readable } from 'node:stream';
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { DriverWriter, FileReader } from '../types.js';
import type { Output } from './outputs.js';
import { APPENDABLE } from './session.js';

/*
 * The S3 driver's pieces that hold no connection to the bucket: what a HeadObject says, the
 * writer over an Output, and positional reads over ranged GETs.
 */

/** The metadata keys of every object the driver writes: its mtime (ms) and a version nonce. */
export const MTIME = 'wharf-mtime';
export const NONCE = 'wharf-nonce';

/** What a HeadObject says about a key. */
export interface Head {
  size: number;
  mtimeMs: number;
  version: string;
  /** Set on an appendable file's record (its own size is the record's). */
  appendable: boolean;
  objectSize: number;
}

export function headOf(h: HeadObjectCommandOutput): Head {
  const meta = h.Metadata ?? {};
  const objectSize = h.ContentLength ?? 0;
  const appendable = meta[APPENDABLE] !== undefined;
  const mtime = Number(meta[MTIME]);
  return {
    size: appendable ? Number(meta[APPENDABLE]) : objectSize,
    mtimeMs: Number.isFinite(mtime) && mtime > 0 ? mtime : (h.LastModified?.getTime() ?? 0),
    version: `${h.ETag ?? ''}/${meta[NONCE] ?? ''}`,
    appendable,
    objectSize,
  };
}

export async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A write in progress that sweepTemp may end. */
export interface Abandonable {
  readonly started: number;
  sweep(): Promise<void>;
}

/** A writer over an Output: bytes go out as written; commit() makes them visible. */
export class OutputWriter extends Writable implements DriverWriter, Abandonable {
  private state: 'open' | 'committed' | 'cancelled' | 'swept' = 'open';
  private ended = false;
  readonly started = Date.now();

  constructor(
    private readonly out: Output,
    private readonly live: Set<Abandonable>,
    /** Wraps the commit: the bytes become visible meanwhile. */
    private readonly committing: (commit: () => Promise<void>) => Promise<void>,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    live.add(this);
  }

  /** Abandoned (sweepTemp): its bytes go, and a commit() after fails, as for a swept temp file. */
  async sweep(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'swept';
    this.live.delete(this);
    await this.out.abort();
  }

  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.out.write(chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.out.end().then(
      () => {
        this.ended = true;
        cb();
      },
      cb,
    );
  }

  async commit(): Promise<void> {
    // After cancel() nothing is written; a second commit() has nothing more to do.
    if (this.state === 'cancelled' || this.state === 'committed') return;
    if (!this.ended) {
      if (!this.writableEnded) this.end();
      await new Promise<void>((resolve, reject) => {
        if (this.ended) return resolve();
        this.once('finish', () => resolve());
        this.once('error', reject);
      });
    }
    if (this.state === 'swept') throw new Error('the write was abandoned and swept before its commit');
    this.state = 'committed';
    this.live.delete(this);
    try {
      await this.committing(() => this.out.commit());
    } catch (err) {
      await this.out.abort();
      throw err;
    }
  }

  async cancel(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'cancelled';
    this.live.delete(this);
    if (!this.destroyed) this.destroy();
    await this.out.abort();
  }
}

/**
 * Positional reads of one object through ranged GETs: a read where the last one ended continues
 * its stream; any other starts a new one (to the end for sequential reads, else a window of at
 * least 256 KiB).
 */
export class ObjectReader implements FileReader {
  private stream: AsyncIterator<Buffer> | undefined;
  private body: Readable | undefined;
  private pos = -1;
  /** The last byte the open stream was asked for. */
  private last = -1;
  private left: Buffer | undefined;

  constructor(
    private readonly get: (range: { start: number; end: number }) => Promise<Readable>,
    private readonly size: number,
    private readonly sequential: boolean,
    private readonly onBytesRead: (bytes: number) => void,
  ) {}

  /** Reads come one at a time, in the order asked: a sender asks for the next chunks ahead. */
  private queue: Promise<unknown> = Promise.resolve();

  read(into: Uint8Array, position: number): Promise<number> {
    const r = this.queue.then(() => this.readNow(into, position));
    this.queue = r.catch(() => undefined);
    return r;
  }

  /** Fills `into` (short only at the end of the object). */
  private async readNow(into: Uint8Array, position: number): Promise<number> {
    if (position >= this.size || into.length === 0) return 0;
    if (this.pos !== position) this.drop();
    this.pos = position;
    const want = Math.min(into.length, this.size - position);
    let n = 0;
    while (n < want) {
      let chunk = this.left;
      this.left = undefined;
      if (!chunk) {
        if (!this.stream || this.pos + n > this.last) await this.from(this.pos + n, want - n);
        const next = await this.stream!.next();
        if (next.done) {
          if (this.pos + n <= this.last) throw new Error(`the object ended at ${this.pos + n}, short of ${this.size} bytes`);
          this.drop();
          continue;
        }
        chunk = next.value;
        this.onBytesRead(chunk.length);
      }
      const take = Math.min(chunk.length, want - n);
      into.set(take === chunk.length ? chunk : chunk.subarray(0, take), n);
      n += take;
      if (take < chunk.length) this.left = chunk.subarray(take);
    }
    this.pos += n;
    return n;
  }

  /** A new ranged GET from `at`: to the end for sequential reads, else a window. */
  private async from(at: number, want: number): Promise<void> {
    this.drop();
    this.last = this.sequential ? this.size - 1 : Math.min(this.size - 1, at + Math.max(want, 256 * 1024) - 1);
    this.body = await this.get({ start: at, end: this.last });
    this.stream = this.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private drop(): void {
    this.last = -1;
    this.body?.destroy();
    this.body = undefined;
    this.stream = undefined;
    this.left = undefined;
  }

  async close(): Promise<void> {
    this.drop();
  }
}
