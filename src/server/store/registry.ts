import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciError, digestOf, isDigest, parseDigest, bodyMediaType, parseManifest, referrerDescriptor, parseManifestRef, assertTag, isIndexMediaType, MediaType, type Descriptor, type Digest, type ManifestInfo, isKnownError } from '../../spec/index.js';
import { verifyReader } from '../../content/index.js';
import type { StageOptions, Staged, StorageDriver } from '../driver/index.js';
import { paginate, type BlobHandle, type Listed, type Page, type PutManifestResult, type RegistryBackend, type StoredManifest } from './backend.js';
import { fileBlob } from './blob-handle.js';
import { KeyedLock } from './locks.js';
import { ManifestCache, VerifiedFiles } from './memo.js';
import { paths } from './paths.js';
import { Uploads, allDone, commitOnce, type AppendOptions, type StaleUpload, type UploadStatus } from './uploads.js';

export interface RegistryStoreOptions {
  /** Allow DELETE of manifests, tags and blobs (default true). */
  deleteEnabled?: boolean;
  /**
   * Other processes serve this store at the same time (replicas over one database): an upload's
   * next chunk may have gone through another one, so a session's offset is always read from its
   * record, never taken from this process's memory.
   */
  replicated?: boolean;
  /** Largest manifest accepted, in bytes (default 4 MiB, as the spec suggests). */
  maxManifestSize?: number;
  /** Largest blob accepted, in bytes (default unlimited). */
  maxBlobSize?: number;
  /**
   * Memory for manifests kept by digest (default 8 MiB), counted as what each entry holds, body
   * and bookkeeping: some 10,000 small manifests. A miss reads the file and hashes it (a small
   * manifest: well under a millisecond). Manifests are immutable by digest.
   */
  manifestCacheBytes?: number;
  /**
   * Hash whole blob reads against their digest as they stream (default true), so a blob damaged
   * on disk fails its response. A file that was hashed whole and has not changed since (same
   * driver version: inode, size, mtime, ctime) is served without hashing again until
   * `reverifyAfter` ms have passed (default 24 h); blobs are hashed as they are written, so they
   * start verified. Off, nothing is hashed on reads; clients verify what they receive.
   */
  verifyReads?: boolean;
  reverifyAfter?: number;
  /** A mount without `from` takes the blob from any repository that has it (default true). */
  automaticMount?: boolean;
}

/**
 * The registry's logic over a StorageDriver: repositories link to content-addressed blobs,
 * manifests and tags; referrers are indexed at PUT. It makes no filesystem call of its own.
 * Ordering makes every step crash-safe: content is written before the link that makes it
 * visible, and a link before the tag that names it.
 */
/** A manifest or tag write, told after it is done (StoreListener). */
export type StoreChange =
  | { kind: 'manifest'; name: string; digest: Digest; body: Buffer; mediaType: string | undefined; tag: string | undefined }
  | { kind: 'tag'; name: string; digest: Digest; tag: string }
  /** A DELETE by tag (the tag) or by digest (the manifest and every tag naming it). */
  | { kind: 'delete'; name: string; reference: string };

/**
 * Follows the store's writes (the web UI's catalog index): called after each write, whoever made
 * it (a /v2 PUT, the pull-through cache, a UI delete), and awaited, so that what follows reads it.
 */
export type StoreListener = (change: StoreChange) => Promise<void> | void;

export class RegistryStore implements RegistryBackend {
  readonly uploads: Uploads;
  readonly deleteEnabled: boolean;
  readonly maxManifestSize: number;
  readonly verifyReads: boolean;
  readonly automaticMount: boolean;
  private readonly repoLocks = new KeyedLock();
  private readonly cache: ManifestCache;
  private readonly verified: VerifiedFiles;
  private readonly listeners: StoreListener[] = [];

  constructor(
    readonly driver: StorageDriver,
    opts: RegistryStoreOptions = {},
  ) {
    this.deleteEnabled = opts.deleteEnabled ?? true;
    this.maxManifestSize = opts.maxManifestSize ?? 4 << 20;
    this.verifyReads = opts.verifyReads ?? true;
    this.automaticMount = opts.automaticMount ?? true;
    this.uploads = new Uploads(driver, opts.maxBlobSize, (d) => this.touchBlob(d), opts.replicated ?? false);
    this.cache = new ManifestCache(opts.manifestCacheBytes ?? 8 << 20);
    this.verified = new VerifiedFiles(opts.reverifyAfter ?? 24 * 3600e3);
  }

