import { createReadStream, createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { OciError, createDigester, parseDigest, parseContentRange, type ByteRange, type Descriptor, WharfError } from '../../spec/index.js';
import { semaphore, type OpOptions } from '../../content/index.js';
import { responseError, type SendResponse } from './http.js';
import type { RemoteRepository } from './repository.js';

/** Reads inclusive ranges of a local file. */
async function readFileRanges(path: string, ranges: ByteRange[]): Promise<Buffer[]> {
  const fh = await open(path, 'r');
  try {
    const out: Buffer[] = [];
    for (const r of ranges) {
      const b = Buffer.alloc(r.end - r.start + 1);
      const { bytesRead } = await fh.read(b, 0, b.length, r.start);
      if (bytesRead !== b.length) throw new WharfError('RANGE_INVALID', `bytes ${r.start}-${r.end} are past the end of the blob`);
      out.push(b);
    }
    return out;
  } finally {
    await fh.close();
  }
}

export interface RemoteBlobSourceOptions {
  /** Ranges per multi-range request at most (default 32). */
  maxRangesPerRequest?: number;
  /** Single-range requests in flight when the registry takes one range at a time (default 4). */
  concurrency?: number;
  /** Where the blob goes when the registry ignores Range (default the OS temp dir). */
  tmpDir?: string;
  /** What changed in how the blob is read: "ignores Range", "no multi-range". */
  onMessage?: (message: string) => void;
}

/** What a source cost on the wire. */
export interface TransferStats {
  requests: number;
  /** Body bytes received. */
  bytes: number;
  /** The registry ignored Range and the blob was read whole (once). */
  wholeBlob: boolean;
  /** Learnt on first use: the registry answers multi-range requests with multipart/byteranges. */
  multiRange?: boolean;
}

/** Parses a `multipart/byteranges` body into its parts. */
export function parseMultipart(body: Buffer, contentType: string): Array<{ range: ByteRange; data: Buffer }> {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!m) throw new WharfError('RANGE_INVALID', 'multipart answer without a boundary');
  const delim = Buffer.from(`--${m[1] ?? m[2]}`);
  const parts: Array<{ range: ByteRange; data: Buffer }> = [];
  let at = body.indexOf(delim);
  while (at >= 0) {
    at += delim.length;
    if (body[at] === 0x2d && body[at + 1] === 0x2d) break; // closing delimiter
    const headEnd = body.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const head = body.toString('latin1', at, headEnd);
    const cr = /content-range:\s*([^\r\n]+)/i.exec(head);
    if (!cr) throw new WharfError('RANGE_INVALID', 'multipart part without Content-Range');
    const range = parseContentRange(cr[1]!);
    const start = headEnd + 4;
    const data = body.subarray(start, start + range.end - range.start + 1);
    if (data.length !== range.end - range.start + 1) throw new WharfError('RANGE_INVALID', 'multipart part shorter than its Content-Range');
    parts.push({ range, data });
    at = body.indexOf(delim, start + data.length);
  }
  return parts;
}

