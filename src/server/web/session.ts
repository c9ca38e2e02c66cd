import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, WharfError } from '../../spec/index.js';
import type { WebDeps } from './deps.js';
import { SESSION_COOKIE, cookieValue, sessionsOf } from './sessions.js';
import type { SessionInfo } from './types.js';
import { assertCsrf, assertSameOrigin, viewerOf, type Viewer } from './viewer.js';

/** The largest sign-in body read. */
const BODY_MAX = 8 << 10;

/**
 * The web API's sign-in: `GET /api/v1/session` (who is looking, and the CSRF token),
 * `POST /api/v1/session` ({user, password}: the registry's own htpasswd users, with the same
 * failed-login limit as /v2; or {token}: a registry token, whose access the session then has
 * until the token expires) sets the session cookie, `DELETE /api/v1/session` clears it. Users of
 * a client certificate, tokens and Basic credentials need no sign-in: viewerOf takes them as /v2 does.
 */
export function installSession(app: FastifyInstance, deps: WebDeps): void {
  // The key is read (or made) now, at start, not by the first request.
  if (deps.auth) sessionsOf(deps);
  const secure = (req: FastifyRequest): boolean => req.protocol === 'https';

  const info = (viewer: Viewer, csrf: string | null): SessionInfo => ({
    user: viewer.user ?? null,
    admin: viewer.admin,
    authEnabled: deps.auth !== undefined,
    deleteEnabled: deps.config.delete.enabled,
    csrf,
  });
  const send = (reply: FastifyReply, body: SessionInfo): FastifyReply => reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));

  app.get('/api/v1/session', async (req, reply) => {
    const viewer = await viewerOf(req, deps);
    // A cookie that no longer counts (expired, tampered, its user gone) is cleared.
    if (deps.auth && !viewer.session && cookieValue(req.headers.cookie, SESSION_COOKIE) !== undefined) reply.header('set-cookie', sessionsOf(deps).clearCookie(secure(req)));
    return send(reply, info(viewer, viewer.session?.csrf ?? null));
  });

  app.post('/api/v1/session', async (req, reply) => {
    const auth = deps.auth;
    if (!auth) throw new OciError('UNSUPPORTED', 'this registry has no users (auth is off): there is nothing to sign in to', { status: 404 });
    // A page elsewhere must not sign a visitor in as someone else (login CSRF).
    assertSameOrigin(req);
    const body = await readSignIn(req);
    const sessions = sessionsOf(deps);
    let signed: { user: string; token: string; claims: { sid: string; expires: number }; admin: boolean };
    if ('token' in body) {
      // A registry token (from /token, or an external issuer's): the session carries it and ends with it.
      const id = await auth.identify({ authorization: `Bearer ${body.token}`, ip: req.ip }).catch((err: unknown) => {
        reply.header('www-authenticate', `Session realm="${auth.config.service.replace(/["\\]/g, '')}"`);
        throw err instanceof OciError ? err : new OciError('UNAUTHORIZED', 'invalid token');
      });
      if (id.kind !== 'token') throw new OciError('UNAUTHORIZED', 'invalid token');
      const until = tokenExpiry(body.token);
      const user = id.user ?? 'token';
      const { token, claims } = await sessions.issue(user, Date.now(), { token: body.token, ...(until !== undefined ? { until } : {}) });
      signed = { user, token, claims, admin: auth.isAdmin(id) };
    } else {
      const { user, password } = body;
      let ok: boolean;
      try {
        ok = await auth.login(user, password, req.ip);
      } catch (err) {
        if (err instanceof OciError && err.code === 'TOOMANYREQUESTS') reply.header('retry-after', String((err.detail as { retryAfter?: number } | undefined)?.retryAfter ?? 60));
        throw err;
      }
      // Not Basic: a browser would answer that with its own password dialog.
      if (!ok) {
        reply.header('www-authenticate', `Session realm="${auth.config.service.replace(/["\\]/g, '')}"`);
        throw new OciError('UNAUTHORIZED', 'invalid user name or password');
      }
      const { token, claims } = await sessions.issue(user);
      signed = { user, token, claims, admin: auth.isAdmin({ kind: 'user', user, via: 'basic' }) };
    }
    reply.header('set-cookie', sessions.cookie(signed.token, secure(req), signed.claims.expires));
    return send(reply, { user: signed.user, admin: signed.admin, authEnabled: true, deleteEnabled: deps.config.delete.enabled, csrf: sessions.csrfOf(signed.claims.sid) });
  });

  app.delete('/api/v1/session', async (req, reply) => {
    const viewer = await viewerOf(req, deps);
    assertCsrf(req, viewer);
    if (deps.auth) reply.header('set-cookie', sessionsOf(deps).clearCookie(secure(req)));
    const anonymous: Viewer = { id: { kind: 'anonymous' }, user: undefined, admin: false, can: () => false };
    // With the cookie gone, the caller is whoever their other credentials say (usually nobody).
    return send(reply, info(viewer.session ? anonymous : viewer, null));
  });
}

/** When a JWT says it expires (ms), read without checking it: identify() has checked it. */
function tokenExpiry(jwt: string): number | undefined {
  try {
    const exp = (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON body of a sign-in: `{ "user": "...", "password": "..." }`, or `{ "token": "..." }` (a registry token). */
async function readSignIn(req: FastifyRequest): Promise<{ user: string; password: string } | { token: string }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  // JSON only: a cross-site form cannot send it without a CORS preflight, which this server never grants.
  if (type !== 'application/json') throw new OciError('UNSUPPORTED', 'sign in with a JSON body (content-type: application/json)', { status: 415 });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req.raw as AsyncIterable<Buffer>) {
    n += c.length;
    // Past the limit the rest is read and dropped, so the answer reaches the client; past a
    // MiB the connection goes (leaving the loop destroys the request).
    if (n > 1 << 20) break;
    if (n <= BODY_MAX) chunks.push(c);
  }
  if (n > BODY_MAX) throw new OciError('SIZE_INVALID', `sign-in body over ${BODY_MAX} bytes`, { status: 413 });
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WharfError('INVALID_ARGUMENT', 'the sign-in body is not JSON');
  }
  const o = body as Record<string, unknown> | null;
  if (typeof o === 'object' && o !== null && typeof o.token === 'string' && o.token !== '' && o.user === undefined) return { token: o.token };
  if (typeof o !== 'object' || o === null || typeof o.user !== 'string' || typeof o.password !== 'string' || o.user === '' || o.user.length > 128) {
    throw new WharfError('INVALID_ARGUMENT', 'the sign-in body must be {"user": "...", "password": "..."} or {"token": "..."}');
  }
  return { user: o.user, password: o.password };
}
