import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ByteRange, Descriptor, Digest } from '../../spec/index.js';
import type { AppendOptions, UploadStatus } from './uploads.js';

/** A blob to answer a GET or HEAD with: stored content, or a pull-through fill under way. */
export interface BlobHandle {
  size: number;
  /**
   * Writes bytes [start, end] to `res`. A whole blob is verified on its way, and its last byte
   * goes out only if it matched; any failure throws, and the caller cuts the response short.
   */
  send(res: ServerResponse, start: number, end: number): Promise<void>;
  /** A range as a stream, for a multipart answer of several ranges (a range is never verified). */
  stream(range: ByteRange): Promise<Readable>;
  /**
   * Where the client may GET the stored bytes itself (a presigned URL of an object store), when
   * the store hands such URLs out: the registry then answers 307. The client verifies the digest.
   */
  url?(): Promise<string | undefined>;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  /** Set when a cache answered with what it had because its upstream could not: the `Warning` header. */
  warning?: string;
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
}

/** A page of a sorted list: at most `n` items after `last`. */
export interface Page {
  n: number;
  last?: string;
}

export interface Listed<T> {
  items: T[];
  /** More items follow the last one (the answer gets a Link to them). */
  more: boolean;
  /** Set when a cache listed only what it holds because its upstream could not answer. */
  warning?: string;
}

/** The one pagination of every list: `all` is sorted by `key`. */
export function paginate<T>(all: T[], page: Page, key: (item: T) => string): Listed<T> {
  const after = page.last === undefined ? all : all.filter((x) => key(x) > page.last!);
  return { items: after.slice(0, page.n), more: after.length > page.n && page.n > 0 };
}

/**
 * What the /v2 handlers serve from: the registry store (src/server/store), or the pull-through
 * cache that wraps it (src/server/proxy). Every failure is an OciError.
 */
export interface RegistryBackend {
  readonly maxManifestSize: number;
  /**
   * The repository a request's name stands for: a name the client spelled for an upstream
   * (containerd's `?ns=`, or a default namespace for reads) becomes its cached repository. Local
   * names come back as they are. Access control and the audit log see the result.
   */
  mapName(name: string, ns: string | undefined, read: boolean): Promise<string>;
  /** The upstream namespace that a repository caches (the `OCI-Namespace` header), if any. */
  namespaceOf(name: string): string | undefined;

  listRepositories(page: Page, visible: (name: string) => boolean): Promise<Listed<string>>;
  listTags(name: string, page: Page): Promise<Listed<string>>;
  listReferrers(name: string, subject: Digest, page: Page, artifactType?: string): Promise<Listed<Descriptor>>;

  getManifest(name: string, reference: string): Promise<StoredManifest>;
  putManifest(name: string, reference: string, body: Buffer, contentType: string | undefined): Promise<PutManifestResult>;
  deleteManifest(name: string, reference: string): Promise<void>;

  /** `withBody: false` for a HEAD: only the size is needed, so nothing is opened or fetched. */
  openBlob(name: string, digest: Digest, withBody: boolean): Promise<BlobHandle>;
  deleteBlob(name: string, digest: Digest): Promise<void>;
  /** A repository that holds the blob and that `may` lets the caller read (an automatic mount's source). */
  blobHolder(digest: Digest, may: (repo: string) => boolean): Promise<string | undefined>;
  /** Links a blob that `from` holds into `to`; its size, or undefined when `from` lacks it. */
  mountBlob(to: string, from: string, digest: Digest): Promise<number | undefined>;

  startUpload(name: string): Promise<UploadStatus>;
  uploadStatus(name: string, id: string): Promise<UploadStatus>;
  appendUpload(name: string, id: string, body: Readable, opts: AppendOptions): Promise<UploadStatus>;
  /** Ends an upload with its last chunk (if any); the blob's size once its digest matched. */
  finishUpload(name: string, id: string, digest: Digest, body: Readable | undefined, opts: AppendOptions): Promise<number>;
  cancelUpload(name: string, id: string): Promise<void>;
}
