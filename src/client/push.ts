import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, normalize, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  OciError,
  MediaType,
  Annotation,
  EMPTY_JSON_DIGEST,
  EMPTY_JSON_BYTES,
  createDigester,
  digestOf,
  type Descriptor,
  type ImageManifest,
} from '../spec/index.js';
import { copyGraph, fileReader, type Target } from '../content/index.js';
import { LocalSource, withProgress, type ProgressListener } from './source.js';
import { packTree } from './pack.js';

/** ORAS's defaults, so that artifacts pushed by either tool look alike. */
export const DEFAULT_ARTIFACT_TYPE = 'application/vnd.unknown.artifact.v1';
export const DEFAULT_CONFIG_TYPE_V1_0 = 'application/vnd.unknown.config.v1+json';
/** The file's permission bits, octal, so that pull can restore them (ORAS drops them). */
export const MODE_ANNOTATION = 'io.wharf.content.mode';

export interface FileSpec {
  path: string;
  /** Layer media type; default application/vnd.oci.image.layer.v1.tar (dirs: +gzip). */
  mediaType?: string;
}

export interface PushOptions {
  files: FileSpec[];
  artifactType?: string;
  /** A config file and its media type (`--config file[:type]`). */
  config?: { path: string; mediaType?: string };
  /** Manifest annotations (`-a k=v`). */
  annotations?: Record<string, string>;
  /** ORAS's annotation file: `$manifest`, `$config`, and per-file keys. */
  fileAnnotations?: Record<string, Record<string, string>>;
  /** v1.1 (default): artifactType and the empty config; v1.0: the artifact type goes in config.mediaType. */
  imageSpec?: 'v1.1' | 'v1.0';
  /** Attach to this manifest (`attach`). */
  subject?: Descriptor;
  tags?: string[];
  concurrency?: number;
  progress?: ProgressListener;
  signal?: AbortSignal;
  /** Skip the `org.opencontainers.image.created` annotation (reproducible digests). */
  noCreated?: boolean;
}

export interface PushResult {
  manifest: Descriptor;
  body: Buffer;
  layers: Descriptor[];
}

/**
 * Serializes an image manifest, copies it with everything `src` holds for it to `dst` (one
 * copyGraph: present blobs skipped, transfers in parallel), and tags it.
 */
export async function pushManifest(
  src: LocalSource,
  dst: Target,
  manifest: ImageManifest,
  opts: Pick<PushOptions, 'artifactType' | 'tags' | 'concurrency' | 'progress' | 'signal'>,
): Promise<{ desc: Descriptor; body: Buffer }> {
  const body = Buffer.from(JSON.stringify(manifest));
  const desc: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
  if (opts.artifactType) desc.artifactType = opts.artifactType;
  src.addBytes(desc, body);
  const p = opts.progress;
  await copyGraph(withProgress(src, p), dst, desc, {
    concurrency: opts.concurrency,
    signal: opts.signal,
    preCopy: (d) => p?.start?.(d),
    postCopy: (d) => p?.done?.(d),
    onCopySkipped: (d) => p?.skipped?.(d),
  });
  for (const t of opts.tags ?? []) await dst.tag(desc, t, { signal: opts.signal });
  return { desc, body };
}

