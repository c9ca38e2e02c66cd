import { Transform, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  OciError,
  MANIFEST_MEDIA_TYPES,
  isDigest,
  isOciError,
  parseManifestRef,
  type Descriptor,
  type Digest,
} from '../../spec/index.js';
import type { RegistryStore } from '../store/index.js';
import { paths } from '../store/index.js';
import { BlobFill } from './fill.js';
import type { ProxyMetrics } from './metrics.js';
import { MARKED_DOWN, type Upstream } from './upstream.js';
import { UPSTREAM_MARKER } from './prune.js';
import { saveCachedManifest } from './load.js';

/** A proxied repository: the upstream, the name there, and the repository that caches it here. */
export interface ProxyTarget {
  upstream: Upstream;
  /** The repository's name at the upstream, e.g. `library/alpine`. */
  remote: string;
  /** The repository's name in the local store: `<namespace>/<remote>`. */
  local: string;
}

export interface CachedManifest {
  digest: Digest;
  /** Set when the cache answered because the upstream could not: the `Warning` header's value. */
  warning?: string;
}

export interface ProxyCacheOptions {
  /** The FsDriver's root: blob fills are staged in its `_tmp/`. */
  root: string;
  fsync: boolean;
  directIO: boolean;
  metrics: ProxyMetrics;
  log: Logger;
  /** Every blob and manifest request that reaches an upstream (tests count them). */
  onUpstream?: (t: ProxyTarget, what: string) => void;
}

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Last-access times are written to disk at most this often per image. */
const ACCESS_RESOLUTION_MS = 60_000;

