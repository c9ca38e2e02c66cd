import { Readable } from 'node:stream';
import { MediaType, digestOf, isIndexMediaType, isDigest, type Descriptor, type ImageIndex, type ImageManifest, type Platform, WharfError } from '../spec/index.js';
import { fetchManifest, readAllVerified, type Target, type ReadOnlyTarget } from '../content/index.js';

/** A manifest's descriptor for an index: its platform read from an image config, its artifact type. */
export async function describeForIndex(src: ReadOnlyTarget, reference: string, signal?: AbortSignal): Promise<Descriptor> {
  const desc = await src.resolve(reference, { signal });
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (isIndexMediaType(desc.mediaType)) return out;
  const m = JSON.parse((await fetchManifest(src, desc, { signal })).toString('utf8')) as ImageManifest;
  if (m.artifactType) out.artifactType = m.artifactType;
  if (m.config && (m.config.mediaType === MediaType.ImageConfig || m.config.mediaType === MediaType.DockerConfig)) {
    const cfg = JSON.parse((await readAllVerified(await src.fetch(m.config, { signal }), m.config, 4 << 20)).toString('utf8')) as Partial<Platform>;
    if (cfg.os && cfg.architecture) {
      const p: Platform = { os: cfg.os, architecture: cfg.architecture };
      if (cfg.variant) p.variant = cfg.variant;
      if (cfg['os.version']) p['os.version'] = cfg['os.version'];
      out.platform = p;
    }
  }
  return out;
}

export interface IndexOptions {
  annotations?: Record<string, string>;
  artifactType?: string;
  tags?: string[];
  signal?: AbortSignal;
}

async function pushIndex(dst: Target, index: ImageIndex, tags: string[], signal?: AbortSignal): Promise<{ desc: Descriptor; body: Buffer }> {
  const body = Buffer.from(JSON.stringify(index));
  const desc: Descriptor = { mediaType: MediaType.ImageIndex, digest: digestOf(body), size: body.length };
  await dst.push(desc, Readable.from([body]), { signal });
  for (const t of tags) await dst.tag(desc, t, { signal });
  return { desc, body };
}

/** Builds an image index over manifests of the same repository (`manifest index create`). */
export async function createIndex(dst: Target, sources: string[], opts: IndexOptions = {}): Promise<{ desc: Descriptor; body: Buffer }> {
  const manifests: Descriptor[] = [];
  for (const s of sources) manifests.push(await describeForIndex(dst, s, opts.signal));
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests };
  if (opts.artifactType) index.artifactType = opts.artifactType;
  if (opts.annotations && Object.keys(opts.annotations).length) index.annotations = opts.annotations;
  return pushIndex(dst, index, opts.tags ?? [], opts.signal);
}

/** Adds and removes manifests of an existing index and pushes the result (`manifest index update`). */
export async function updateIndex(dst: Target, reference: string, change: { add?: string[]; remove?: string[] }, opts: IndexOptions = {}): Promise<{ desc: Descriptor; body: Buffer }> {
  const cur = await dst.resolve(reference, { signal: opts.signal });
  if (!isIndexMediaType(cur.mediaType)) throw new WharfError('INVALID_ARGUMENT', `${reference} is a ${cur.mediaType}, not an index`);
  const index = JSON.parse((await fetchManifest(dst, cur, { signal: opts.signal })).toString('utf8')) as ImageIndex;
  let manifests = index.manifests;
  for (const r of change.remove ?? []) {
    const digest = isDigest(r) ? r : (await dst.resolve(r, { signal: opts.signal })).digest;
    if (!manifests.some((m) => m.digest === digest)) throw new WharfError('NOT_FOUND', `${r} is not in index ${cur.digest}`);
    manifests = manifests.filter((m) => m.digest !== digest);
  }
  for (const a of change.add ?? []) {
    const d = await describeForIndex(dst, a, opts.signal);
    if (!manifests.some((m) => m.digest === d.digest)) manifests = [...manifests, d];
  }
  const next: ImageIndex = { ...index, manifests };
  if (opts.annotations && Object.keys(opts.annotations).length) next.annotations = { ...index.annotations, ...opts.annotations };
  const tags = opts.tags ?? (isDigest(reference) ? [] : [reference]);
  return pushIndex(dst, next, tags, opts.signal);
}
