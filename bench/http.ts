import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';

/** A raw /v2 client for load: undici pool, every body consumed, no retries, no verification. */
export class V2 {
  readonly pool: Pool;
  constructor(readonly url: string, connections = 64) {
    this.pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 30_000, bodyTimeout: 0, headersTimeout: 0 });
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  async req(opts: Dispatcher.RequestOptions, expect: number[]): Promise<Dispatcher.ResponseData> {
    const r = await this.pool.request(opts);
    if (!expect.includes(r.statusCode)) {
      const text = await r.body.text().catch(() => '');
      throw new Error(`${opts.method} ${opts.path}: ${r.statusCode} ${text.slice(0, 300)}`);
    }
    return r;
  }

  /** Path and query of an upload Location, absolute or relative. */
  private loc(location: string | string[] | undefined): string {
    const s = Array.isArray(location) ? location[0] : location;
    if (!s) throw new Error('upload answered without a Location');
    const u = new URL(s, this.url);
    return u.pathname + u.search;
  }

  /** The upload path `at` with the final PUT's digest parameter. */
  private static withDigest(at: string, digest: string): string {
    return `${at}${at.includes('?') ? '&' : '?'}digest=${digest}`;
  }

  async startUpload(repo: string): Promise<string> {
    const r = await this.req({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: { 'content-length': '0' } }, [202]);
    await r.body.dump();
    return this.loc(r.headers.location);
  }

  /** POST then one PUT with the whole body: the monolithic upload every client and registry knows. */
  async pushMonolithic(repo: string, digest: string, size: number, body: () => AsyncIterable<Buffer> | Buffer): Promise<void> {
    const at = await this.startUpload(repo);
    const r = await this.req(
      { method: 'PUT', path: V2.withDigest(at, digest), headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body: bodyOf(body()) },
      [201],
    );
    await r.body.dump();
  }

  /** GETs a blob and counts its bytes. */
  async pull(repo: string, digest: string, range?: string): Promise<number> {
    const headers: Record<string, string> = range ? { range } : {};
    const r = await this.req({ method: 'GET', path: `/v2/${repo}/blobs/${digest}`, headers, maxRedirections: 0 } as Dispatcher.RequestOptions, [200, 206]);
    let n = 0;
    for await (const c of r.body) n += (c as Buffer).length;
    return n;
  }

  /** GETs a whole blob over a plain connection (see plainRequest) and counts its bytes. */
  async pullWhole(repo: string, digest: string): Promise<number> {
    const r = await plainRequest(this.url, 'GET', `/v2/${repo}/blobs/${digest}`, {});
    if (r.status !== 200) throw new Error(`GET ${repo} ${digest}: ${r.status}`);
    return r.bytes;
  }

  /** GETs bytes [start, end] of a blob over a plain connection (see plainRequest) and counts them. */
  async pullRange(repo: string, digest: string, start: number, end: number): Promise<number> {
    const r = await plainRequest(this.url, 'GET', `/v2/${repo}/blobs/${digest}`, { range: `bytes=${start}-${end}` });
    if (r.status !== 206) throw new Error(`GET ${repo} ${digest} bytes=${start}-${end}: ${r.status}`);
    return r.bytes;
  }

  /** A PUT or PATCH of a large body over a plain connection; returns the Location it answers. */
  private async sendLarge(method: 'PUT' | 'PATCH', at: string, expect: number, body: PlainBody, headers: Record<string, string> = {}): Promise<string | undefined> {
    const r = await plainRequest(this.url, method, at, { 'content-type': 'application/octet-stream', ...headers }, body);
    if (r.status !== expect) throw new Error(`${method} ${at}: ${r.status}`);
    return r.headers.get('location');
  }

  /** POST, then one PUT of the whole body over a plain connection (see plainRequest). */
  async pushLarge(repo: string, digest: string, body: PlainBody): Promise<void> {
    const at = await this.startUpload(repo);
    await this.sendLarge('PUT', V2.withDigest(at, digest), 201, body);
  }

  /** POST, a PATCH per chunk over plain connections, then an empty PUT. */
  async pushLargeChunked(repo: string, digest: string, size: number, chunk: number, body: (start: number, end: number) => PlainBody): Promise<void> {
    let at = await this.startUpload(repo);
    for (let start = 0; start < size; start += chunk) {
      const end = Math.min(size, start + chunk);
      at = this.loc(await this.sendLarge('PATCH', at, 202, body(start, end), { 'content-range': `${start}-${end - 1}` }));
    }
    const r = await this.req({ method: 'PUT', path: V2.withDigest(at, digest), headers: { 'content-length': '0' } }, [201]);
    await r.body.dump();
  }

  /** A small artifact: a config unique to `seed`, a 1 KiB random layer, and its manifest under `ref`. */
  async pushSmallArtifact(repo: string, ref: string, seed: unknown): Promise<void> {
    const config = Buffer.from(JSON.stringify(seed));
    const layer = randomBytes(1024);
    await this.pushMonolithic(repo, sha256(config), config.length, () => config);
    await this.pushMonolithic(repo, sha256(layer), layer.length, () => layer);
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }),
    );
    await this.putManifest(repo, ref, 'application/vnd.oci.image.manifest.v1+json', m);
  }

  async putManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<void> {
    const r = await this.req({ method: 'PUT', path: `/v2/${repo}/manifests/${ref}`, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes }, [201]);
    await r.body.dump();
  }
}

