import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { Agent } from './undici.js';
import { OciError, WharfError, isErrorCode, type ErrorCode, type LocalErrorCode, isKnownError } from '../../spec/index.js';
import { parseChallenges } from './challenge.js';
import type { Credential, CredentialProvider } from './credentials.js';

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** First backoff, doubled each retry, with full jitter (default 200 ms). */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface TransportOptions {
  /** Talk HTTP instead of HTTPS: true for every host, or a predicate. */
  plainHttp?: boolean | ((host: string) => boolean);
  /** Accept any TLS certificate. */
  insecure?: boolean;
  /** PEM contents: extra CA, client certificate and key (mTLS). */
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Headers sent with every registry request (`-H`). */
  headers?: Record<string, string>;
  credentials?: CredentialProvider;
  retry?: RetryOptions;
  userAgent?: string;
  /** Connections per origin (default 8). */
  connections?: number;
  /** Use this dispatcher instead of creating an Agent (the caller closes it). */
  dispatcher?: Dispatcher;
  /** One line per request and retry, for `--debug`. */
  debug?: (line: string) => void;
  /** A `Warning` header on a successful answer (e.g. 111: a cache served stale content because its upstream is down). */
  onWarning?: (host: string, text: string) => void;
}

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface SendRequest {
  method: Method;
  url: URL;
  /** The registry host the request is for: it keys credentials and tokens. */
  host: string;
  /** Token scopes this request needs, e.g. `repository:a/b:pull`. */
  scopes: string[];
  headers?: Record<string, string>;
  /** A Buffer can be re-sent on retry and after an auth challenge; a stream cannot. */
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /** Retry on 5xx and dropped connections (default: when the body can be re-sent). */
  retry?: boolean;
}

export interface SendResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** Where the response came from, after redirects. */
  url: URL;
  /** Who the request was sent as, when it carried credentials (a user name, or "a token"). */
  sentAs?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const RETRY_STATUS = (s: number): boolean => s === 429 || s === 408 || (s >= 500 && s !== 501 && s !== 505);

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** Network failures worth another try: the connection dropped, timed out or was refused mid-run. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return (
    typeof code === 'string' &&
    ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'].includes(code)
  );
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Full-jitter exponential backoff (AWS architecture blog's "full jitter"). */
export function backoff(attempt: number, base: number, max: number): number {
  return Math.random() * Math.min(max, base * 2 ** attempt);
}

/** Merges scope strings (`type:name:actions`), so one token covers every action asked for. */
export function mergeScopes(scopes: string[]): string[] {
  const m = new Map<string, Set<string>>();
  for (const s of scopes) {
    for (const one of s.split(' ')) {
      const i = one.lastIndexOf(':');
      if (i <= 0) continue;
      const res = one.slice(0, i);
      const set = m.get(res) ?? new Set<string>();
      for (const a of one.slice(i + 1).split(',')) if (a) set.add(a);
      m.set(res, set);
    }
  }
  return [...m.entries()].map(([res, acts]) => `${res}:${[...acts].sort().join(',')}`).sort();
}

type HostAuth = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string };

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Refresh a token this long before it expires, so that a request never carries a stale one. */
const TOKEN_SLACK_MS = 10_000;

/**
 * The transport under every registry call: one undici Agent (pooled keep-alive connections),
 * auth (basic, bearer tokens cached per host and scope set), redirects that never carry
 * `Authorization` to another origin, and retries with backoff on 5xx, 429 and dropped
 * connections for requests that can be replayed.
 */
export class Transport {
  readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly opts: TransportOptions;
  private readonly hostAuth = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Promise<string>>();
  private readonly creds = new Map<string, Promise<Credential | undefined>>();

