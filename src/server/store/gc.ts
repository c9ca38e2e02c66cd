import { isDigest, parseManifest, type Digest } from '../../spec/index.js';
import type { StorageDriver } from '../driver/index.js';
import { paths } from './paths.js';
import type { RegistryStore } from './registry.js';

export interface GcOptions {
  dryRun?: boolean;
  /** Also remove manifests that no tag reaches (through indexes or as referrers of one). */
  deleteUntagged?: boolean;
  /**
   * Content touched more recently than this is kept whatever the mark says (default 1 h): it
   * belongs to a push in progress, whose blobs arrive before the manifest that references them.
   */
  graceMs?: number;
  log?: (line: string) => void;
  /** Upload sessions untouched this long are removed too (default 24 h, `uploads.purgeAfter`'s). */
  uploadsPurgeAfterMs?: number;
}

export interface GcReport {
  blobs: number;
  bytes: number;
  manifests: number;
  kept: number;
  /** Abandoned upload sessions removed (or, dry, to remove), and the bytes they held. */
  uploads: number;
  uploadBytes: number;
}

async function linkedDigests(driver: StorageDriver, dir: string): Promise<Array<{ digest: Digest; path: string }>> {
  const out: Array<{ digest: Digest; path: string }> = [];
  for (const alg of await driver.list(dir)) {
    for (const hex of await driver.list(`${dir}/${alg}`)) {
      const d = `${alg}:${hex}`;
      if (isDigest(d)) out.push({ digest: d, path: `${dir}/${alg}/${hex}` });
    }
  }
  return out;
}

/**
 * Removes an unmarked blob without racing a writer that is about to use it. The blob is first
 * renamed aside, atomically; a writer's touch (which fails on a missing blob, making the writer
 * treat it as unknown) either came before the rename, and then shows in the mtime, so the blob
 * goes back; or comes after it, and then the writer never relies on the blob. Returns whether the
 * blob was deleted.
 */
async function sweep(driver: StorageDriver, digest: Digest, cutoff: number): Promise<boolean> {
  const trash = paths.trash(digest);
  try {
    await driver.move(paths.blobData(digest), trash);
  } catch {
    return false; // gone already, or moved by another collection
  }
  const st = await driver.stat(trash);
  if (st && st.mtimeMs >= cutoff) {
    await driver.move(trash, paths.blobData(digest));
    return false;
  }
  await driver.delete(trash);
  return true;
}

/**
 * Mark and sweep, safe beside a running server. Every use of a blob (a finished upload, a mount,
 * a manifest PUT that references it) refreshes the blob's mtime, and the sweep re-reads that mtime
 * after moving the blob aside (see sweep()), so content that a push in progress relies on is never
 * removed.
 */
export async function collectGarbage(store: RegistryStore, opts: GcOptions = {}): Promise<GcReport> {
  const driver = store.driver;
  const start = Date.now();
  // A collection that crashed between moving a blob aside and deleting it may have caught one in
  // use: put every such blob back, and let this run judge it again.
  for (const name of await driver.list(paths.trashRoot)) {
    const digest = name.replace('-', ':');
    if (isDigest(digest) && !opts.dryRun) await driver.move(`${paths.trashRoot}/${name}`, paths.blobData(digest));
  }
  const cutoff = start - (opts.graceMs ?? 3600e3);
  const log = opts.log ?? (() => undefined);
  const marked = new Set<string>();
  const report: GcReport = { blobs: 0, bytes: 0, manifests: 0, kept: 0, uploads: 0, uploadBytes: 0 };

  // Sessions the server's own timer would purge (it may not be running): the same rule, at once.
  for (const u of (await store.purgeUploads(opts.uploadsPurgeAfterMs ?? 24 * 3600e3, { dryRun: opts.dryRun ?? false })).uploads) {
    log(`${opts.dryRun ? 'would delete' : 'delete'} upload session ${u.repo}/${u.id} (${u.bytes} bytes, idle ${Math.round(u.idleMs / 60e3)} min)`);
    report.uploads++;
    report.uploadBytes += u.bytes;
  }

  for (const repo of await store.catalog()) {
    const manifests = await linkedDigests(driver, paths.manifestLinks(repo));
    const bodies = new Map<string, ReturnType<typeof parseManifest>>();
    for (const { digest } of manifests) {
      try {
        const m = await store.getManifest(repo, digest);
        bodies.set(digest, parseManifest(m.body, m.mediaType));
      } catch {
        // A manifest whose content is gone or damaged marks nothing.
      }
    }
    let live = new Set(manifests.map((m) => m.digest as string));
    if (opts.deleteUntagged) {
      live = new Set();
      const visit = (d: string): void => {
        if (live.has(d)) return;
        live.add(d);
        for (const c of bodies.get(d)?.manifests ?? []) visit(c.digest);
      };
      for (const t of await store.tags(repo).catch(() => [] as string[])) {
        const d = (await driver.get(paths.tag(repo, t)))?.toString('utf8');
        if (d) visit(d);
      }
      // Referrers live as long as their subject does; repeat until nothing changes.
      for (let grew = true; grew; ) {
        grew = false;
        for (const [d, info] of bodies) {
          if (!live.has(d) && info.subject && live.has(info.subject.digest)) {
            visit(d);
            grew = true;
          }
        }
      }
      for (const { digest, path } of manifests) {
        if (live.has(digest)) continue;
        const st = await driver.stat(path);
        if (st && st.mtimeMs >= cutoff) {
          live.add(digest);
          continue;
        }
        log(`${opts.dryRun ? 'would delete' : 'delete'} untagged manifest ${repo}@${digest}`);
        report.manifests++;
        if (!opts.dryRun) await store.deleteManifest(repo, digest).catch(() => undefined);
      }
    }
    for (const d of live) {
      marked.add(d);
      for (const b of bodies.get(d)?.blobs ?? []) marked.add(b.digest);
    }
  }

  for (const alg of await driver.list(paths.blobsRoot)) {
    for (const shard of await driver.list(`${paths.blobsRoot}/${alg}`)) {
      for (const hex of await driver.list(`${paths.blobsRoot}/${alg}/${shard}`)) {
        const digest = `${alg}:${hex}`;
        if (!isDigest(digest)) continue;
        if (marked.has(digest)) {
          report.kept++;
          continue;
        }
        const path = paths.blobData(digest);
        const st = await driver.stat(path);
        if (!st || st.mtimeMs >= cutoff) {
          report.kept++;
          continue;
        }
        if (!opts.dryRun && !(await sweep(driver, digest, cutoff))) {
          report.kept++;
          continue;
        }
        log(`${opts.dryRun ? 'would delete' : 'delete'} blob ${digest} (${st.size} bytes)`);
        report.blobs++;
        report.bytes += st.size;
      }
    }
  }

  // Links to content that is gone would answer HEAD with a blob that GET cannot serve. A link made
  // within the grace period may belong to a push whose bytes are being renamed into place right
  // now (the two are written side by side): it stays.
  if (!opts.dryRun) {
    for (const repo of await store.catalog()) {
      const links = [...(await linkedDigests(driver, paths.blobLinks(repo))), ...(await linkedDigests(driver, paths.manifestLinks(repo)))];
      for (const { digest, path } of links) {
        if (await driver.stat(paths.blobData(digest))) continue;
        const st = await driver.stat(path);
        if (st && st.mtimeMs < cutoff) await driver.delete(path);
      }
    }
  }
  return report;
}
