import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { OciError, MANIFEST_MEDIA_TYPES, MediaType, assertName, isDigest, isOciError, parseManifestRef, type ByteRange, type Descriptor, type Digest, isWharfError, isKnownError } from '../../spec/index.js';
import type { AppendOptions, BlobHandle, Listed, Page, PutManifestResult, RegistryBackend, RegistryStore, StoredManifest, UploadStatus } from '../store/index.js';
import { BlobFill } from './fill.js';
import { leaseOrFollow, type FillLeases } from './leases.js';
import type { ProxyMetrics } from './metrics.js';
import { UpstreamDown, isUpstreamDown, staleWarning, type Upstream } from './upstream.js';

/** A proxied repository: the upstream, the name there, and the repository that caches it here. */
export interface ProxyTarget {
  upstream: Upstream;
  /** The repository's name at the upstream, e.g. `library/alpine`. */
  remote: string;
  /** The repository's name in the local store: `<namespace>/<remote>`. */
  local: string;
}

export interface PullThroughOptions {
  metrics: ProxyMetrics;
  log: Logger;
  /** Unqualified names not held locally are read through this namespace. */
  defaultNamespace?: string;
  /** Every blob and manifest request that reaches an upstream (tests count them). */
  onUpstream?: (t: ProxyTarget, what: string) => void;
  /** Replicas: who fetches a blob that several miss at once (the database's leases). */
  leases?: FillLeases;
}


const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Last-access times are written at most this often per image. */
const ACCESS_RESOLUTION_MS = 60_000;
/** A range starting this far past what a fill has written is fetched from the upstream on its own. */
const RANGE_AHEAD = 4 << 20;

/** Answers of an upstream that are no failure of it: the content is simply not there. */
const NOT_THERE = new Set(['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN']);

/**
 * The pull-through cache, as a decorator of the registry store: requests for repositories under
 * an upstream's namespace (`docker.io/library/alpine`) are answered from the cached repository of
 * that name, which is filled from the upstream on a miss; everything else goes to the store as it
 * is. Cached content lives in ordinary repositories (blobs shared with everything else, and seen
 * by gc). Digests are cached for good; tags are trusted for the upstream's TTL (the time of the
 * last check is the tag's), then revalidated with a conditional HEAD. Concurrent misses for one
 * manifest, tag or blob share one upstream request; a blob GET that misses is served from the
 * fill while it arrives.
 */
export class PullThrough implements RegistryBackend {
  private readonly byNamespace = new Map<string, Upstream>();
  private readonly fills = new Map<string, BlobFill>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly touched = new Map<string, number>();
  private readonly marked = new Set<string>();

  constructor(
    readonly store: RegistryStore,
    readonly upstreams: Upstream[],
    private readonly opts: PullThroughOptions,
  ) {
    for (const u of upstreams) this.byNamespace.set(u.namespace, u);
  }

  get maxManifestSize(): number {
    return this.store.maxManifestSize;
  }

  // ---- names

  private targetOf(u: Upstream, name: string): ProxyTarget {
    const remote = assertName(u.upstreamName(name));
    return { upstream: u, remote, local: assertName(`${u.namespace}/${remote}`) };
  }

  /** The proxied repository of a (mapped) name, or undefined when it is a local one. */
  private target(name: string): ProxyTarget | undefined {
    const i = name.indexOf('/');
    const u = i > 0 ? this.byNamespace.get(name.slice(0, i)) : undefined;
    return u ? this.targetOf(u, name.slice(i + 1)) : undefined;
  }

