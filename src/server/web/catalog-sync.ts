import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { MediaType, isIndexMediaType, isKnownError, parseManifest, parseManifestRef, type Descriptor, type ManifestInfo } from '../../spec/index.js';
import type { RegistryStore } from '../store/index.js';
import type { CatalogIndex, IndexedManifest } from './catalog.js';
import { kindOf } from './kinds.js';

/**
 * Keeps the catalog index (catalog.ts) current: every write of the store (a push, a tag move, a
 * delete, a pull-through fill, `wharf cache load`) updates it before the write's caller goes on,
 * and a rebuild from the store catches what it could not see (a crash between a write and its
 * update, `wharf gc` in another process).
 */

/** How deep an index of indexes is followed for its size. */
const MAX_DEPTH = 4;

/** The index's row of a manifest, from its bytes; `sizeOf` gives an index's children's sizes. */
export function describe(repo: string, digest: string, body: Buffer, info: ManifestInfo, updated: number | null, sizeOf: (d: Descriptor) => number): IndexedManifest {
  const isIndex = isIndexMediaType(info.mediaType);
  const config = isIndex ? null : (info.blobs[0]?.mediaType ?? null);
  const annotations = info.annotations ?? {};
  const layers = isIndex ? [] : info.blobs.slice(1).map((b) => ({ mediaType: b.mediaType, annotations: b.annotations }));
  const kindInfo = kindOf(info.mediaType, info.artifactType ?? null, config, annotations, layers);
  let size = body.length;
  for (const b of info.blobs) size += b.size;
  for (const m of info.manifests) size += sizeOf(m);
  return {
    repo,
    digest,
    mediaType: info.mediaType,
    artifactType: info.artifactType ?? null,
    configMediaType: config,
    kind: kindInfo.kind,
    kindInfo,
    size,
    subject: info.subject?.digest ?? null,
    children: info.manifests.map((m) => m.digest),
    annotations,
    updated,
  };
}

/**
 * A fingerprint of what kindOf answers for the common types: stored with the index, so that an
 * index built by another version of kinds.ts is rebuilt with this one's kinds.
 */
export function kindsFingerprint(): string {
  const config = (t: string): [string, string | null, string] => [MediaType.ImageManifest, null, t];
  const cases: Array<[string, string | null, string | null]> = [
    config(MediaType.ImageConfig),
    config(MediaType.DockerConfig),
    config('application/vnd.cncf.helm.config.v1+json'),
    config('application/vnd.cncf.flux.config.v1+json'),
    config('application/vnd.dev.cosign.simplesigning.v1+json'),
    config('application/vnd.cnab.config.v1+json'),
    config('application/vnd.wasm.config.v0+json'),
    config('application/vnd.docker.ai.model.config.v0.1+json'),
    config('application/vnd.cncf.model.config.v1+json'),
    [MediaType.ImageIndex, null, null],
    [MediaType.DockerManifestList, null, null],
    [MediaType.DockerManifest, null, MediaType.DockerConfig],
    ...[
      'application/spdx+json',
      'application/vnd.cyclonedx+json',
      'application/vnd.cncf.notary.signature',
      'application/vnd.dev.sigstore.bundle.v0.3+json',
      'application/vnd.in-toto+json',
      'application/vnd.dsse.envelope.v1+json',
      'application/vnd.opentofu.modulepkg',
      'application/vnd.hashicorp.terraform.module.v1+tar+gzip',
      'application/geo+json',
      'application/vnd.example.thing',
    ].map((t): [string, string, string] => [MediaType.ImageManifest, t, MediaType.EmptyJSON]),
  ];
  const h = createHash('sha256');
  for (const [mt, at, ct] of cases) h.update(`${JSON.stringify(kindOf(mt, at, ct, {}))}\n`);
  return h.digest('hex').slice(0, 16);
}

export interface CatalogSyncOptions {
  log: Logger;
  now?: () => number;
}

export class CatalogSync {
  /** Writes applied per repository: a rebuild that scanned a repository while one came in scans it again. */
  private readonly writes = new Map<string, number>();
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly now: () => number;
  /** Whether a full rebuild has completed since the start (or none was needed). */
  ready: boolean;

  constructor(private readonly index: CatalogIndex, private readonly store: RegistryStore, private readonly opts: CatalogSyncOptions) {
    this.now = opts.now ?? Date.now;
    this.ready = !index.stale;
  }

  /** Follows the store's writes (RegistryStore.listen). An update that fails is logged and the index marked for a rebuild; it never fails the write. */
  watch(): void {
    this.store.listen((c) =>
      this.safely(c.name, async () => {
        if (c.kind === 'manifest') await this.manifestWritten(c.name, c.digest, c.body, c.mediaType, c.tag);
        else if (c.kind === 'tag') {
          if (!this.index.setTag(c.name, c.tag, c.digest, this.now())) await this.manifestWritten(c.name, c.digest, undefined, undefined, c.tag);
        } else {
          const ref = parseManifestRef(c.reference);
          if (ref.tag !== undefined) this.index.deleteTag(c.name, ref.tag);
          else this.index.deleteManifest(c.name, ref.digest!);
        }
      }),
    );
  }

