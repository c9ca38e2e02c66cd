import type { Readable } from 'node:stream';
import type { Descriptor } from '../spec/index.js';

/** Options every read or write takes: cancellation. */
export interface OpOptions {
  signal?: AbortSignal;
}

/** Reads content by descriptor. The stream is verified against `desc` by the store. */
export interface Fetcher {
  fetch(desc: Descriptor, opts?: OpOptions): Promise<Readable>;
}

/** Writes content; the store verifies size and digest and commits only complete, correct content. */
export interface Pusher {
  push(desc: Descriptor, content: Readable, opts?: OpOptions): Promise<void>;
}

export interface ReadOnlyStorage extends Fetcher {
  exists(desc: Descriptor, opts?: OpOptions): Promise<boolean>;
}

export interface Storage extends ReadOnlyStorage, Pusher {}

/** Maps a tag (or digest string) to a descriptor. */
export interface Resolver {
  resolve(reference: string, opts?: OpOptions): Promise<Descriptor>;
}

export interface Tagger {
  tag(desc: Descriptor, reference: string, opts?: OpOptions): Promise<void>;
}

export interface ReadOnlyTarget extends ReadOnlyStorage, Resolver {}

/** A content-addressable store with tags: a repository, a layout, a memory map. */
export interface Target extends Storage, Resolver, Tagger {}

/** Lists manifests whose `subject` is `desc` (the referrers API). */
export interface ReferrerLister {
  referrers(desc: Descriptor, opts?: OpOptions & { artifactType?: string }): Promise<Descriptor[]>;
}

export interface TagLister {
  tags(opts?: OpOptions & { last?: string; n?: number }): Promise<string[]>;
}

/** Content whose digest is not known yet, readable again from any offset (a file). */
export interface IngestSource {
  size: number;
  /** What it is, for messages (a file's path). */
  name?: string;
  /** A fresh stream of the whole content (read again when an upload starts over). */
  open(): Readable;
  /** Called once the content has been read, before it is committed: throws if it changed meanwhile. */
  check?(): Promise<void>;
  /**
   * Names this exact content across processes (a file's path and what its stat says changes with
   * it), so that an interrupted upload of it can resume where the store says it stopped.
   */
  resumeKey?: string;
}

/**
 * Stores content whose digest is not known yet, hashing it on its way in, so that it is read once
 * (a file pushed for the first time). The store checks the size, commits only under the digest
 * it computed, and returns the descriptor; a failure leaves nothing behind.
 */
export interface Ingester {
  ingest(mediaType: string, src: IngestSource, opts?: OpOptions): Promise<Descriptor>;
}

export interface Deleter {
  delete(desc: Descriptor, opts?: OpOptions): Promise<void>;
}

/** Removes one tag, leaving the manifest and its other tags (spec: DELETE /v2/<name>/manifests/<tag>). */
export interface Untagger {
  untag(tag: string, opts?: OpOptions): Promise<void>;
}

export function canUntag(t: object): t is Untagger {
  return typeof (t as Partial<Untagger>).untag === 'function';
}

export function hasReferrers(t: object): t is ReferrerLister {
  return typeof (t as Partial<ReferrerLister>).referrers === 'function';
}

export function hasTags(t: object): t is TagLister {
  return typeof (t as Partial<TagLister>).tags === 'function';
}

/** Streams content from a byte offset on: the rest of a download that broke off. */
export interface RangeFetcher {
  /** Bytes `offset` to the end of `desc`'s content, unverified: the caller verifies the whole. */
  fetchFrom(desc: Descriptor, offset: number, opts?: OpOptions): Promise<Readable>;
}

export function canFetchFrom(t: object): t is RangeFetcher {
  return typeof (t as Partial<RangeFetcher>).fetchFrom === 'function';
}

export function canIngest(t: object): t is Ingester {
  return typeof (t as Partial<Ingester>).ingest === 'function';
}

export function isDeleter(t: object): t is Deleter {
  return typeof (t as Partial<Deleter>).delete === 'function';
}