  /**
   * A name under an upstream's namespace, or one routed to an upstream by containerd's mirror
   * parameter (`?ns=docker.io`), or, for reads of a name the registry does not hold, by the
   * default namespace, stands for its cached repository (`docker.io/library/alpine`).
   */
  async mapName(name: string, ns: string | undefined, read: boolean): Promise<string> {
    const byPath = this.target(name);
    if (byPath) return byPath.local;
    if (ns !== undefined) {
      const u = this.byNamespace.get(ns) ?? this.upstreams.find((x) => x.host === ns || x.url.hostname === ns);
      if (u) return this.targetOf(u, name).local;
    }
    const def = this.opts.defaultNamespace === undefined ? undefined : this.byNamespace.get(this.opts.defaultNamespace);
    if (def && read && !(await this.store.repoExists(name))) return this.targetOf(def, name).local;
    return name;
  }

  namespaceOf(name: string): string | undefined {
    return this.target(name)?.upstream.namespace;
  }

  private readOnly(t: ProxyTarget): never {
    throw new OciError('DENIED', `${t.upstream.namespace} is a read-only cache of ${t.upstream.url.origin}; push to a repository outside it`);
  }

  // ---- bookkeeping

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

  /** Counts a request about to go upstream; throws UpstreamDown while the upstream is marked down. */
  private upstreamCall(t: ProxyTarget, kind: string): void {
    t.upstream.assertAvailable();
    this.opts.metrics.upstreamRequests.labels(t.upstream.namespace, kind).inc();
    this.opts.onUpstream?.(t, kind);
  }

  /** Counts an upstream failure (an answer of "not found" is none) and rethrows it. */
  private fail(t: ProxyTarget, kind: string, err: unknown): never {
    const notThere = isOciError(err) ? NOT_THERE.has(err.code) : isWharfError(err, 'NOT_FOUND');
    if (!notThere) this.opts.metrics.errors.labels(t.upstream.namespace, kind).inc();
    throw err;
  }

  private hit(t: ProxyTarget, kind: 'blob' | 'manifest'): void {
    this.opts.metrics.hits.labels(t.upstream.namespace, kind).inc();
  }

  /** Records that an image was pulled, for `cache prune` by access; at most once a minute per image. */
  private async noteAccess(t: ProxyTarget, digest: Digest): Promise<void> {
    const key = `${t.local}@${digest}`;
    const now = Date.now();
    if ((this.touched.get(key) ?? 0) > now - ACCESS_RESOLUTION_MS) return;
    this.touched.set(key, now);
    if (this.touched.size > 100_000) this.touched.clear();
    await this.store.noteAccess(t.local, digest);
  }

  private async markNamespace(u: Upstream): Promise<void> {
    if (this.marked.has(u.namespace)) return;
    await this.store.markCacheNamespace(u.namespace, u.url.origin);
    this.marked.add(u.namespace);
  }

  // ---- manifests

  async getManifest(name: string, reference: string): Promise<StoredManifest> {
    const t = this.target(name);
    if (!t) return this.store.getManifest(name, reference);
    const ref = parseManifestRef(reference);
    // By digest, what is cached is served as it is.
    if (ref.digest && (await this.store.hasManifest(t.local, ref.digest))) {
      this.hit(t, 'manifest');
      await this.noteAccess(t, ref.digest);
      return this.store.getManifest(t.local, ref.digest);
    }
    const m = await this.cacheManifest(t, reference);
    const got = await this.store.getManifest(t.local, m.digest);
    return m.warning ? { ...got, warning: m.warning } : got;
  }