  constructor(opts: TransportOptions = {}) {
    this.opts = opts;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
      this.ownDispatcher = false;
    } else {
      const connect: Record<string, unknown> = {};
      if (opts.insecure) connect.rejectUnauthorized = false;
      if (opts.ca) connect.ca = opts.ca;
      if (opts.cert) connect.cert = opts.cert;
      if (opts.key) connect.key = opts.key;
      this.dispatcher = new Agent({ connections: opts.connections ?? 8, connect, keepAliveTimeout: 10_000 });
      this.ownDispatcher = true;
    }
  }

  /** `http://host` or `https://host`. */
  origin(host: string): string {
    const p = this.opts.plainHttp;
    const plain = typeof p === 'function' ? p(host) : Boolean(p);
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  get retryOptions(): Required<RetryOptions> {
    return { attempts: 5, baseDelayMs: 200, maxDelayMs: 8000, ...this.opts.retry };
  }

  debug(line: string): void {
    this.opts.debug?.(line);
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }

  /** Sends with auth, redirects and retries. The caller reads or dumps the body. */
  async send(req: SendRequest): Promise<SendResponse> {
    const replayable = req.body === undefined || Buffer.isBuffer(req.body);
    const retryable = replayable && req.retry !== false;
    const { attempts, baseDelayMs, maxDelayMs } = this.retryOptions;
    let authRetried = false;
    for (let attempt = 0; ; attempt++) {
      req.signal?.throwIfAborted();
      let res: SendResponse;
      try {
        res = await this.sendOnce(req);
      } catch (err) {
        if (retryable && attempt + 1 < attempts && isTransientNetworkError(err)) {
          const wait = backoff(attempt, baseDelayMs, maxDelayMs);
          this.debug(`${req.method} ${req.url.href}: ${(err as Error).message}; retrying in ${Math.round(wait)} ms`);
          await sleep(wait, undefined, { signal: req.signal });
          continue;
        }
        throw wrapNetworkError(err, req);
      }
      if (res.status === 401 && !authRetried && replayable) {
        const challenge = res.headers['www-authenticate'];
        await res.body.dump();
        authRetried = true;
        if (await this.onChallenge(req.host, req.scopes, challenge, req.signal)) {
          attempt--; // an auth round trip is not a failed attempt
          continue;
        }
        throw new OciError('UNAUTHORIZED', `${req.host} requires authentication; run "wharf login ${req.host}" or pass credentials`);
      }
      if (RETRY_STATUS(res.status) && retryable && attempt + 1 < attempts) {
        const after = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers['retry-after']) : undefined;
        await res.body.dump();
        const wait = after !== undefined ? Math.min(after, 60_000) : backoff(attempt, baseDelayMs, maxDelayMs);
        this.debug(`${req.method} ${req.url.href}: HTTP ${res.status}; retrying in ${Math.round(wait)} ms`);
        await sleep(wait, undefined, { signal: req.signal });
        continue;
      }
      return res;
    }
  }

  /** One request, following redirects itself so that credentials stay on the registry's origin. */
  private async sendOnce(req: SendRequest): Promise<SendResponse> {
    let url = req.url;
    let method: Method = req.method;
    const authz = await this.authorization(req.host, req.scopes, req.signal);
    const registryOrigin = req.url.origin;
    for (let hop = 0; hop <= 10; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'wharf', ...this.opts.headers, ...req.headers };
      if (authz && url.origin === registryOrigin) headers.authorization = authz;
      // Storage behind a redirect must not see the registry's credentials, nor user headers that may hold them.
      if (url.origin !== registryOrigin) {
        for (const k of Object.keys(headers)) if (k.toLowerCase() === 'authorization' || k.toLowerCase() === 'cookie') delete headers[k];
      }
      this.debug(`> ${method} ${url.href}`);
      const r = await this.dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        body: hop === 0 ? req.body : undefined,
        signal: req.signal,
      });
      const res: SendResponse = { status: r.statusCode, headers: flatHeaders(r.headers), body: r.body, url };
      if (headers.authorization && authz) res.sentAs = await this.sentAs(req.host);
      const warning = res.status < 300 ? warningText(res.headers.warning) : undefined;
      if (warning) this.opts.onWarning?.(req.host, warning);
      this.debug(`< ${r.statusCode} ${method} ${url.href}`);
      const loc = res.headers.location;
      // Only bodiless requests are followed; a redirected upload would need its body again.
      if (REDIRECTS.has(res.status) && loc && (method === 'GET' || method === 'HEAD')) {
        await r.body.dump();
        url = new URL(loc, url);
        if (res.status === 303) method = 'GET';
        continue;
      }
      return res;
    }
    throw new OciError('UNAVAILABLE', `too many redirects from ${req.url.href}`);
  }

  private credential(host: string): Promise<Credential | undefined> {
    let p = this.creds.get(host);
    if (!p) {
      p = this.opts.credentials ? this.opts.credentials(host) : Promise.resolve(undefined);
      this.creds.set(host, p);
    }
    return p;
  }

  /** Who credentials for the host name: the user, or "a token" (none: anonymous, or -H). */
  private async sentAs(host: string): Promise<string | undefined> {
    const c = await this.credential(host);
    return c?.username ?? (c?.identityToken ? 'a token' : undefined);
  }

  /** Whether credentials are at hand for the host (flags, config.json, a helper). */
  async hasCredentials(host: string): Promise<boolean> {
    return (await this.credential(host)) !== undefined;
  }

  /** The Authorization header for a host and scope set, fetching a token when the host wants one. */
  async authorization(host: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ha = this.hostAuth.get(host);
    if (!ha) return undefined;
    if (ha.scheme === 'basic') {
      const c = await this.credential(host);
      return c?.username !== undefined ? `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}` : undefined;
    }
    const merged = mergeScopes(scopes);
    const key = `${host} ${merged.join(' ')}`;
    const t = this.tokens.get(key);
    if (t && t.expiresAt - TOKEN_SLACK_MS > Date.now()) return `Bearer ${t.token}`;
    return `Bearer ${await this.fetchToken(host, ha, merged, signal)}`;
  }

  private async onChallenge(host: string, scopes: string[], header: string | undefined, signal?: AbortSignal): Promise<boolean> {
    const challenges = parseChallenges(header ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer?.params.realm) {
      const ha: HostAuth = { scheme: 'bearer', realm: bearer.params.realm };
      if (bearer.params.service !== undefined) ha.service = bearer.params.service;
      this.hostAuth.set(host, ha);
      const merged = mergeScopes([...scopes, ...(bearer.params.scope ? [bearer.params.scope] : [])]);
      // A fresh token even if one is cached: the registry just refused what we had.
      this.tokens.delete(`${host} ${mergeScopes(scopes).join(' ')}`);
      const token = await this.fetchToken(host, ha, merged, signal, true);
      this.tokens.set(`${host} ${mergeScopes(scopes).join(' ')}`, this.tokens.get(`${host} ${merged.join(' ')}`) ?? { token, expiresAt: Date.now() + 60_000 });
      return true;
    }
    if (basic) {
      const had = this.hostAuth.get(host)?.scheme === 'basic';
      this.hostAuth.set(host, { scheme: 'basic' });
      const c = await this.credential(host);
      // Credentials we already sent were refused: asking again would not help.
      if (had || c?.username === undefined) {
        if (had && c) throw new OciError('UNAUTHORIZED', `${host} refused the credentials; run "wharf login ${host}" again`);
        return false;
      }
      return true;
    }
    return false;
  }

  private fetchToken(host: string, ha: Extract<HostAuth, { scheme: 'bearer' }>, scopes: string[], signal?: AbortSignal, force = false): Promise<string> {
    const key = `${host} ${scopes.join(' ')}`;
    if (!force) {
      const t = this.tokens.get(key);
      if (t && t.expiresAt - TOKEN_SLACK_MS > Date.now()) return Promise.resolve(t.token);
    }
    // Parallel requests for one scope share a single token request.
    let p = this.pendingTokens.get(key);
    if (!p) {
      p = this.requestToken(host, ha, scopes, signal)
        .then((t) => {
          this.tokens.set(key, t);
          return t.token;
        })
        .finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, p);
    }
    return p;
  }

  /** distribution's token protocol: GET with basic auth, or the OAuth2 POST with a refresh token. */
  private async requestToken(host: string, ha: Extract<HostAuth, { scheme: 'bearer' }>, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const cred = await this.credential(host);
    const realm = new URL(ha.realm);
    let r: Dispatcher.ResponseData;
    const base = { 'user-agent': this.opts.userAgent ?? 'wharf' };
    if (cred?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'wharf' });
      if (ha.service) form.set('service', ha.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      r = await this.dispatcher.request({
        origin: realm.origin,
        path: `${realm.pathname}${realm.search}`,
        method: 'POST',
        headers: { ...base, 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        signal,
      });
    } else {
      const u = new URL(realm);
      if (ha.service) u.searchParams.set('service', ha.service);
      for (const s of scopes) u.searchParams.append('scope', s);
      const headers: Record<string, string> = { ...base };
      if (cred?.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password ?? ''}`).toString('base64')}`;
      r = await this.dispatcher.request({ origin: u.origin, path: `${u.pathname}${u.search}`, method: 'GET', headers, signal });
    }
    this.debug(`< ${r.statusCode} token ${realm.href} ${scopes.join(' ')}`);
    const text = await r.body.text();
    if (r.statusCode === 401 || r.statusCode === 403) {
      throw new OciError('UNAUTHORIZED', cred ? `the token service for ${host} refused the credentials; run "wharf login ${host}" again` : `${host} requires authentication; run "wharf login ${host}"`);
    }
    if (r.statusCode !== 200) throw new OciError('UNAVAILABLE', `token request to ${realm.origin} failed with HTTP ${r.statusCode}`);
    let doc: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      throw new OciError('UNAVAILABLE', `token service ${realm.origin} sent a response that is not JSON`);
    }
    const token = doc.token ?? doc.access_token;
    if (!token) throw new OciError('UNAVAILABLE', `token service ${realm.origin} sent no token`);
    // The spec's default lifetime is 60 s when expires_in is absent.
    const issued = doc.issued_at ? Date.parse(doc.issued_at) : NaN;
    const start = Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now());
    return { token, expiresAt: start + (doc.expires_in ?? 60) * 1000 };
  }
}

