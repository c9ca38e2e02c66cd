import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, isDigest } from '../../spec/index.js';
import { parseScope, userOf, type AccessEntry, type Action, type Authenticator, type Identity } from '../auth/index.js';
import type { RegistryStore } from '../store/index.js';
import { routeOf, type Route } from './route.js';

const identities = new WeakMap<FastifyRequest, Identity>();

/** The caller of a request that passed the access hook (anonymous when auth is off). */
export function identityOf(req: FastifyRequest): Identity {
  return identities.get(req) ?? { kind: 'anonymous' };
}

/** The subject CN of a client certificate that the TLS layer verified. */
export function peerUser(req: FastifyRequest): string | undefined {
  const s = req.raw.socket as Partial<TLSSocket>;
  if (!s.encrypted || !s.authorized || typeof s.getPeerCertificate !== 'function') return undefined;
  const cn = s.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

interface Need {
  repo: string;
  actions: Action[];
  /** What a bearer challenge asks for; Distribution asks pull,push for uploads. */
  scope: string;
}

function needOf(route: Route, method: string): Need | undefined {
  if (route.kind === 'base' || route.kind === 'catalog') return undefined;
  const repo = route.name;
  const read = method === 'GET' || method === 'HEAD';
  let actions: Action[];
  if (route.kind === 'upload') actions = ['push'];
  else if (method === 'DELETE' && (route.kind === 'manifest' || route.kind === 'blob')) actions = ['delete'];
  else if (route.kind === 'manifest' && method === 'PUT') actions = ['push'];
  else if (read || route.kind === 'tags' || route.kind === 'referrers') actions = ['pull'];
  else actions = ['push'];
  const scopeActions = route.kind === 'upload' || actions[0] === 'push' ? 'pull,push' : actions.join(',');
  return { repo, actions, scope: `repository:${repo}:${scopeActions}` };
}

function realmOf(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}/token`;
}

function unauthorized(auth: Authenticator, req: FastifyRequest, reply: FastifyReply, message: string, scope?: string, error?: string): OciError {
  reply.header('www-authenticate', auth.challenge(realmOf(req), scope, error));
  return new OciError('UNAUTHORIZED', message);
}

/** Identifies the caller; a 401 (bad credentials) or 429 (too many failures) is thrown. */
async function identify(auth: Authenticator, req: FastifyRequest, reply: FastifyReply): Promise<Identity> {
  try {
    return await auth.identify({ authorization: req.headers.authorization, ip: req.ip, peerUser: peerUser(req) });
  } catch (err) {
    if (err instanceof OciError && err.code === 'TOOMANYREQUESTS') {
      const d = err.detail as { retryAfter?: number } | undefined;
      reply.header('retry-after', String(d?.retryAfter ?? 60));
    }
    if (err instanceof OciError && err.code === 'UNAUTHORIZED') {
      const bearer = /^bearer /i.test(req.headers.authorization ?? '');
      throw unauthorized(auth, req, reply, err.message, undefined, bearer ? 'invalid_token' : undefined);
    }
    throw err;
  }
}

/** Whether the catalog shows `repo` to `id`. */
function readable(auth: Authenticator, id: Identity, repo: string): boolean {
  if (id.kind === 'token' && id.local && id.access.some((a) => a.type === 'registry' && a.name === 'catalog')) {
    return auth.policy.allowed(id.user, repo, 'pull') || auth.can(id, repo, 'pull');
  }
  return auth.can(id, repo, 'pull');
}

type Query = Record<string, string | string[] | undefined>;
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** The catalog, filtered to what the caller may read, paginated like the unfiltered one. */
async function catalog(auth: Authenticator, store: RegistryStore, id: Identity, req: FastifyRequest, reply: FastifyReply, pageSize: number): Promise<void> {
  if (req.method !== 'GET') throw new OciError('UNSUPPORTED', `method ${req.method} is not allowed here`);
  const q = req.query as Query;
  const nRaw = one(q.n);
  if (nRaw !== undefined && !/^\d{1,9}$/.test(nRaw)) throw new OciError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer');
  const n = nRaw === undefined ? pageSize : Math.min(Number(nRaw), pageSize);
  const last = one(q.last);
  const all = (await store.catalog()).filter((r) => readable(auth, id, r));
  const after = last === undefined ? all : all.filter((x) => x > last);
  const page = after.slice(0, n);
  if (after.length > n && page.length > 0) reply.header('link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}>; rel="next"`);
  reply.header('docker-distribution-api-version', 'registry/2.0');
  reply.type('application/json').send(JSON.stringify({ repositories: page }));
}

export interface AccessOptions {
  auth: Authenticator;
  store: RegistryStore;
  pageSize: number;
}

/**
 * Guards /v2 before any handler runs. The route is taken from the raw path exactly as the handler
 * takes it, so no spelling of a path can be checked as one repository and served as another.
 * Anonymous callers who lack a right get 401 with a challenge; authenticated users get 403 whether
 * or not the repository exists; a token without the scope gets 401 insufficient_scope, so that a
 * client fetches a wider token.
 */
