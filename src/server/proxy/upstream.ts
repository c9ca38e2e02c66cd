import { readFileSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { OciError, WharfError } from '../../spec/index.js';
import { Transport, RemoteRepository, type Credential, type TransportOptions } from '../../stores/remote/index.js';
import type { UpstreamConfig } from './config.js';

/**
 * What a request to an upstream that is marked down fails with, before anything is sent: not a
 * new failure of the upstream, so it does not count towards marking it down again.
 */
export class UpstreamDown extends OciError {
  constructor(message: string) {
    super('UNAVAILABLE', message);
  }
}

/** `*` and `?` globs, anchored: `latest`, `v*`, `*-rc?`. */
export function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

function secretOf(value: string | undefined, env: string | undefined, what: string): string | undefined {
  if (value !== undefined) return value;
  if (env === undefined) return undefined;
  const v = process.env[env];
  if (v === undefined) throw new WharfError('INVALID_ARGUMENT', `${what}: environment variable ${env} is not set`);
  return v;
}

/** The credentials and fixed headers an upstream's `auth` setting stands for. */
function authOf(cfg: UpstreamConfig): { credential?: Credential; headers?: Record<string, string> } {
  const a = cfg.auth;
  const where = `proxy upstream ${cfg.namespace}`;
  if (a === 'anonymous' || 'anonymous' in a) return {};
  if ('basic' in a) return { credential: { username: a.basic.username, password: secretOf(a.basic.password, a.basic.passwordEnv, where) ?? '' } };
  const b = a.bearer;
  const token = secretOf(b.token, b.tokenEnv, where);
  if (token !== undefined) return { headers: { authorization: `Bearer ${token}` } };
  const cred: Credential = {};
  if (b.username !== undefined) cred.username = b.username;
  const pw = secretOf(b.password, b.passwordEnv, where);
  if (pw !== undefined) cred.password = pw;
  if (b.identityToken !== undefined) cred.identityToken = b.identityToken;
  return { credential: cred };
}

/**
 * One upstream registry behind a namespace: its transport (own connection pool, TLS settings,
 * credentials and token cache), TTL and revalidation patterns.
 */
export class Upstream {
  readonly namespace: string;
  readonly url: URL;
  /** `host[:port]` as the transport and `?ns=` know it. */
  readonly host: string;
  readonly ttl: number;
  readonly offline: boolean;
  readonly transport: Transport;
  /** Milliseconds a manifest request or a revalidation may take. */
  readonly timeout: number;
  private readonly always: RegExp[];
  private readonly maxFails: number;
  private readonly failTimeout: number;
  private fails = 0;
  private downUntil = 0;

  constructor(cfg: UpstreamConfig, opts: { offline?: boolean; transport?: Partial<TransportOptions> } = {}) {
    this.namespace = cfg.namespace;
    this.url = new URL(cfg.url);
    this.host = this.url.host;
    this.ttl = cfg.ttl;
    this.offline = cfg.offline || Boolean(opts.offline);
    this.always = cfg.alwaysRevalidate.map(globToRegExp);
    this.timeout = cfg.timeout;
    this.maxFails = cfg.maxFails;
    this.failTimeout = cfg.failTimeout;
    const { credential, headers } = authOf(cfg);
    const t: TransportOptions = {
      plainHttp: this.url.protocol === 'http:',
      insecure: cfg.tls.insecure,
      userAgent: 'wharf-proxy',
      // A cache answers from what it holds when the upstream is down; it does not wait long for it.
      retry: { attempts: 2, baseDelayMs: 50, maxDelayMs: 500 },
      connections: 16,
      ...opts.transport,
    };
    if (cfg.tls.ca) t.ca = readFileSync(cfg.tls.ca);
    if (cfg.tls.cert) t.cert = readFileSync(cfg.tls.cert);
    if (cfg.tls.key) t.key = readFileSync(cfg.tls.key);
    if (headers) t.headers = headers;
    if (credential) t.credentials = async (host) => (host === this.host ? credential : undefined);
    this.transport = new Transport(t);
  }

  /** Docker Hub keeps official images under `library/`; `alpine` means `library/alpine` there. */
  upstreamName(name: string): string {
    return !name.includes('/') && /(^|\.)docker\.io$/.test(this.url.hostname) ? `library/${name}` : name;
  }

  repository(name: string): RemoteRepository {
    return new RemoteRepository(this.transport, this.host, this.upstreamName(name));
  }

  /**
   * Throws UNAVAILABLE while the upstream is marked down (maxFails failures in a row, for
   * failTimeout), so that a dead or hanging upstream costs pulls nothing until it is tried again.
   */
  assertAvailable(): void {
    const wait = this.downUntil - Date.now();
    if (wait > 0) throw new UpstreamDown(`upstream ${this.namespace} (${this.host}) failed ${this.maxFails} times in a row; next try in ${Math.ceil(wait / 1000)} s`);
  }

  /** Until when the upstream is marked down (ms since the epoch); null when it is not (the admin page's health). */
  downUntilTime(): number | null {
    return this.downUntil > Date.now() ? this.downUntil : null;
  }

  succeeded(): void {
    this.fails = 0;
  }

  failed(): void {
    if (++this.fails >= this.maxFails) {
      this.fails = 0;
      this.downUntil = Date.now() + this.failTimeout;
    }
  }

  /** `GET /v2/<remote>/blobs/<digest>`, optionally of one range; the caller reads or dumps the body. */
  getBlob(remote: string, digest: string, range?: { start: number; end: number }): ReturnType<Transport['send']> {
    return this.transport.send({
      method: 'GET',
      url: new URL(`${this.transport.origin(this.host)}/v2/${remote}/blobs/${digest}`),
      host: this.host,
      scopes: [`repository:${remote}:pull`],
      ...(range ? { headers: { range: `bytes=${range.start}-${range.end}` } } : {}),
    });
  }

  /**
   * A byte range of a blob, for a Range request far ahead of what a fill has written (a lazy
   * puller reading a TOC at the end of a large blob must not wait for the whole prefix). Like any
   * range, not verifiable; undefined when the upstream does not answer that exact range.
   */
  async getRange(remote: string, digest: string, range: { start: number; end: number }, onBytes: (n: number) => void): Promise<Readable | undefined> {
    let res;
    try {
      res = await this.getBlob(remote, digest, range);
    } catch {
      return undefined;
    }
    const cr = res.headers['content-range'];
    if (res.status !== 206 || cr === undefined || !cr.startsWith(`bytes ${range.start}-${range.end}/`)) {
      res.body.destroy();
      return undefined;
    }
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        onBytes(chunk.length);
        cb(null, chunk);
      },
    });
    const body: Readable = res.body;
    body.on('error', (err) => counted.destroy(err));
    counted.on('close', () => body.destroy());
    return body.pipe(counted);
  }

  /** A conditional `HEAD` of a tag: its status and the digest the upstream names now. */
  async headTag(remote: string, tag: string, have: string, accept: string): Promise<{ status: number; digest: string | undefined }> {
    const res = await this.transport.send({
      signal: AbortSignal.timeout(this.timeout),
      method: 'HEAD',
      url: new URL(`${this.transport.origin(this.host)}/v2/${remote}/manifests/${tag}`),
      host: this.host,
      scopes: [`repository:${remote}:pull`],
      headers: { accept, 'if-none-match': `"${have}"` },
    });
    await res.body.dump();
    return { status: res.status, digest: res.headers['docker-content-digest'] };
  }

  /** Whether a tag is revalidated on every pull, whatever its age. */
  alwaysRevalidates(tag: string): boolean {
    return this.always.some((re) => re.test(tag));
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

/** The `Warning` of an answer from the cache because its upstream could not give one. */
export function staleWarning(t: { upstream: Upstream }, err: unknown): string {
  const why = ((err as Error)?.message ?? String(err)).replace(/["\\]/g, "'").slice(0, 200);
  return `111 - "Revalidation failed: upstream ${t.upstream.namespace} (${t.upstream.host}) unavailable; serving cached content: ${why}"`;
}

/** Failures that mean "the upstream did not answer", as opposed to an answer we must relay. */
export function isUpstreamDown(err: unknown): boolean {
  if (err instanceof WharfError) return false; // an answer (a 404 or 416 without a body), not silence
  if (!(err instanceof OciError)) return true;
  return err.code === 'UNAVAILABLE' || err.code === 'TOOMANYREQUESTS' || err.code === 'INTERNAL' || err.code === 'UNAUTHORIZED' || err.code === 'DENIED' || err.status >= 500;
}
