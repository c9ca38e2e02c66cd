import { once } from 'node:events';
import { fsError } from '../errors.js';
import { statusOf } from './client.js';
import { versionOf } from './files.js';
import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

const MiB = 1024 * 1024;
/** S3's smallest part but the last one: stores refuse smaller ones (EntityTooSmall). */
export const MIN_PART = 5 * MiB;
/** S3's largest single PUT, and its largest CopyObject. */
export const MAX_PUT = 5 * 1024 * MiB;
/** Parts sent while their bytes arrive (length known): few requests, no memory held. */
const STREAMED_PART = 64 * MiB;
/** Parts of a body of unknown length are held in memory until full: this is what each costs. */
export const BUFFERED_PART = 8 * MiB;
const MAX_PARTS = 10_000;

export interface Part {
  n: number;
  size: number;
  etag: string;
}

/** The bucket and the call wrapper every request goes through (it maps failures for the store). */
export interface Bucket {
  s3: S3Client;
  /**
   * For calls during which the store sends nothing for as long as it works (a copy, completing
   * an upload of many parts): the same store with a longer idle timeout.
   */
  slow: S3Client;
  name: string;
  /** The driver's key prefix ('' or ending in '/'): every key it writes starts with it. */
  prefix: string;
  /**
   * Runs one call, turning a failure into what the driver throws. The call gets a signal that
   * fires if it has not resolved by the configured timeout (the store then counts as unavailable),
   * unless `long`: a streamed body or a copy takes as long as its bytes do, and only an idle socket
   * times it out.
   */
  call<T>(what: string, key: string, fn: (signal: AbortSignal | undefined) => Promise<T>, opts?: { long?: boolean }): Promise<T>;
  /** Metadata every object this driver writes carries (its mtime and a version nonce). */
  stamp(extra?: Record<string, string>): Record<string, string>;
}

/** Where a writer's bytes go. The writer hands bytes over in order, then says `end()`. */
export interface Output {
  write(chunk: Buffer): Promise<void>;
  /** No more bytes; the store may still refuse to take them (commit). */
  end(): Promise<void>;
  /** Makes the bytes visible under their key; resolves to the object's version when the store's answer says it (Head.version). */
  commit(): Promise<string | undefined>;
  /** Leaves nothing behind (best effort: a crash leaves what sweepTemp removes). */
  abort(): Promise<void>;
  readonly bytes: number;
}

/** A request body fed while the request runs: writes wait for the store to take the bytes. */
class Feed {
  readonly body = new PassThrough({ highWaterMark: 1 * MiB });
  readonly ac = new AbortController();
  done!: Promise<unknown>;
  start<T>(send: (body: Readable, signal: AbortSignal) => Promise<T>): Promise<T> {
    const p = send(this.body, this.ac.signal);
    this.done = p;
    // A request that failed before its body was all written is seen by the writer's next await.
    p.catch(() => undefined);
    return p;
  }
  async write(chunk: Buffer): Promise<void> {
    if (this.body.write(chunk)) return;
    await Promise.race([once(this.body, 'drain'), this.done]);
  }
  abort(): void {
    this.ac.abort();
    this.body.destroy();
  }
}

/**
 * One PutObject whose body streams as it arrives, with its length declared up front. The last
 * bytes are held back until commit(): the store creates nothing until it has them all, so a write
 * that is cancelled (a digest that did not match) never becomes visible, yet nothing is buffered.
 */
export class StreamedPut implements Output {
  private readonly feed = new Feed();
  private held: Buffer | undefined;
  bytes = 0;
  private readonly sent: Promise<string | undefined>;
  /** `ifAbsent` and the key was there: the rest of the bytes are counted, not sent. */
  private existed = false;

  constructor(
    b: Bucket,
    private readonly key: string,
    private readonly size: number,
    extra: Record<string, string> = {},
    ifAbsent = false,
  ) {
    const conditional = ifAbsent ? { IfNoneMatch: '*' } : {};
    const meta = b.stamp(extra);
    this.sent = this.feed.start((body, signal) =>
      // No deadline: a streamed body takes as long as its bytes take to come.
      b
        .call('put', key, () => b.s3.send(new PutObjectCommand({ Bucket: b.name, Key: key, Body: body, ContentLength: size, Metadata: meta, ...conditional }), { abortSignal: signal }), { long: true })
        .then(
          (r) => versionOf(r.ETag, meta),
          (err: unknown) => {
            // The store may answer before it has read the body: the writes see it as sent.
            if (!ifAbsent || statusOf(err) !== 412) throw err;
            this.existed = true;
            return undefined;
          },
        ),
    );
  }

  async write(chunk: Buffer): Promise<void> {
    this.bytes += chunk.length;
    if (this.bytes > this.size) throw new RangeError(`more than the announced ${this.size} bytes`);
    if (this.existed) return;
    const before = this.held;
    this.held = chunk;
    if (before) await this.feed.write(before);
  }

