import { isDigest, parseManifest, type Digest } from '../../spec/index.js';
import type { StorageDriver } from '../driver/index.js';
import { paths } from './paths.js';
import type { RegistryStore } from './registry.js';

/** One cached image: a manifest (or index) that no other manifest of its repository lists. */
export interface CachedImage {
  namespace: string;
  /** The cached repository, `<namespace>/<repo>`. */
  repository: string;
  digest: Digest;
  mediaType: string;
  tags: string[];
  /** Bytes of the manifest and every blob and child manifest it reaches that the cache holds. */
  size: number;
  /** Every digest it reaches (itself included) that the cache holds. */
  content: Digest[];
  cachedAt: Date;
  lastAccess: Date;
}

async function linked(driver: StorageDriver, dir: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of await driver.list(dir)) for (const hex of await driver.list(`${dir}/${alg}`)) if (isDigest(`${alg}:${hex}`)) out.push(`${alg}:${hex}` as Digest);
  return out;
}

/** Namespaces that hold cached content (marked when the cache first wrote to them). */
export async function cachedNamespaces(store: RegistryStore): Promise<string[]> {
  const driver = store.driver;
  const out: string[] = [];
  for (const ns of await driver.list(paths.reposRoot)) if (!ns.startsWith('_') && (await driver.stat(paths.upstreamMarker(ns)))) out.push(ns);
  return out.sort();
}

/** Every image the pull-through cache holds, oldest access first. */
export async function listCache(store: RegistryStore, opts: { namespaces?: string[] } = {}): Promise<CachedImage[]> {
  const driver = store.driver;
  const namespaces = new Set(opts.namespaces ?? (await cachedNamespaces(store)));
  const repos = (await store.catalog()).filter((r) => namespaces.has(r.split('/')[0]!));
  const images: CachedImage[] = [];
  const sizeOf = new Map<string, number>();
  const blobSize = async (d: Digest): Promise<number | undefined> => {
    if (!sizeOf.has(d)) {
      const st = await driver.stat(paths.blobData(d));
      if (st) sizeOf.set(d, st.size);
    }
    return sizeOf.get(d);
  };
  for (const repo of repos) {
    const manifests = await linked(driver, paths.manifestLinks(repo));
    const children = new Map<string, Digest[]>();
    const types = new Map<string, string>();
    for (const d of manifests) {
      try {
        const m = await store.getManifest(repo, d);
        const info = parseManifest(m.body, m.mediaType);
        types.set(d, m.mediaType);
        children.set(d, [...info.manifests.map((x) => x.digest), ...info.blobs.map((x) => x.digest)]);
      } catch {
        children.set(d, []);
      }
    }
    const listed = new Set<string>();
    for (const d of manifests) for (const c of children.get(d) ?? []) if (types.has(c)) listed.add(c);
    const tagsOf = new Map<string, string[]>();
    for (const t of await driver.list(paths.tags(repo))) {
      const d = (await driver.get(paths.tag(repo, t)))?.toString('utf8');
      if (d) tagsOf.set(d, [...(tagsOf.get(d) ?? []), t]);
    }
    for (const root of manifests) {
      if (listed.has(root) && !tagsOf.has(root)) continue;
      const content = new Set<Digest>();
      const walk = (d: Digest): void => {
        if (content.has(d)) return;
        content.add(d);
        for (const c of children.get(d) ?? []) walk(c);
      };
      walk(root);
      let size = 0;
      const held: Digest[] = [];
      for (const d of content) {
        const s = await blobSize(d);
        if (s !== undefined) {
          size += s;
          held.push(d);
        }
      }
      const link = await driver.stat(paths.manifestLink(repo, root));
      const at = (await driver.get(paths.cachedAt(repo, root)))?.toString('utf8');
      const lastAccess = new Date(link?.mtimeMs ?? 0);
      const cachedAt = at && !Number.isNaN(Date.parse(at)) ? new Date(at) : lastAccess;
      images.push({ namespace: repo.split('/')[0]!, repository: repo, digest: root, mediaType: types.get(root) ?? '', tags: (tagsOf.get(root) ?? []).sort(), size, content: held, cachedAt, lastAccess });
    }
  }
  return images.sort((a, b) => a.lastAccess.getTime() - b.lastAccess.getTime());
}

export interface PruneOptions {
  namespaces?: string[];
  /** Images not pulled for this long (ms). */
  maxIdle?: number;
  /** Images cached longer ago than this (ms). */
  maxAge?: number;
  /** Images whose `repo`, `repo:tag` or `repo@digest` matches one of these. */
  patterns?: RegExp[];
  /** Then the least recently pulled, until the cached content takes at most this many bytes. */
  maxSize?: number;
  dryRun?: boolean;
  now?: number;
  log?: (line: string) => void;
}

