import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError, isOciError, parseContentRange, type Descriptor } from '../../spec/index.js';
import { DigestingStream, verifyReader, type OpOptions, type IngestSource } from '../../content/index.js';
import { responseError, isTransientNetworkError, backoff, type Transport, type SendResponse, type Method } from './http.js';
import type { UploadSessions } from './sessions.js';

export type SendOptions = OpOptions & { headers?: Record<string, string>; body?: Buffer | Readable; scopes?: string[]; retry?: boolean };

/** What the upload protocol needs of its repository. */
export interface UploadTarget {
  readonly name: string;
  readonly transport: Transport;
  /** PATCH size of chunked uploads; 0 sends each blob in one request. */
  readonly chunkSize: number;
  /** The registry, for the keys of `sessions`. */
  readonly host: string;
  /** Where chunked uploads remember their sessions, so that an interrupted one resumes. */
  readonly sessions?: UploadSessions;
  send(method: Method, url: URL, actions: string, opts?: SendOptions): Promise<SendResponse>;
  url(path: string, query?: Record<string, string | undefined>): URL;
}

/**
 * The blob upload protocol of one repository: sessions, the monolithic PUT, chunked PATCHes that
 * resume from the registry's Range, uploads of content whose digest is learnt on the way, and
 * cancelling the session of whatever failed.
 */
export class BlobUploader {
  constructor(private readonly r: UploadTarget) {}

  /** Uploads a blob the registry does not have, checked against `desc` as it goes. */
  async upload(desc: Descriptor, content: Readable, opts: OpOptions): Promise<void> {
    // Piped only once there is a session to read it into: a failed check must have a reader.
    const verify = (): Readable => verifyReader(content, desc);
    if (this.r.chunkSize) {
      const key = this.key(desc.digest);
      const s = await this.resume(key, desc.size, opts);
      try {
        const loc = await this.uploadChunks(s.loc, verify(), this.r.chunkSize, desc.digest, opts, key, s.offset);
        await this.finish(loc, desc.digest, Buffer.alloc(0), opts);
      } catch (err) {
        if (!opts.signal?.aborted) await this.forget(key);
        throw err;
      }
      await this.forget(key);
    } else {
      const loc = await this.start(opts);
      await this.finish(loc, desc.digest, verify(), opts, desc.size);
    }
  }

  /** The key of an upload in `sessions`: registry, repository and what identifies the content. */
  private key(content: string | undefined): string | undefined {
    return this.r.sessions && content !== undefined ? `${this.r.host}/${this.r.name}@${content}` : undefined;
  }

  private async forget(key: string | undefined): Promise<void> {
    if (key) await this.r.sessions?.drop(key).catch(() => undefined);
  }

  /**
   * The session to upload into: the one saved under `key`, from the offset the registry reports
   * for it now (GET on the upload URL, `Range`), else a new one at 0. A session the registry no
   * longer knows (purged, or it ended) is forgotten.
   */
  private async resume(key: string | undefined, size: number, opts: OpOptions): Promise<{ loc: URL; offset: number }> {
    const saved = key ? await this.r.sessions?.get(key).catch(() => undefined) : undefined;
    if (key && saved) {
      try {
        const loc = new URL(saved.location);
        const st = await this.r.send('GET', loc, 'pull,push', { ...opts, retry: false });
        await st.body.dump();
        const range = st.headers.range;
        // "0-0" is also how registries write an empty session.
        const got = !range || (range === '0-0' && saved.offset !== 1) ? 0 : parseContentRange(range).end + 1;
        if (st.status === 204 && got <= size) {
          this.r.transport.debug(`upload ${key}: resuming the saved session at byte ${got}`);
          return { loc: st.headers.location ? new URL(st.headers.location, st.url) : loc, offset: got };
        }
      } catch (err) {
        if (opts.signal?.aborted) throw err;
      }
      this.r.transport.debug(`upload ${key}: the saved session is gone; starting a new one`);
      await this.forget(key);
    }
    return { loc: await this.start(opts), offset: 0 };
  }

