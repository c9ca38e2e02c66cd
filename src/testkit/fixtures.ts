/**
 * Content for the suites: digests, descriptors and manifests built from scratch, so that the
 * suites test a registry against the spec and not against Wharf's own types.
 */
import { createHash, randomBytes } from 'node:crypto';

export const MediaTypes = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  empty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type DigestAlgorithm = 'sha256' | 'sha512';

export function digestOf(data: Uint8Array, alg: DigestAlgorithm = 'sha256'): string {
  return `${alg}:${createHash(alg).update(data).digest('hex')}`;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export function descriptorOf(mediaType: string, data: Uint8Array, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: digestOf(data), size: data.length, ...extra };
}

/** The empty JSON blob `{}` that artifacts use as their config. */
export const EMPTY_JSON = Buffer.from('{}');
export const EMPTY_DESCRIPTOR: Descriptor = descriptorOf(MediaTypes.empty, EMPTY_JSON);

/** A blob of `size` random bytes with a readable prefix. */
export function randomBlob(size: number, label = 'blob'): Buffer {
  const b = randomBytes(size);
  Buffer.from(`${label}:`).copy(b, 0, 0, Math.min(size, label.length + 1));
  return b;
}

let counter = 0;
/** A repository name no other test uses: `<ns>/<label>-<random>`. */
export function uniqueRepo(ns: string, label: string): string {
  counter += 1;
  return `${ns}/${label}-${randomBytes(4).toString('hex')}${counter}`;
}

/** A manifest's exact bytes, digest and descriptor. */
export interface Built {
  body: Buffer;
  digest: string;
  mediaType: string;
  descriptor: Descriptor;
}

export function built(mediaType: string, body: Buffer | string, extra: Partial<Descriptor> = {}): Built {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const descriptor = descriptorOf(mediaType, bytes, extra);
  return { body: bytes, digest: descriptor.digest, mediaType, descriptor };
}

export interface ImageManifestInput {
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  mediaType?: string;
  /** Fields merged last, to build odd or invalid manifests. */
  extra?: Record<string, unknown>;
}

export function imageManifest(input: ImageManifestInput): Built {
  const mediaType = input.mediaType ?? MediaTypes.manifest;
  const m: Record<string, unknown> = { schemaVersion: 2, mediaType };
  if (input.artifactType !== undefined) m.artifactType = input.artifactType;
  m.config = input.config;
  m.layers = input.layers;
  if (input.subject) m.subject = input.subject;
  if (input.annotations) m.annotations = input.annotations;
  Object.assign(m, input.extra);
  return built(mediaType, JSON.stringify(m), input.artifactType ? { artifactType: input.artifactType } : {});
}

export interface IndexInput {
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  mediaType?: string;
}

export function imageIndex(input: IndexInput): Built {
  const mediaType = input.mediaType ?? MediaTypes.index;
  const m: Record<string, unknown> = { schemaVersion: 2, mediaType };
  if (input.artifactType !== undefined) m.artifactType = input.artifactType;
  m.manifests = input.manifests;
  if (input.subject) m.subject = input.subject;
  if (input.annotations) m.annotations = input.annotations;
  return built(mediaType, JSON.stringify(m));
}
