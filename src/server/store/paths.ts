import { parseDigest, type Digest } from '../../spec/index.js';

/**
 * The on-disk layout (docs/STORAGE.md). Every path is built here from a validated repository
 * name, tag, digest or upload id; repository components never start with `_`, so the `_`-prefixed
 * directories below cannot collide with a nested repository.
 */
export const paths = {
  blobData(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
  },
  blobsRoot: 'blobs',
  /** Where garbage collection moves a blob before it deletes it (see gc.ts). */
  trashRoot: '_trash',
  trash(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `_trash/${algorithm}-${hex}`;
  },
  reposRoot: 'repositories',
  repo(name: string): string {
    return `repositories/${name}`;
  },
  blobLink(name: string, digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `repositories/${name}/_blobs/${algorithm}/${hex}`;
  },
  blobLinks(name: string): string {
    return `repositories/${name}/_blobs`;
  },
  /** The link's content is the manifest's media type, so a GET needs no JSON parsing. */
  manifestLink(name: string, digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `repositories/${name}/_manifests/${algorithm}/${hex}`;
  },
  manifestLinks(name: string): string {
    return `repositories/${name}/_manifests`;
  },
  /** A tag file holds the digest it points at. */
  tag(name: string, tag: string): string {
    return `repositories/${name}/_tags/${tag}`;
  },
  tags(name: string): string {
    return `repositories/${name}/_tags`;
  },
  /** One file per referrer of a subject, holding the referrer's descriptor as JSON. */
  referrers(name: string, subject: Digest): string {
    const { algorithm, hex } = parseDigest(subject);
    return `repositories/${name}/_referrers/${algorithm}/${hex}`;
  },
  referrer(name: string, subject: Digest, referrer: Digest): string {
    const { algorithm, hex } = parseDigest(referrer);
    return `${paths.referrers(name, subject)}/${algorithm}-${hex}`;
  },
  /** `<namespace>/_upstream`: this namespace caches an upstream (its origin), so tools find cached repositories without the config. */
  upstreamMarker(namespace: string): string {
    return `repositories/${namespace}/_upstream`;
  },
  /** When a manifest entered the pull-through cache (ISO time). */
  cachedAt(name: string, digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `repositories/${name}/_cached/${algorithm}/${hex}`;
  },
  uploads(name: string): string {
    return `repositories/${name}/_uploads`;
  },
  /** A session is its data file, and (once a chunk was acknowledged) `<id>.info` beside it. */
  uploadData(name: string, id: string): string {
    return `repositories/${name}/_uploads/${id}`;
  },
  uploadInfo(name: string, id: string): string {
    return `repositories/${name}/_uploads/${id}.info`;
  },
};

export const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A tag or a manifest link: what a manifest GET reads besides the manifest's bytes, and what a
 * driver may keep in memory for a while (S3: storage.s3.cacheTtl). Blob links and blob bytes are
 * never among them, so a blob gone under another process (wharf gc) is never taken as present.
 */
export function isManifestRef(path: string): boolean {
  return /^repositories\/.+\/_(?:tags|manifests)\/[^/]+(?:\/[^/]+)?$/.test(path);
}