  /** Has `listener` told of every manifest and tag write from now on. */
  listen(listener: StoreListener): void {
    this.listeners.push(listener);
  }

  /** Tells the listeners; a listener that fails never fails the write, which is done already. */
  private async changed(change: StoreChange): Promise<void> {
    for (const l of this.listeners) {
      try {
        await l(change);
      } catch {
        // The listener's own business (it logs and recovers); the write stands.
      }
    }
  }

  /** What the in-memory caches hold (entries, bytes counted), for /metrics. */
  cacheSizes(): { manifests: { entries: number; bytes: number }; verified: { entries: number; bytes: number } } {
    return { manifests: this.cache.size, verified: this.verified.size };
  }

  // ---- repositories

  async repoExists(name: string): Promise<boolean> {
    const entries = await this.driver.list(paths.repo(name));
    return entries.includes('_manifests') || entries.includes('_blobs') || entries.includes('_tags');
  }

  /** Every repository name, sorted. */
  async catalog(): Promise<string[]> {
    return this.walkRepos(['_manifests', '_blobs']);
  }

  async listRepositories(page: Page, visible: (name: string) => boolean = () => true): Promise<Listed<string>> {
    return paginate((await this.catalog()).filter(visible), page, (r) => r);
  }

  async listTags(name: string, page: Page): Promise<Listed<string>> {
    return paginate(await this.tags(name), page, (t) => t);
  }

  async listReferrers(name: string, subject: Digest, page: Page, artifactType?: string): Promise<Listed<Descriptor>> {
    return paginate(await this.referrers(name, subject, artifactType), page, (d) => d.digest);
  }

  async mapName(name: string): Promise<string> {
    return name;
  }

  namespaceOf(): string | undefined {
    return undefined;
  }

  private async walkRepos(markers: string[]): Promise<string[]> {
    const out: string[] = [];
    const walk = async (prefix: string): Promise<void> => {
      const entries = await this.driver.list(prefix === '' ? paths.reposRoot : paths.repo(prefix));
      if (prefix !== '' && markers.some((m) => entries.includes(m))) out.push(prefix);
      for (const e of entries) if (!e.startsWith('_')) await walk(prefix === '' ? e : `${prefix}/${e}`);
    };
    await walk('');
    return out.sort();
  }

  // ---- blobs