export function installAccess(app: FastifyInstance, opts: AccessOptions): void {
  const { auth } = opts;
  app.addHook('onRequest', async (req, reply) => {
    const raw = req.raw.url ?? '/';
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    if (path !== '/v2' && !path.startsWith('/v2/')) return;
    const id = await identify(auth, req, reply);
    identities.set(req, id);
    let route: Route | undefined;
    try {
      route = routeOf(path);
    } catch {
      route = undefined;
    }
    if (route?.kind === 'catalog') {
      // Answered here; returning the reply ends the request's lifecycle.
      await catalog(auth, opts.store, id, req, reply, opts.pageSize);
      return reply;
    }
    const need = route ? needOf(route, req.method) : undefined;
    if (!need) {
      // /v2/ and paths that are no endpoint: anyone who authenticated gets the handler's answer.
      if (id.kind === 'anonymous') throw unauthorized(auth, req, reply, 'authentication required');
      return;
    }
    const missing = need.actions.find((a) => !auth.can(id, need.repo, a));
    if (missing !== undefined) {
      if (id.kind === 'anonymous') throw unauthorized(auth, req, reply, 'authentication required', need.scope);
      if (id.kind === 'token') throw unauthorized(auth, req, reply, 'the token does not grant this access', need.scope, 'insufficient_scope');
      throw new OciError('DENIED', `requested access to the resource is denied`);
    }
    // A cross-repository mount needs pull on `from`; without it the mount quietly becomes an
    // ordinary upload, as the spec allows, and says nothing about the other repository.
    const q = req.query as Query;
    if (route?.kind === 'upload' && q.from !== undefined) {
      const from = one(q.from)!;
      if (!auth.can(id, from, 'pull')) {
        delete q.mount;
        delete q.from;
      }
    } else if (route?.kind === 'upload' && route.id === '' && req.method === 'POST' && q.mount !== undefined) {
      // A mount without `from`: only from a repository the caller may pull, else no mount at all.
      const mount = one(q.mount)!;
      const from = isDigest(mount) ? await opts.store.blobHolder(mount, (r) => auth.can(id, r, 'pull')) : undefined;
      if (from === undefined) delete q.mount;
      else q.from = from;
    }
  });

  // The token service (Docker registry token spec): GET with basic credentials or none, POST
  // with grant_type=password or refresh_token.
  app.get('/token', async (req, reply) => {
    const q = req.query as Query;
    let user: string | undefined;
    const h = req.headers.authorization;
    if (h !== undefined && h !== '') {
      const id = await identify(auth, req, reply);
      if (id.kind === 'token') throw unauthorized(auth, req, reply, 'use basic credentials or a refresh token to get a token');
      user = userOf(id);
    } else {
      const pu = peerUser(req);
      if (pu !== undefined && auth.config.mtlsUser) user = pu;
    }
    const wantRefresh = one(q.offline_token) === 'true' && user !== undefined;
    return tokenReply(auth, reply, user, scopesOf(q.scope), wantRefresh);
  });

  app.post('/token', async (req, reply) => {
    const form = await readForm(req);
    const grant = form.get('grant_type');
    let user: string;
    if (grant === 'password') {
      const u = form.get('username') ?? '';
      if (u === '' || !(await auth.login(u, form.get('password') ?? '', req.ip))) {
        throw unauthorized(auth, req, reply, 'invalid username or password');
      }
      user = u;
    } else if (grant === 'refresh_token') {
      const sub = await auth.issuer.verifyRefresh(form.get('refresh_token') ?? '');
      if (sub === undefined || !(await auth.htpasswd.users()).includes(sub)) throw unauthorized(auth, req, reply, 'invalid or expired refresh token');
      user = sub;
    } else {
      throw new OciError('UNSUPPORTED', `grant_type must be password or refresh_token`, { status: 400 });
    }
    const scopes = (form.getAll('scope') ?? []).flatMap((s) => s.split(' '));
    return tokenReply(auth, reply, user, scopesOf(scopes), grant === 'refresh_token' || form.get('access_type') === 'offline');
  });
}

function scopesOf(v: string | string[] | undefined): AccessEntry[] {
  const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return list.flatMap((s) => s.split(' ')).map(parseScope).filter((e): e is AccessEntry => e !== undefined);
}

async function tokenReply(auth: Authenticator, reply: FastifyReply, user: string | undefined, requested: AccessEntry[], refresh: boolean): Promise<FastifyReply> {
  const access = auth.grant(user, requested);
  const token = await auth.issuer.issueAccess(user, access);
  const body: Record<string, unknown> = {
    token,
    access_token: token,
    expires_in: auth.issuer.expiresIn,
    issued_at: new Date().toISOString(),
    scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
  };
  if (refresh && user !== undefined) body.refresh_token = await auth.issuer.issueRefresh(user);
  return reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));
}

async function readForm(req: FastifyRequest): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req.raw as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > 65536) throw new OciError('SIZE_INVALID', 'token request body over 64KiB', { status: 413 });
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] ?? '').includes('json')) {
    const o = JSON.parse(text) as Record<string, unknown>;
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (typeof v === 'string') p.append(k, v);
    return p;
  }
  return new URLSearchParams(text);
}