  async end(): Promise<void> {
    if (this.bytes !== this.size) throw new RangeError(`${this.bytes} bytes where ${this.size} were announced`);
  }

  async commit(): Promise<string | undefined> {
    if (this.held && !this.existed) await this.feed.write(this.held);
    this.held = undefined;
    this.feed.body.end();
    const version = await this.sent;
    if (this.existed) throw fsError('EEXIST', 'write', this.key);
    return version;
  }

  async abort(): Promise<void> {
    this.feed.abort();
    await this.sent.catch(() => undefined);
  }
}

/** Splits `total` bytes into parts of at least MIN_PART (the last one absorbs a short rest). */
export function planParts(total: number, firstPart: number): number[] {
  const room = MAX_PARTS - firstPart + 1;
  const size = Math.max(STREAMED_PART, Math.ceil(total / Math.max(1, room - 1)));
  const out: number[] = [];
  let left = total;
  while (left > 0) {
    const take = left - size < MIN_PART ? left : size;
    out.push(take);
    left -= take;
  }
  if (firstPart + out.length - 1 > MAX_PARTS) throw new RangeError(`${total} bytes need more than ${MAX_PARTS} parts`);
  return out;
}

/** A multipart upload of one key, created when the first part is sent. */
export class Multipart {
  readonly parts: Part[] = [];
  private id: Promise<string> | undefined;

  constructor(
    private readonly b: Bucket,
    readonly key: string,
    uploadId?: string,
    private readonly extra: Record<string, string> = {},
  ) {
    if (uploadId) this.id = Promise.resolve(uploadId);
  }

  uploadId(): Promise<string> {
    this.id ??= this.b.call('create multipart upload', this.key, (signal) =>
      this.b.s3.send(new CreateMultipartUploadCommand({ Bucket: this.b.name, Key: this.key, Metadata: this.b.stamp(this.extra) }), { abortSignal: signal }).then((r) => r.UploadId!),
    );
    return this.id;
  }

  get started(): boolean {
    return this.id !== undefined;
  }

  async send(n: number, size: number, body: Readable | Buffer, signal?: AbortSignal): Promise<Part> {
    const UploadId = await this.uploadId();
    const r = await this.b.call(
      'upload part',
      this.key,
      () => this.b.s3.send(new UploadPartCommand({ Bucket: this.b.name, Key: this.key, UploadId, PartNumber: n, Body: body, ContentLength: size }), signal ? { abortSignal: signal } : {}),
      { long: true },
    );
    const part = { n, size, etag: r.ETag! };
    this.parts.push(part);
    return part;
  }

  /** A part copied inside the store from (a range of) another object: no bytes pass through here. */
  async copy(n: number, source: string, size: number, range?: { start: number; end: number }): Promise<Part> {
    const UploadId = await this.uploadId();
    const r = await this.b.call('copy part', this.key, () =>
      this.b.slow.send(
        new UploadPartCopyCommand({
          Bucket: this.b.name,
          Key: this.key,
          UploadId,
          PartNumber: n,
          CopySource: copySource(this.b.name, source),
          ...(range ? { CopySourceRange: `bytes=${range.start}-${range.end}` } : {}),
        }),
      ),
      { long: true },
    );
    const part = { n, size, etag: r.CopyPartResult!.ETag! };
    this.parts.push(part);
    return part;
  }

  async complete(parts: Part[]): Promise<void> {
    const UploadId = await this.uploadId();
    const sorted = [...parts].sort((a, b) => a.n - b.n);
    await this.b.call('complete multipart upload', this.key, () =>
      this.b.slow.send(
        new CompleteMultipartUploadCommand({ Bucket: this.b.name, Key: this.key, UploadId, MultipartUpload: { Parts: sorted.map((p) => ({ PartNumber: p.n, ETag: p.etag })) } }),
      ),
      { long: true },
    );
  }

  async abort(): Promise<void> {
    if (!this.id) return;
    const UploadId = await this.id.catch(() => undefined);
    if (!UploadId) return;
    await this.b.call('abort multipart upload', this.key, (signal) => this.b.s3.send(new AbortMultipartUploadCommand({ Bucket: this.b.name, Key: this.key, UploadId }), { abortSignal: signal })).catch(() => undefined);
  }
}

/** `bucket/key` for a copy's source, each segment escaped as S3 wants it. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * Bytes sent as parts of `mp` from part `firstPart` on. With `total` known, each part streams as
 * its bytes arrive (two in flight); without, parts are held in memory until BUFFERED_PART full, and
 * what is left at the end stays in `rest` for the caller (a short last part, or a tail object).
 */