function staleWarning(t: ProxyTarget, err: unknown): string {
  const why = ((err as Error)?.message ?? String(err)).replace(/["\\]/g, "'").slice(0, 200);
  return `111 - "Revalidation failed: upstream ${t.upstream.namespace} (${t.upstream.host}) unavailable; serving cached content: ${why}"`;
}

/** Failures that mean "the upstream did not answer", as opposed to an answer we must relay. */
function isUpstreamDown(err: unknown): boolean {
  if (!isOciError(err)) return true;
  return err.code === 'UNAVAILABLE' || err.code === 'TOOMANYREQUESTS' || err.code === 'INTERNAL' || err.code === 'UNAUTHORIZED' || err.code === 'DENIED' || err.status >= 500;
}

/**
 * The pull-through logic over the registry's own store. Cached content lives in ordinary
 * repositories named `<namespace>/<repo>` (blobs shared with everything else, and seen by gc);
 * digests are cached for good, tags are trusted for the upstream's TTL (the tag file's mtime is
 * the time of the last validation), then revalidated with a conditional HEAD. Concurrent misses
 * for one manifest, one tag or one blob share one upstream request.
 */
export class ProxyCache {
  private readonly fills = new Map<string, BlobFill>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly touched = new Map<string, number>();
  private readonly marked = new Set<string>();

  constructor(
    readonly store: RegistryStore,
    private readonly opts: ProxyCacheOptions,
  ) {}

  private get driver(): RegistryStore['driver'] {
    return this.store.driver;
  }

  /** Runs `fn` once for all concurrent callers with the same key. */
  private once<T>(key: string, fn: () => Promise<T>, onJoin?: () => void): Promise<T> {
    const p = this.pending.get(key) as Promise<T> | undefined;
    if (p) {
      onJoin?.();
      return p;
    }
    const mine = fn().finally(() => this.pending.delete(key));
    this.pending.set(key, mine);
    return mine;
  }

  /** Counts a request about to go upstream; throws UNAVAILABLE while the upstream is marked down. */
  private upstreamCall(t: ProxyTarget, kind: string): void {
    t.upstream.assertAvailable();
    this.opts.metrics.upstreamRequests.labels(t.upstream.namespace, kind).inc();
    this.opts.onUpstream?.(t, kind);
  }

  /** Counts an upstream failure (an answer of "not found" is none) and rethrows it. */
  private fail(t: ProxyTarget, kind: string, err: unknown): never {
    if (!isOciError(err) || !['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN', 'NOT_FOUND'].includes(err.code)) this.opts.metrics.errors.labels(t.upstream.namespace, kind).inc();
    throw err;
  }

  /** Records that an image was pulled (the manifest link's mtime), for `cache prune` by access. */
  private async noteAccess(local: string, digest: Digest): Promise<void> {
    const key = `${local}@${digest}`;
    const now = Date.now();
    if ((this.touched.get(key) ?? 0) > now - ACCESS_RESOLUTION_MS) return;
    this.touched.set(key, now);
    if (this.touched.size > 100_000) this.touched.clear();
    await this.driver.touch(paths.manifestLink(local, digest));
  }

  // ---- manifests

  /** Makes sure the manifest `reference` is cached and current; returns its digest. */
  async manifest(t: ProxyTarget, reference: string): Promise<CachedManifest> {
    const ns = t.upstream.namespace;
    const ref = parseManifestRef(reference);
    if (ref.digest) {
      if (await this.driver.stat(paths.manifestLink(t.local, ref.digest))) {
        this.opts.metrics.hits.labels(ns, 'manifest').inc();
        await this.noteAccess(t.local, ref.digest);
        return { digest: ref.digest };
      }
      if (t.upstream.offline) throw new OciError('MANIFEST_UNKNOWN', `manifest ${ref.digest} is not cached for ${t.local}, and ${ns} is offline`);
      this.opts.metrics.misses.labels(ns, 'manifest').inc();
      const digest = await this.once(`m ${t.local}@${ref.digest}`, () => this.fetchManifest(t, ref.digest), () => this.opts.metrics.coalesced.labels(ns, 'manifest').inc());
      return { digest };
    }
    const tag = ref.tag;
    const tagPath = paths.tag(t.local, tag);
    const [st, raw] = await Promise.all([this.driver.stat(tagPath), this.driver.get(tagPath)]);
    const cached = raw?.toString('utf8');
    const have = cached !== undefined && isDigest(cached) && (await this.driver.stat(paths.manifestLink(t.local, cached))) !== undefined ? cached : undefined;
    const fresh = have !== undefined && st !== undefined && Date.now() - st.mtimeMs < t.upstream.ttl && !t.upstream.alwaysRevalidates(tag);
    if (have && (fresh || t.upstream.offline)) {
      this.opts.metrics.hits.labels(ns, 'manifest').inc();
      await this.noteAccess(t.local, have);
      return { digest: have };
    }
    if (t.upstream.offline) throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not cached for ${t.local}, and ${ns} is offline`, { detail: { tag } });
    if (!have) this.opts.metrics.misses.labels(ns, 'manifest').inc();
    return this.once(
      `t ${t.local}:${tag}`,
      () => (have ? this.revalidate(t, tag, have) : this.fetchTag(t, tag)),
      () => this.opts.metrics.coalesced.labels(ns, have ? 'revalidate' : 'manifest').inc(),
    );
  }

  private async fetchManifest(t: ProxyTarget, reference: string): Promise<Digest> {
    this.upstreamCall(t, 'manifest');
    let got: { desc: Descriptor; body: Buffer };
    try {
      got = await t.upstream.repository(t.remote).fetchReference(reference, { signal: AbortSignal.timeout(t.upstream.timeout) });
      t.upstream.succeeded();
    } catch (err) {
      const e = isOciError(err) ? err : new OciError('UNAVAILABLE', `upstream ${t.upstream.namespace} did not answer for ${reference}: ${(err as Error).message}`, { cause: err });
      if (isUpstreamDown(e)) t.upstream.failed();
      else t.upstream.succeeded();
      this.fail(t, 'manifest', e);
    }
    this.opts.metrics.upstreamBytes.labels(t.upstream.namespace).inc(got.body.length);
    try {
      await this.markNamespace(t.upstream.namespace, t.upstream.url.origin);
      await this.saveManifest(t.local, got.desc, got.body);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new OciError('UNAVAILABLE', `cannot cache manifest ${got.desc.digest} of ${t.local}: ${code === 'ENOSPC' ? 'the cache disk is full' : (err as Error).message}`, { cause: err });
    }
    return got.desc.digest;
  }

  private async fetchTag(t: ProxyTarget, tag: string): Promise<CachedManifest> {
    const digest = await this.fetchManifest(t, tag);
    await this.driver.put(paths.tag(t.local, tag), digest);
    return { digest };
  }

  /** A conditional HEAD: an unchanged tag only has its validation time refreshed. */
  private async revalidate(t: ProxyTarget, tag: string, have: Digest): Promise<CachedManifest> {
    const ns = t.upstream.namespace;
    const u = t.upstream;
    let status: number;
    let digest: string | undefined;
    try {
      this.upstreamCall(t, 'revalidate');
      const res = await u.transport.send({
        signal: AbortSignal.timeout(u.timeout),
        method: 'HEAD',
        url: new URL(`${u.transport.origin(u.host)}/v2/${u.upstreamName(t.remote)}/manifests/${tag}`),
        host: u.host,
        scopes: [`repository:${u.upstreamName(t.remote)}:pull`],
        headers: { accept: MANIFEST_ACCEPT, 'if-none-match': `"${have}"` },
      });
      await res.body.dump();
      status = res.status;
      digest = res.headers['docker-content-digest'];
      if (status !== 200 && status !== 304 && status !== 404) throw new OciError(status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE', `HEAD ${tag}: HTTP ${status}`);
      u.succeeded();
    } catch (err) {
      if (!(isOciError(err) && err.detail === MARKED_DOWN)) u.failed();
      this.opts.metrics.revalidations.labels(ns, 'failed').inc();
      this.opts.metrics.errors.labels(ns, 'revalidate').inc();
      this.opts.metrics.stale.labels(ns).inc();
      this.opts.log.warn({ namespace: ns, repo: t.remote, tag, err: (err as Error).message }, 'upstream unavailable; serving the cached tag');
      return { digest: have, warning: staleWarning(t, err) };
    }
    if (status === 404) {
      this.opts.metrics.revalidations.labels(ns, 'gone').inc();
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} no longer exists upstream at ${u.host}/${u.upstreamName(t.remote)}`, { detail: { tag } });
    }
    if (status === 304 || digest === have) {
      this.opts.metrics.revalidations.labels(ns, 'unchanged').inc();
      this.opts.metrics.hits.labels(ns, 'manifest').inc();
      if (!(await this.driver.touch(paths.tag(t.local, tag)))) await this.driver.put(paths.tag(t.local, tag), have);
      await this.noteAccess(t.local, have);
      return { digest: have };
    }
    this.opts.metrics.revalidations.labels(ns, 'changed').inc();
    this.opts.metrics.misses.labels(ns, 'manifest').inc();
    try {
      const next = digest && isDigest(digest) && (await this.driver.stat(paths.manifestLink(t.local, digest))) ? digest : await this.fetchManifest(t, digest && isDigest(digest) ? digest : tag);
      await this.driver.put(paths.tag(t.local, tag), next);
      return { digest: next };
    } catch (err) {
      if (!isUpstreamDown(err)) throw err;
      this.opts.metrics.stale.labels(ns).inc();
      return { digest: have, warning: staleWarning(t, err) };
    }
  }

  /** Marks `repositories/<namespace>` as a cache, for `wharf cache ls|prune` without the config. */
  async markNamespace(namespace: string, url: string): Promise<void> {
    if (this.marked.has(namespace)) return;
    await this.driver.put(`${paths.repo(namespace)}/${UPSTREAM_MARKER}`, `${url}\n`);
    this.marked.add(namespace);
  }

  /** Stores a manifest fetched from upstream: its bytes, the link with its media type, its referrer entry. */
  async saveManifest(local: string, desc: Descriptor, body: Buffer): Promise<void> {
    await saveCachedManifest(this.driver, local, desc, body);
  }

  // ---- blobs

  /** A manifest served by digest straight from the cached repository: a hit, and an access. */
  async cachedManifestHit(t: ProxyTarget, digest: Digest): Promise<void> {
    this.opts.metrics.hits.labels(t.upstream.namespace, 'manifest').inc();
    await this.noteAccess(t.local, digest);
  }

  countHit(t: ProxyTarget, kind: 'blob' | 'manifest'): void {
    this.opts.metrics.hits.labels(t.upstream.namespace, kind).inc();
  }

  /**
   * Whether the blob is cached for this repository. A blob the store holds for another repository
   * is linked only once the upstream confirms that this repository has it: a digest alone must not
   * open a private repository's content to whoever may read a cached namespace. The bytes are
   * then not fetched again (content is shared by digest).
   */
  async hasBlob(t: ProxyTarget, digest: Digest): Promise<boolean> {
    const [link, data] = await Promise.all([this.driver.stat(paths.blobLink(t.local, digest)), this.driver.stat(paths.blobData(digest))]);
    if (!data) return false;
    if (!link) {
      if (t.upstream.offline) return false;
      try {
        if ((await this.statUpstreamBlob(t, digest)) !== data.size) return false;
      } catch (err) {
        if (isOciError(err, 'BLOB_UNKNOWN')) return false;
        throw err;
      }
      await this.store.linkBlob(t.local, digest);
    }
    this.opts.metrics.hits.labels(t.upstream.namespace, 'blob').inc();
    return true;
  }

  /** The fill under way for `digest`, if any. */
  fillOf(digest: Digest): BlobFill | undefined {
    const f = this.fills.get(digest);
    return f && !f.settled ? f : undefined;
  }

  /**
   * The fill that brings `digest` into the cache: the one under way, or a new one. Exactly one
   * upstream GET per digest is in flight, whatever the number of callers. Undefined when the blob
   * reached the store meanwhile.
   */
  async fill(t: ProxyTarget, digest: Digest): Promise<BlobFill | undefined> {
    const ns = t.upstream.namespace;
    if (t.upstream.offline) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not cached, and ${ns} is offline`, { detail: { digest } });
    const running = this.fillOf(digest);
    if (running) {
      this.opts.metrics.coalesced.labels(ns, 'blob').inc();
      this.linkWhenDone(t, running);
      return running;
    }
    this.opts.metrics.misses.labels(ns, 'blob').inc();
    const f = await this.once(`b ${digest}`, () => this.startFill(t, digest), () => this.opts.metrics.coalesced.labels(ns, 'blob').inc());
    if (f) this.linkWhenDone(t, f);
    return f;
  }

  private linkWhenDone(t: ProxyTarget, f: BlobFill): void {
    f.done.then(() => this.store.linkBlob(t.local, f.digest)).catch(() => undefined);
  }

  private async startFill(t: ProxyTarget, digest: Digest): Promise<BlobFill | undefined> {
    // A fill that finished between the caller's look at the store and now: nothing to fetch.
    if (await this.driver.stat(paths.blobData(digest))) return undefined;
    const u = t.upstream;
    const ns = u.namespace;
    const name = u.upstreamName(t.remote);
    this.upstreamCall(t, 'blob');
    let res;
    try {
      res = await u.transport.send({
        method: 'GET',
        url: new URL(`${u.transport.origin(u.host)}/v2/${name}/blobs/${digest}`),
        host: u.host,
        scopes: [`repository:${name}:pull`],
      });
    } catch (err) {
      u.failed();
      this.fail(t, 'blob', err);
    }
    if (res.status >= 500 || res.status === 429) u.failed();
    else u.succeeded();
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError('BLOB_UNKNOWN', `blob ${digest} is unknown to ${u.host}/${name}`, { detail: { digest } });
    }
    if (res.status !== 200) {
      await res.body.dump();
      this.fail(t, 'blob', new OciError(res.status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE', `upstream ${u.host} answered HTTP ${res.status} for blob ${digest}`));
    }
    const len = res.headers['content-length'];
    const size = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    const metrics = this.opts.metrics;
    let f: BlobFill;
    try {
      f = await BlobFill.start({
        root: this.opts.root,
        driver: this.driver,
        digest,
        size,
        body: res.body as AsyncIterable<Buffer>,
        fsync: this.opts.fsync,
        directIO: this.opts.directIO,
        onBytes: (n) => metrics.upstreamBytes.labels(ns).inc(n),
        onStored: () => this.store.storedVerified(digest),
      });
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    this.fills.set(digest, f);
    metrics.inflight.labels(ns).inc();
    f.done.then(
      () => undefined,
      (err: unknown) => {
        metrics.errors.labels(ns, 'blob').inc();
        this.opts.log.warn({ namespace: ns, digest, err: (err as Error).message }, 'blob fill failed; nothing cached');
      },
    ).finally(() => {
      metrics.inflight.labels(ns).dec();
      if (this.fills.get(digest) === f) this.fills.delete(digest);
    });
    return f;
  }

  /**
   * A byte range straight from the upstream, for a Range request far ahead of what the fill has
   * written (a lazy puller reading a TOC at the end of a large blob must not wait for the whole
   * prefix). Not cached, and, like any range, not verifiable; undefined when the upstream does not
   * answer that exact range.
   */
  async upstreamRange(t: ProxyTarget, digest: Digest, range: { start: number; end: number }): Promise<Readable | undefined> {
    const u = t.upstream;
    const name = u.upstreamName(t.remote);
    let res;
    try {
      this.upstreamCall(t, 'blob-range');
      res = await u.transport.send({
        method: 'GET',
        url: new URL(`${u.transport.origin(u.host)}/v2/${name}/blobs/${digest}`),
        host: u.host,
        scopes: [`repository:${name}:pull`],
        headers: { range: `bytes=${range.start}-${range.end}` },
      });
    } catch {
      return undefined;
    }
    const cr = res.headers['content-range'];
    if (res.status !== 206 || cr === undefined || !cr.startsWith(`bytes ${range.start}-${range.end}/`)) {
      res.body.destroy();
      return undefined;
    }
    const bytes = this.opts.metrics.upstreamBytes.labels(u.namespace);
    const body: Readable = res.body;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes.inc(chunk.length);
        cb(null, chunk);
      },
    });
    body.on('error', (err) => counted.destroy(err));
    counted.on('close', () => body.destroy());
    return body.pipe(counted);
  }

  /** A blob's size from the upstream (HEAD on a miss); nothing is cached. */
  async statUpstreamBlob(t: ProxyTarget, digest: Digest): Promise<number> {
    if (t.upstream.offline) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not cached, and ${t.upstream.namespace} is offline`, { detail: { digest } });
    return this.once(`h ${digest}`, async () => {
      this.upstreamCall(t, 'blob-head');
      try {
        return (await t.upstream.repository(t.remote).statBlob(digest)).size;
      } catch (err) {
        if (isOciError(err, 'BLOB_UNKNOWN')) throw err;
        this.fail(t, 'blob', err);
      }
    });
  }
}
