import { OciError, isIndexMediaType, isManifestMediaType, type Descriptor, type ImageIndex, WharfError } from '../spec/index.js';
import { copyGraph, fetchManifest, hasReferrers, hasTags, type ReadOnlyTarget, type Target, type CopyGraphOptions } from '../content/index.js';
import { RemoteRepository } from '../stores/remote/index.js';
import { parsePlatform, platformMatches } from './pull.js';
import { withProgress, type ProgressListener } from './source.js';

export interface CopyArtifactOptions {
  /** Take the referrers along, recursively (`cp -r`). */
  referrers?: boolean;
  /** From an index, copy only the manifest of this platform, and tag that. */
  platform?: string;
  concurrency?: number;
  progress?: ProgressListener;
  signal?: AbortSignal;
}

/** The hooks that make a copy take referrers along, and mount blobs within one registry. */
export function graphOptions(src: ReadOnlyTarget, dst: Target, opts: CopyArtifactOptions): CopyGraphOptions {
  const p = opts.progress;
  const g: CopyGraphOptions = {
    concurrency: opts.concurrency,
    signal: opts.signal,
    preCopy: (d) => p?.start?.(d),
    postCopy: (d) => p?.done?.(d),
    onCopySkipped: (d) => p?.skipped?.(d),
  };
  if (opts.referrers && hasReferrers(src)) {
    g.extraSuccessors = async (desc) => (isManifestMediaType(desc.mediaType) ? src.referrers(desc, { signal: opts.signal }) : []);
  }
  // Same registry, another repository: ask the registry to link the blob instead of sending it.
  if (src instanceof RemoteRepository && dst instanceof RemoteRepository && src.host === dst.host && src.name !== dst.name) {
    g.mount = async (desc) => {
      const ok = await dst.mount(desc, src.name, { signal: opts.signal }).catch(() => false);
      if (ok) p?.skipped?.(desc);
      return ok;
    };
  }
  return g;
}

/** Picks the manifest of `platform` from an index; a manifest is returned as is. */
export async function selectPlatform(src: ReadOnlyTarget, root: Descriptor, platform: string, signal?: AbortSignal): Promise<Descriptor> {
  if (!isIndexMediaType(root.mediaType)) return root;
  const want = parsePlatform(platform);
  const idx = JSON.parse((await fetchManifest(src, root, { signal })).toString('utf8')) as ImageIndex;
  const m = idx.manifests.find((d) => platformMatches(want, d.platform));
  if (!m) throw new WharfError('NOT_FOUND', `no manifest for platform ${platform} in ${root.digest}; it has ${idx.manifests.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}` : '?')).join(', ')}`);
  return m;
}

/** Copies the graph named by `srcRef` to `dst`, then tags it there. */
export async function copyArtifact(src: ReadOnlyTarget, srcRef: string, dst: Target, tags: string[], opts: CopyArtifactOptions = {}): Promise<Descriptor> {
  let root = await src.resolve(srcRef, { signal: opts.signal });
  if (opts.platform) root = await selectPlatform(src, root, opts.platform, opts.signal);
  await copyGraph(withProgress(src, opts.progress), dst, root, graphOptions(src, dst, opts));
  for (const t of tags) await dst.tag(root, t, { signal: opts.signal });
  return root;
}

export interface ReferrerNode {
  desc: Descriptor;
  referrers: ReferrerNode[];
}

/** The tree of referrers under `subject`, `depth` levels deep (default unlimited). */
export async function discoverReferrers(src: ReadOnlyTarget, subject: Descriptor, opts: { artifactType?: string; depth?: number; signal?: AbortSignal } = {}): Promise<ReferrerNode[]> {
  if (!hasReferrers(src)) throw new OciError('UNSUPPORTED', 'this target cannot list referrers');
  const seen = new Set<string>([subject.digest]);
  const walk = async (d: Descriptor, level: number): Promise<ReferrerNode[]> => {
    if (opts.depth !== undefined && level > opts.depth) return [];
    const list = await src.referrers(d, { artifactType: level === 1 ? opts.artifactType : undefined, signal: opts.signal });
    const out: ReferrerNode[] = [];
    for (const r of list) {
      if (seen.has(r.digest)) continue;
      seen.add(r.digest);
      out.push({ desc: r, referrers: await walk(r, level + 1) });
    }
    return out;
  };
  return walk(subject, 1);
}

export interface BackupOptions extends CopyArtifactOptions {
  /** Tags to back up (default every tag but the referrers tag schema's). */
  tags?: string[];
}

/**
 * Copies tags of a repository (or layout) to another target, each with its graph; the tag names
 * are kept. Used both ways: backup (registry → layout) and restore (layout → registry).
 */
export async function copyTags(src: ReadOnlyTarget, dst: Target, opts: BackupOptions = {}): Promise<Array<{ tag: string; desc: Descriptor }>> {
  let tags = opts.tags;
  if (!tags || tags.length === 0) {
    if (!hasTags(src)) throw new OciError('UNSUPPORTED', 'this source cannot list its tags; name them');
    tags = (await src.tags({ signal: opts.signal })).filter((t) => !/^sha(256|512)-[0-9a-f]{64,128}$/.test(t));
  }
  const out: Array<{ tag: string; desc: Descriptor }> = [];
  for (const tag of tags) {
    const desc = await copyArtifact(src, tag, dst, [tag], opts);
    out.push({ tag, desc });
  }
  return out;
}
