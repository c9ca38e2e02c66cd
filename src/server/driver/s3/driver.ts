import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { OciError } from '../../../spec/index.js';
import { FsDriver } from '../fs.js';
import { checkPath } from '../paths.js';
import type { DriverWriter, FileInfo, FileReader, PutOptions, StageOptions, Staged, StorageDriver, Touched, WriterOptions } from '../types.js';
import { collect, headOf, MTIME, NONCE, ObjectReader, OutputWriter, StreamBody, versionOf, type Abandonable, type Head } from './files.js';
import { DirectGet, type BodySource } from './direct-get.js';
import { MetaCache, SMALL_FILE } from './meta-cache.js';
import { SessionRecords } from './records.js';
import { stageObject, type StageDeps } from './stage.js';
import { sweepObjects, type SweepDeps } from './sweep.js';
import { enoent, makeClient, storeError, type S3Options } from './client.js';
import { copySource, MAX_PUT, Multipart, MultipartPut, StreamedPut, type Bucket, type Output } from './outputs.js';
import { APPENDABLE, bytesInParts, INTERNAL, partsKey, SessionAppend, stateAt, type SessionState } from './session.js';

/**
 * A multipart copy's parts (an object over MAX_PUT cannot be copied in one call). A store sends
 * nothing while it copies a part (RGW copies 1 GiB in ~4 s here), so parts stay small enough to
 * finish soon, and four go at once.
 */
const COPY_PART = 256 * 1024 * 1024;
const COPY_PARALLEL = 4;
/**
 * Files up to this size are touched by copying them onto themselves with a new mtime (one request;
 * RGW does not copy the data, S3 copies it inside the store). A larger file gets a marker object
 * instead (`_s3/touched/<path>`), whose mtime its stat() reports when later: copying gigabytes to
 * move a timestamp would take seconds to minutes, and past 5 GiB it is many requests.
 */
const TOUCH_COPY_MAX = 64 * 1024 * 1024;

export interface S3DriverOptions extends S3Options {
  /** A local directory for bytes being staged (pull-through fills read while they grow). */
  spoolDir: string;
  /** A client to use instead of one made from the options (tests). */
  client?: S3Client;
  /** Blob reads over the driver's own sockets when the endpoint is plain http (direct-get.ts); default true. */
  directGet?: boolean;
  /** How long answers about keys are kept (MetaCache); 0: none. */
  cacheTtlMs?: number;
  /** The paths whose answers may be kept (the registry's tags and manifest links); none without it. */
  cacheable?: (path: string) => boolean;
  /**
   * Told of every chunk a GET brings (each a buffer of its own outside the JavaScript heap), so
   * that the server can collect them young as it does request bodies (io/young-gc.ts).
   */
  onBytesRead?: (bytes: number) => void;
}

/**
 * The storage driver on an S3 bucket (docs/STORAGE.md, "S3"). A path is a key under the prefix;
 * directories are key prefixes, so they exist while something is beneath them, and stat() of one
 * finds nothing (no LIST on any request path: stat is one HeadObject). Writes become visible
 * whole: a new file streams into one PutObject whose last bytes wait for commit(), or into a
 * multipart upload completed by commit(); an append grows a session (session.ts). A move is a
 * CopyObject (which RGW and S3 do inside the store; RGW shares the data) and a delete.
 */
export class S3Driver implements StorageDriver {
  readonly objectStore = true;
  private readonly b: Bucket;
  private readonly prefix: string;
  private readonly spool: FsDriver;
  private readonly timeoutMs: number;
  private readonly cache: MetaCache;
  private readonly records: SessionRecords;
  private readonly sweepDeps: SweepDeps;
  private readonly stageDeps: StageDeps;
  private readonly cacheable: (path: string) => boolean;
  private readonly onBytesRead: (bytes: number) => void;
  /** Keys this process made upload sessions of (appended to), so that delete() drops their parts. */
  private readonly appended = new Set<string>();
  /** Writes not yet committed or cancelled: sweepTemp ends those abandoned long enough. */
  private readonly writes = new Set<Abandonable>();
  /** Calls made through Bucket.call, by what they did (storeRequests). */
  private readonly requests = new Map<string, number>();
  /** Blob reads over sockets of our own (direct-get.ts), for a plain-http endpoint. */
  private readonly direct: DirectGet | undefined;
  /** Signs redirect URLs for the endpoint clients reach (storage.s3.redirect.publicEndpoint). */
  private readonly signer: { s3: S3Client; expiresIn: number } | undefined;

