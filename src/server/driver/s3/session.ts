import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { MIN_PART, Multipart, PartsOut, StreamedPut, type Bucket, type Part } from './outputs.js';

/**
 * A file that grows by appends (an upload session's data), which S3 cannot do in place. Its bytes
 * are the parts of one multipart upload (each at least MIN_PART), then a `tail` object with what
 * has not filled a part yet; the file's own key holds this record as JSON, marked by metadata
 * (APPENDABLE) that also gives its size, so a HeadObject stats it like any file. Parts are never
 * read back while the upload is open (S3 cannot): bytes are hashed on their way in, and a read
 * after a restart first `seals` the upload, completing it into one object.
 *
 * Each commit writes a new record that keeps the one before it (`prev`), and nothing the previous
 * record refers to is removed until the record after it: so an append may start at the end of
 * either, which is how the registry cuts off a chunk it never acknowledged (the crash between a
 * chunk's commit and the offset record that acknowledges it; see store/uploads.ts).
 */
export interface SessionState {
  size: number;
  /** The multipart upload holding parts 1..n; its key is partsKey(file). */
  uploadId?: string;
  parts: Part[];
  /** Bytes after the parts, under MIN_PART. */
  tail?: { key: string; size: number };
  /** The upload was completed into the object at partsKey(file), which holds bytes [0, size - tail). */
  sealed?: boolean;
  prev?: Omit<SessionState, 'prev'>;
}

/** Metadata key (x-amz-meta-…) marking an appendable file's record; its value is the file's size. */
export const APPENDABLE = 'wharf-appendable';

/** Keys of the driver's own objects, beside the store's tree: the store never lists `_s3`. */
export const INTERNAL = '_s3';
/** Where the driver's own objects of a file go: under the driver's key prefix, as all it writes. */
export function partsKey(prefix: string, fileKey: string): string {
  return `${prefix}${INTERNAL}/parts/${fileKey}`;
}
export function tailPrefix(prefix: string, fileKey: string): string {
  return `${prefix}${INTERNAL}/tail/${fileKey}/`;
}

export function bytesInParts(s: Omit<SessionState, 'prev'>): number {
  return s.size - (s.tail?.size ?? 0);
}

/** The state to continue from for an append at `at`: the last record's, or the one before it. */
export function stateAt(s: SessionState, at: number): SessionState | undefined {
  if (s.size === at) return s;
  if (s.prev?.size === at) return { ...s.prev, prev: s.prev };
  return undefined;
}

/** The keys a record needs kept: its tail and the previous record's tail. */
export function tailsOf(s: SessionState | undefined): string[] {
  return [s?.tail?.key, s?.prev?.tail?.key].filter((k): k is string => k !== undefined);
}

/**
 * An append to a session: the tail's bytes and the new ones, as parts when they fill one (the
 * tail becomes the start of the first), or as a new tail object when they do not.
 */
export class SessionAppend {
  private parts: PartsOut | undefined;
  private tail: StreamedPut | undefined;
  private newTail: string | undefined;
  private readonly mp: Multipart;
  bytes = 0;

  constructor(
    private readonly b: Bucket,
    private readonly fileKey: string,
    private readonly base: SessionState,
    /** Bytes expected in this append, when announced: parts then stream without being held. */
    private readonly size: number | undefined,
    private readonly readTail: (key: string) => Promise<Readable>,
  ) {
    this.mp = new Multipart(b, partsKey(b.prefix, fileKey), base.sealed ? undefined : base.uploadId);
  }

  /** Picks where the bytes go, on the first byte: an append of none changes nothing. */
  private async start(): Promise<void> {
    const tailSize = this.base.tail?.size ?? 0;
    if (this.size === undefined || tailSize + this.size >= MIN_PART) {
      this.parts = new PartsOut(this.mp, this.firstPart(), this.size === undefined ? undefined : tailSize + this.size);
    } else {
      this.newTail = `${tailPrefix(this.b.prefix, this.fileKey)}${randomUUID()}`;
      this.tail = new StreamedPut(this.b, this.newTail, tailSize + this.size);
    }
    if (this.base.tail) for await (const c of await this.readTail(this.base.tail.key)) await this.sink(c as Buffer);
  }

  /** A sealed session grows again as a new upload: part 1 is the sealed object (copied in the store). */
  private firstPart(): number {
    if (this.base.sealed) return 2;
    return this.base.parts.reduce((m, p) => Math.max(m, p.n), 0) + 1;
  }

  private sink(chunk: Buffer): Promise<void> {
    return this.parts ? this.parts.write(chunk) : this.tail!.write(chunk);
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    if (this.bytes === 0) await this.start();
    this.bytes += chunk.length;
    await this.sink(chunk);
  }

  /** Sends what is left and gives the record that commit writes. */
  async end(): Promise<SessionState> {
    if (this.bytes === 0) return this.base;
    const { prev: _older, ...prev } = this.base;
    const size = this.base.size + this.bytes;
    if (this.tail) {
      await this.tail.end();
      await this.tail.commit();
      return { ...this.base, size, tail: { key: this.newTail!, size: this.tail.bytes }, prev };
    }
    const out = this.parts!;
    const rest = await out.end();
    const sent = out.sent;
    if (rest.length >= MIN_PART) sent.push(await this.mp.send(out.nextPart, rest.length, rest));
    let tail: SessionState['tail'];
    if (rest.length > 0 && rest.length < MIN_PART) {
      this.newTail = `${tailPrefix(this.b.prefix, this.fileKey)}${randomUUID()}`;
      await this.b.call('put', this.newTail, (signal) => this.b.s3.send(new PutObjectCommand({ Bucket: this.b.name, Key: this.newTail, Body: rest, ContentLength: rest.length, Metadata: this.b.stamp() }), { abortSignal: signal }));
      tail = { key: this.newTail, size: rest.length };
    }
    let state: SessionState;
    if (sent.length === 0) {
      // Everything fit in the new tail: the parts (or the sealed object) stay as they were.
      const { tail: _old, ...kept } = this.base;
      state = { ...kept, size, prev };
    } else {
      const kept = this.base.sealed ? [] : this.base.parts;
      const inSealed = bytesInParts(this.base);
      if (this.base.sealed && inSealed > 0) kept.push(await this.mp.copy(1, partsKey(this.b.prefix, this.fileKey), inSealed));
      state = { size, uploadId: await this.mp.uploadId(), parts: [...kept, ...sent], prev };
    }
    if (tail) state.tail = tail;
    return state;
  }

  /** Removes what this append wrote; parts it sent are left unreferenced (overwritten or aborted later). */
  async abort(): Promise<string | undefined> {
    this.parts?.abort();
    await this.tail?.abort();
    return this.newTail;
  }
}
