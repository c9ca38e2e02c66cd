import type { FastifyRequest } from 'fastify';
import { OciError } from '../../spec/index.js';
import { userOf, type Action, type Identity } from '../auth/index.js';
import { peerUser } from '../http/access.js';
import type { WebDeps } from './deps.js';
import { SESSION_COOKIE, cookieValue, sameToken, sessionsOf } from './sessions.js';

/** Who asks, and what the access rules let them do: the one check every /api/v1 route makes. */
export interface Viewer {
  id: Identity;
  user: string | undefined;
  admin: boolean;
  can(repo: string, action: Action): boolean;
  /** Set when the session cookie identified the caller: what a change must prove (assertCsrf). */
  session?: { sid: string; csrf: string; expires: number };
}

const viewers = new WeakMap<FastifyRequest, Promise<Viewer>>();

/**
 * The caller of an /api/v1 request, from the same credentials /v2 takes (Basic, a bearer token, a
 * client certificate) or, when the request sends no Authorization header, the UI's session cookie.
 * A cookie that fails its check (tampered, expired, signed with another secret, or whose user has
 * left the htpasswd file) counts as none. With auth off everyone may do everything /v2 lets them.
 * Worked out once per request.
 */
export function viewerOf(req: FastifyRequest, deps: WebDeps): Promise<Viewer> {
  let v = viewers.get(req);
  if (!v) {
    v = identify(req, deps);
    viewers.set(req, v);
  }
  return v;
}

async function identify(req: FastifyRequest, deps: WebDeps): Promise<Viewer> {
  const auth = deps.auth;
  if (!auth) return { id: { kind: 'anonymous' }, user: undefined, admin: false, can: () => true };
  const authorization = req.headers.authorization;
  if (authorization === undefined || authorization === '') {
    const token = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (token) {
      const sessions = sessionsOf(deps);
      const claims = await sessions.verify(token);
      const session = claims && { sid: claims.sid, csrf: sessions.csrfOf(claims.sid), expires: claims.expires };
      if (claims?.token !== undefined) {
        // Signed in with a token: it is checked as /v2 checks it (an expired or foreign one no longer counts).
        const id = await auth.identify({ authorization: `Bearer ${claims.token}`, ip: req.ip }).catch(() => undefined);
        if (id && id.kind !== 'anonymous') return { id, user: userOf(id) ?? claims.user, admin: auth.isAdmin(id), can: (repo, action) => auth.can(id, repo, action), session: session! };
      } else if (claims && (await auth.htpasswd.users()).includes(claims.user)) {
        // Checked on every request (the file is re-read when it changes, at most once a second):
        // a user removed from htpasswd loses the UI at once, whatever their cookie says.
        const id: Identity = { kind: 'user', user: claims.user, via: 'basic' };
        return { id, user: claims.user, admin: auth.isAdmin(id), can: (repo, action) => auth.can(id, repo, action), session: session! };
      }
    }
  }
  const id = await auth.identify({ authorization, ip: req.ip, peerUser: peerUser(req) });
  return { id, user: userOf(id), admin: auth.isAdmin(id), can: (repo, action) => auth.can(id, repo, action) };
}

/**
 * Throws what /v2 would answer a caller who may not `action` on `repo`: NAME_UNKNOWN when they
 * may not even pull it (a private repository's existence is not told to outsiders), else DENIED.
 */
export function requireAccess(viewer: Viewer, repo: string, action: Action): void {
  if (viewer.can(repo, action)) return;
  if (!viewer.can(repo, 'pull')) throw new OciError('NAME_UNKNOWN', `repository ${repo} is not known to this registry`);
  throw new OciError('DENIED', `you may not ${action} ${repo}`);
}

/**
 * The guard of every /api/v1 request that changes something (call it before acting): an `Origin`
 * header, when the browser sends one, must name this server (the Host the request came to), and a
 * request that the session cookie authenticates must carry the session's CSRF token in
 * `x-csrf-token` (SessionInfo.csrf). A request with an Authorization header is no browser's
 * ambient credential, so it needs no token. Both refusals are 403 DENIED.
 */
export function assertCsrf(req: FastifyRequest, viewer: Viewer): void {
  assertSameOrigin(req);
  if (!viewer.session) return;
  const got = req.headers['x-csrf-token'];
  if (typeof got !== 'string' || !sameToken(got, viewer.session.csrf)) throw new OciError('DENIED', 'missing or wrong x-csrf-token header (see GET /api/v1/session)');
}

/** An `Origin` header, when present, must be this server's (scheme aside: a TLS proxy in front changes it). */
export function assertSameOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string | undefined;
  try {
    host = origin === 'null' ? undefined : new URL(origin).host;
  } catch {
    host = undefined;
  }
  if (host === undefined || host !== req.headers.host) throw new OciError('DENIED', 'cross-origin request refused: Origin does not match Host');
}