/** Hashes and measures a file in one streamed pass. */
async function describeFile(path: string, mediaType: string): Promise<Descriptor> {
  const h = createDigester();
  let size = 0;
  for await (const c of fileReader(path) as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { mediaType, digest: `sha256:${h.digest('hex')}`, size };
}

/** Packs a directory as tar+gzip into `out`, returning the blob's digest and size and the tar's digest. */
async function packDirectory(dir: string, out: string): Promise<{ digest: string; size: number; tarDigest: string }> {
  const tarHash = createDigester();
  const gzHash = createDigester();
  let size = 0;
  await pipeline(
    packTree(dir),
    new Transform({
      transform(c: Buffer, _e, cb) {
        tarHash.update(c);
        cb(null, c);
      },
    }),
    createGzip(),
    new Transform({
      transform(c: Buffer, _e, cb) {
        gzHash.update(c);
        size += c.length;
        cb(null, c);
      },
    }),
    createWriteStream(out),
  );
  return { digest: `sha256:${gzHash.digest('hex')}`, size, tarDigest: `sha256:${tarHash.digest('hex')}` };
}

/** The title a file goes by: its path as given when that is a clean relative path, else its name. */
export function titleFor(path: string): string {
  const n = normalize(path).split(sep).join('/').replace(/\/+$/, '');
  if (isAbsolute(path) || n === '..' || n.startsWith('../') || n === '.' || n === '') return basename(path.replace(/[/\\]+$/, '')) || 'root';
  return n;
}

/**
 * Packs files and directories into an artifact manifest and copies it to `dst`. Files are hashed
 * first and streamed from disk during the push; directories become a temp tar+gzip with
 * `io.deis.oras.content.unpack=true`. Nothing is held in memory but the manifest and config.
 */
export async function pushArtifact(dst: Target, opts: PushOptions): Promise<PushResult> {
  const spec = opts.imageSpec ?? 'v1.1';
  const src = new LocalSource();
  const work = await mkdtemp(join(tmpdir(), 'wharf-push-'));
  try {
    const layers: Descriptor[] = [];
    const titles = new Set<string>();
    for (const [i, f] of opts.files.entries()) {
      const st = await stat(f.path).catch(() => {
        throw new OciError('INVALID_ARGUMENT', `${f.path}: no such file or directory`);
      });
      const title = titleFor(f.path);
      if (titles.has(title)) throw new OciError('INVALID_ARGUMENT', `two files would both be named "${title}" in the artifact`);
      titles.add(title);
      let desc: Descriptor;
      const annotations: Record<string, string> = { [Annotation.Title]: title };
      if (st.isDirectory()) {
        const out = join(work, `dir-${i}.tar.gz`);
        const packed = await packDirectory(f.path, out);
        desc = { mediaType: f.mediaType ?? MediaType.ImageLayerGzip, digest: packed.digest as Descriptor['digest'], size: packed.size };
        annotations[Annotation.Unpack] = 'true';
        annotations[Annotation.Digest] = packed.tarDigest;
        src.addFile(desc, out);
      } else if (st.isFile()) {
        desc = await describeFile(f.path, f.mediaType ?? MediaType.ImageLayer);
        annotations[MODE_ANNOTATION] = (st.mode & 0o7777).toString(8).padStart(4, '0');
        src.addFile(desc, f.path);
      } else throw new OciError('INVALID_ARGUMENT', `${f.path} is neither a file nor a directory`);
      Object.assign(annotations, opts.fileAnnotations?.[title], opts.fileAnnotations?.[f.path]);
      layers.push({ ...desc, annotations });
    }

    const artifactType = opts.artifactType ?? (spec === 'v1.1' ? DEFAULT_ARTIFACT_TYPE : undefined);
    let config: Descriptor;
    if (opts.config) {
      config = await describeFile(opts.config.path, opts.config.mediaType ?? (spec === 'v1.0' ? artifactType ?? DEFAULT_CONFIG_TYPE_V1_0 : MediaType.ImageConfig));
      src.addFile(config, opts.config.path);
    } else {
      // image-spec "Guidance for an Empty Descriptor": v1.1 artifacts carry the empty config.
      const mt = spec === 'v1.0' ? artifactType ?? DEFAULT_CONFIG_TYPE_V1_0 : MediaType.EmptyJSON;
      config = { mediaType: mt, digest: EMPTY_JSON_DIGEST, size: 2 };
      src.addBytes(config, Buffer.from(EMPTY_JSON_BYTES));
    }
    if (opts.fileAnnotations?.$config) config = { ...config, annotations: { ...opts.fileAnnotations.$config } };
    if (layers.length === 0 && spec === 'v1.1') {
      // A manifest must have at least one layer; the empty descriptor stands in (image-spec).
      const empty: Descriptor = { mediaType: MediaType.EmptyJSON, digest: EMPTY_JSON_DIGEST, size: 2 };
      src.addBytes(empty, Buffer.from(EMPTY_JSON_BYTES));
      layers.push(empty);
    }

    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers };
    if (spec === 'v1.1' && artifactType) manifest.artifactType = artifactType;
    if (opts.subject) manifest.subject = { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size };
    const annotations = { ...opts.fileAnnotations?.$manifest, ...opts.annotations };
    if (!opts.noCreated && !annotations[Annotation.Created]) annotations[Annotation.Created] = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (Object.keys(annotations).length) manifest.annotations = annotations;
    const { desc, body } = await pushManifest(src, dst, manifest, { ...opts, artifactType });
    return { manifest: desc, body, layers };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Reads ORAS's annotation file format. */
export async function readAnnotationFile(path: string): Promise<Record<string, Record<string, string>>> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new OciError('INVALID_ARGUMENT', `cannot read annotation file ${path}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new OciError('INVALID_ARGUMENT', `${path}: expected {"$manifest": {...}, "<file>": {...}}`);
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v !== 'object' || v === null || !Object.values(v).every((x) => typeof x === 'string')) {
      throw new OciError('INVALID_ARGUMENT', `${path}: annotations of "${k}" must map strings to strings`);
    }
  }
  return doc as Record<string, Record<string, string>>;
}

export async function writeManifestFile(path: string, body: Buffer): Promise<void> {
  await writeFile(path, body);
}
