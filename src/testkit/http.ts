/**
 * Plain HTTP helpers for the conformance suites: `fetch` for well-formed requests, `node:http`
 * for paths that `fetch` would normalise (`..`, `//`), and raw sockets for requests that lie.
 * Every helper reads the whole response body, so that no connection is left half-consumed.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The request as sent, for assertion messages. */
  what: string;
}

export interface CallOptions {
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  signal?: AbortSignal;
}

/** Resolves `path` (absolute path, or an absolute URL such as a `Location`) against the registry. */
export function resolveUrl(baseUrl: string, path: string): URL {
  return new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
}

/** One request through `fetch`; never follows redirects, always reads the body. */
export async function call(baseUrl: string, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  const url = resolveUrl(baseUrl, path);
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
  const init: RequestInit = { method, headers, redirect: 'manual' };
  if (opts.body !== undefined) init.body = typeof opts.body === "string" ? opts.body : Buffer.from(opts.body.buffer, opts.body.byteOffset, opts.body.byteLength) as unknown as BodyInit;
  if (opts.signal) init.signal = opts.signal;
  const res = await fetch(url, init);
  const body = method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await res.arrayBuffer());
  if (method === 'HEAD') await res.body?.cancel();
  return { status: res.status, headers: res.headers, body, what: `${method} ${url.pathname}${url.search}` };
}

/**
 * One request through `node:http` with the path sent exactly as given (no `..` or `//`
 * normalisation). Headers are lower-cased into a `Headers` object.
 */
export function callRaw(baseUrl: string, method: string, rawPath: string, opts: { headers?: Record<string, string>; body?: Uint8Array } = {}): Promise<Reply> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: rawPath,
        headers: { 'content-length': String(opts.body?.length ?? 0), ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (v === undefined) continue;
            for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
          }
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks), what: `${method} ${rawPath}` });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface RawExchange {
  /** The parsed first response, or undefined when the server closed without answering. */
  reply?: Reply;
  /** Everything the server sent. */
  raw: Buffer;
}

/**
 * Writes `head` (request line and headers, without the blank line) and then `body` on a raw
 * socket. With `end: 'half'` the socket is half-closed after the body (the client stops sending
 * while the server still expects bytes); with `end: 'destroy'` it is torn down after `afterMs`.
 * Resolves once the server closes, or `timeoutMs` passes, with whatever the server answered.
 */
export function rawExchange(
  baseUrl: string,
  head: string,
  body: Uint8Array,
  opts: { end?: 'keep' | 'half' | 'destroy'; afterMs?: number; timeoutMs?: number } = {},
): Promise<RawExchange> {
  const base = new URL(baseUrl);
  const end = opts.end ?? 'keep';
  return new Promise((resolve) => {
    const sock = connect({ host: base.hostname, port: Number(base.port), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const reply = parseRawResponse(raw, head.split(' ', 2).join(' '));
      resolve(reply ? { reply, raw } : { raw });
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 5000);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', finish);
    sock.on('connect', () => {
      sock.write(`${head.replace(/\r?\n$/, '')}\r\n\r\n`);
      if (body.length > 0) sock.write(body);
      if (end === 'half') setTimeout(() => sock.end(), opts.afterMs ?? 50);
      if (end === 'destroy') setTimeout(finish, opts.afterMs ?? 50);
    });
  });
}

/** Parses the first HTTP/1.1 response in `raw` (Content-Length or chunked body). */
export function parseRawResponse(raw: Buffer, what = 'raw request'): Reply | undefined {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) return undefined;
  const lines = raw.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  let rest = raw.subarray(sep + 4);
  let body: Buffer;
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = rest.indexOf('\r\n');
      if (eol < 0) break;
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (!Number.isFinite(size) || size === 0) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else {
    const len = Number(headers.get('content-length') ?? rest.length);
    body = rest.subarray(0, len);
  }
  return { status: Number(m[1]), headers, body, what };
}

