import { OciError } from './errors.js';
import { type Digest, isDigest } from './digest.js';
import { MediaType, isManifestMediaType, isIndexMediaType } from './mediatype.js';

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type Manifest = ImageManifest | ImageIndex;

/** What a store needs to know about a manifest it is asked to keep. */
export interface ManifestInfo {
  mediaType: string;
  /** The body's own `mediaType` field holds `mediaType` (so the body alone tells it again). */
  selfDescribed: boolean;
  artifactType?: string;
  annotations?: Record<string, string>;
  subject?: Descriptor;
  /** Blobs (config, layers) the manifest points at. */
  blobs: Descriptor[];
  /** Manifests an index points at. */
  manifests: Descriptor[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(msg: string): OciError {
  return new OciError('MANIFEST_INVALID', msg);
}

export function checkDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where}: descriptor must be an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}: descriptor needs a mediaType`);
  if (typeof digest !== 'string' || !isDigest(digest)) throw invalid(`${where}: invalid digest ${JSON.stringify(digest)}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}: invalid size ${JSON.stringify(size)}`);
  if (v.annotations !== undefined && !isStringMap(v.annotations)) throw invalid(`${where}: annotations must map strings to strings`);
  return v as unknown as Descriptor;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string');
}

/**
 * Parses and checks a manifest body. `contentType` is the media type the client declared; when the
 * manifest carries its own `mediaType` the two must agree (distribution-spec "Pushing Manifests").
 */
export function parseManifest(body: Uint8Array, contentType: string | undefined): ManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw invalid(`manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && declared === undefined) throw invalid('mediaType must be a string');
  const ct = contentType?.split(';')[0]?.trim();
  if (declared !== undefined && ct && ct !== declared && isManifestMediaType(ct)) {
    throw invalid(`mediaType "${declared}" does not match Content-Type "${ct}"`);
  }
  const mediaType = declared ?? (ct && isManifestMediaType(ct) ? ct : inferMediaType(doc));
  if (!isManifestMediaType(mediaType)) throw invalid(`unsupported manifest media type "${mediaType}"`);
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (doc.annotations !== undefined && !isStringMap(doc.annotations)) throw invalid('annotations must map strings to strings');
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw invalid('artifactType must be a string');
  const info: ManifestInfo = { mediaType, selfDescribed: declared !== undefined, blobs: [], manifests: [] };
  if (typeof doc.artifactType === 'string') info.artifactType = doc.artifactType;
  if (doc.annotations !== undefined) info.annotations = doc.annotations as Record<string, string>;
  if (doc.subject !== undefined) info.subject = checkDescriptor(doc.subject, 'subject');
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid('an index needs a manifests array');
    info.manifests = doc.manifests.map((d, i) => checkDescriptor(d, `manifests[${i}]`));
  } else {
    const config = checkDescriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw invalid('a manifest needs a layers array');
    const layers = doc.layers.map((d, i) => checkDescriptor(d, `layers[${i}]`));
    info.blobs = [config, ...layers];
    // image-spec: artifactType falls back to the config's media type for artifacts.
    if (info.artifactType === undefined && mediaType === MediaType.ImageManifest && config.mediaType !== MediaType.ImageConfig) {
      info.artifactType = config.mediaType;
    }
  }
  return info;
}

/**
 * A manifest's entry in a referrers list (distribution-spec "Listing Referrers"): its
 * artifactType, which for an image manifest without one is its config's media type (even an
 * image config's; an index without one has none), and its annotations.
 */
export function referrerDescriptor(info: ManifestInfo, digest: Digest, size: number): Descriptor {
  const d: Descriptor = { mediaType: info.mediaType, digest, size };
  const artifactType = info.artifactType ?? (isIndexMediaType(info.mediaType) ? undefined : info.blobs[0]?.mediaType);
  if (artifactType !== undefined) d.artifactType = artifactType;
  if (info.annotations !== undefined) d.annotations = info.annotations;
  return d;
}

/**
 * The media type a stored manifest names in its own `mediaType` field, else the one its shape
 * implies (`manifests`: an index; `config`: an image manifest). For bodies already checked.
 */
export function bodyMediaType(body: Uint8Array): string {
  const doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as Record<string, unknown>;
  return typeof doc.mediaType === 'string' ? doc.mediaType : inferMediaType(doc);
}

function inferMediaType(doc: Record<string, unknown>): string {
  if (Array.isArray(doc.manifests)) return MediaType.ImageIndex;
  if (doc.config !== undefined) return MediaType.ImageManifest;
  return '';
}
