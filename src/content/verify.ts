import { Transform, type TransformCallback, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Hash } from 'node:crypto';
import { OciError, parseDigest, createDigester, type Descriptor, type Digest } from '../spec/index.js';

/**
 * Hashes and counts content on its way, for VerifyStream and verifyChunks: `update` fails the moment
 * more bytes than expected arrive, `finish` when the size or digest differ at the end.
 */
class Verifier {
  private readonly hash: Hash;
  seen = 0;

  constructor(readonly expected: { digest: Digest; size: number }) {
    this.hash = createDigester(parseDigest(expected.digest).algorithm);
  }

  update(chunk: Buffer): OciError | undefined {
    this.seen += chunk.length;
    if (this.seen > this.expected.size) return new OciError('SIZE_INVALID', `content of ${this.expected.digest} is longer than the expected ${this.expected.size} bytes`);
    this.hash.update(chunk);
    return undefined;
  }

  finish(): OciError | undefined {
    if (this.seen !== this.expected.size) return new OciError('SIZE_INVALID', `content of ${this.expected.digest} is ${this.seen} bytes, expected ${this.expected.size}`);
    const got = `${parseDigest(this.expected.digest).algorithm}:${this.hash.digest('hex')}`;
    if (got !== this.expected.digest) return new OciError('DIGEST_INVALID', `content digest ${got} does not match expected ${this.expected.digest}`);
    return undefined;
  }
}

/**
 * A pass-through that hashes and counts what flows, and fails the stream the moment more bytes
 * than expected arrive, or at the end when the size or digest differ; the last chunk is passed on
 * only once the digest matched. Nothing downstream may commit content before this stream has
 * ended cleanly.
 */
export class VerifyStream extends Transform {
  readonly expected: { digest: Digest; size: number };
  private readonly verifier: Verifier;
  private held: Buffer | undefined;

  constructor(expected: { digest: Digest; size: number }) {
    super();
    this.expected = expected;
    this.verifier = new Verifier(expected);
  }

  get bytes(): number {
    return this.verifier.seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const err = this.verifier.update(chunk);
    if (err) return cb(err);
    // The newest chunk is held back until the next one arrives, and the last one until the digest
    // checks out: a reader (an HTTP response above all) never receives the whole of bad content.
    const previous = this.held;
    this.held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const err = this.verifier.finish();
    cb(err ?? null, err ? undefined : this.held);
  }
}

/**
 * The chunks of `src`, checked as VerifyStream checks them (the last one held back until the
 * digest matched), as a generator: one step per chunk where a Transform adds a stream between
 * source and consumer, which costs a download of many 64 KiB chunks about a tenth of its CPU.
 */
export async function* verifyChunks(src: AsyncIterable<Buffer>, expected: { digest: Digest; size: number }): AsyncGenerator<Buffer> {
  const v = new Verifier(expected);
  let held: Buffer | undefined;
  for await (const chunk of src) {
    const err = v.update(chunk);
    if (err) throw err;
    if (held) yield held;
    held = chunk;
  }
  const err = v.finish();
  if (err) throw err;
  if (held) yield held;
}

/**
 * A pass-through that hashes and counts content whose digest is not known yet, and fails when it
 * is longer or shorter than `size` (a file that changed while it was read). `digest` is set once
 * `size` bytes have passed.
 */
export class DigestingStream extends Transform {
  readonly size: number;
  /** What the content is, for error messages (a file name). */
  readonly what: string;
  private readonly hash: Hash;
  private seen = 0;
  private result: Digest | undefined;

  constructor(size: number, what: string) {
    super();
    this.size = size;
    this.what = what;
    this.hash = createDigester();
  }

  /** The content's digest; throws before `size` bytes have passed. */
  get digest(): Digest {
    if (!this.result) throw new OciError('SIZE_INVALID', `${this.what}: read ${this.seen} of ${this.size} bytes; it was not read to the end`);
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) {
      cb(new OciError('SIZE_INVALID', `${this.what} grew while it was read (more than ${this.size} bytes); nothing was stored, try again`));
      return;
    }
    this.hash.update(chunk);
    // Known as soon as `size` bytes went by, not at the source's end: a consumer that stops after
    // `size` bytes (an HTTP request with that Content-Length) may be answered before a file stream
    // reports its end, which takes one more read. Growth after that is the source's check to find.
    if (this.seen === this.size) this.result = `sha256:${this.hash.digest('hex')}`;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.size) {
      cb(new OciError('SIZE_INVALID', `${this.what} shrank while it was read (${this.seen} of ${this.size} bytes); nothing was stored, try again`));
      return;
    }
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    cb();
  }
}

/**
 * Streams that verify their own content as they are read (verifyReader's, and a registry's blob
 * body through verifyChunks), by what they check: they fail before their last byte when the
 * content is wrong. verifyReader passes such a stream on as it is, so content that goes from one
 * store to another (wharf cp, a push of files, a cache fill) is hashed once, not at every hop.
 */
const selfVerifying = new WeakMap<Readable, string>();
const keyOf = (desc: Pick<Descriptor, 'digest' | 'size'>): string => `${desc.digest} ${desc.size}`;

/** Marks `stream` as verifying `desc` itself; returns it. */
export function markVerifying(stream: Readable, desc: Pick<Descriptor, 'digest' | 'size'>): Readable {
  selfVerifying.set(stream, keyOf(desc));
  return stream;
}

/** Wraps `src` so that reading it verifies `desc`; `src` itself when it already does (see markVerifying). */
export function verifyReader(src: Readable, desc: Pick<Descriptor, 'digest' | 'size'>): Readable {
  if (selfVerifying.get(src) === keyOf(desc)) return src;
  const v = new VerifyStream(desc);
  src.on('error', (err) => v.destroy(err));
  // pipe() does not destroy its source when the destination goes away (a client that hangs
  // up): without this the source, and the file it holds open, would live until GC.
  v.on('close', () => src.destroy());
  return markVerifying(src.pipe(v), desc);
}

/** Reads a whole (small, bounded) verified stream into memory: for manifests and configs only. */
export async function readAllVerified(src: Readable, desc: Pick<Descriptor, 'digest' | 'size'>, limit = 16 << 20): Promise<Buffer> {
  if (desc.size > limit) throw new OciError('SIZE_INVALID', `${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit for in-memory content`);
  const chunks: Buffer[] = [];
  await pipeline(src, new VerifyStream(desc), async function* (source: AsyncIterable<Buffer>) {
    for await (const c of source) chunks.push(c);
  });
  return Buffer.concat(chunks);
}

/** Reads an unverified stream up to `limit` bytes (request bodies whose digest is computed after). */
export async function readAllLimited(src: AsyncIterable<Buffer | string>, limit: number, onOver: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    n += b.length;
    if (n > limit) throw onOver();
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
