import type { Readable } from 'node:stream';
import { OciError, isDigest, isManifestMediaType, assertName, type Descriptor, type Digest, WharfError } from '../../spec/index.js';
import { copyGraph, readAllVerified, MAX_MANIFEST_SIZE, type Storage } from '../../content/index.js';
import { openImageArchive, type DockerArchive, type LayoutStore, type LayoutTarStore } from '../../stores/layout/index.js';
import type { RegistryStore } from '../store/index.js';
import type { Upstream } from './upstream.js';

/**
 * The cached repository `local` as a copy destination: content lands exactly where a pull through
 * the cache would have put it, verified on the way, and blobs stay shared with the whole store.
 */
export class CacheTarget implements Storage {
  constructor(
    private readonly store: RegistryStore,
    readonly local: string,
  ) {}

  async exists(desc: Descriptor): Promise<boolean> {
    if (isManifestMediaType(desc.mediaType)) return this.store.hasManifest(this.local, desc.digest);
    if (!(await this.store.touchBlob(desc.digest))) return false;
    await this.store.linkBlob(this.local, desc.digest);
    return true;
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    return this.store.fetchBlob(desc);
  }

  async push(desc: Descriptor, content: Readable): Promise<void> {
    if (isManifestMediaType(desc.mediaType)) await this.store.saveCachedManifest(this.local, desc, await readAllVerified(content, desc, MAX_MANIFEST_SIZE));
    else await this.store.putBlob(this.local, desc, content);
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    await this.store.tag(this.local, desc.digest, tag);
  }
}

export interface LoadOptions {
  store: RegistryStore;
  upstreams: Upstream[];
  defaultNamespace?: string;
  /** The cached repository (`<namespace>/<repo>`) for sources whose images carry no name. */
  repo?: string;
  log?: (line: string) => void;
}

export interface LoadReport {
  images: Array<{ repository: string; tag?: string; digest: Digest }>;
}

/** `name[:tag|@digest]` → parts; the tag defaults to latest. */
function splitRef(ref: string): { name: string; tag?: string; digest?: Digest } {
  const at = ref.indexOf('@');
  if (at >= 0) {
    const d = ref.slice(at + 1);
    if (!isDigest(d)) throw new WharfError('INVALID_ARGUMENT', `invalid digest in "${ref}"`);
    return { name: ref.slice(0, at), digest: d };
  }
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: 'latest' };
}

/**
 * Maps an image name to its cached repository and upstream: `<namespace>/<repo>`, a registry host
 * an upstream serves (`registry-1.docker.io/library/alpine`), or, with a default namespace, a bare
 * name (`library/alpine`, and `alpine` on Docker Hub).
 */
function placeOf(name: string, opts: LoadOptions): { upstream: Upstream; local: string; remote: string } {
  const i = name.indexOf('/');
  const first = i > 0 ? name.slice(0, i) : '';
  let u = opts.upstreams.find((x) => x.namespace === first);
  let rest = name.slice(i + 1);
  if (!u && (first.includes('.') || first.includes(':') || first === 'localhost')) u = opts.upstreams.find((x) => x.host === first || x.url.hostname === first);
  // Docker's tools write every short name as docker.io/<name>: without a docker.io upstream, undo that.
  if (!u && first === 'docker.io') return placeOf(rest.replace(/^library\/(?=[^/]+$)/, ''), opts);
  if (!u) {
    u = opts.upstreams.find((x) => x.namespace === opts.defaultNamespace);
    rest = name;
  }
  if (!u) throw new WharfError('INVALID_ARGUMENT', `"${name}" names no configured upstream namespace (${opts.upstreams.map((x) => x.namespace).join(', ') || 'none configured'}); qualify it as <namespace>/<repo> or pass --repo`);
  const remote = u.upstreamName(rest);
  return { upstream: u, local: assertName(`${u.namespace}/${remote}`), remote };
}

async function mark(store: RegistryStore, local: string, upstreams: Upstream[]): Promise<void> {
  const ns = local.split('/')[0]!;
  const u = upstreams.find((x) => x.namespace === ns);
  await store.markCacheNamespace(ns, u?.url.origin ?? 'loaded');
}