  /** The blob's size, if `name` links to it and its data exists. */
  async statBlob(name: string, digest: Digest): Promise<number> {
    const { linked, size } = await this.blobState(name, digest);
    if (!linked || size === undefined) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is unknown to repository ${name}`, { detail: { digest } });
    return size;
  }

  /** Whether `name` links the blob, and the stored blob's size (whoever links it). */
  async blobState(name: string, digest: Digest): Promise<{ linked: boolean; size: number | undefined }> {
    const linkPath = paths.blobLink(name, digest);
    // A driver that keeps files checks a link with no query of its own (PgDriver); a stat is cheaper elsewhere.
    const since = this.driver.tick?.();
    const [link, data] = await Promise.all([since === undefined ? this.driver.stat(linkPath) : this.driver.get(linkPath, { since }), this.driver.stat(paths.blobData(digest))]);
    return { linked: link !== undefined, size: data?.size };
  }

  async openBlob(name: string, digest: Digest, _withBody = true): Promise<BlobHandle> {
    return this.storedBlob(digest, await this.statBlob(name, digest));
  }

  /**
   * A stored blob as a BlobHandle. A whole read is checked on the way, unless verifyReads is off
   * or the file was verified and has not changed since: a blob damaged on disk then fails the
   * response instead of being served as valid. A range cannot be verified.
   */
  storedBlob(digest: Digest, size: number): BlobHandle {
    const path = paths.blobData(digest);
    return fileBlob(this.driver, path, size, async () => {
      if (!this.verifyReads) return undefined;
      const version = (await this.driver.stat(path))?.version;
      return this.verified.has(digest, version) ? undefined : { digest, verified: () => this.verified.add(digest, version) };
    });
  }

  /** A whole stored blob as a stream, verified against `desc` as it is read. */
  async fetchBlob(desc: Descriptor): Promise<Readable> {
    return verifyReader(await this.driver.reader(paths.blobData(desc.digest)), desc);
  }

  /** Stores a blob from a stream, verified against `desc` (unless stored already), and links it into `name`. */
  async putBlob(name: string, desc: Descriptor, content: Readable): Promise<void> {
    if (await this.touchBlob(desc.digest)) content.destroy();
    else {
      const w = await this.driver.writer(paths.blobData(desc.digest), { size: desc.size });
      try {
        await pipeline(verifyReader(content, desc), w);
        await w.commit();
      } catch (err) {
        await w.cancel();
        throw err;
      }
      await this.storedVerified(desc.digest, w.version);
    }
    await this.linkBlob(name, desc.digest);
  }

  /** Bytes on their way to becoming a blob (a cache fill): see commitBlob. */
  stageBlob(opts: StageOptions = {}): Promise<Staged> {
    return this.driver.stage(opts);
  }

  /**
   * Makes staged bytes, already verified against `digest`, the stored blob; when the blob was
   * stored meanwhile, keeps that one and drops these.
   */
  async commitBlob(staged: Staged, digest: Digest): Promise<void> {
    if (await this.touchBlob(digest)) return staged.cancel();
    await staged.commit(paths.blobData(digest));
    await this.storedVerified(digest);
  }

  /**
   * A blob file just stored from bytes hashed on their way in (an upload, a cache fill): it starts
   * verified. `version`: the one its write's answer gave (DriverWriter.version), else a stat tells.
   */
  async storedVerified(digest: Digest, version?: string): Promise<void> {
    this.verified.add(digest, version ?? (await this.driver.stat(paths.blobData(digest)))?.version);
  }

  async linkBlob(name: string, digest: Digest): Promise<void> {
    await this.driver.put(paths.blobLink(name, digest), '');
  }

  /**
   * Marks a blob as in use, so that a concurrent garbage collection keeps it. False when the blob
   * is gone (or being collected right now): the caller must then treat it as unknown.
   */
  async touchBlob(digest: Digest): Promise<boolean> {
    return (await this.touchedSize(digest)) !== undefined;
  }

  /** touchBlob, giving the blob's size from the stat it makes anyway; undefined when it is gone. */
  private async touchedSize(digest: Digest): Promise<number | undefined> {
    const path = paths.blobData(digest);
    const before = await this.driver.touch(path);
    if (!before) return undefined;
    // Touching moves the file's ctime: a verified file that was unchanged until now stays verified.
    if (this.verified.has(digest, before.version)) this.verified.add(digest, before.touched ?? (await this.driver.stat(path))?.version, false);
    return before.size;
  }

  async deleteBlob(name: string, digest: Digest): Promise<void> {
    this.assertDeleteEnabled();
    await this.repoLocks.exclusive(name, async () => {
      if (!(await this.driver.stat(paths.blobLink(name, digest)))) {
        throw new OciError('BLOB_UNKNOWN', `blob ${digest} is unknown to repository ${name}`, { detail: { digest } });
      }
      await this.driver.delete(paths.blobLink(name, digest));
    });
  }

  /** Links a blob of `from` into `to`. Returns its size, or undefined when `from` lacks it. */
  async mountBlob(to: string, from: string, digest: Digest): Promise<number | undefined> {
    try {
      const size = await this.statBlob(from, digest);
      if (!(await this.touchBlob(digest))) return undefined;
      await this.linkBlob(to, digest);
      return size;
    } catch (err) {
      if (err instanceof OciError && err.code === 'BLOB_UNKNOWN') return undefined;
      throw err;
    }
  }

  /**
   * A repository that links to the blob and that `may` lets the caller read: where a mount without
   * `from` takes it from; none when automatic mounts are off. Walks the repositories, so it costs
   * a directory walk per such request.
   */
  async blobHolder(digest: Digest, may: (repo: string) => boolean = () => true): Promise<string | undefined> {
    if (!this.automaticMount) return undefined;
    for (const repo of await this.catalog()) if (may(repo) && (await this.driver.stat(paths.blobLink(repo, digest)))) return repo;
    return undefined;
  }

  startUpload(name: string): Promise<UploadStatus> {
    return this.uploads.start(name);
  }

  uploadStatus(name: string, id: string): Promise<UploadStatus> {
    return this.uploads.status(name, id);
  }

  appendUpload(name: string, id: string, body: Readable, opts: AppendOptions = {}): Promise<UploadStatus> {
    return this.uploads.append(name, id, body, opts);
  }

  async finishUpload(name: string, id: string, digest: Digest, body: Readable | undefined, opts: AppendOptions = {}): Promise<number> {
    const { size, stored, version } = await this.uploads.finish(name, id, digest, body, opts, () => this.linkBlob(name, digest));
    if (stored) await this.storedVerified(digest, version);
    return size;
  }

  cancelUpload(name: string, id: string): Promise<void> {
    return this.uploads.cancel(name, id);
  }

  /**
   * Removes upload sessions untouched for `maxAgeMs` (`dryRun`: only lists them), and temp files
   * a crash left behind; returns the sessions and how many temp files went.
   */
  async purgeUploads(maxAgeMs: number, opts: { dryRun?: boolean } = {}): Promise<{ uploads: StaleUpload[]; temp: number }> {
    const uploads = await this.uploads.purge(await this.walkRepos(['_uploads']), maxAgeMs, opts);
    const temp = opts.dryRun ? 0 : await this.driver.sweepTemp(Math.max(maxAgeMs, 3600e3));
    return { uploads, temp };
  }

  // ---- manifests

  private async resolveRef(name: string, reference: string, since?: number): Promise<Digest> {
    const ref = parseManifestRef(reference);
    if (ref.digest) return ref.digest;
    const d = (await this.driver.get(paths.tag(name, ref.tag), { since }))?.toString('utf8');
    if (!d || !isDigest(d)) throw new OciError('MANIFEST_UNKNOWN', `tag ${ref.tag} is unknown to repository ${name}`, { detail: { tag: ref.tag } });
    return d;
  }

  async getManifest(name: string, reference: string): Promise<StoredManifest> {
    // Both reads may come from one check of what the driver keeps, made after the request began.
    const since = this.driver.tick?.();
    const digest = await this.resolveRef(name, reference, since);
    const link = await this.driver.get(paths.manifestLink(name, digest), { since });
    if (link === undefined) throw new OciError('MANIFEST_UNKNOWN', `manifest ${reference} is unknown to repository ${name}`, { detail: { reference } });
    let m = this.cache.get(digest);
    if (!m) {
      const body = await this.driver.get(paths.blobData(digest));
      if (!body) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest} has no content`, { detail: { digest } });
      if (digestOf(body, parseDigest(digest).algorithm) !== digest) throw new OciError('INTERNAL', `stored manifest ${digest} is damaged`);
      m = { body, mediaType: bodyMediaType(body) };
      this.cache.set(digest, m);
    }
    // An empty link: the manifest names its own media type (see putManifest).
    return { digest, mediaType: link.length > 0 ? link.toString('utf8') : m.mediaType, body: m.body };
  }

  async putManifest(name: string, reference: string, body: Buffer, contentType: string | undefined): Promise<PutManifestResult> {
    if (body.length > this.maxManifestSize) {
      throw new OciError('SIZE_INVALID', `manifest is ${body.length} bytes, over the limit of ${this.maxManifestSize}`, { status: 413 });
    }
    const ref = parseManifestRef(reference);
    const info = parseManifest(body, contentType);
    const digest = digestOf(body, ref.digest ? parseDigest(ref.digest).algorithm : 'sha256');
    if (ref.digest && ref.digest !== digest) {
      throw new OciError('DIGEST_INVALID', `manifest digest is ${digest}, not ${ref.digest}`, { detail: { digest: ref.digest } });
    }
    const res = await this.repoLocks.shared(name, async () => {
      for (const b of info.blobs) {
        // The empty config of artifacts is often not pushed by clients that know registries have it.
        const size = await this.hasBlob(name, b.digest);
        if (size === undefined) {
          throw new OciError('MANIFEST_BLOB_UNKNOWN', `blob ${b.digest} is unknown to repository ${name}; push it before the manifest`, { detail: { digest: b.digest } });
        }
        assertSize(b, size);
      }
      for (const m of info.manifests) {
        const size = (await this.driver.stat(paths.manifestLink(name, m.digest))) ? await this.touchedSize(m.digest) : undefined;
        if (size === undefined) {
          throw new OciError('MANIFEST_BLOB_UNKNOWN', `manifest ${m.digest} is unknown to repository ${name}; push it before the index`, { detail: { digest: m.digest } });
        }
        assertSize(m, size);
      }
      await this.writeManifest(name, digest, body, info, ref.tag);
      const put: PutManifestResult = { digest };
      if (info.subject) put.subject = info.subject.digest;
      return put;
    });
    await this.changed({ kind: 'manifest', name, digest, body, mediaType: contentType, tag: ref.tag });
    return res;
  }

  /** The blob's size if `name` links to it and its data exists; it is then touched (see touchBlob). */
  private async hasBlob(name: string, digest: Digest): Promise<number | undefined> {
    return (await this.driver.stat(paths.blobLink(name, digest))) !== undefined ? this.touchedSize(digest) : undefined;
  }

  /**
   * Writes a checked manifest in crash-safe order. Bytes and link wait on the disk together: a
   * link whose bytes a crash lost reads as an unknown manifest. The referrer entry and the tag,
   * which name it, are written meanwhile but take their names only after both. The link keeps
   * the media type, unless the manifest's own mediaType field says it: then it is empty, made in
   * place (no temporary file to write and sync), and a GET reads the type from the body.
   */
  private async writeManifest(name: string, digest: Digest, body: Buffer, info: ManifestInfo, tag: string | undefined): Promise<void> {
    const stored = allDone([this.storeOnce(digest, body), this.driver.put(paths.manifestLink(name, digest), info.selfDescribed ? '' : info.mediaType)]);
    const naming: Array<Promise<void>> = [stored];
    if (info.subject) {
      const d = referrerDescriptor(info, digest, body.length);
      naming.push(this.driver.put(paths.referrer(name, info.subject.digest, digest), JSON.stringify(d), { after: stored }));
    }
    if (tag !== undefined) naming.push(this.driver.put(paths.tag(name, tag), digest, { after: stored }));
    await allDone(naming);
    this.cache.set(digest, { body, mediaType: info.selfDescribed ? info.mediaType : bodyMediaType(body) });
  }

  /**
   * Stores `bytes` as the blob `digest` unless it is there already, which is then touched instead
   * (gc's grace period). The write itself checks (an object store's conditional PUT), so a new
   * manifest costs no request that asks first.
   */
  private async storeOnce(digest: Digest, bytes: Buffer): Promise<void> {
    const path = paths.blobData(digest);
    const w = await this.driver.writer(path, { size: bytes.length, ifAbsent: true });
    w.end(bytes);
    // Gone again since (a collection took it): written after all.
    if ((await commitOnce(w, () => this.touchBlob(digest))) === 'gone') await this.driver.put(path, bytes);
  }

  /** DELETE by tag removes the tag; by digest, the manifest, its tags and its referrer entry. */
  async deleteManifest(name: string, reference: string): Promise<void> {
    this.assertDeleteEnabled();
    const ref = parseManifestRef(reference);
    await this.repoLocks.exclusive(name, async () => {
      if (ref.tag !== undefined) {
        if (!(await this.driver.stat(paths.tag(name, ref.tag)))) throw new OciError('MANIFEST_UNKNOWN', `tag ${ref.tag} is unknown to repository ${name}`);
        await this.driver.delete(paths.tag(name, ref.tag));
        return;
      }
      const m = await this.getManifest(name, ref.digest);
      const info = parseManifest(m.body, m.mediaType);
      // The names first, at once (a replicated driver waits once per change, not per name), the
      // link last: a crash in between leaves no tag that names a manifest which is gone.
      const names: string[] = [];
      for (const t of await this.driver.list(paths.tags(name))) {
        if ((await this.driver.get(paths.tag(name, t)))?.toString('utf8') === m.digest) names.push(paths.tag(name, t));
      }
      if (info.subject) names.push(paths.referrer(name, info.subject.digest, m.digest));
      await Promise.all(names.map((p) => this.driver.delete(p)));
      await this.driver.delete(paths.manifestLink(name, m.digest));
    });
    await this.changed({ kind: 'delete', name, reference });
  }

  async tags(name: string): Promise<string[]> {
    if (!(await this.repoExists(name))) throw new OciError('NAME_UNKNOWN', `repository ${name} is not known to the registry`, { detail: { name } });
    return (await this.driver.list(paths.tags(name))).filter((t) => !t.startsWith('.')).sort();
  }

  async tag(name: string, digest: Digest, tag: string): Promise<void> {
    assertTag(tag);
    await this.repoLocks.shared(name, async () => {
      if (!(await this.driver.stat(paths.manifestLink(name, digest)))) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest} is unknown to repository ${name}`);
      await this.driver.put(paths.tag(name, tag), digest);
    });
    await this.changed({ kind: 'tag', name, digest, tag });
  }

  /**
   * Manifests whose subject is `subject`: those indexed at PUT, plus any listed in an index under
   * the referrers tag schema (`<alg>-<hex>`), which clients without the API maintain.
   */
  async referrers(name: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const byDigest = new Map<string, Descriptor>();
    const dir = paths.referrers(name, subject);
    for (const f of await this.driver.list(dir)) {
      const raw = await this.driver.get(`${dir}/${f}`);
      if (!raw) continue;
      const d = JSON.parse(raw.toString('utf8')) as Descriptor;
      // A referrer deleted by digest loses its file; one whose link is gone (gc) is skipped too.
      byDigest.set(d.digest, d);
    }
    const { algorithm, hex } = parseDigest(subject);
    try {
      const tagged = await this.getManifest(name, `${algorithm}-${hex}`.slice(0, 128));
      if (isIndexMediaType(tagged.mediaType)) {
        for (const d of parseManifest(tagged.body, tagged.mediaType).manifests) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d);
      }
    } catch (err) {
      if (!isKnownError(err)) throw err;
    }
    let out = [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
    if (artifactType !== undefined) out = out.filter((d) => d.artifactType === artifactType);
    return out.map((d) => ({ ...d, mediaType: d.mediaType || MediaType.ImageManifest }));
  }

  // ---- what the pull-through cache keeps (src/server/proxy)

  async hasManifest(name: string, digest: Digest): Promise<boolean> {
    return (await this.driver.stat(paths.manifestLink(name, digest))) !== undefined;
  }

  /**
   * Stores a manifest fetched from an upstream, already verified against its digest, in the same
   * crash-safe order as a PUT, and tags it if asked. Its blobs need not be here: the cache fetches
   * them when they are asked for. Records when it entered the cache, for pruning by age.
   */
  async saveCachedManifest(name: string, desc: Descriptor, body: Buffer, tag?: string): Promise<void> {
    const info = parseManifest(body, desc.mediaType);
    await this.repoLocks.shared(name, async () => {
      await this.writeManifest(name, desc.digest, body, info, tag);
      const at = paths.cachedAt(name, desc.digest);
      if (!(await this.driver.stat(at))) await this.driver.put(at, new Date().toISOString(), { durable: false });
    });
    await this.changed({ kind: 'manifest', name, digest: desc.digest, body, mediaType: desc.mediaType, tag });
  }

  /** The manifest a cached tag names, and when the tag was last checked against its upstream. */
  async tagState(name: string, tag: string): Promise<{ digest: Digest; checkedAt: number } | undefined> {
    const path = paths.tag(name, tag);
    const [st, raw] = await Promise.all([this.driver.stat(path), this.driver.get(path)]);
    const d = raw?.toString('utf8');
    if (st === undefined || d === undefined || !isDigest(d) || !(await this.hasManifest(name, d))) return undefined;
    return { digest: d, checkedAt: st.mtimeMs };
  }

  /** Records that a cached tag was checked just now and still names `digest`. */
  async refreshTag(name: string, tag: string, digest: Digest): Promise<void> {
    if (!(await this.driver.touch(paths.tag(name, tag)))) await this.tag(name, digest, tag);
  }

  /** Records a pull of a cached manifest (its link's mtime), for pruning by last access. */
  async noteAccess(name: string, digest: Digest): Promise<void> {
    await this.driver.touch(paths.manifestLink(name, digest));
  }

  /** Marks a namespace as a cache of `origin`, so that `wharf cache` finds it without the config. */
  async markCacheNamespace(namespace: string, origin: string): Promise<void> {
    await this.driver.put(paths.upstreamMarker(namespace), `${origin}\n`);
  }

  private assertDeleteEnabled(): void {
    if (!this.deleteEnabled) throw new OciError('UNSUPPORTED', 'deletion is disabled on this registry');
  }
}

/**
 * A descriptor must give the size of the content it names (image-spec: clients verify it, and a
 * pull of a manifest that lies fails there). distribution-spec's MANIFEST_INVALID is for a
 * manifest that fails the registry's checks, "unless a more specific error is included", with the
 * failed check in `detail`; MANIFEST_BLOB_UNKNOWN would tell the client that the blob is missing,
 * and pushing it again would not help. (Distribution checks no sizes: it answers 201.)
 */
function assertSize(d: Descriptor, stored: number): void {
  if (d.size === stored) return;
  throw new OciError('MANIFEST_INVALID', `descriptor of ${d.digest} gives size ${d.size}, but the stored content has ${stored} bytes`, { detail: { digest: d.digest, size: d.size, stored } });
}
