import { createWriteStream, type BigIntStats } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { OciError, MediaType, Annotation, EMPTY_JSON_DIGEST, EMPTY_JSON_BYTES, createDigester, digestOf, type Descriptor, type ImageManifest, WharfError } from '../spec/index.js';
import { canIngest, copyGraph, fileReader, semaphore, type Storage, type Target } from '../content/index.js';
import { LocalSource, withProgress, type ProgressListener } from './source.js';
import { packTree } from './pack.js';
import type { DigestMemo } from './memo.js';

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
  /**
   * Digests of files pushed before (`DigestMemo.open()`). A file unchanged since is not hashed
   * again: its blob is checked with a HEAD and skipped when present. A file the memo does not know
   * is uploaded as it is hashed, when the target can take content of unknown digest (a registry),
   * so that it is read once. Without a memo, every file is hashed first and blobs the target
   * already has are skipped.
   */
  digestMemo?: DigestMemo;
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
  opts: Pick<PushOptions, 'artifactType' | 'tags' | 'concurrency' | 'progress' | 'signal'> & { uploaded?: Set<string> },
): Promise<{ desc: Descriptor; body: Buffer }> {
  const body = Buffer.from(JSON.stringify(manifest));
  const desc: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
  if (opts.artifactType) desc.artifactType = opts.artifactType;
  src.addBytes(desc, body);
  const p = opts.progress;
  const uploaded = opts.uploaded;
  // Blobs uploaded as they were hashed are known to be there: no HEAD, no "exists" line.
  const to: Storage = uploaded?.size
    ? { exists: (d, o) => (uploaded.has(d.digest) ? Promise.resolve(true) : dst.exists(d, o)), fetch: (d, o) => dst.fetch(d, o), push: (d, c, o) => dst.push(d, c, o) }
    : dst;
  await copyGraph(withProgress(src, p), to, desc, {
    concurrency: opts.concurrency,
    signal: opts.signal,
    preCopy: (d) => p?.start?.(d),
    postCopy: (d) => p?.done?.(d),
    onCopySkipped: (d) => (uploaded?.has(d.digest) ? undefined : p?.skipped?.(d)),
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

/** Passes `src` through, reporting the length of every chunk. */
function counting(src: Readable, onBytes: (n: number) => void): Readable {
  const t = new Transform({
    transform(c: Buffer, _e, cb) {
      onBytes(c.length);
      cb(null, c);
    },
  });
  src.on('error', (err) => t.destroy(err));
  t.on('close', () => src.destroy());
  return src.pipe(t);
}

/** Whether a file's stat still says what it said before it was read. */
function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * The descriptor of a file to push, read as few times as can be: from the memo when the file is
 * unchanged since it was last pushed; uploaded while it is hashed when the memo has not seen it
 * and the target can ingest (then it is added to `uploaded`); else hashed first, for copyGraph to
 * upload when the target lacks it. What was hashed is recorded in the memo.
 */
async function describeForPush(
  dst: Target,
  path: string,
  st: BigIntStats,
  desc: Pick<Descriptor, 'mediaType' | 'annotations'>,
  opts: { memo?: DigestMemo; uploaded: Set<string>; progress?: ProgressListener; signal?: AbortSignal },
): Promise<Descriptor> {
  const { memo, progress: p } = opts;
  const hit = memo?.lookup(path, st);
  const size = Number(st.size);
  if (hit?.trusted) return { mediaType: desc.mediaType, digest: hit.digest, size };
  const hashedAt = Date.now();
  let out: Descriptor;
  if (memo && !hit && canIngest(dst)) {
    // Progress is keyed by digest, which is not known yet: a stand-in until the upload is done.
    const pending = { ...desc, digest: `pending:${path}`, size } as unknown as Descriptor;
    p?.start?.(pending);
    out = await dst.ingest(
      desc.mediaType,
      {
        size,
        name: path,
        resumeKey: `${resolve(path)}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`,
        open: () => (p?.bytes ? counting(fileReader(path), (n) => p.bytes!(pending, n)) : fileReader(path)),
        check: async () => {
          if (!sameFile(st, await stat(path, { bigint: true }))) throw new OciError('DIGEST_INVALID', `${path} changed while it was pushed; nothing was stored, push again`);
        },
      },
      { signal: opts.signal },
    );
    opts.uploaded.add(out.digest);
    const done = { ...desc, ...out };
    p?.identified?.(pending, done);
    p?.done?.(done);
  } else {
    out = await describeFile(path, desc.mediaType);
    // Changed while it was hashed: not remembered (the upload's verification catches the rest).
    if (!sameFile(st, await stat(path, { bigint: true }))) return out;
  }
  memo?.record(path, st, out.digest, hashedAt);
  return out;
}

/** Packs a directory as tar+gzip into `out`, returning the blob's digest and size and the tar's digest. */
async function packDirectory(dir: string, out: string, signal?: AbortSignal): Promise<{ digest: string; size: number; tarDigest: string }> {
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
    { signal },
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
  // Made only when a directory is packed, and removed on every way out (an interrupted push too).
  let work: string | undefined;
  const uploaded = new Set<string>();
  // One file that fails stops the others.
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  try {
    const layers: Descriptor[] = [];
    const titles = new Set<string>();
    const limit = semaphore(opts.concurrency ?? 3);
    const jobs: Array<Promise<void>> = [];
    for (const [i, f] of opts.files.entries()) {
      const st = await stat(f.path, { bigint: true }).catch(() => {
        throw new WharfError('INVALID_ARGUMENT', `${f.path}: no such file or directory`);
      });
      const title = titleFor(f.path);
      if (titles.has(title)) throw new WharfError('INVALID_ARGUMENT', `two files would both be named "${title}" in the artifact`);
      titles.add(title);
      const annotations: Record<string, string> = { [Annotation.Title]: title };
      const extra = (): void => void Object.assign(annotations, opts.fileAnnotations?.[title], opts.fileAnnotations?.[f.path]);
      if (st.isDirectory()) {
        work ??= await mkdtemp(join(tmpdir(), 'wharf-push-'));
        const out = join(work, `dir-${i}.tar.gz`);
        const packed = await packDirectory(f.path, out, signal);
        const desc: Descriptor = { mediaType: f.mediaType ?? MediaType.ImageLayerGzip, digest: packed.digest as Descriptor['digest'], size: packed.size };
        annotations[Annotation.Unpack] = 'true';
        annotations[Annotation.Digest] = packed.tarDigest;
        src.addFile(desc, out);
        extra();
        layers[i] = { ...desc, annotations };
      } else if (st.isFile()) {
        annotations[MODE_ANNOTATION] = Number(st.mode & 0o7777n).toString(8).padStart(4, '0');
        extra();
        const mediaType = f.mediaType ?? MediaType.ImageLayer;
        jobs.push(
          limit(async () => {
            signal.throwIfAborted();
            const desc = await describeForPush(dst, f.path, st, { mediaType, annotations }, { memo: opts.digestMemo, uploaded, progress: opts.progress, signal });
            src.addFile(desc, f.path);
            layers[i] = { ...desc, annotations };
          }).catch((err: unknown) => {
            stop.abort(err);
            throw err;
          }),
        );
      } else throw new WharfError('INVALID_ARGUMENT', `${f.path} is neither a file nor a directory`);
    }
    const settled = await Promise.allSettled(jobs);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

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
    const { desc, body } = await pushManifest(src, dst, manifest, { ...opts, artifactType, uploaded });
    return { manifest: desc, body, layers };
  } finally {
    await opts.digestMemo?.save();
    if (work) await rm(work, { recursive: true, force: true });
  }
}

/** Reads ORAS's annotation file format. */
export async function readAnnotationFile(path: string): Promise<Record<string, Record<string, string>>> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new WharfError('INVALID_ARGUMENT', `cannot read annotation file ${path}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new WharfError('INVALID_ARGUMENT', `${path}: expected {"$manifest": {...}, "<file>": {...}}`);
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v !== 'object' || v === null || !Object.values(v).every((x) => typeof x === 'string')) {
      throw new WharfError('INVALID_ARGUMENT', `${path}: annotations of "${k}" must map strings to strings`);
    }
  }
  return doc as Record<string, Record<string, string>>;
}

export async function writeManifestFile(path: string, body: Buffer): Promise<void> {
  await writeFile(path, body);
}
