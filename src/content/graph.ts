import { Readable } from 'node:stream';
import {
  type Descriptor,
  isManifestMediaType,
  parseManifest,
} from '../spec/index.js';
import type { Fetcher, OpOptions, ReadOnlyStorage, ReadOnlyTarget, Storage, Target } from './target.js';
import { readAllVerified } from './verify.js';

/** Manifests are small; anything larger than this is refused rather than buffered. */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** Fetches a manifest whole, verified against its descriptor. */
export async function fetchManifest(fetcher: Fetcher, desc: Descriptor, opts: OpOptions = {}): Promise<Buffer> {
  return readAllVerified(await fetcher.fetch(desc, opts), desc, MAX_MANIFEST_SIZE);
}

/** The children of a node in the content graph: an index's manifests, a manifest's config and layers. */
export function successorsOf(desc: Descriptor, body: Uint8Array): Descriptor[] {
  if (!isManifestMediaType(desc.mediaType)) return [];
  const info = parseManifest(body, desc.mediaType);
  return [...info.manifests, ...info.blobs];
}

export interface CopyGraphOptions extends OpOptions {
  /** Transfers running at once (default 3, as ORAS). */
  concurrency?: number;
  /**
   * Extra nodes to copy with a node, after its own children: e.g. its referrers (`cp -r`), or its
   * subject (`pull --include-subject`). Defaults to none.
   */
  extraSuccessors?: (desc: Descriptor, body: Buffer | undefined) => Promise<Descriptor[]>;
  /** Narrows the successors of a node, e.g. to one platform of an index. */
  filterSuccessors?: (parent: Descriptor, children: Descriptor[]) => Promise<Descriptor[]> | Descriptor[];
  /** Called before a node is transferred. */
  preCopy?: (desc: Descriptor) => Promise<void> | void;
  /** Called after a node has been transferred. */
  postCopy?: (desc: Descriptor) => Promise<void> | void;
  /** Called when a node is already present at the destination. */
  onCopySkipped?: (desc: Descriptor) => Promise<void> | void;
  /**
   * Lets the destination take a blob without a transfer (a cross-repository mount). Returns true
   * when the blob is now present.
   */
  mount?: (desc: Descriptor) => Promise<boolean>;
}

/**
 * Copies the graph rooted at `root` from `src` to `dst`, children before parents, so that a
 * manifest is never pushed before the blobs it references. Nodes present at the destination are
 * skipped with their whole subgraph (a registry only holds a manifest whose children it holds).
 * Every byte is verified by the stores on the way.
 */
export async function copyGraph(src: ReadOnlyStorage, dst: Storage, root: Descriptor, opts: CopyGraphOptions = {}): Promise<void> {
  const limit = semaphore(opts.concurrency ?? 3);
  const done = new Map<string, Promise<void>>();

  const visit = (desc: Descriptor): Promise<void> => {
    let p = done.get(desc.digest);
    if (!p) {
      p = copyNode(desc);
      done.set(desc.digest, p);
    }
    return p;
  };

  const copyNode = async (desc: Descriptor): Promise<void> => {
    opts.signal?.throwIfAborted();
    const manifest = isManifestMediaType(desc.mediaType);
    const exists = await dst.exists(desc, opts);
    if (exists && !opts.extraSuccessors) {
      await opts.onCopySkipped?.(desc);
      return;
    }
    let body: Buffer | undefined;
    if (manifest) body = await limit(() => fetchManifest(src, desc, opts));
    if (!exists) {
      let children = body ? successorsOf(desc, body) : [];
      if (opts.filterSuccessors) children = await opts.filterSuccessors(desc, children);
      await Promise.all(children.map(visit));
    }
    if (exists) await opts.onCopySkipped?.(desc);
    else {
      await opts.preCopy?.(desc);
      await limit(async () => {
        if (!body && opts.mount && (await opts.mount(desc))) return;
        const content = body ? Readable.from([body]) : await src.fetch(desc, opts);
        await dst.push(desc, content, opts);
      });
      await opts.postCopy?.(desc);
    }
    if (opts.extraSuccessors) await Promise.all((await opts.extraSuccessors(desc, body)).map(visit));
  };

  await visit(root);
}

export interface CopyOptions extends CopyGraphOptions {
  /** Tags to set at the destination; defaults to the source reference when it is a tag. */
  tags?: string[];
}

/** Resolves `srcRef`, copies its graph and tags the result at the destination. */
export async function copy(src: ReadOnlyTarget, srcRef: string, dst: Target, dstRef: string | undefined, opts: CopyOptions = {}): Promise<Descriptor> {
  const root = await src.resolve(srcRef, opts);
  await copyGraph(src, dst, root, opts);
  const tags = opts.tags ?? (dstRef ? [dstRef] : []);
  for (const t of tags) await dst.tag(root, t, opts);
  return root;
}

/** A tiny counting semaphore; holders never wait on other holders, so it cannot deadlock. */
export function semaphore(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  // A released slot passes straight to the next waiter, so nobody can jump the queue.
  const release = (): void => {
    const next = queue.shift();
    if (next) next();
    else active--;
  };
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await fn();
    } finally {
      release();
    }
  };
}