  /** Makes sure the manifest `reference` is cached and current; returns its digest. */
  private async cacheManifest(t: ProxyTarget, reference: string): Promise<{ digest: Digest; warning?: string }> {
    const ns = t.upstream.namespace;
    const ref = parseManifestRef(reference);
    if (ref.digest) {
      if (t.upstream.offline) throw new OciError('MANIFEST_UNKNOWN', `manifest ${ref.digest} is not cached for ${t.local}, and ${ns} is offline`);
      this.opts.metrics.misses.labels(ns, 'manifest').inc();
      const d = ref.digest;
      const digest = await this.once(
        `m ${t.local}@${d}`,
        // A fetch that ended between the caller's look at the store and now: nothing to fetch.
        async () => ((await this.store.hasManifest(t.local, d)) ? d : this.fetchManifest(t, d)),
        () => this.opts.metrics.coalesced.labels(ns, 'manifest').inc(),
      );
      return { digest };
    }
    const tag = ref.tag;
    const cached = await this.store.tagState(t.local, tag);
    const fresh = cached !== undefined && Date.now() - cached.checkedAt < t.upstream.ttl && !t.upstream.alwaysRevalidates(tag);
    if (cached && (fresh || t.upstream.offline)) {
      this.hit(t, 'manifest');
      await this.noteAccess(t, cached.digest);
      return { digest: cached.digest };
    }
    if (t.upstream.offline) throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not cached for ${t.local}, and ${ns} is offline`, { detail: { tag } });
    if (!cached) this.opts.metrics.misses.labels(ns, 'manifest').inc();
    return this.once(
      `t ${t.local}:${tag}`,
      async () => {
        // A fetch or check that ended between the look at the store above and now (the look is a
        // round trip on an object store): its result is fresh, nothing to ask the upstream.
        const now = await this.store.tagState(t.local, tag);
        if (now && now.checkedAt !== cached?.checkedAt && Date.now() - now.checkedAt < t.upstream.ttl && !t.upstream.alwaysRevalidates(tag)) return { digest: now.digest };
        return cached ? this.revalidate(t, tag, cached.digest) : { digest: await this.fetchManifest(t, tag, tag) };
      },
      () => this.opts.metrics.coalesced.labels(ns, cached ? 'revalidate' : 'manifest').inc(),
    );
  }

  /** Fetches a manifest by tag or digest and stores it (tagged `tag`, if given). */
  private async fetchManifest(t: ProxyTarget, reference: string, tag?: string): Promise<Digest> {
    this.upstreamCall(t, 'manifest');
    let got: { desc: Descriptor; body: Buffer };
    try {
      got = await t.upstream.repository(t.remote).fetchReference(reference, { signal: AbortSignal.timeout(t.upstream.timeout) });
      t.upstream.succeeded();
    } catch (err) {
      const e = isKnownError(err) ? err : new OciError('UNAVAILABLE', `upstream ${t.upstream.namespace} did not answer for ${reference}: ${(err as Error).message}`, { cause: err });
      if (isUpstreamDown(e)) t.upstream.failed();
      else t.upstream.succeeded();
      this.fail(t, 'manifest', e);
    }
    this.opts.metrics.upstreamBytes.labels(t.upstream.namespace).inc(got.body.length);
    try {
      await this.markNamespace(t.upstream);
      await this.store.saveCachedManifest(t.local, got.desc, got.body, tag);
    } catch (err) {
      if (isKnownError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new OciError('UNAVAILABLE', `cannot cache manifest ${got.desc.digest} of ${t.local}: ${code === 'ENOSPC' ? 'the cache disk is full' : (err as Error).message}`, { cause: err });
    }
    return got.desc.digest;
  }

  /** A conditional HEAD: an unchanged tag only has its check time refreshed. */
  private async revalidate(t: ProxyTarget, tag: string, have: Digest): Promise<{ digest: Digest; warning?: string }> {
    const ns = t.upstream.namespace;
    const u = t.upstream;
    const m = this.opts.metrics;
    let status: number;
    let digest: string | undefined;
    try {
      this.upstreamCall(t, 'revalidate');
      ({ status, digest } = await u.headTag(t.remote, tag, have, MANIFEST_ACCEPT));
      if (status !== 200 && status !== 304 && status !== 404) throw new OciError(status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE', `HEAD ${tag}: HTTP ${status}`);
      u.succeeded();
    } catch (err) {
      if (!(err instanceof UpstreamDown)) u.failed();
      m.revalidations.labels(ns, 'failed').inc();
      m.errors.labels(ns, 'revalidate').inc();
      m.stale.labels(ns).inc();
      this.opts.log.warn({ namespace: ns, repo: t.remote, tag, err: (err as Error).message }, 'upstream unavailable; serving the cached tag');
      return { digest: have, warning: staleWarning(t, err) };
    }
    if (status === 404) {
      m.revalidations.labels(ns, 'gone').inc();
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} no longer exists upstream at ${u.host}/${t.remote}`, { detail: { tag } });
    }
    if (status === 304 || digest === have) {
      m.revalidations.labels(ns, 'unchanged').inc();
      this.hit(t, 'manifest');
      await this.store.refreshTag(t.local, tag, have);
      await this.noteAccess(t, have);
      return { digest: have };
    }
    m.revalidations.labels(ns, 'changed').inc();
    m.misses.labels(ns, 'manifest').inc();
    try {
      if (digest && isDigest(digest) && (await this.store.hasManifest(t.local, digest))) {
        await this.store.tag(t.local, digest, tag);
        return { digest };
      }
      return { digest: await this.fetchManifest(t, digest && isDigest(digest) ? digest : tag, tag) };
    } catch (err) {
      if (!isUpstreamDown(err)) throw err;
      m.stale.labels(ns).inc();
      return { digest: have, warning: staleWarning(t, err) };
    }
  }

  async putManifest(name: string, reference: string, body: Buffer, contentType: string | undefined): Promise<PutManifestResult> {
    return this.local(name).putManifest(name, reference, body, contentType);
  }

  async deleteManifest(name: string, reference: string): Promise<void> {
    return this.local(name).deleteManifest(name, reference);
  }

  // ---- blobs

  async openBlob(name: string, digest: Digest, withBody: boolean): Promise<BlobHandle> {
    const t = this.target(name);
    if (!t) return this.store.openBlob(name, digest, withBody);
    const cached = await this.cachedSize(t, digest);
    if (cached !== undefined) {
      this.hit(t, 'blob');
      return this.store.storedBlob(digest, cached);
    }
    const running = this.fillOf(digest);
    if (!withBody && !running) return this.sizeOnly(await this.statUpstreamBlob(t, digest));
    const fill = running ? (withBody ? this.join(t, running) : running) : await this.fill(t, digest);
    // It arrived meanwhile.
    if (!fill) return this.store.storedBlob(digest, await this.store.statBlob(t.local, digest));
    // No announced size: the answer needs one, so it waits for the blob.
    if (fill.size === undefined) {
      await fill.done;
      return this.store.storedBlob(digest, await this.store.statBlob(t.local, digest));
    }
    const size = fill.size;
    return {
      size,
      send: async (res, start, end) => {
        // Far ahead of the fill: ask the upstream for just that range rather than wait for the prefix.
        const direct = start > fill.bytesWritten + RANGE_AHEAD ? await this.upstreamRange(t, digest, { start, end }) : undefined;
        if (direct) await pipeline(direct, res, { end: false });
        else await fill.sendTo(res, start === 0 && end === size - 1 ? undefined : { start, end });
      },
      // Several ranges in one answer: from the stored blob, once the fill is done.
      stream: async (range) => {
        await fill.done;
        return this.store.storedBlob(digest, size).stream(range);
      },
    };
  }

  /** For a HEAD: the size, and no body to send. */
  private sizeOnly(size: number): BlobHandle {
    const none = async (): Promise<never> => {
      throw new OciError('INTERNAL', 'a HEAD answer has no body');
    };
    return { size, send: none, stream: none };
  }

  /**
   * The size of the blob if the cached repository may serve it. A blob the store holds for
   * another repository is linked only once the upstream confirms that this repository has it: a
   * digest alone must not open a private repository's content to whoever may read a cached
   * namespace. The bytes are then not fetched again (content is shared by digest).
   */
  private async cachedSize(t: ProxyTarget, digest: Digest): Promise<number | undefined> {
    const { linked, size } = await this.store.blobState(t.local, digest);
    if (size === undefined) return undefined;
    if (!linked) {
      if (t.upstream.offline) return undefined;
      try {
        if ((await this.statUpstreamBlob(t, digest)) !== size) return undefined;
      } catch (err) {
        if (isOciError(err, 'BLOB_UNKNOWN')) return undefined;
        throw err;
      }
      await this.store.linkBlob(t.local, digest);
    }
    return size;
  }

  /** Resolves when the fill of `digest` under way, if any, has ended (well or not). */
  async fillDone(digest: Digest): Promise<void> {
    await this.fillOf(digest)?.done.catch(() => undefined);
  }

  /** The fill under way for `digest`, if any. */
  private fillOf(digest: Digest): BlobFill | undefined {
    const f = this.fills.get(digest);
    return f && !f.settled ? f : undefined;
  }

  private join(t: ProxyTarget, f: BlobFill): BlobFill {
    this.opts.metrics.coalesced.labels(t.upstream.namespace, 'blob').inc();
    this.linkWhenDone(t, f);
    return f;
  }

  /**
   * The fill that brings `digest` into the cache: the one under way, or a new one. Exactly one
   * upstream GET per digest is in flight, whatever the number of callers. Undefined when the blob
   * reached the store meanwhile.
   */
  private async fill(t: ProxyTarget, digest: Digest): Promise<BlobFill | undefined> {
    const ns = t.upstream.namespace;
    if (t.upstream.offline) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not cached, and ${ns} is offline`, { detail: { digest } });
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
    if ((await this.store.blobState(t.local, digest)).size !== undefined) return undefined;
    const leases = this.opts.leases;
    const turn = leases
      ? await leaseOrFollow(leases, digest, async () => {
          if ((await this.store.blobState(t.local, digest)).size === undefined) return false;
          // The other replica links it once its fill is done, which may be a moment after the bytes.
          await this.store.linkBlob(t.local, digest);
          return true;
        })
      : { fetch: true as const };
    if (!turn.fetch) return undefined;
    const release = turn.release;
    try {
      const f = await this.fetchFill(t, digest);
      if (release) void f.done.catch(() => undefined).finally(() => void release().catch(() => undefined));
      return f;
    } catch (err) {
      await release?.().catch(() => undefined);
      throw err;
    }
  }

  private async fetchFill(t: ProxyTarget, digest: Digest): Promise<BlobFill> {
    const u = t.upstream;
    const ns = u.namespace;
    this.upstreamCall(t, 'blob');
    let res;
    try {
      res = await u.getBlob(t.remote, digest);
    } catch (err) {
      u.failed();
      this.fail(t, 'blob', err);
    }
    if (res.status >= 500 || res.status === 429) u.failed();
    else u.succeeded();
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError('BLOB_UNKNOWN', `blob ${digest} is unknown to ${u.host}/${t.remote}`, { detail: { digest } });
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
      f = await BlobFill.start({ store: this.store, digest, size, body: res.body as AsyncIterable<Buffer>, onBytes: (n) => metrics.upstreamBytes.labels(ns).inc(n) });
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    this.fills.set(digest, f);
    metrics.inflight.labels(ns).inc();
    f.done
      .then(
        () => undefined,
        (err: unknown) => {
          metrics.errors.labels(ns, 'blob').inc();
          this.opts.log.warn({ namespace: ns, digest, err: (err as Error).message }, 'blob fill failed; nothing cached');
        },
      )
      .finally(() => {
        metrics.inflight.labels(ns).dec();
        if (this.fills.get(digest) === f) this.fills.delete(digest);
      });
    return f;
  }

  /** A range straight from the upstream (see Upstream.getRange); counted, never cached. */
  private async upstreamRange(t: ProxyTarget, digest: Digest, range: ByteRange): Promise<Readable | undefined> {
    try {
      this.upstreamCall(t, 'blob-range');
    } catch {
      return undefined;
    }
    const bytes = this.opts.metrics.upstreamBytes.labels(t.upstream.namespace);
    return t.upstream.getRange(t.remote, digest, range, (n) => bytes.inc(n));
  }

  /** A blob's size from the upstream (HEAD on a miss); nothing is cached. */
  private async statUpstreamBlob(t: ProxyTarget, digest: Digest): Promise<number> {
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

  async deleteBlob(name: string, digest: Digest): Promise<void> {
    return this.local(name).deleteBlob(name, digest);
  }

  blobHolder(digest: Digest, may: (repo: string) => boolean): Promise<string | undefined> {
    return this.store.blobHolder(digest, may);
  }

  async mountBlob(to: string, from: string, digest: Digest): Promise<number | undefined> {
    return this.local(to).mountBlob(to, from, digest);
  }

  // ---- uploads: only outside the cached namespaces

  private local(name: string): RegistryStore {
    const t = this.target(name);
    return t ? this.readOnly(t) : this.store;
  }

  startUpload(name: string): Promise<UploadStatus> {
    return this.local(name).startUpload(name);
  }
  uploadStatus(name: string, id: string): Promise<UploadStatus> {
    return this.local(name).uploadStatus(name, id);
  }
  appendUpload(name: string, id: string, body: Readable, opts: AppendOptions): Promise<UploadStatus> {
    return this.local(name).appendUpload(name, id, body, opts);
  }
  finishUpload(name: string, id: string, digest: Digest, body: Readable | undefined, opts: AppendOptions): Promise<number> {
    return this.local(name).finishUpload(name, id, digest, body, opts);
  }
  cancelUpload(name: string, id: string): Promise<void> {
    return this.local(name).cancelUpload(name, id);
  }

  // ---- lists

  listRepositories(page: Page, visible: (name: string) => boolean): Promise<Listed<string>> {
    return this.store.listRepositories(page, visible);
  }

  /** The upstream's tags; the cached ones, with a warning, when it cannot answer. */
  async listTags(name: string, page: Page): Promise<Listed<string>> {
    const t = this.target(name);
    if (!t) return this.store.listTags(name, page);
    if (!t.upstream.offline) {
      try {
        t.upstream.assertAvailable();
        const opts: { n: number; last?: string; signal: AbortSignal } = { n: page.n, signal: AbortSignal.timeout(t.upstream.timeout) };
        if (page.last !== undefined) opts.last = page.last;
        const tags = await t.upstream.repository(t.remote).tags(opts);
        t.upstream.succeeded();
        return { items: tags, more: false };
      } catch (err) {
        if (isOciError(err, 'NAME_UNKNOWN')) throw err;
        if (!(err instanceof UpstreamDown)) t.upstream.failed();
        return { ...(await this.store.listTags(name, page)), warning: `111 - "upstream ${t.upstream.namespace} unavailable; listing cached tags only"` };
      }
    }
    return this.store.listTags(name, page);
  }

  /** The upstream's referrers; the cached ones, with a warning, when it cannot answer. */
  async listReferrers(name: string, subject: Digest, page: Page, artifactType?: string): Promise<Listed<Descriptor>> {
    const t = this.target(name);
    if (!t) return this.store.listReferrers(name, subject, page, artifactType);
    if (!t.upstream.offline) {
      try {
        t.upstream.assertAvailable();
        const opts: { artifactType?: string; signal: AbortSignal } = { signal: AbortSignal.timeout(t.upstream.timeout) };
        if (artifactType !== undefined) opts.artifactType = artifactType;
        const list = await t.upstream.repository(t.remote).referrers({ mediaType: MediaType.ImageManifest, digest: subject, size: 0 }, opts);
        t.upstream.succeeded();
        return { items: list, more: false };
      } catch (err) {
        if (!(err instanceof UpstreamDown)) t.upstream.failed();
        return { ...(await this.store.listReferrers(name, subject, page, artifactType)), warning: `111 - "upstream ${t.upstream.namespace} unavailable; listing cached referrers only"` };
      }
    }
    return this.store.listReferrers(name, subject, page, artifactType);
  }
}