  constructor(o: S3DriverOptions) {
    const s3 = o.client ?? makeClient(o);
    const timeoutMs = o.timeoutMs ?? 30_000;
    this.timeoutMs = timeoutMs;
    this.cache = new MetaCache(o.cacheable ? (o.cacheTtlMs ?? 5000) : 0);
    this.cacheable = o.cacheable ?? (() => false);
    this.onBytesRead = o.onBytesRead ?? (() => undefined);
    this.prefix = o.prefix ? `${o.prefix.replace(/^\/+|\/+$/g, '')}/` : '';
    if (this.prefix === '/') this.prefix = '';
    this.b = {
      s3,
      // A 256 MiB part copy took RGW ~1 s alone and longer beside others: minutes, not seconds.
      slow: o.client ?? makeClient({ ...o, timeoutMs: Math.max(o.timeoutMs ?? 30_000, 600_000) }),
      name: o.bucket,
      prefix: this.prefix,
      call: async (what, key, fn, opts = {}) => {
        this.requests.set(what, (this.requests.get(what) ?? 0) + 1);
        // Held to the timeout until the call resolves: for a GET, until its headers came (its
        // body then streams for as long as its bytes take).
        const deadline = opts.long ? undefined : new AbortController();
        const timer = deadline && setTimeout(() => deadline.abort(), timeoutMs);
        try {
          return await fn(deadline?.signal);
        } catch (err) {
          if (deadline?.signal.aborted) throw new OciError('UNAVAILABLE', `the object store is unavailable (${what}: no answer within ${timeoutMs / 1000} s); try again`, { cause: err });
          throw storeError(err, what, key);
        } finally {
          clearTimeout(timer);
        }
      },
      stamp: (extra = {}) => ({ [MTIME]: String(Date.now()), [NONCE]: randomUUID().slice(0, 8), ...extra }),
    };
    this.spool = new FsDriver(o.spoolDir, { fsync: false, directIO: false });
    this.records = new SessionRecords({
      b: this.b,
      prefix: this.prefix,
      getObject: (key, range) => this.getObject(key, range),
      putObject: (key, body, extra) => this.putObject(key, body, extra),
      deleteKey: (key) => this.deleteKey(key),
      copyKey: (from, to, size, metadata) => this.copyKey(from, to, size, metadata),
    });
    this.stageDeps = { b: this.b, spool: this.spool, writes: this.writes, key: (p) => this.key(p), copyKey: (f, t, n, m) => this.copyKey(f, t, n, m), deleteKey: (k) => this.deleteKey(k) };
    this.sweepDeps = { b: this.b, prefix: this.prefix, head: (key) => this.head(key), readState: (key) => this.records.read(key), deleteKey: (key) => this.deleteKey(key) };
    if (o.endpoint?.startsWith('http:') && o.directGet !== false) {
      const s3 = this.b.s3;
      const bucket = o.bucket;
      this.direct = new DirectGet({
        endpoint: new URL(o.endpoint),
        // A URL for this GET only: it lives for as long as a request may wait for its answer.
        presign: (key) => getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: Math.max(60, Math.ceil(timeoutMs / 1000)) }),
        timeoutMs,
        maxSockets: o.maxSockets ?? 128,
      });
    }
    if (o.redirect) {
      const pub = o.redirect.publicEndpoint;
      // S3 caps a presigned URL's life at 7 days.
      this.signer = { s3: pub ? makeClient({ ...o, endpoint: pub }) : s3, expiresIn: Math.max(1, Math.min(604_800, Math.round(o.redirect.expiryMs / 1000))) };
    }
  }

  async urlFor(path: string): Promise<string | undefined> {
    if (!this.signer) return undefined;
    // Signing is local (no request to the store): the client's GET is what the store checks.
    return getSignedUrl(this.signer.s3, new GetObjectCommand({ Bucket: this.b.name, Key: this.key(path) }), { expiresIn: this.signer.expiresIn });
  }

  /** Fails with the store's error when the bucket cannot be reached or used. */
  async check(): Promise<void> {
    await this.b.s3.send(new HeadBucketCommand({ Bucket: this.b.name }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
  }

  async ping(): Promise<void> {
    try {
      await this.check();
    } catch (err) {
      throw storeError(err, 'HeadBucket', this.b.name);
    }
  }

  destroy(): void {
    this.direct?.close();
    this.b.s3.destroy();
    if (this.b.slow !== this.b.s3) this.b.slow.destroy();
    if (this.signer && this.signer.s3 !== this.b.s3) this.signer.s3.destroy();
  }

  async close(): Promise<void> {
    this.destroy();
  }

  private key(path: string): string {
    return this.prefix + checkPath(path);
  }

  private async head(key: string): Promise<Head | undefined> {
    try {
      return headOf(await this.b.call('stat', key, (signal) => this.b.s3.send(new HeadObjectCommand({ Bucket: this.b.name, Key: key }), { abortSignal: signal })));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** A GET whose body streams for as long as its bytes take: only its headers are held to the timeout. */
  private async getObject(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const r = await this.b.call('get', key, (signal) => this.b.s3.send(new GetObjectCommand({ Bucket: this.b.name, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }), { abortSignal: signal }));
    return r.Body as Readable;
  }

  /** A ranged GET's body for reads into buffers: over the driver's own sockets when it can, else the SDK's stream. */
  private async bodyOf(key: string, range: { start: number; end: number }): Promise<BodySource> {
    const direct = this.direct;
    if (direct) {
      // Held to the timeout until the answer's head came, as the SDK's GET is.
      const body = await this.b.call('get', key, (signal) => direct.get(key, range, signal));
      if (body) return body;
    }
    return new StreamBody(await this.getObject(key, range), this.onBytesRead);
  }

  /** A write to `key`: what the cache knows of it goes before and after (an answer given meanwhile may be either). */
  private async writing<T>(key: string, write: () => Promise<T>): Promise<T> {
    this.cache.drop(key);
    try {
      return await write();
    } finally {
      this.cache.drop(key);
    }
  }

  private async putObject(key: string, body: Buffer, extra: Record<string, string> = {}): Promise<void> {
    await this.writing(key, () =>
      this.b.call('put', key, (signal) => this.b.s3.send(new PutObjectCommand({ Bucket: this.b.name, Key: key, Body: body, ContentLength: body.length, Metadata: this.b.stamp(extra) }), { abortSignal: signal })),
    );
  }

  private async deleteKey(key: string): Promise<void> {
    await this.writing(key, () => this.b.call('delete', key, (signal) => this.b.s3.send(new DeleteObjectCommand({ Bucket: this.b.name, Key: key }), { abortSignal: signal })));
  }

  /**
   * Copies an object inside the store (several parts past MAX_PUT); metadata goes with it unless
   * replaced. Resolves to the copy's version when the answer gave it and the metadata was given.
   */
  private async copyKey(from: string, to: string, size: number, metadata?: Record<string, string>): Promise<string | undefined> {
    return this.writing(to, () => this.copyNow(from, to, size, metadata));
  }

  private async copyNow(from: string, to: string, size: number, metadata?: Record<string, string>): Promise<string | undefined> {
    if (size <= MAX_PUT) {
      const r = await this.b.call(
        'copy',
        from,
        () => this.b.slow.send(new CopyObjectCommand({ Bucket: this.b.name, Key: to, CopySource: copySource(this.b.name, from), ...(metadata ? { MetadataDirective: 'REPLACE', Metadata: metadata } : {}) })),
        { long: true },
      );
      return metadata ? versionOf(r.CopyObjectResult?.ETag, metadata) : undefined;
    }
    // A multipart copy takes no metadata from its source: it is given, or read from the source.
    const mp = new Multipart(this.b, to, undefined, metadata ?? (await this.metadataOf(from)));
    try {
      const jobs: Array<Promise<unknown>> = [];
      for (let start = 0, n = 1; start < size; start += COPY_PART, n++) {
        jobs.push(mp.copy(n, from, Math.min(COPY_PART, size - start), { start, end: Math.min(size, start + COPY_PART) - 1 }));
        if (jobs.length >= COPY_PARALLEL) await Promise.all(jobs.splice(0));
      }
      await Promise.all(jobs);
      await mp.complete(mp.parts);
      return undefined;
    } catch (err) {
      await mp.abort();
      throw err;
    }
  }

  private async metadataOf(key: string): Promise<Record<string, string>> {
    const h = await this.b.call('stat', key, (signal) => this.b.s3.send(new HeadObjectCommand({ Bucket: this.b.name, Key: key }), { abortSignal: signal }));
    return h.Metadata ?? {};
  }

  // --- StorageDriver -----------------------------------------------------------------------------

  storeRequests(): ReadonlyMap<string, number> {
    return this.requests;
  }

  /** Forgets what is kept about `path`: for a tool that wrote the bucket beside this driver. */
  forget(path: string): void {
    this.cache.drop(this.key(path));
  }

  private marker(path: string): string {
    return `${this.prefix}${INTERNAL}/touched/${path}`;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const key = this.key(path);
    if (!this.cacheable(path)) return this.statNow(path, key);
    const known = this.cache.stat(key);
    if (known !== undefined) return known ?? undefined;
    const token = this.cache.begin();
    const info = await this.statNow(path, key);
    this.cache.set(key, token, { stat: info ?? null });
    return info;
  }

  private async statNow(path: string, key: string): Promise<FileInfo | undefined> {
    const h = await this.head(key);
    if (!h) return undefined;
    const info: FileInfo = { size: h.size, mtimeMs: h.mtimeMs, isDir: false, version: h.version };
    if (!h.appendable && h.objectSize > TOUCH_COPY_MAX) {
      const m = await this.head(this.marker(path));
      if (m && m.mtimeMs > h.mtimeMs) {
        info.mtimeMs = m.mtimeMs;
        info.version = `${h.version}+${m.version}`;
      }
    }
    return info;
  }

  async get(path: string): Promise<Buffer | undefined> {
    const key = this.key(path);
    const cacheable = this.cacheable(path);
    const known = cacheable ? this.cache.data(key) : undefined;
    // A copy: the caller may change what it gets.
    if (known !== undefined) return known === null ? undefined : Buffer.from(known);
    const token = this.cache.begin();
    let body: Readable;
    let appendable = false;
    try {
      const r = await this.b.call('get', key, (signal) => this.b.s3.send(new GetObjectCommand({ Bucket: this.b.name, Key: key }), { abortSignal: signal }));
      appendable = r.Metadata?.[APPENDABLE] !== undefined;
      if (appendable) {
        (r.Body as Readable).destroy();
        body = await this.records.readRange(key);
      } else body = r.Body as Readable;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (cacheable) this.cache.set(key, token, { data: null, stat: null });
      return undefined;
    }
    const data = await collect(body);
    if (cacheable && !appendable && data.length <= SMALL_FILE) this.cache.set(key, token, { data: Buffer.from(data) });
    return data;
  }

  async put(path: string, data: Uint8Array | string, opts: PutOptions = {}): Promise<void> {
    const key = this.key(path);
    // Nothing can be written ahead under no name and renamed later for free: the put waits.
    if (opts.after) await opts.after;
    await this.putObject(key, typeof data === 'string' ? Buffer.from(data) : Buffer.from(data));
  }

  async open(path: string, opts: { sequential?: boolean; size?: number } = {}): Promise<FileReader> {
    const key = this.key(path);
    // With the size known, the HeadObject is skipped (one round trip less per blob GET); a file
    // that became an upload session's record meanwhile cannot be: blobs are never appended to.
    const h = opts.size !== undefined ? undefined : await this.head(key);
    if (opts.size === undefined && !h) throw enoent('open', path);
    const size = h?.size ?? opts.size!;
    const appendable = h?.appendable ?? false;
    return new ObjectReader(
      async (range) => (appendable ? new StreamBody(await this.records.readRange(key, range), this.onBytesRead) : this.bodyOf(key, range)),
      size,
      opts.sequential ?? false,
    );
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const key = this.key(path);
    const h = await this.head(key);
    if (!h) throw enoent('open', path);
    if (h.size === 0 || (range && range.end < range.start)) return Readable.from([]);
    const r = range && { start: range.start, end: Math.min(range.end, h.size - 1) };
    return h.appendable ? this.records.readRange(key, r) : this.getObject(key, r);
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<DriverWriter> {
    const key = this.key(path);
    if (opts.appendAt === undefined) {
      const ifAbsent = opts.ifAbsent === true;
      const out: Output =
        opts.size !== undefined && opts.size <= MAX_PUT && opts.size > 0 ? new StreamedPut(this.b, key, opts.size, {}, ifAbsent) : new MultipartPut(this.b, key, opts.size, {}, ifAbsent);
      return new OutputWriter(out, this.writes, (commit) => this.writing(key, commit));
    }
    const head = await this.head(key);
    if (!head) throw enoent('open', path);
    const current = await this.records.of(key, head);
    this.appended.add(key);
    let base = stateAt(current, opts.appendAt);
    if (!base && !current.uploadId && !current.sealed && opts.appendAt < current.size) {
      // Bytes in a tail only: cut it back.
      base = await this.records.cutTail(key, current, opts.appendAt);
    }
    if (!base) {
      throw Object.assign(new Error(`cannot write ${path} from ${opts.appendAt}: an object-store file grows only from its last two commits (${current.prev?.size ?? '-'} or ${current.size})`), {
        code: 'EINVAL',
      });
    }
    const append = new SessionAppend(this.b, key, base, opts.size, (k) => this.getObject(k));
    const from = base;
    const written: { state?: SessionState } = {};
    const out: Output = {
      get bytes() {
        return append.bytes;
      },
      write: (c) => append.write(c),
      end: async () => {
        written.state = await append.end();
      },
      commit: async () => {
        const s = written.state!;
        if (s !== current) await this.records.replace(key, [current, from], s);
        return undefined;
      },
      abort: async () => {
        const t = await append.abort();
        if (t) await this.deleteKey(t).catch(() => undefined);
        // A cancelled append leaves the file cut back to where it started, as a truncate would.
        if (from !== current) await this.records.replace(key, [current], from);
      },
    };
    return new OutputWriter(out, this.writes, (commit) => this.writing(key, commit));
  }

  async list(path: string): Promise<string[]> {
    const prefix = path === '' ? this.prefix : `${this.key(path)}/`;
    const out = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.b.call('list', prefix, (signal) =>
        this.b.s3.send(new ListObjectsV2Command({ Bucket: this.b.name, Prefix: prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: signal }),
      );
      for (const c of r.CommonPrefixes ?? []) out.add(c.Prefix!.slice(prefix.length, -1));
      for (const c of r.Contents ?? []) out.add(c.Key!.slice(prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    if (path === '') out.delete(INTERNAL);
    return [...out];
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.key(from);
    const dst = this.key(to);
    const h = await this.head(src);
    if (!h) throw enoent('rename', from);
    if (!h.appendable) {
      await this.copyKey(src, dst, h.size);
      if (h.objectSize > TOUCH_COPY_MAX) await this.moveMarker(from, to);
      await this.deleteKey(src);
      return;
    }
    let s = await this.records.read(src);
    if (s.size === 0) await this.putObject(dst, Buffer.alloc(0));
    else {
      if (s.uploadId && !s.sealed) {
        // The tail becomes the last part, so the completed upload is the whole file.
        const open = s;
        s = await this.records.seal(src, s);
        await this.records.replace(src, [open], s);
      }
      if (s.sealed && s.tail) {
        const whole = new Multipart(this.b, dst, undefined, this.b.stamp());
        try {
          const inParts = bytesInParts(s);
          await whole.copy(1, partsKey(this.prefix, src), inParts);
          await whole.copy(2, s.tail.key, s.tail.size);
          await whole.complete(whole.parts);
        } catch (err) {
          await whole.abort();
          throw err;
        }
      } else await this.copyKey(s.sealed ? partsKey(this.prefix, src) : s.tail!.key, dst, s.size, this.b.stamp());
    }
    await this.records.drop(src, s);
    this.appended.delete(src);
  }

  /** A large file's touch marker goes with it (or, when it went, a stale one at `to` goes). */
  private async moveMarker(from: string, to: string): Promise<void> {
    const m = await this.head(this.marker(from));
    if (m) {
      await this.copyKey(this.marker(from), this.marker(to), 0);
      await this.deleteKey(this.marker(from));
    } else await this.deleteKey(this.marker(to));
  }

  /**
   * One DeleteObject, but for a session this process appended to: its parts and tails go with it.
   * What a file removed so leaves behind (a session of a previous process, a large file's touch
   * marker) belongs to no file any more, and sweepTemp removes it once old: a HeadObject before
   * every delete (each upload's end, each tag moved) would cost more than that garbage.
   */
  async delete(path: string): Promise<void> {
    const key = this.key(path);
    if (this.appended.delete(key)) {
      const h = await this.head(key);
      if (h?.appendable) return this.records.drop(key, await this.records.read(key));
    }
    await this.deleteKey(key);
  }

  async touch(path: string): Promise<Touched | undefined> {
    const key = this.key(path);
    const h = await this.head(key);
    if (!h) return undefined;
    // What stat() would have said: without the marker's mtime, which only a later stat needs.
    const before: FileInfo = { size: h.size, mtimeMs: h.mtimeMs, isDir: false, version: h.version };
    if (h.appendable) {
      await this.records.write(key, await this.records.read(key));
      return before;
    }
    if (h.objectSize > TOUCH_COPY_MAX) {
      await this.putObject(this.marker(path), Buffer.alloc(0));
      return before;
    }
    try {
      // A copy onto itself with new metadata (RGW keeps the data where it is).
      return { ...before, touched: await this.copyKey(key, key, h.objectSize, this.b.stamp()) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  stage(opts: StageOptions = {}): Promise<Staged> {
    return stageObject(this.stageDeps, opts);
  }

  async sweepTemp(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    let n = await this.spool.sweepTemp(maxAgeMs);
    for (const w of this.writes) {
      if (w.started <= cutoff) {
        await w.sweep();
        n++;
      }
    }
    return n + (await sweepObjects(this.sweepDeps, cutoff));
  }
}

