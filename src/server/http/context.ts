import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RegistryBackend } from '../store/index.js';
import { routeOf, type Route } from './route.js';

/** What every part of a /v2 request's handling knows of it, worked out once when it arrives. */
export interface RequestContext {
  /** The endpoint, with the repository it is served from; undefined for a path that is none. */
  route: Route | undefined;
  /** Why the path is no endpoint (a name the spec's grammar refuses): the dispatch answers with it. */
  invalid?: unknown;
  /** The repository name as the client spelled it, where the backend mapped it to another. */
  asked?: string;
  /** Whether the caller may read a repository (the catalog, a mount's source); access control sets it. */
  canRead(repo: string): boolean;
}

const contexts = new WeakMap<FastifyRequest, RequestContext>();
const NONE: RequestContext = { route: undefined, canRead: () => true };

export function contextOf(req: FastifyRequest): RequestContext {
  return contexts.get(req) ?? NONE;
}

/** The request's raw path and query: nothing is percent-decoded (see routeOf). */
export function splitUrl(raw: string): { path: string; query: string } {
  const qi = raw.indexOf('?');
  return qi < 0 ? { path: raw, query: '' } : { path: raw.slice(0, qi), query: raw.slice(qi + 1) };
}

/**
 * The first hook of every request: parses a /v2 path into its route once, and has the backend map
 * the repository name (a pull-through cache's `?ns=` or default namespace). Access control, the
 * audit log and the handlers all read this one route, so no spelling of a path can be checked as
 * one repository and served as another.
 */
export function installRouting(app: FastifyInstance, backend: RegistryBackend): void {
  app.addHook('onRequest', async (req) => {
    const { path, query } = splitUrl(req.raw.url ?? '/');
    if (path !== '/v2' && !path.startsWith('/v2/')) return;
    const ctx: RequestContext = { route: undefined, canRead: () => true };
    contexts.set(req, ctx);
    try {
      ctx.route = routeOf(path);
    } catch (err) {
      ctx.invalid = err;
      return;
    }
    const r = ctx.route;
    if (!r || !('name' in r)) return;
    const ns = query === '' ? undefined : (new URLSearchParams(query).get('ns') ?? undefined);
    const name = await backend.mapName(r.name, ns, req.method === 'GET' || req.method === 'HEAD');
    if (name !== r.name) {
      ctx.asked = r.name;
      ctx.route = { ...r, name };
    }
  });
}
