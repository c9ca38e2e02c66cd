import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
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
  private loc(r: Dispatcher.ResponseData): string {
    const l = r.headers.location;
    const s = Array.isArray(l) ? l[0] : l;
    if (!s) throw new Error('upload answered without a Location');
    const u = new URL(s, this.url);
    return u.pathname + u.search;
  }

  async startUpload(repo: string): Promise<string> {
    const r = await this.req({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: { 'content-length': '0' } }, [202]);
    await r.body.dump();
    return this.loc(r);
  }

  /** POST then one PUT with the whole body: the monolithic upload every client and registry knows. */
  async pushMonolithic(repo: string, digest: string, size: number, body: () => AsyncIterable<Buffer> | Buffer): Promise<void> {
    const at = await this.startUpload(repo);
    const sep = at.includes('?') ? '&' : '?';
    const r = await this.req(
      { method: 'PUT', path: `${at}${sep}digest=${digest}`, headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body: bodyOf(body()) },
      [201],
    );
    await r.body.dump();
  }

  /** POST, PATCH chunks with Content-Range, then an empty PUT. */
  async pushChunked(repo: string, digest: string, size: number, chunk: number, body: (start: number, end: number) => AsyncIterable<Buffer>): Promise<void> {
    let at = await this.startUpload(repo);
    for (let start = 0; start < size; start += chunk) {
      const end = Math.min(size, start + chunk);
      const r = await this.req(
        {
          method: 'PATCH',
          path: at,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - start), 'content-range': `${start}-${end - 1}` },
          body: Readable.from(body(start, end), { objectMode: false }),
        },
        [202],
      );
      await r.body.dump();
      at = this.loc(r);
    }
    const sep = at.includes('?') ? '&' : '?';
    const r = await this.req({ method: 'PUT', path: `${at}${sep}digest=${digest}`, headers: { 'content-length': '0' } }, [201]);
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

  /**
   * GETs a whole blob over a socket of its own that reads into one reused 1 MiB buffer, and counts
   * its bytes. Through undici a 1 GiB pull cost this process 0.8-1.3 s of CPU, about the pull's
   * wall time, so the figure measured the client; this way it costs 0.17-0.39 s. The response must
   * be 200 with a Content-Length, as both registries send for a stored blob.
   */
  pullWhole(repo: string, digest: string): Promise<number> {
    const u = new URL(this.url);
    return new Promise((resolve, reject) => {
      let head: Buffer | undefined = Buffer.alloc(0);
      let want = 0;
      let got = 0;
      const fail = (e: Error): void => {
        sock.destroy();
        reject(e);
      };
      const onread = (n: number, buf: Uint8Array): boolean => {
        if (head) {
          head = Buffer.concat([head, buf.subarray(0, n)]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return true;
          const text = head.subarray(0, end).toString('latin1');
          const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(text);
          if (!text.startsWith('HTTP/1.1 200 ') || !length) {
            fail(new Error(`GET ${repo} ${digest}: ${text.split('\r\n')[0]}${length ? '' : ', no Content-Length'}`));
            return false;
          }
          want = Number(length[1]);
          got = head.length - end - 4;
          head = undefined;
        } else got += n;
        if (got >= want) {
          sock.destroy();
          resolve(got);
        }
        return true;
      };
      const sock = connect({ host: u.hostname, port: Number(u.port), onread: { buffer: Buffer.allocUnsafe(1 << 20), callback: onread } });
      sock.once('error', reject);
      sock.once('end', () => fail(new Error(`GET ${repo} ${digest}: the connection closed after ${got} bytes`)));
      // write, not end: a half-closed connection reads to Go's server as a client that went away.
      sock.write(`GET /v2/${repo}/blobs/${digest} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
    });
  }

  async putManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<void> {
    const r = await this.req({ method: 'PUT', path: `/v2/${repo}/manifests/${ref}`, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes }, [201]);
    await r.body.dump();
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
