import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import { WharfError } from '../../spec/index.js';
import type { WebDeps } from './deps.js';

/**
 * The web UI's sessions: a signed cookie (a compact HS256 JWT holding the user, a session id and
 * the expiry), so no replica keeps a session store: any replica with the same secret
 * (`ui.sessionSecret`) accepts it. Without that setting the secret is 32 random bytes made once
 * in <data>/ui/session.key. The CSRF token of a session is an HMAC of its id.
 */

export const SESSION_COOKIE = 'wharf_session';
const AUDIENCE = 'wharf-ui';
const KEY_FILE = join('ui', 'session.key');

export interface SessionClaims {
  user: string;
  /** Random per sign-in: what the CSRF token is derived from. */
  sid: string;
  /** ms since the epoch. */
  expires: number;
  /**
   * A session signed in with a registry token: the token itself, checked again on every request
   * as /v2 checks it, so the session has the token's access and ends when the token does.
   */
  token?: string;
}

export class Sessions {
  private readonly csrfKey: Buffer;
  private readonly verified = new Map<string, SessionClaims>();

  constructor(private readonly key: Uint8Array, readonly ttlMs: number) {
    // A key of its own for CSRF tokens, so that a token never doubles as anything signed with the secret.
    this.csrfKey = createHmac('sha256', key).update('wharf-ui csrf').digest();
  }

  /** From `ui.sessionSecret`, else <data>/ui/session.key (made on first start). Synchronous: it runs while the app is built. */
  static load(deps: Pick<WebDeps, 'config'>): Sessions {
    const { ui, data } = deps.config;
    const key = ui.sessionSecret !== undefined ? Buffer.from(ui.sessionSecret, 'utf8') : keyFile(join(resolve(data), KEY_FILE));
    return new Sessions(key, ui.sessionTtl);
  }

  /** A session of `user`; with `opts.token`, one that carries that token and ends with it (`opts.until`, ms). */
  async issue(user: string, now = Date.now(), opts: { token?: string; until?: number } = {}): Promise<{ token: string; claims: SessionClaims }> {
    const sid = randomBytes(16).toString('base64url');
    const exp = Math.floor(Math.min(now + this.ttlMs, opts.until ?? Infinity) / 1000);
    const token = await new SignJWT(opts.token !== undefined ? { sid, tok: opts.token } : { sid }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setAudience(AUDIENCE).setIssuedAt(Math.floor(now / 1000)).setExpirationTime(exp).sign(this.key);
    return { token, claims: { user, sid, expires: exp * 1000, ...(opts.token !== undefined ? { token: opts.token } : {}) } };
  }

  /** The claims of a cookie this secret signed and that has not expired; undefined otherwise. */
  async verify(token: string, now = Date.now()): Promise<SessionClaims | undefined> {
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.expires > now) return hit;
      this.verified.delete(token);
      return undefined;
    }
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], audience: AUDIENCE, currentDate: new Date(now) });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || typeof payload.exp !== 'number') return undefined;
      const claims: SessionClaims = { user: payload.sub, sid: payload.sid, expires: payload.exp * 1000, ...(typeof payload.tok === 'string' ? { token: payload.tok } : {}) };
      // A signature check per request costs more than the listing it guards.
      if (this.verified.size >= 10_000) this.verified.clear();
      this.verified.set(token, claims);
      return claims;
    } catch {
      return undefined;
    }
  }

  csrfOf(sid: string): string {
    return createHmac('sha256', this.csrfKey).update(sid).digest('base64url');
  }

  /** The Set-Cookie value of a session; Secure when the UI is served over TLS. */
  cookie(token: string, secure: boolean, expires = Date.now() + this.ttlMs): string {
    return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${Math.max(0, Math.ceil((expires - Date.now()) / 1000))}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  clearCookie(secure: boolean): string {
    return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }
}

const loaded = new WeakMap<object, Sessions>();

/** The sessions of a web UI (made on first use, from its config). */
export function sessionsOf(deps: Pick<WebDeps, 'config'>): Sessions {
  let s = loaded.get(deps);
  if (!s) {
    s = Sessions.load(deps);
    loaded.set(deps, s);
  }
  return s;
}

/** A cookie's value from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Compares two tokens in constant time. */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const KEY_BYTES = 32;

/**
 * Reads the key file, or makes it: 32 random bytes as hex, mode 0600, written to a temporary file
 * and linked into place, so that two processes starting together on one data directory end with
 * the same key (the second link fails, and that process reads the first one's).
 */
function keyFile(path: string): Buffer {
  const read = (): Buffer | undefined => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (!/^[0-9a-f]{64}$/.test(text)) throw new WharfError('INVALID_ARGUMENT', `${path} is not a session key (64 hex digits); remove it to have a new one made (signed-in users then sign in again)`);
    return Buffer.from(text, 'hex');
  };
  const have = read();
  if (have) return have;
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${randomBytes(KEY_BYTES).toString('hex')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EEXIST: another process made it first. A file system without hard links: rename.
    if (code !== 'EEXIST') renameSync(tmp, path);
  }
  try {
    unlinkSync(tmp);
  } catch {
    // renamed
  }
  return read()!;
}