async function readBody(res: SendResponse, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.body.destroy();
      throw new WharfError('RANGE_INVALID', `${what}: the registry sent more than the ${limit} bytes asked for`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/**
 * A blob of a remote repository read by ranges. Several ranges go in one multi-range request;
 * a registry that answers it with 400 (or 416, or not multipart) gets one range per request from
 * then on. A registry that ignores Range (a 200 with the whole body) has the blob read once, into
 * a temp file checked against the digest, and every later read is served from there. The size
 * comes from the descriptor, else a HEAD, else a `Range: bytes=0-1` probe. It is a
 * `RangedBlobSource` (src/estargz) by shape.
 */
export class RemoteBlobSource {
  readonly stats: TransferStats = { requests: 0, bytes: 0, wholeBlob: false };
  private knownSize: number | undefined;
  private local?: { dir: string; path: string };
  private spilling?: Promise<void>;
  private readonly maxRanges: number;
  private readonly limit: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly repo: RemoteRepository,
    private readonly desc: Pick<Descriptor, 'digest'> & { size?: number },
    private readonly opts: RemoteBlobSourceOptions = {},
  ) {
    this.knownSize = desc.size !== undefined && desc.size >= 0 ? desc.size : undefined;
    this.maxRanges = Math.max(1, opts.maxRangesPerRequest ?? 32);
    this.limit = semaphore(Math.max(1, opts.concurrency ?? 4));
  }

  private url(): URL {
    return new URL(`${this.repo.transport.origin(this.repo.host)}/v2/${this.repo.name}/blobs/${this.desc.digest}`);
  }

  private async send(method: 'GET' | 'HEAD', headers: Record<string, string>, opts: OpOptions): Promise<SendResponse> {
    this.stats.requests++;
    const res = await this.repo.transport.send({ method, url: this.url(), host: this.repo.host, scopes: [`repository:${this.repo.name}:pull`], headers, signal: opts.signal });
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError('BLOB_UNKNOWN', `${this.desc.digest} not found in ${this.repo.host}/${this.repo.name}`);
    }
    return res;
  }

  async size(opts: OpOptions = {}): Promise<number> {
    if (this.knownSize !== undefined) return this.knownSize;
    const head = await this.send('HEAD', {}, opts);
    await head.body.dump();
    const len = Number(head.headers['content-length']);
    if (head.status === 200 && Number.isSafeInteger(len) && len >= 0) return (this.knownSize = len);
    this.opts.onMessage?.(`HEAD of ${this.desc.digest} answered ${head.status}; asking for bytes 0-1 to learn the size`);
    const res = await this.send('GET', { range: 'bytes=0-1' }, opts);
    if (res.status === 206) {
      const total = /\/(\d+)\s*$/.exec(res.headers['content-range'] ?? '')?.[1];
      this.stats.bytes += (await readBody(res, 2, 'size probe')).length;
      if (total === undefined) throw new WharfError('RANGE_INVALID', `no total size in Content-Range "${res.headers['content-range'] ?? ''}"`);
      return (this.knownSize = Number(total));
    }
    if (res.status === 200) {
      await this.spill(res, opts);
      return this.knownSize!;
    }
    throw await responseError(res, `size of ${this.desc.digest}`);
  }

  /**
   * The registry sent the whole blob: keep it in a temp file, checked, and read from there. Of
   * several such answers at once (parallel single-range reads), one is kept, the others dropped.
   */
  private spill(res: SendResponse, opts: OpOptions): Promise<void> {
    if (this.spilling) {
      res.body.destroy();
      return this.spilling;
    }
    this.spilling = this.spillOnce(res, opts);
    this.spilling.catch(() => (this.spilling = undefined));
    return this.spilling;
  }

  private async spillOnce(res: SendResponse, opts: OpOptions): Promise<void> {
    this.opts.onMessage?.(`the registry ignored Range for ${this.desc.digest}; reading the whole blob once`);
    this.stats.wholeBlob = true;
    const dir = await mkdtemp(join(this.opts.tmpDir ?? tmpdir(), 'wharf-blob-'));
    const path = join(dir, 'blob');
    try {
      const { algorithm } = parseDigest(this.desc.digest);
      const hash = createDigester(algorithm);
      const file = createWriteStream(path, { mode: 0o600 });
      let n = 0;
      for await (const c of res.body as AsyncIterable<Buffer>) {
        opts.signal?.throwIfAborted();
        hash.update(c);
        n += c.length;
        if (this.knownSize !== undefined && n > this.knownSize) throw new OciError('SIZE_INVALID', `${this.desc.digest} is longer than ${this.knownSize} bytes`);
        if (!file.write(c)) await once(file, 'drain');
      }
      file.end();
      await once(file, 'finish');
      this.stats.bytes += n;
      const got = `${algorithm}:${hash.digest('hex')}`;
      if (got !== this.desc.digest) throw new OciError('DIGEST_INVALID', `blob ${this.desc.digest} as served is ${got}: it was altered`);
      if (this.knownSize !== undefined && n !== this.knownSize) throw new OciError('SIZE_INVALID', `${this.desc.digest} is ${n} bytes, expected ${this.knownSize}`);
      this.knownSize = n;
      this.local = { dir, path };
    } catch (err) {
      res.body.destroy();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async read(ranges: ByteRange[], opts: OpOptions = {}): Promise<Buffer[]> {
    if (this.local) return readFileRanges(this.local.path, ranges);
    const out: Buffer[] = [];
    for (let i = 0; i < ranges.length; i += this.maxRanges) {
      const batch = ranges.slice(i, i + this.maxRanges);
      if (this.local) out.push(...(await readFileRanges((this.local as { path: string }).path, batch)));
      else if (batch.length > 1 && this.stats.multiRange !== false) out.push(...(await this.readMulti(batch, opts)));
      else out.push(...(await Promise.all(batch.map((r) => this.limit(() => this.readOne(r, opts))))));
    }
    return out;
  }

  private async readOne(r: ByteRange, opts: OpOptions): Promise<Buffer> {
    if (this.local) return (await readFileRanges(this.local.path, [r]))[0]!;
    const res = await this.send('GET', { range: `bytes=${r.start}-${r.end}` }, opts);
    if (res.status === 206) {
      const cr = res.headers['content-range'];
      const got = cr ? parseContentRange(cr) : undefined;
      if (!got || got.start !== r.start || got.end !== r.end) {
        res.body.destroy();
        throw new WharfError('RANGE_INVALID', `asked for bytes ${r.start}-${r.end} of ${this.desc.digest}, the registry answered ${cr ?? 'no Content-Range'}`);
      }
      const b = await readBody(res, r.end - r.start + 1, `bytes ${r.start}-${r.end}`);
      this.stats.bytes += b.length;
      if (b.length !== r.end - r.start + 1) throw new WharfError('RANGE_INVALID', `bytes ${r.start}-${r.end} of ${this.desc.digest}: the answer was cut short`);
      return b;
    }
    if (res.status === 200) {
      if (this.local) res.body.destroy();
      else await this.spill(res, opts);
      return (await readFileRanges(this.local!.path, [r]))[0]!;
    }
    throw await responseError(res, `read bytes ${r.start}-${r.end} of ${this.desc.digest}`);
  }

  private async readMulti(batch: ByteRange[], opts: OpOptions): Promise<Buffer[]> {
    const res = await this.send('GET', { range: `bytes=${batch.map((r) => `${r.start}-${r.end}`).join(',')}` }, opts);
    const ct = res.headers['content-type'] ?? '';
    const want = batch.reduce((n, r) => n + r.end - r.start + 1, 0);
    if (res.status === 206 && /^multipart\/byteranges/i.test(ct)) {
      const body = await readBody(res, want + 512 * batch.length + 4096, 'multi-range read');
      this.stats.bytes += body.length;
      const parts = parseMultipart(body, ct);
      this.stats.multiRange = true;
      // A server may merge or reorder ranges (RFC 9110 §14.2): look each one up in the parts.
      return batch.map((r) => {
        const p = parts.find((x) => x.range.start <= r.start && x.range.end >= r.end);
        if (!p) throw new WharfError('RANGE_INVALID', `the multi-range answer has no part covering bytes ${r.start}-${r.end}`);
        return p.data.subarray(r.start - p.range.start, r.end - p.range.start + 1);
      });
    }
    if (res.status === 200) {
      await this.spill(res, opts);
      return readFileRanges(this.local!.path, batch);
    }
    const cr = res.status === 206 ? res.headers['content-range'] : undefined;
    const one = cr ? parseContentRange(cr) : undefined;
    if (one && batch.every((r) => r.start >= one.start && r.end <= one.end) && one.end - one.start + 1 <= 2 * want + (1 << 20)) {
      // RFC 9110 lets a server answer several ranges with one that covers them all.
      const body = await readBody(res, one.end - one.start + 1, 'coalesced multi-range read');
      this.stats.bytes += body.length;
      if (body.length !== one.end - one.start + 1) throw new WharfError('RANGE_INVALID', `bytes ${one.start}-${one.end} of ${this.desc.digest}: the answer was cut short`);
      return batch.map((r) => body.subarray(r.start - one.start, r.end - one.start + 1));
    }
    if (res.status === 401 || res.status === 403 || res.status >= 500) throw await responseError(res, `read ${batch.length} ranges of ${this.desc.digest}`);
    // 400, 416, or a 206 that is not multipart: one range per request from now on.
    await res.body.dump();
    this.stats.multiRange = false;
    this.opts.onMessage?.(`the registry answered a multi-range request with ${res.status}${res.status === 206 ? ` (${ct || 'no content type'})` : ''}; reading one range per request`);
    return Promise.all(batch.map((r) => this.limit(() => this.readOne(r, opts))));
  }

  /** The whole blob in one GET (or from the local copy), unverified: the caller hashes it. */
  async stream(opts: OpOptions = {}): Promise<Readable> {
    if (this.local) return createReadStream(this.local.path, { highWaterMark: 1 << 20 });
    const res = await this.send('GET', {}, opts);
    if (res.status !== 200) throw await responseError(res, `fetch ${this.desc.digest}`);
    const count = new Transform({
      transform: (c: Buffer, _e, cb) => {
        this.stats.bytes += c.length;
        cb(null, c);
      },
    });
    res.body.on('error', (err) => count.destroy(err));
    return res.body.pipe(count);
  }

  async close(): Promise<void> {
    if (this.local) await rm(this.local.dir, { recursive: true, force: true });
    this.local = undefined;
  }
}