/** Error codes of distribution-spec v1.1.1 ("Error Codes"), and the legacy ones it names. */
export const SPEC_ERROR_CODES: readonly string[] = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  // "Legacy Docker support error codes": clients may meet these.
  'TAG_INVALID',
  'MANIFEST_UNVERIFIED',
];

export interface ErrorBody {
  errors: Array<{ code: string; message?: string; detail?: unknown }>;
}

function describeReply(r: Reply): string {
  const text = r.body.subarray(0, 300).toString('utf8');
  return `${r.what} → ${r.status}${text ? ` ${JSON.stringify(text)}` : ''}`;
}

/** Fails on any 5xx: no input may crash the registry. */
export function assertNo5xx(r: Reply): void {
  assert.ok(r.status < 500, `server error: ${describeReply(r)}`);
}

export function assertStatus(r: Reply, expected: number | readonly number[]): void {
  const list = typeof expected === 'number' ? [expected] : expected;
  assert.ok(list.includes(r.status), `expected ${list.join(' or ')}: ${describeReply(r)}`);
}

/**
 * Checks a failure: the status, and (except for HEAD, which has no body) the spec's JSON error
 * body `{"errors":[{code,message,detail?}]}`. `codes` lists acceptable codes; one of the errors
 * must carry one of them. Returns the parsed body.
 */
export function assertError(r: Reply, status: number | readonly number[], codes?: readonly string[]): ErrorBody | undefined {
  assertStatus(r, status);
  if (r.what.startsWith('HEAD ')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.body.toString('utf8'));
  } catch {
    assert.fail(`error body is not JSON: ${describeReply(r)}`);
  }
  const errors = (parsed as { errors?: unknown }).errors;
  assert.ok(Array.isArray(errors) && errors.length > 0, `error body has no "errors" array: ${describeReply(r)}`);
  for (const e of errors as unknown[]) {
    assert.ok(typeof e === 'object' && e !== null, `error entry is not an object: ${describeReply(r)}`);
    const { code, message } = e as { code?: unknown; message?: unknown };
    assert.ok(typeof code === 'string' && /^[A-Z_]+$/.test(code), `error code must be upper case letters and underscores: ${describeReply(r)}`);
    assert.ok(message === undefined || typeof message === 'string', `error message must be a string: ${describeReply(r)}`);
  }
  const body = parsed as ErrorBody;
  if (codes) {
    const got = body.errors.map((e) => e.code);
    assert.ok(got.some((c) => codes.includes(c)), `expected error code ${codes.join(' or ')}, got ${got.join(', ')}: ${describeReply(r)}`);
  }
  return body;
}

/**
 * assertError, and every code in the body is one of the spec's (distribution-spec "Error Codes":
 * a 4xx JSON body MUST carry one of them; the legacy Docker codes are tolerated).
 */
export function assertSpecError(r: Reply, status: number | readonly number[], codes?: readonly string[]): ErrorBody | undefined {
  const body = assertError(r, status, codes);
  for (const e of body?.errors ?? []) {
    assert.ok(SPEC_ERROR_CODES.includes(e.code), `error code ${e.code} is not one of distribution-spec's: ${describeReply(r)}`);
  }
  return body;
}

/** The target of a `Link: <url>; rel="next"` header, resolved against the request URL. */
export function nextLink(r: Reply, baseUrl: string): string | undefined {
  const link = r.headers.get('link');
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*((?:;[^;]*)*)$/.exec(part);
    if (!m) continue;
    const params = m[2]!.split(';').map((p) => p.trim());
    if (params.some((p) => /^rel\s*=\s*"?([^"]*)"?$/i.exec(p)?.[1]?.split(/\s+/).includes('next'))) {
      return resolveUrl(baseUrl, m[1]!).href;
    }
  }
  return undefined;
}

/** Parses a JSON body, failing with the request in the message. */
export function json<T>(r: Reply): T {
  try {
    return JSON.parse(r.body.toString('utf8')) as T;
  } catch {
    assert.fail(`body is not JSON: ${describeReply(r)}`);
  }
}
