import { Writable, type Readable } from 'node:stream';
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { DriverWriter, FileReader } from '../types.js';
import type { Output } from './outputs.js';
import type { BodySource } from './direct-get.js';
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
    version: versionOf(h.ETag, meta) ?? `/${meta[NONCE] ?? ''}`,
    appendable,
    objectSize,
  };
}

/**
 * A version as Head gives it, from an answer's ETag and the metadata the object was written with;
 * undefined without an ETag. RGW quotes the ETag in some answers and not in others (CopyObject's).
 */
export function versionOf(etag: string | undefined, meta: Record<string, string>): string | undefined {
  return etag ? `${etag.replace(/"/g, '')}/${meta[NONCE] ?? ''}` : undefined;
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
  version: string | undefined;

  constructor(
    private readonly out: Output,
    private readonly live: Set<Abandonable>,
    /** Wraps the commit: the bytes become visible meanwhile. */
    private readonly committing: <T>(commit: () => Promise<T>) => Promise<T>,
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
      this.version = await this.committing(() => this.out.commit());
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

/** A streamed body as a BodySource: its chunks are copied into the fills. */
export class StreamBody implements BodySource {
  private readonly chunks: AsyncIterator<Buffer>;
  private left: Buffer | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly body: Readable,
    private readonly onBytesRead: (bytes: number) => void,
  ) {
    this.chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  fill(into: Uint8Array): Promise<number> {
    const r = this.queue.then(() => this.fillNow(into));
    this.queue = r.catch(() => undefined);
    return r;
  }

  private async fillNow(into: Uint8Array): Promise<number> {
    let n = 0;
    while (n < into.length) {
      let chunk = this.left;
      this.left = undefined;
      if (!chunk) {
        const next = await this.chunks.next();
        if (next.done) break;
        chunk = next.value;
        this.onBytesRead(chunk.length);
      }
      const take = Math.min(chunk.length, into.length - n);
      into.set(take === chunk.length ? chunk : chunk.subarray(0, take), n);
      n += take;
      if (take < chunk.length) this.left = chunk.subarray(take);
    }
    return n;
  }

  destroy(): void {
    this.body.destroy();
  }
}

/**
 * Positional reads of one object through ranged GETs: a read where the last one asked ended
 * continues that GET's body; any other starts a new GET (to the end for sequential reads, else a
 * window of at least 256 KiB) once the reads of the last one are done. Reads that continue a body
 * are handed to it at once, in order, so that a body read into the callers' buffers (DirectGet)
 * has the next buffer in hand when one fills.
 */
export class ObjectReader implements FileReader {
  /** The open GET: where the next read must start to continue it, and its last byte. */
  private cur: { at: number; last: number; body: Promise<BodySource> } | undefined;
  /** Settles when every read asked so far has. */
  private settled: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly get: (range: { start: number; end: number }) => Promise<BodySource>,
    private readonly size: number,
    private readonly sequential: boolean,
  ) {}

  /** Fills `into` (short only at the end of the object). */
  read(into: Uint8Array, position: number): Promise<number> {
    if (position >= this.size || into.length === 0) return Promise.resolve(0);
    const want = Math.min(into.length, this.size - position);
    let cur = this.cur;
    if (!cur || cur.at !== position || position + want - 1 > cur.last) {
      const old = cur?.body;
      const last = this.sequential ? this.size - 1 : Math.min(this.size - 1, position + Math.max(want, 256 * 1024) - 1);
      const body = this.settled.then(() => {
        old?.then((b) => b.destroy(), () => undefined);
        return this.get({ start: position, end: last });
      });
      cur = this.cur = { at: position, last, body };
    }
    cur.at += want;
    const r = cur.body
      .then((b) => b.fill(into.subarray(0, want)))
      .then((n) => {
        if (n < want) throw new Error(`the object ended at ${position + n}, short of ${this.size} bytes`);
        return n;
      });
    // A failed GET or body is not continued: the next read starts a new one.
    const mine = cur;
    this.settled = r.catch(() => {
      if (this.cur === mine) this.cur = undefined;
    });
    return r;
  }

  async close(): Promise<void> {
    // Reads still waiting (a sender that stopped) fail; what the body had left is not fetched.
    const body = this.cur?.body;
    this.cur = undefined;
    body?.then(
      (b) => b.destroy(),
      () => undefined,
    );
  }
}