function wrapNetworkError(err: unknown, req: SendRequest): unknown {
  if (isKnownError(err) || (err as Error | undefined)?.name === 'AbortError') return err;
  const e = err as NodeJS.ErrnoException;
  // OpenSSL messages run over several lines with internal paths; the user needs the reason only.
  const msg = (e?.message ?? String(err)).split('\n')[0]!;
  const reason = /(wrong version number|packet length too long|certificate[^:]*|self[- ]signed[^:]*)/i.exec(msg)?.[1] ?? e?.code ?? msg;
  if (/wrong version number|EPROTO|packet length too long/i.test(`${e?.code} ${msg}`)) {
    return new OciError('UNAVAILABLE', `TLS handshake with ${req.host} failed (${reason}); if it serves plain HTTP, pass --plain-http`, { cause: err });
  }
  if (/certificate|self.signed|UNABLE_TO_VERIFY/i.test(`${e?.code} ${msg}`)) {
    return new OciError('UNAVAILABLE', `TLS certificate of ${req.host} not trusted (${reason}); pass --ca-file, or --insecure`, { cause: err });
  }
  return new OciError('UNAVAILABLE', `cannot reach ${req.host}: ${e?.code ?? msg}`, { cause: err });
}

/** Turns an unexpected response into an OciError, reading the spec's error body when there is one. */
export async function responseError(res: SendResponse, what: string, fallback?: ErrorCode): Promise<OciError | WharfError> {
  let text = '';
  try {
    // Error bodies are small; cap what we read in case a server streams something else.
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > 65536) break;
      chunks.push(c);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch {
    /* the body is only for the message */
  } finally {
    res.body.destroy();
  }
  let code: ErrorCode | LocalErrorCode | undefined;
  let explanation: string | undefined;
  try {
    const doc = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> };
    const e = doc.errors?.[0];
    if (e?.code && isErrorCode(e.code)) code = e.code;
    const detail = typeof e?.detail === 'string' ? e.detail : e?.detail && typeof e.detail === 'object' && Object.keys(e.detail).length ? JSON.stringify(e.detail) : undefined;
    explanation = [e?.message, detail].filter((x) => x).join(': ') || undefined;
  } catch {
    // Not a spec error body: a proxy's or a load balancer's plain-text reason is still the reason.
    const line = text.trim().split('\n')[0]?.trim();
    if (line && !line.startsWith('<')) explanation = line.slice(0, 200);
  }
  code ??= fallback ?? statusCode(res.status);
  const parts = [`${what}: HTTP ${res.status} ${code}`];
  if (explanation) parts.push(`: ${explanation}`);
  const warning = warningText(res.headers.warning);
  if (warning) parts.push(` (the registry warns: ${warning})`);
  if (res.status === 403 || (res.status === 401 && res.sentAs)) {
    // The credentials were accepted (a 401 after them means a token without the right scope):
    // this is a permission problem, and logging in again would not help.
    parts.push(`; permission denied${res.sentAs ? ` for ${res.sentAs}` : ' to anonymous users'}: ask the registry's administrator for access${res.sentAs ? '' : ', or log in with wharf login'}`);
  } else if (res.status === 401) {
    parts.push(`; the registry wants credentials: run "wharf login ${res.url.host}" or pass -u and -p`);
  }
  // An answer without a spec code says only its status: a local error of that kind.
  return isErrorCode(code) ? new OciError(code, parts.join(''), { status: res.status }) : new WharfError(code, parts.join(''), { status: res.status });
}

/** The text of a `Warning` header (RFC 7234: `111 - "Revalidation Failed"`), codes and agent dropped. */
export function warningText(h: string | undefined): string | undefined {
  if (!h) return undefined;
  const texts = [...h.matchAll(/(\d{3})\s+\S+\s+"((?:[^"\\]|\\.)*)"/g)].map((m) => `${m[1]} ${m[2]}`);
  return texts.length ? texts.join('; ') : h.trim();
}

function statusCode(status: number): ErrorCode | LocalErrorCode {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'DENIED';
    case 404:
      return 'NOT_FOUND';
    case 405:
      return 'UNSUPPORTED';
    case 416:
      return 'RANGE_INVALID';
    case 429:
      return 'TOOMANYREQUESTS';
    default:
      return status >= 500 ? 'UNAVAILABLE' : 'INTERNAL';
  }
}
