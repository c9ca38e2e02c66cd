import { parseReference, isDigest, isValidTag, truncate, type Descriptor, WharfError, isKnownError } from '../spec/index.js';
import type { Target, ReferrerLister, TagLister, Deleter } from '../content/index.js';
import { Registry, Transport, RemoteRepository, type RegistryOptions } from '../stores/remote/index.js';

export type AnyTarget = Target & Partial<ReferrerLister & TagLister & Deleter>;

/** A parsed target: where the content lives, and which tag or digest was named. */
export interface OpenedTarget {
  kind: 'remote' | 'layout' | 'layout-tar';
  target: AnyTarget;
  /** The tag or digest written after the name, if any (the first of several tags). */
  reference?: string;
  /** Every tag written (`name:t1,t2`). */
  tags: string[];
  /** The remote repository, when kind is remote. */
  remote?: RemoteRepository;
  /** For messages: `host/repo` or the layout path. */
  display: string;
  /** Releases connections, or writes back a layout tar. */
  close(opts?: { discard?: boolean }): Promise<void>;
}

export interface OpenTargetOptions extends RegistryOptions {
  /** Treat the argument as an OCI layout path (`dir[:tag|@digest]` or `file.tar[:tag]`). */
  ociLayout?: boolean;
  /** For a layout that does not exist yet: create it (destinations) or fail (sources). */
  create?: boolean;
}

/** Splits `path[:tag|@digest]`; a colon belongs to the path when what follows is not a tag. */
export function splitLayoutRef(input: string): { path: string; tags: string[]; digest?: string } {
  const at = input.lastIndexOf('@');
  if (at > 0 && isDigest(input.slice(at + 1))) return { path: input.slice(0, at), tags: [], digest: input.slice(at + 1) };
  const colon = input.lastIndexOf(':');
  if (colon > 0) {
    const tail = input.slice(colon + 1);
    const tags = tail.split(',');
    if (!tail.includes('/') && tags.every(isValidTag)) return { path: input.slice(0, colon), tags };
  }
  return { path: input, tags: [] };
}

/**
 * Opens `host[:port]/repo[:t1,t2|@digest]`, or with `ociLayout` (or for a path that starts with
 * `/`, `./` or `../`) an OCI image layout directory or `.tar`. Remote targets share `transport`
 * when given, so that several targets reuse one pool and one token cache.
 */
export async function openTarget(input: string, opts: OpenTargetOptions = {}): Promise<OpenedTarget> {
  // `./x` and `/x` cannot be registry references, so they name a layout: one that exists, a
  // .tar, or a new directory for a destination; a source that is none of these is an error below.
  const looksLikePath = input.startsWith('./') || input.startsWith('../') || input.startsWith('/') || input === '.';
  if (opts.ociLayout || looksLikePath) {
    const { path, tags, digest } = splitLayoutRef(input);
    const reference = digest ?? tags[0];
    // Loaded only for a layout: most commands talk to a registry, and each module costs start time.
    const { LayoutStore, LayoutTarStore } = await import('../stores/layout/index.js');
    if (path.endsWith('.tar')) {
      const t = await LayoutTarStore.open(path, { create: opts.create ?? true });
      return { kind: 'layout-tar', target: t, reference, tags, display: path, close: (o) => t.close(o) };
    }
    const s = await LayoutStore.open(path, { create: opts.create ?? true });
    return { kind: 'layout', target: s, reference, tags, display: path, close: async () => undefined };
  }
  // `host/repo:t1,t2` is not one reference; split the tag list off before parsing.
  let refInput = input;
  let extraTags: string[] = [];
  const lastSlash = input.lastIndexOf('/');
  const colon = input.indexOf(':', lastSlash);
  if (colon > 0 && !input.includes('@') && input.slice(colon + 1).includes(',')) {
    const tags = input.slice(colon + 1).split(',');
    refInput = `${input.slice(0, colon)}:${tags[0]}`;
    extraTags = tags.slice(1);
    for (const t of extraTags) if (!isValidTag(t)) throw new WharfError('INVALID_ARGUMENT', `invalid tag "${truncate(t)}" in "${truncate(input)}"`);
  }
  let ref;
  try {
    ref = parseReference(refInput);
  } catch (err) {
    if (isKnownError(err) && !opts.ociLayout && !input.includes('/')) {
      throw new WharfError('INVALID_ARGUMENT', `${err.message}; for an OCI layout directory pass --oci-layout`);
    }
    throw err;
  }
  const transport = opts.transport ?? new Transport(opts);
  const reg = new Registry(ref.registry, { ...opts, transport });
  const repo = reg.repository(ref.repository);
  const tags = ref.tag ? [ref.tag, ...extraTags] : [];
  return {
    kind: 'remote',
    target: repo,
    remote: repo,
    reference: ref.digest ?? ref.tag,
    tags,
    display: `${ref.registry}/${ref.repository}`,
    close: async () => {
      if (!opts.transport) await transport.close();
    },
  };
}

/** Stores that can describe a blob from its digest alone (size by HEAD or stat). */
export interface BlobStater {
  statBlob(digest: Descriptor['digest'], opts?: { signal?: AbortSignal }): Promise<Descriptor>;
}

export function canStatBlob(t: object): t is BlobStater {
  return typeof (t as Partial<BlobStater>).statBlob === 'function';
}
