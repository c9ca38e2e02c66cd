import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, MediaType, asDigest, assertName, isDigest, isOciError, parseRangeHeader, type ByteRange } from '../../spec/index.js';
import { handleV2 } from '../http/v2.js';
import { routeOf, type Route } from '../http/route.js';
import { sendBody } from '../http/send.js';
import type { ProxyCache, ProxyTarget } from './cache.js';
import { MARKED_DOWN, type Upstream } from './upstream.js';

/** A range starting this far past what a fill has written is fetched from the upstream on its own. */
const RANGE_AHEAD = 4 << 20;

export interface ProxyRouterOptions {
  /** Unqualified names not held locally are pulled through this namespace. */
  defaultNamespace?: string;
  pageSize: number;
}

/** What the HTTP app asks before it serves a /v2 request from its own store. */
export interface V2Interceptor {
  /** True when the request was answered here. */
  handle(route: Route, req: FastifyRequest, reply: FastifyReply): Promise<boolean>;
}

/**
 * Sends /v2 requests for proxied repositories through the cache. A repository is proxied when
 * its first component is an upstream's namespace (`/v2/docker.io/library/alpine/...`), when the
 * request names the upstream with containerd's mirror parameter (`?ns=docker.io`), or, for reads of
 * a name the registry does not hold, when a default namespace is configured. Once the cache holds
 * the content, the ordinary /v2 handler serves it from the cached repository, so ranges, HEAD and
 * errors behave exactly as for local repositories.
 */
export class ProxyRouter implements V2Interceptor {
  private readonly byNamespace = new Map<string, Upstream>();

  constructor(
    readonly cache: ProxyCache,
    readonly upstreams: Upstream[],
    private readonly opts: ProxyRouterOptions,
  ) {
    for (const u of upstreams) this.byNamespace.set(u.namespace, u);
  }

  private target(u: Upstream, name: string): ProxyTarget {
    const remote = u.upstreamName(name);
    return { upstream: u, remote: assertName(remote), local: assertName(`${u.namespace}/${remote}`) };
  }

  /** The proxied repository a request is for, or undefined when it is a local one. */
  async resolve(name: string, ns: string | undefined, method: string): Promise<ProxyTarget | undefined> {
    const i = name.indexOf('/');
    const byPath = i > 0 ? this.byNamespace.get(name.slice(0, i)) : undefined;
    if (byPath) return this.target(byPath, name.slice(i + 1));
    if (ns !== undefined) {
      const u = this.byNamespace.get(ns) ?? this.upstreams.find((x) => x.host === ns || x.url.hostname === ns);
      if (u) return this.target(u, name);
    }
    const def = this.opts.defaultNamespace === undefined ? undefined : this.byNamespace.get(this.opts.defaultNamespace);
    if (def && (method === 'GET' || method === 'HEAD') && !(await this.cache.store.repoExists(name))) return this.target(def, name);
    return undefined;
  }

  /**
   * An onRequest hook, installed before access control and audit: a request routed by `?ns=` or
   * by the default namespace gets the cached repository's path (`/v2/library/alpine/...?ns=docker.io`
   * becomes `/v2/docker.io/library/alpine/...`), so that rules and the audit log see the repository
   * that is actually served, whatever spelling the client used.
   */
  install(app: FastifyInstance): void {
    app.addHook('onRequest', async (req) => {
      const raw = req.raw.url ?? '/';
      const qi = raw.indexOf('?');
      const path = qi < 0 ? raw : raw.slice(0, qi);
      if (!path.startsWith('/v2/')) return;
      if (qi < 0 && this.opts.defaultNamespace === undefined) return;
      let route: Route | undefined;
      try {
        route = routeOf(path);
      } catch {
        return; // the handler answers with the same error
      }
      if (!route || route.kind === 'base' || route.kind === 'catalog') return;
      const ns = qi < 0 ? undefined : (new URLSearchParams(raw.slice(qi + 1)).get('ns') ?? undefined);
      const t = await this.resolve(route.name, ns, req.method);
      if (!t || t.local === route.name) return;
      asked.set(req, route.name);
      req.raw.url = `/v2/${t.local}${path.slice(4 + route.name.length)}${qi < 0 ? '' : raw.slice(qi)}`;
    });
  }