/** A request body that plainRequest reads, chunk by chunk, into buffers of its own. */
export interface PlainBody {
  readonly length: number;
  /** Reads bytes from `position` (0 is the body's first byte) into `into`; returns how many. */
  read(into: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

interface PlainResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  /** Bytes of the response body, counted, not kept. */
  bytes: number;
}

const PLAIN_CHUNK = 1 << 20;
/** Buffers of finished plain requests, for the next: fresh memory costs page faults on every chunk. */
const plainBuffers: Buffer[] = [];
const takePlain = (): Buffer => plainBuffers.pop() ?? Buffer.allocUnsafe(PLAIN_CHUNK);

/**
 * One HTTP/1.1 request on a connection of its own, for the large blobs: the body goes out from
 * two reused 1 MiB buffers (one read while the other is written) and the response is read into
 * one. Through undici a 1 GiB push cost the load generator 1.2-1.3 s of CPU and a 1 GiB pull
 * 0.8-1.3 s, as much as the server's own share of the 2 cores they both run on, so the figures
 * measured the client; this way a 1 GiB push costs it 0.44-0.63 s (in one request) and a pull
 * 0.17-0.39 s. The response must carry a Content-Length, as both registries send on these routes.
 */
export function plainRequest(base: string, method: string, path: string, headers: Record<string, string>, body?: PlainBody): Promise<PlainResponse> {
  const u = new URL(base);
  return new Promise<PlainResponse>((resolve, reject) => {
    let head: Buffer | undefined = Buffer.alloc(0);
    let res: PlainResponse | undefined;
    let want = 0;
    let settled = false;
    const readBuffer = takePlain();
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      // Nothing reads into it after destroy().
      plainBuffers.push(readBuffer);
      if (err) reject(err);
      else resolve(res!);
    };
    const onread = (n: number, buf: Uint8Array): boolean => {
      if (head) {
        head = Buffer.concat([head, buf.subarray(0, n)]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return true;
        const [status, ...lines] = head.subarray(0, end).toString('latin1').split('\r\n');
        const map = new Map<string, string>();
        for (const l of lines) {
          const i = l.indexOf(':');
          if (i > 0) map.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
        }
        const length = map.get('content-length');
        if (!/^HTTP\/1\.[01] \d{3}/.test(status ?? '') || length === undefined) {
          settle(new Error(`${method} ${path}: ${status}${length === undefined ? ', no Content-Length' : ''}`));
          return false;
        }
        res = { status: Number(status!.slice(9, 12)), headers: map, bytes: head.length - end - 4 };
        want = Number(length);
        head = undefined;
      } else res!.bytes += n;
      if (res!.bytes >= want) settle(undefined);
      return true;
    };
    const sock = connect({ host: u.hostname, port: Number(u.port), onread: { buffer: readBuffer, callback: onread } });
    sock.once('error', (err) => settle(err));
    sock.once('end', () => settle(new Error(`${method} ${path}: the connection closed ${res ? `after ${res.bytes} bytes of the response` : 'before a response'}`)));
    const all = { ...headers, host: u.host, connection: 'close', ...(body ? { 'content-length': String(body.length) } : {}) };
    // write, not end: a half-closed connection reads to Go's server as a client that went away.
    sock.write(`${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    if (body) {
      sendPlain(sock, body, () => settled).catch((err: Error) => settle(err));
    }
  });
}

/** Writes `body` to the socket; a buffer is read into again only once its write has completed. */
async function sendPlain(sock: Socket, body: PlainBody, stop: () => boolean): Promise<void> {
  const bufs = [takePlain(), takePlain()];
  const write = (chunk: Buffer): Promise<void> => new Promise((resolve, reject) => sock.write(chunk, (err) => (err ? reject(err) : resolve())));
  try {
    let writing = Promise.resolve();
    let k = 0;
    let pos = 0;
    let reading = body.read(bufs[0]!, 0);
    while (pos < body.length && !stop()) {
      const n = await reading;
      if (n <= 0) throw new Error(`the body ended after ${pos} of ${body.length} bytes`);
      pos += n;
      const previous = writing;
      writing = write(bufs[k]!.subarray(0, n));
      await previous;
      k ^= 1;
      if (pos < body.length) reading = body.read(bufs[k]!, pos);
    }
    await writing;
    // Only once both writes completed: a buffer still queued on the socket is not given back.
    plainBuffers.push(...bufs);
  } finally {
    await body.close();
  }
}

function bodyOf(b: AsyncIterable<Buffer> | Buffer): Buffer | Readable {
  return Buffer.isBuffer(b) ? b : Readable.from(b, { objectMode: false });
}

/**
 * HEAD over node:http with keep-alive. undici closes the connection after every HEAD (to survive
 * servers that send a body anyway), which would measure connection setup, not the registry.
 */
export class HeadClient {
  private readonly agent: Agent;
  constructor(readonly url: string, connections = 64) {
    this.agent = new Agent({ keepAlive: true, maxSockets: connections });
  }

  head(path: string, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL(path, this.url), { method: 'HEAD', headers, agent: this.agent }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/**
 * A large blob on disk, and unique variants of it that differ in their first 16 bytes, so that
 * every timed push sends content the registry has never seen, without writing a new file.
 */
export class BigBlob {
  private constructor(readonly file: string, readonly size: number) {}

  static async create(file: string, size: number): Promise<BigBlob> {
    const fh = await open(file, 'w');
    try {
      const block = 16 << 20;
      for (let off = 0; off < size; off += block) await fh.write(randomBytes(Math.min(block, size - off)));
    } finally {
      await fh.close();
    }
    return new BigBlob(file, size);
  }

  static prefix(variant: string): Buffer {
    return createHash('sha256').update(variant).digest().subarray(0, 16);
  }

  /** The digest of a variant: the prefix, then the file from byte 16. */
  async digest(variant: string): Promise<string> {
    const h = createHash('sha256').update(BigBlob.prefix(variant));
    for await (const c of createReadStream(this.file, { start: 16, highWaterMark: 1 << 20 })) h.update(c as Buffer);
    return `sha256:${h.digest('hex')}`;
  }

  /** Bytes [start, end) of a variant, as a body for plainRequest (the file is opened on first read). */
  body(variant: string, start = 0, end = this.size): PlainBody {
    const prefix = BigBlob.prefix(variant);
    let fh: Promise<FileHandle> | undefined;
    return {
      length: end - start,
      read: async (into, position) => {
        const at = start + position;
        const n = Math.min(into.length, end - at);
        let done = at < 16 ? prefix.copy(into, 0, at, Math.min(16, at + n)) : 0;
        const file = await (fh ??= open(this.file, 'r'));
        while (done < n) {
          const { bytesRead } = await file.read(into, done, n - done, at + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done;
      },
      close: async () => void (await (await fh)?.close()),
    };
  }

  /** Bytes [start, end) of a variant. */
  async *range(variant: string, start = 0, end = this.size): AsyncIterable<Buffer> {
    const p = BigBlob.prefix(variant);
    if (start < 16) yield p.subarray(start, Math.min(16, end));
    const from = Math.max(16, start);
    if (from < end) yield* createReadStream(this.file, { start: from, end: end - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
  }
}

/** Runs `worker` on `concurrency` lanes until `count` jobs are done; returns jobs per second. */
export async function opsByCount(count: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await worker(next++);
    }),
  );
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Runs `worker` on `concurrency` lanes for `seconds`; returns completed jobs per second. */
export async function opsByTime(seconds: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<number> {
  let done = 0;
  const t0 = process.hrtime.bigint();
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        await worker(done);
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Manifest GETs and HEADs per second of `ref` (a /v2 path), each for `seconds` on 50 connections. */
export async function manifestRates(url: string, v2: V2, ref: string, seconds: number): Promise<{ get: number; head: number }> {
  const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
  const get = await opsByTime(seconds, 50, async () => void (await (await v2.req({ method: 'GET', path: ref, headers: accept }, [200])).body.text()));
  const hc = new HeadClient(url, 50);
  try {
    const head = await opsByTime(seconds, 50, async () => {
      const status = await hc.head(ref, accept);
      if (status !== 200) throw new Error(`${url}: HEAD ${ref}: ${status}`);
    });
    return { get, head };
  } finally {
    hc.close();
  }
}
