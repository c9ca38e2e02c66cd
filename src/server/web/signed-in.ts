import type { FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../../spec/index.js';
import type { WebDeps } from './deps.js';
import { viewerOf, type Viewer } from './viewer.js';

function isLoopback(ip: string | undefined): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';
}

/**
 * The caller of an analytics or admin route. With auth on, an anonymous caller gets a 401 with
 * the registry's challenge; with auth off, only loopback clients get in (as /api/v1/audit), and
 * they see everything, as an admin.
 */
export async function signedIn(req: FastifyRequest, reply: FastifyReply, deps: WebDeps): Promise<Viewer> {
  const viewer = await viewerOf(req, deps);
  if (!deps.auth) {
    if (!isLoopback(req.ip)) throw new OciError('DENIED', 'with auth off, analytics answer local clients only');
    return { ...viewer, admin: true };
  }
  if (viewer.id.kind === 'anonymous') {
    reply.header('www-authenticate', deps.auth.challenge(`${req.protocol}://${req.host}/token`));
    throw new OciError('UNAUTHORIZED', 'sign in to see analytics');
  }
  return viewer;
}

/** The caller of an admin route (the admin pages, the audit log): signedIn, and an admin. */
export async function signedInAdmin(req: FastifyRequest, reply: FastifyReply, deps: WebDeps): Promise<void> {
  const viewer = await signedIn(req, reply, deps);
  if (!viewer.admin) throw new OciError('DENIED', 'this is for admins');
}