  /**
   * Uploads content whose digest is not known yet, as the Docker client does: a session is
   * opened, the content is PATCHed while it is hashed, and the final PUT names the digest computed
   * on the way (the registry checks it against what it received). So a file is read once. With
   * `chunkSize`, the PATCHes are chunks that resume from the registry's Range; a streamed PATCH
   * that fails starts over in a new session, reading and hashing the content again from its
   * start. The session of a failed attempt is cancelled.
   */
  async ingest(mediaType: string, src: IngestSource, opts: OpOptions = {}): Promise<Descriptor> {
    const { attempts, baseDelayMs, maxDelayMs } = this.r.transport.retryOptions;
    const what = src.name ?? 'content';
    const chunkSize = this.r.chunkSize;
    const key = chunkSize ? this.key(src.resumeKey) : undefined;
    for (let failures = 0; ; ) {
      const s = chunkSize ? await this.resume(key, src.size, opts) : { loc: await this.start(opts), offset: 0 };
      let loc = s.loc;
      const counted = new DigestingStream(src.size, what);
      const body = src.open();
      body.on('error', (err) => counted.destroy(err));
      body.pipe(counted);
      try {
        if (chunkSize) loc = await this.uploadChunks(loc, counted, chunkSize, what, opts, key, s.offset);
        else if (src.size > 0) loc = await this.patchStream(loc, counted, src.size, what, opts);
        else await drain(counted);
        const digest = counted.digest;
        await src.check?.();
        await this.finish(loc, digest, Buffer.alloc(0), opts);
        await this.forget(key);
        return { mediaType, digest, size: src.size };
      } catch (err) {
        body.destroy();
        counted.destroy();
        // An interrupted chunked upload keeps its session, for the next run to resume.
        if (!(key && opts.signal?.aborted)) {
          await this.cancel(loc);
          await this.forget(key);
        }
        // A changed file is not retried: its next read would be another file.
        const changed = isOciError(err, 'SIZE_INVALID') || isOciError(err, 'DIGEST_INVALID');
        if (chunkSize || changed || !isRetryableUploadError(err) || ++failures >= attempts) throw err;
        this.r.transport.debug(`upload ${what}: ${(err as Error).message}; starting over`);
        await sleep(backoff(failures, baseDelayMs, maxDelayMs), undefined, { signal: opts.signal });
      }
    }
  }

