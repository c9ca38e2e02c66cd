import { OciError, isDigest, isValidName, isValidTag, truncate, type Descriptor, type Digest } from '../../spec/index.js';
import type { WebDeps } from './deps.js';

/** The query parameters of the artifact routes, checked: bad input is a 400 with the spec's code, never a 500. */

export function readRepo(q: Record<string, string | undefined>): string {
  const repo = q.repo;
  if (repo === undefined || repo === '') throw new OciError('NAME_INVALID', 'repo is required', { detail: { parameter: 'repo' } });
  if (!isValidName(repo)) throw new OciError('NAME_INVALID', `invalid repository name "${truncate(repo)}"`, { detail: { name: truncate(repo) } });
  return repo;
}

/** `ref`: a tag or a digest. */
export function readRef(q: Record<string, string | undefined>): string {
  const ref = q.ref;
  if (ref === undefined || ref === '') throw new OciError('TAG_INVALID', 'ref (a tag or a digest) is required', { detail: { parameter: 'ref' } });
  if (ref.includes(':')) {
    if (!isDigest(ref)) throw new OciError('DIGEST_INVALID', `invalid digest "${truncate(ref)}"`, { detail: { digest: truncate(ref) } });
    return ref;
  }
  if (!isValidTag(ref)) throw new OciError('TAG_INVALID', `invalid tag "${truncate(ref)}"`, { detail: { tag: truncate(ref) } });
  return ref;
}

export function readDigest(q: Record<string, string | undefined>, key: string): Digest {
  const v = q[key];
  if (v === undefined || v === '') throw new OciError('DIGEST_INVALID', `${key} (a digest) is required`, { detail: { parameter: key } });
  if (!isDigest(v)) throw new OciError('DIGEST_INVALID', `invalid digest "${truncate(v)}" in ${key}`, { detail: { digest: truncate(v) } });
  return v;
}

/** The repository a name stands for, as /v2 maps it (a pull-through cache's namespaces); access is checked on the result. */
export function resolveName(deps: WebDeps, repo: string): Promise<string> {
  return deps.backend.mapName(repo, undefined, true);
}

/** A manifest or index, as far as the UI reads it: every field checked for its type, nothing trusted. */
export interface ParsedManifest {
  mediaType: string | undefined;
  artifactType: string | undefined;
  config: Descriptor | undefined;
  layers: Descriptor[];
  /** Set for an index. */
  manifests: Descriptor[] | undefined;
  subject: Descriptor | undefined;
  annotations: Record<string, string>;
  raw: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown): Record<string, string> {
  if (!isObject(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

export function descriptorOf(v: unknown): Descriptor | undefined {
  if (!isObject(v) || typeof v.mediaType !== 'string' || typeof v.digest !== 'string' || !isDigest(v.digest) || typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) return undefined;
  const d: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size };
  if (isObject(v.annotations)) d.annotations = strings(v.annotations);
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType;
  if (isObject(v.platform) && typeof v.platform.os === 'string' && typeof v.platform.architecture === 'string') {
    d.platform = { os: v.platform.os, architecture: v.platform.architecture, ...(typeof v.platform.variant === 'string' ? { variant: v.platform.variant } : {}) };
  }
  return d;
}

export function parseManifest(body: Buffer): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new OciError('MANIFEST_INVALID', 'the stored manifest is not JSON');
  }
  if (!isObject(doc)) throw new OciError('MANIFEST_INVALID', 'the stored manifest is not a JSON object');
  const list = (v: unknown): Descriptor[] => (Array.isArray(v) ? v.map(descriptorOf).filter((d): d is Descriptor => d !== undefined) : []);
  return {
    mediaType: typeof doc.mediaType === 'string' ? doc.mediaType : undefined,
    artifactType: typeof doc.artifactType === 'string' ? doc.artifactType : undefined,
    config: descriptorOf(doc.config),
    layers: list(doc.layers),
    manifests: Array.isArray(doc.manifests) ? list(doc.manifests) : undefined,
    subject: descriptorOf(doc.subject),
    annotations: strings(doc.annotations),
    raw: doc,
  };
}