export interface PruneReport {
  images: CachedImage[];
  /** Blobs (and manifests) whose bytes were freed: nothing references them any more. */
  blobs: number;
  bytes: number;
  /** Bytes the cache holds after pruning (its unique content). */
  remaining: number;
}

/**
 * Drops cached images by last access, age, pattern or down to a size quota (LRU), then frees the
 * bytes of content that nothing references any more, in any repository: a layer shared with
 * another image, cached or pushed, stays. Freed blobs are moved aside first and put back if a
 * request used them meanwhile (as gc does).
 */
export async function pruneCache(store: RegistryStore, opts: PruneOptions = {}): Promise<PruneReport> {
  const driver = store.driver;
  const now = opts.now ?? Date.now();
  const log = opts.log ?? (() => undefined);
  const all = await listCache(store, opts.namespaces ? { namespaces: opts.namespaces } : {});
  const pats = opts.patterns ?? [];
  const chosen = new Set<CachedImage>();
  for (const img of all) {
    const names = [img.repository, `${img.repository}@${img.digest}`, ...img.tags.map((t) => `${img.repository}:${t}`)];
    if (opts.maxIdle !== undefined && now - img.lastAccess.getTime() > opts.maxIdle) chosen.add(img);
    else if (opts.maxAge !== undefined && now - img.cachedAt.getTime() > opts.maxAge) chosen.add(img);
    else if (pats.some((re) => names.some((n) => re.test(n)))) chosen.add(img);
  }
  // The quota counts each blob once, however many images share it.
  const refs = new Map<string, number>();
  const size = new Map<string, number>();
  for (const img of all) if (!chosen.has(img)) for (const d of img.content) refs.set(d, (refs.get(d) ?? 0) + 1);
  const sizeOf = async (d: Digest): Promise<number> => {
    if (!size.has(d)) size.set(d, (await driver.stat(paths.blobData(d)))?.size ?? 0);
    return size.get(d)!;
  };
  let total = 0;
  for (const d of refs.keys()) total += await sizeOf(d as Digest);
  if (opts.maxSize !== undefined) {
    for (const img of all) {
      if (total <= opts.maxSize) break;
      if (chosen.has(img)) continue;
      chosen.add(img);
      for (const d of img.content) {
        const n = (refs.get(d) ?? 1) - 1;
        if (n === 0) {
          refs.delete(d);
          total -= await sizeOf(d);
        } else refs.set(d, n);
      }
    }
  }
  const images = all.filter((i) => chosen.has(i));
  for (const img of images) log(`${opts.dryRun ? 'would remove' : 'remove'} ${img.repository}@${img.digest}${img.tags.length ? ` (${img.tags.join(', ')})` : ''}, ${img.size} bytes, last pulled ${img.lastAccess.toISOString()}`);
  const report: PruneReport = { images, blobs: 0, bytes: 0, remaining: total };
  const candidates = new Set<Digest>(images.flatMap((i) => i.content));
  if (opts.dryRun) {
    // What would be freed: candidates that no remaining cached image uses (other repositories not counted).
    for (const d of candidates) if (!refs.has(d)) {
      report.blobs++;
      report.bytes += await sizeOf(d);
    }
    return report;
  }
  const started = Date.now();
  for (const img of images) {
    for (const t of img.tags) await driver.delete(paths.tag(img.repository, t));
    for (const d of img.content) {
      // Child manifests go with their index unless another remaining image of the repo lists them.
      if (d !== img.digest && refs.has(d)) continue;
      await driver.delete(paths.manifestLink(img.repository, d));
      await driver.delete(paths.cachedAt(img.repository, d));
      await driver.delete(paths.blobLink(img.repository, d));
    }
  }
  // Mark everything any manifest of any repository still references, then free the rest.
  const marked = new Set<string>();
  for (const repo of await store.catalog()) {
    for (const d of await linked(driver, paths.manifestLinks(repo))) {
      marked.add(d);
      try {
        const m = await store.getManifest(repo, d);
        const info = parseManifest(m.body, m.mediaType);
        for (const x of [...info.blobs, ...info.manifests]) marked.add(x.digest);
      } catch {
        // unreadable: marks nothing more
      }
    }
  }
  for (const d of candidates) {
    if (marked.has(d)) continue;
    const st = await driver.stat(paths.blobData(d));
    if (!st || st.mtimeMs >= started) continue;
    try {
      await driver.move(paths.blobData(d), paths.trash(d));
    } catch {
      continue;
    }
    const again = await driver.stat(paths.trash(d));
    if (again && again.mtimeMs >= started) {
      await driver.move(paths.trash(d), paths.blobData(d));
      continue;
    }
    await driver.delete(paths.trash(d));
    report.blobs++;
    report.bytes += st.size;
  }
  return report;
}