  async handle(route: Route, req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    if (route.kind === 'base' || route.kind === 'catalog') return false;
    const q = req.query as Record<string, string | undefined>;
    const t = await this.resolve(route.name, q.ns, req.method);
    if (!t) return false;
    reply.header('oci-namespace', t.upstream.namespace);
    const local = (r: Route): Promise<void> => handleV2(this.cache.store, r, req, reply, { pageSize: this.opts.pageSize });
    const readOnly = (): never => {
      throw new OciError('DENIED', `${t.upstream.namespace} is a read-only cache of ${t.upstream.url.origin}; push to a repository outside it`);
    };
    switch (route.kind) {
      case 'upload':
        return readOnly();
      case 'manifest': {
        if (req.method !== 'GET' && req.method !== 'HEAD') return readOnly();
        if (isDigest(route.reference)) {
          // By digest, what is cached is served as is: try the cached repository first.
          try {
            await local({ kind: 'manifest', name: t.local, reference: route.reference });
            await this.cache.cachedManifestHit(t, route.reference);
            return true;
          } catch (err) {
            if (!isOciError(err, 'MANIFEST_UNKNOWN')) throw err;
          }
        }
        const m = await this.cache.manifest(t, route.reference);
        if (m.warning) reply.header('warning', m.warning);
        await local({ kind: 'manifest', name: t.local, reference: m.digest });
        return true;
      }
      case 'blob':
        if (req.method !== 'GET' && req.method !== 'HEAD') return readOnly();
        await this.blob(t, route, req, reply, local);
        return true;
      case 'tags':
        await this.tags(t, req, reply, q, local);
        return true;
      case 'referrers':
        await this.referrers(t, route, req, reply, q, local);
        return true;
    }
  }

  private async blob(t: ProxyTarget, route: Extract<Route, { kind: 'blob' }>, req: FastifyRequest, reply: FastifyReply, local: (r: Route) => Promise<void>): Promise<void> {
    const digest = asDigest(route.digest);
    const cached = { kind: 'blob' as const, name: t.local, digest };
    // The common case first: the cached repository serves it (nothing sent yet if it cannot).
    try {
      await local(cached);
      this.cache.countHit(t, 'blob');
      return;
    } catch (err) {
      if (!isOciError(err, 'BLOB_UNKNOWN')) throw err;
    }
    if (await this.cache.hasBlob(t, digest)) return local(cached);
    const head = req.method === 'HEAD';
    const fill = this.cache.fillOf(digest) ?? (head ? undefined : await this.cache.fill(t, digest));
    if (!fill && !head) return local(cached); // it arrived meanwhile
    const size = fill?.size ?? (fill ? undefined : await this.cache.statUpstreamBlob(t, digest));
    reply.headers({ 'docker-content-digest': digest, 'accept-ranges': 'bytes', etag: `"${digest}"` });
    if (head) {
      if (size === undefined) {
        await fill!.done;
        return local(cached);
      }
      reply.headers({ 'content-type': MediaType.OctetStream, 'content-length': size });
      return void reply.send();
    }
    let ranges: ByteRange[] | undefined;
    if (size !== undefined && req.headers.range !== undefined) {
      try {
        ranges = parseRangeHeader(req.headers.range, size);
      } catch (err) {
        if (err instanceof OciError) reply.header('content-range', `bytes */${size}`);
        throw err;
      }
    }
    // No announced size, or several ranges (a multipart body needs its length): wait for the blob.
    if (size === undefined || (ranges && ranges.length > 1)) {
      await fill!.done;
      return local(cached);
    }
    if (!ranges) {
      reply.headers({ 'content-type': MediaType.OctetStream, 'content-length': size });
      return sendBody(reply, (res) => fill!.sendTo(res));
    }
    const r = ranges[0]!;
    // Far ahead of the fill: ask the upstream for just that range rather than wait for the prefix.
    const direct = r.start > fill!.bytesWritten + RANGE_AHEAD ? await this.cache.upstreamRange(t, digest, r) : undefined;
    reply.code(206).headers({ 'content-type': MediaType.OctetStream, 'content-length': r.end - r.start + 1, 'content-range': `bytes ${r.start}-${r.end}/${size}` });
    return direct ? void reply.send(direct) : sendBody(reply, (res) => fill!.sendTo(res, r));
  }

