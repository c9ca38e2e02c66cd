import type { FastifyRequest } from 'fastify';
import { OciError } from '../../spec/index.js';
import { userOf, type Action, type Identity } from '../auth/index.js';
import { peerUser } from '../http/access.js';
import type { WebDeps } from './deps.js';

/** Who asks, and what the access rules let them do: the one check every /api/v1 route makes. */
export interface Viewer {
  id: Identity;
  user: string | undefined;
  admin: boolean;
  can(repo: string, action: Action): boolean;
}

/**
 * The caller of an /api/v1 request, from the same credentials /v2 takes (Basic, a bearer token, a
 * client certificate). With auth off everyone may do everything /v2 lets them.
 */
export async function viewerOf(req: FastifyRequest, deps: WebDeps): Promise<Viewer> {
  const auth = deps.auth;
  if (!auth) return { id: { kind: 'anonymous' }, user: undefined, admin: false, can: () => true };
  const id = await auth.identify({ authorization: req.headers.authorization, ip: req.ip, peerUser: peerUser(req) });
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