  /** One PATCH that streams the whole content; returns the session's next location. */
  private async patchStream(loc: URL, body: Readable, size: number, what: string, opts: OpOptions): Promise<URL> {
    let failure: unknown;
    body.once('error', (err) => (failure = err));
    let res: SendResponse;
    try {
      res = await this.r.send('PATCH', loc, 'pull,push', {
        ...opts,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), 'content-range': `0-${size - 1}` },
        body,
      });
    } catch (err) {
      // The body's own error (a file that changed) says more than the aborted request.
      throw failure ?? err;
    }
    if (res.status !== 202) throw await responseError(res, `upload ${what}`);
    await res.body.dump();
    return res.headers.location ? new URL(res.headers.location, res.url) : loc;
  }

  /** Cancels an upload session, best effort: a failed upload leaves nothing behind. */
  async cancel(loc: URL): Promise<void> {
    // Not under the caller's signal: an aborted push must still clean up its session.
    const res = await this.r.send('DELETE', loc, 'pull,push', { retry: false }).catch(() => undefined);
    await res?.body.dump().catch(() => undefined);
  }

  async post(opts: OpOptions, query?: Record<string, string>, scopes?: string[]): Promise<SendResponse> {
    return this.r.send('POST', this.r.url('blobs/uploads/', query), 'pull,push', { ...opts, headers: { 'content-length': '0' }, body: Buffer.alloc(0), scopes });
  }

  private async start(opts: OpOptions): Promise<URL> {
    const res = await this.post(opts);
    const loc = res.headers.location;
    if (res.status !== 202 || !loc) throw await responseError(res, `start upload to ${this.r.name}`);
    await res.body.dump();
    return new URL(loc, res.url);
  }

  /** The final PUT of an upload, naming its digest; with the whole content (monolithic) or none. */
  private async finish(location: URL, digest: string, body: Buffer | Readable, opts: OpOptions, size = 0): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'content-length': String(Buffer.isBuffer(body) ? body.length : size) };
    if (!Buffer.isBuffer(body)) headers['content-type'] = 'application/octet-stream';
    const res = await this.r.send('PUT', url, 'pull,push', { ...opts, headers, body });
    if (res.status !== 201) throw await responseError(res, Buffer.isBuffer(body) ? `finish upload of ${digest}` : `upload ${digest}`);
    await res.body.dump();
  }

  /**
   * PATCHes `chunkSize` pieces and returns the session's location for the final PUT. One chunk is
   * held in memory until the registry acknowledges it, so that after a failure we can ask the
   * registry how far it got (GET on the upload URL, `Range`) and resend from there. `start`: bytes
   * the session already holds (a resumed one); they are read, for the digest, but not sent. Each
   * acknowledged offset is saved under `key`.
   */
  private async uploadChunks(location: URL, body: Readable, chunkSize: number, what: string, opts: OpOptions, key?: string, start = 0): Promise<URL> {
    const { attempts, baseDelayMs, maxDelayMs } = this.r.transport.retryOptions;
    let loc = location;
    let offset = start; // bytes the registry has acknowledged
    let end = 0; // bytes read so far
    for await (const chunk of chunks(body, chunkSize)) {
      const chunkStart = end;
      end += chunk.length;
      let failures = 0;
      while (offset < end) {
        const part = chunk.subarray(offset - chunkStart);
        try {
          const res = await this.r.send('PATCH', loc, 'pull,push', {
            ...opts,
            headers: {
              'content-type': 'application/octet-stream',
              'content-length': String(part.length),
              'content-range': `${offset}-${offset + part.length - 1}`,
            },
            body: part,
            // Not blindly re-sent: the registry may have kept part of it; we ask it below.
            retry: false,
          });
          if (res.status !== 202) throw await responseError(res, `upload chunk of ${what}`);
          await res.body.dump();
          if (res.headers.location) loc = new URL(res.headers.location, res.url);
          offset += part.length;
          if (key) await this.r.sessions?.save(key, { location: loc.href, offset }).catch(() => undefined);
        } catch (err) {
          if (++failures >= attempts || !isRetryableUploadError(err)) throw err;
          await sleep(backoff(failures, baseDelayMs, maxDelayMs), undefined, { signal: opts.signal });
          // Ask the registry what it kept, then continue from there.
          const st = await this.r.send('GET', loc, 'pull,push', opts);
          if (st.status !== 204) throw await responseError(st, `upload status of ${what}`);
          await st.body.dump();
          if (st.headers.location) loc = new URL(st.headers.location, st.url);
          const range = st.headers.range;
          const got = range ? parseContentRange(range).end + 1 : 0;
          if (got < chunkStart || got > chunkStart + chunk.length) {
            throw new OciError('BLOB_UPLOAD_INVALID', `registry reports ${got} bytes of ${what}, outside the chunk we hold (${chunkStart}-${chunkStart + chunk.length})`);
          }
          this.r.transport.debug(`upload ${what}: resuming at byte ${got}`);
          offset = got;
        }
      }
    }
    return loc;
  }
}

/** A dropped connection, or a 5xx (a proxy's 502 too): worth another try. */
function isRetryableUploadError(err: unknown): boolean {
  return isTransientNetworkError((err as Error).cause ?? err) || (isOciError(err) && err.status >= 500);
}

/** Reads a stream to its end, discarding what it yields. */
async function drain(src: Readable): Promise<void> {
  for await (const _ of src) void _;
}

/** Splits a stream into Buffers of exactly `size` bytes (the last one shorter). */
async function* chunks(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let n = 0;
  for await (const c of src as AsyncIterable<Buffer>) {
    let buf = c;
    while (buf.length > 0) {
      const take = Math.min(size - n, buf.length);
      parts.push(buf.subarray(0, take));
      n += take;
      buf = buf.subarray(take);
      if (n === size) {
        yield Buffer.concat(parts);
        parts = [];
        n = 0;
      }
    }
  }
  if (n > 0) yield Buffer.concat(parts);
}