export class PartsOut {
  bytes = 0;
  private readonly sizes: number[] | undefined;
  private current: { feed: Feed; left: number } | undefined;
  private readonly inFlight: Array<Promise<Part>> = [];
  private next: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly mp: Multipart,
    firstPart: number,
    total?: number,
  ) {
    this.next = firstPart;
    this.sizes = total === undefined ? undefined : planParts(total, firstPart);
  }

  /** Parts sent by this output, once `end()` resolved. */
  readonly sent: Part[] = [];

  async write(chunk: Buffer): Promise<void> {
    this.bytes += chunk.length;
    if (this.sizes) return this.stream(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes > BUFFERED_PART) await this.sendBuffered(BUFFERED_PART);
  }

  private async stream(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      if (!this.current) {
        const size = this.sizes!.shift();
        if (size === undefined) throw new RangeError('more bytes than announced');
        // At most two parts in flight: the one being fed and the one finishing.
        if (this.inFlight.length >= 2) await this.inFlight[this.inFlight.length - 2];
        const feed = new Feed();
        const n = this.next++;
        this.inFlight.push(feed.start((body, signal) => this.mp.send(n, size, body, signal)));
        this.current = { feed, left: size };
      }
      const take = Math.min(chunk.length, this.current.left);
      await this.current.feed.write(take === chunk.length ? chunk : chunk.subarray(0, take));
      chunk = chunk.subarray(take);
      this.current.left -= take;
      if (this.current.left === 0) {
        this.current.feed.body.end();
        this.current = undefined;
      }
    }
  }

  private async sendBuffered(size: number): Promise<void> {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const body = all.subarray(0, size);
    this.pending = all.length > size ? [all.subarray(size)] : [];
    this.pendingBytes -= size;
    // One part in flight while the next fills: memory stays at two parts.
    if (this.inFlight.length > 0) await this.inFlight[this.inFlight.length - 1];
    const n = this.next++;
    const p = this.mp.send(n, size, body);
    p.catch(() => undefined);
    this.inFlight.push(p);
  }

  /** Waits for every part. Returns the bytes held back (unknown length): the caller places them. */
  async end(): Promise<Buffer> {
    if (this.sizes && (this.current || this.sizes.length > 0)) throw new RangeError('fewer bytes than announced');
    this.sent.push(...(await Promise.all(this.inFlight)));
    const rest = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return rest;
  }

  get nextPart(): number {
    return this.next;
  }

  abort(): void {
    this.current?.feed.abort();
    this.current = undefined;
  }
}

/**
 * A new object of unknown or large size, as a multipart upload of its final key: nothing is
 * visible until commit() completes it. A body of unknown length that ends under BUFFERED_PART
 * becomes one PutObject at commit instead.
 */
export class MultipartPut implements Output {
  private readonly mp: Multipart;
  private readonly out: PartsOut;
  private rest: Buffer | undefined;

  constructor(
    private readonly b: Bucket,
    private readonly key: string,
    size: number | undefined,
    private readonly extra: Record<string, string> = {},
    /** As StreamedPut's; a multipart upload asks first (HeadObject) before it completes. */
    private readonly ifAbsent = false,
  ) {
    this.mp = new Multipart(b, key, undefined, extra);
    this.out = new PartsOut(this.mp, 1, size);
  }

  get bytes(): number {
    return this.out.bytes;
  }

  write(chunk: Buffer): Promise<void> {
    return this.out.write(chunk);
  }

  async end(): Promise<void> {
    this.rest = await this.out.end();
    if (this.mp.started && this.rest.length > 0) {
      await this.mp.send(this.out.nextPart, this.rest.length, this.rest);
      this.rest = undefined;
    }
  }

  async commit(): Promise<string | undefined> {
    const conditional = this.ifAbsent ? { IfNoneMatch: '*' } : {};
    if (!this.mp.started) {
      const body = this.rest ?? Buffer.alloc(0);
      const meta = this.b.stamp(this.extra);
      try {
        const r = await this.b.call('put', this.key, (signal) =>
          this.b.s3.send(new PutObjectCommand({ Bucket: this.b.name, Key: this.key, Body: body, ContentLength: body.length, Metadata: meta, ...conditional }), { abortSignal: signal }),
        );
        return versionOf(r.ETag, meta);
      } catch (err) {
        throw this.ifAbsent && statusOf(err) === 412 ? fsError('EEXIST', 'write', this.key) : err;
      }
    }
    if (this.ifAbsent && (await this.exists())) throw fsError('EEXIST', 'write', this.key);
    // RGW's answer to a completion carries no ETag (S3-NOTES): the version is left to a stat.
    await this.mp.complete(this.mp.parts);
    return undefined;
  }

  private async exists(): Promise<boolean> {
    try {
      await this.b.call('stat', this.key, (signal) => this.b.s3.send(new HeadObjectCommand({ Bucket: this.b.name, Key: this.key }), { abortSignal: signal }));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async abort(): Promise<void> {
    this.out.abort();
    await this.mp.abort();
  }
}