/**
 * Loads images into the cache, additively: from an image-list file (one `<namespace>/<repo>:<tag>`
 * per line, fetched from the upstreams, so online), a `docker save` tarball, or an OCI image layout
 * (a directory or a .tar). Loaded images are served exactly as pulled ones, also offline.
 */
export async function loadCache(source: string, opts: LoadOptions): Promise<LoadReport> {
  const archive = await openImageArchive(source);
  try {
    if (archive.kind === 'text') return await loadList(archive.text, opts);
    return archive.kind === 'layout' ? await loadLayout(archive.layout, source, opts) : await loadDockerArchive(archive.archive, opts);
  } finally {
    await archive.close();
  }
}

async function loadList(text: string, opts: LoadOptions): Promise<LoadReport> {
  const report: LoadReport = { images: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const ref = splitRef(line);
    const place = placeOf(ref.name, opts);
    if (place.upstream.offline) throw new OciError('UNAVAILABLE', `cannot load ${line}: upstream ${place.upstream.namespace} is offline`);
    const src = place.upstream.repository(place.remote);
    const root = await src.resolve(ref.digest ?? ref.tag!);
    const dst = new CacheTarget(opts.store, place.local);
    await mark(opts.store, place.local, opts.upstreams);
    await copyGraph(src, dst, root);
    if (ref.tag) await dst.tag(root, ref.tag);
    opts.log?.(`loaded ${place.local}${ref.tag ? `:${ref.tag}` : ''}@${root.digest}`);
    report.images.push({ repository: place.local, ...(ref.tag ? { tag: ref.tag } : {}), digest: root.digest });
  }
  return report;
}

async function loadLayout(layout: LayoutStore | LayoutTarStore, source: string, opts: LoadOptions): Promise<LoadReport> {
  const report: LoadReport = { images: [] };
  const refs = await layout.tags();
  if (refs.length === 0) throw new WharfError('INVALID_ARGUMENT', `${source} holds no tagged image (org.opencontainers.image.ref.name)`);
  for (const refName of refs) {
    let local: string;
    let tag: string;
    if (opts.repo !== undefined) {
      local = assertName(opts.repo);
      tag = refName.includes(':') || refName.includes('/') ? splitRef(refName).tag ?? 'latest' : refName;
    } else if (refName.includes('/')) {
      const r = splitRef(refName);
      local = placeOf(r.name, opts).local;
      tag = r.tag ?? 'latest';
    } else {
      throw new WharfError('INVALID_ARGUMENT', `${source}: image "${refName}" carries no repository name; pass --repo <namespace>/<repo>`);
    }
    const root = await layout.resolve(refName);
    const dst = new CacheTarget(opts.store, local);
    await mark(opts.store, local, opts.upstreams);
    await copyGraph(layout, dst, root);
    await dst.tag(root, tag);
    opts.log?.(`loaded ${local}:${tag}@${root.digest}`);
    report.images.push({ repository: local, tag, digest: root.digest });
  }
  return report;
}

/** The images of a `docker save` tarball, under their RepoTags (or --repo). */
async function loadDockerArchive(archive: DockerArchive, opts: LoadOptions): Promise<LoadReport> {
  const report: LoadReport = { images: [] };
  for (const { repoTags, root } of archive.images) {
    const targets = opts.repo !== undefined ? [{ local: assertName(opts.repo), tag: repoTags[0] ? splitRef(repoTags[0]).tag ?? 'latest' : 'latest' }] : repoTags.map((t) => {
      const r = splitRef(t);
      return { local: placeOf(r.name, opts).local, tag: r.tag ?? 'latest' };
    });
    if (targets.length === 0) throw new WharfError('INVALID_ARGUMENT', `an image in the docker archive has no RepoTags; pass --repo <namespace>/<repo>`);
    for (const { local, tag } of targets) {
      const dst = new CacheTarget(opts.store, local);
      await mark(opts.store, local, opts.upstreams);
      await copyGraph(archive, dst, root);
      await dst.tag(root, tag);
      opts.log?.(`loaded ${local}:${tag}@${root.digest}`);
      report.images.push({ repository: local, tag, digest: root.digest });
    }
  }
  return report;
}