  private async tags(t: ProxyTarget, req: FastifyRequest, reply: FastifyReply, q: Record<string, string | undefined>, local: (r: Route) => Promise<void>): Promise<void> {
    if (req.method !== 'GET') throw new OciError('UNSUPPORTED', `method ${req.method} is not allowed here`);
    if (!t.upstream.offline) {
      try {
        t.upstream.assertAvailable();
        const opts: { n?: number; last?: string; signal: AbortSignal } = { signal: AbortSignal.timeout(t.upstream.timeout) };
        if (q.n !== undefined && /^\d{1,9}$/.test(q.n)) opts.n = Math.min(Number(q.n), this.opts.pageSize);
        if (q.last !== undefined) opts.last = q.last;
        const tags = await t.upstream.repository(t.remote).tags(opts);
        t.upstream.succeeded();
        return void reply.type('application/json').send(JSON.stringify({ name: route(req), tags }));
      } catch (err) {
        if (err instanceof OciError && err.code === 'NAME_UNKNOWN') throw err;
        if (!(err instanceof OciError && err.detail === MARKED_DOWN)) t.upstream.failed();
        reply.header('warning', `111 - "upstream ${t.upstream.namespace} unavailable; listing cached tags only"`);
      }
    }
    return local({ kind: 'tags', name: t.local });
  }

  private async referrers(
    t: ProxyTarget,
    r: Extract<Route, { kind: 'referrers' }>,
    req: FastifyRequest,
    reply: FastifyReply,
    q: Record<string, string | undefined>,
    local: (r: Route) => Promise<void>,
  ): Promise<void> {
    if (req.method !== 'GET') throw new OciError('UNSUPPORTED', `method ${req.method} is not allowed here`);
    const digest = asDigest(r.digest);
    if (!t.upstream.offline) {
      try {
        t.upstream.assertAvailable();
        const opts: { artifactType?: string; signal: AbortSignal } = { signal: AbortSignal.timeout(t.upstream.timeout) };
        if (q.artifactType !== undefined) opts.artifactType = q.artifactType;
        const list = await t.upstream.repository(t.remote).referrers({ mediaType: MediaType.ImageManifest, digest, size: 0 }, opts);
        t.upstream.succeeded();
        if (q.artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
        return void reply.type(MediaType.ImageIndex).send(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: list }));
      } catch (err) {
        if (!(err instanceof OciError && err.detail === MARKED_DOWN)) t.upstream.failed();
        reply.header('warning', `111 - "upstream ${t.upstream.namespace} unavailable; listing cached referrers only"`);
      }
    }
    return local({ kind: 'referrers', name: t.local, digest });
  }
}

/** Names as the client spelled them, for requests whose path install() rewrote. */
const asked = new WeakMap<FastifyRequest, string>();

/** The repository name as the client asked for it (for the tags list's `name`). */
function route(req: FastifyRequest): string {
  const raw = (req.raw.url ?? '').split('?')[0]!;
  return asked.get(req) ?? raw.replace(/^\/v2\//, '').replace(/\/tags\/list$/, '');
}