  private async safely(repo: string, fn: () => unknown): Promise<void> {
    this.writes.set(repo, (this.writes.get(repo) ?? 0) + 1);
    try {
      await fn();
    } catch (err) {
      this.index.markDirty();
      this.opts.log.warn({ err, repo }, 'catalog index: an update failed; the index is rebuilt at the next start');
    }
  }

  private async manifestWritten(repo: string, digest: string, body: Buffer | undefined, contentType: string | undefined, tag: string | undefined): Promise<void> {
    let bytes = body;
    let type = contentType;
    if (!bytes) {
      const m = await this.store.getManifest(repo, digest);
      bytes = m.body;
      type = m.mediaType;
    }
    const info = parseManifest(bytes, type);
    const sizes = new Map<string, number>();
    // Children are pushed before their index, so the index knows them; one that it does not is read.
    for (const c of info.manifests) sizes.set(c.digest, this.index.manifest(repo, c.digest)?.size ?? (await this.sizeFromStore(repo, c, 1)));
    const now = this.now();
    const m = describe(repo, digest, bytes, info, now, (d) => sizes.get(d.digest) ?? d.size);
    this.index.putManifest(m, tag !== undefined ? { name: tag, updated: now } : undefined);
  }

  private async sizeFromStore(repo: string, d: Descriptor, depth: number): Promise<number> {
    if (depth > MAX_DEPTH) return d.size;
    try {
      const m = await this.store.getManifest(repo, d.digest);
      const info = parseManifest(m.body, m.mediaType);
      let size = m.body.length;
      for (const b of info.blobs) size += b.size;
      for (const c of info.manifests) size += await this.sizeFromStore(repo, c, depth + 1);
      return size;
    } catch (err) {
      if (!isKnownError(err)) throw err;
      return d.size;
    }
  }

  /** Starts a rebuild in the background unless one runs; resolves when it ends. Never rejects. */
  rebuild(): Promise<void> {
    return (this.running ??= this.scanAll().finally(() => (this.running = undefined)));
  }

  /** Stops a rebuild under way (at the next repository) and waits for it. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async scanAll(): Promise<void> {
    const t0 = this.now();
    const signal = this.abort.signal;
    this.index.rebuildStarted();
    try {
      const repos = await this.store.catalog();
      for (const repo of repos) {
        if (signal.aborted) return;
        // A write to the repository during its scan: what the scan saw may be older than the index.
        for (let attempt = 0; attempt < 3; attempt++) {
          const before = this.writes.get(repo) ?? 0;
          const found = await this.scanRepo(repo);
          if (signal.aborted) return;
          if ((this.writes.get(repo) ?? 0) !== before) continue;
          this.index.replaceRepo(repo, found.manifests, found.tags);
          break;
        }
      }
      // A repository written since the catalog was read is kept even if the catalog lacked it.
      this.index.retainRepos(new Set([...repos, ...this.writes.keys()]));
      this.index.rebuildFinished(this.now());
      this.ready = true;
      const c = this.index.counts();
      this.opts.log.info({ ...c, ms: this.now() - t0 }, 'catalog index rebuilt');
    } catch (err) {
      this.index.markDirty();
      this.opts.log.error({ err }, 'catalog index: the rebuild failed; listing shows what the index holds');
    }
  }

  /** Everything a repository's tags reach: their manifests, an index's children, referrers (and theirs). */
  private async scanRepo(repo: string): Promise<{ manifests: IndexedManifest[]; tags: Array<{ name: string; digest: string; updated: number | null }> }> {
    const tags: Array<{ name: string; digest: string; updated: number | null }> = [];
    const found = new Map<string, IndexedManifest>();
    const seen = new Set<string>();
    const latest = new Map<string, number>();
    const visit = async (digest: string, depth: number): Promise<number | undefined> => {
      if (seen.has(digest)) return found.get(digest)?.size;
      seen.add(digest);
      let info: ManifestInfo;
      let body: Buffer;
      try {
        const m = await this.store.getManifest(repo, digest);
        body = m.body;
        info = parseManifest(m.body, m.mediaType);
      } catch (err) {
        if (isKnownError(err)) return undefined;
        throw err;
      }
      const sizes = new Map<string, number>();
      if (depth < MAX_DEPTH) for (const c of info.manifests) sizes.set(c.digest, (await visit(c.digest, depth + 1)) ?? c.size);
      const m = describe(repo, digest, body, info, latest.get(digest) ?? null, (d) => sizes.get(d.digest) ?? d.size);
      found.set(digest, m);
      if (depth < MAX_DEPTH) {
        const refs = await this.store.referrers(repo, digest as Descriptor['digest']).catch((err: unknown) => {
          if (isKnownError(err)) return [] as Descriptor[];
          throw err;
        });
        for (const r of refs) await visit(r.digest, depth + 1);
      }
      return m.size;
    };
    let names: string[];
    try {
      names = await this.store.tags(repo);
    } catch (err) {
      if (isKnownError(err)) return { manifests: [], tags: [] };
      throw err;
    }
    for (const name of names) {
      const st = await this.store.tagState(repo, name);
      if (!st) continue;
      tags.push({ name, digest: st.digest, updated: Math.round(st.checkedAt) });
      latest.set(st.digest, Math.max(latest.get(st.digest) ?? 0, Math.round(st.checkedAt)));
    }
    for (const t of tags) await visit(t.digest, 0);
    return { manifests: [...found.values()], tags };
  }
}
