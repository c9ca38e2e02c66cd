import { createWriteStream } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, realpath, rename, rm, symlink, utimes } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { arch, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciError, MediaType, Annotation, digestOf, isIndexMediaType, type ByteRange, type Descriptor, type ImageIndex, type ImageManifest, WharfError } from '../spec/index.js';
import { fetchManifest, type OpOptions, type ReadOnlyTarget, type Target } from '../content/index.js';
import { RemoteRepository, RemoteBlobSource, type TransferStats } from '../stores/remote/index.js';
import {
  buildEstargzFile,
  openLayer,
  FileBlobSource,
  Tree,
  TreeFS,
  clampRange,
  TOC_DIGEST_ANNOTATION,
  UNCOMPRESSED_SIZE_ANNOTATION,
  type BuildResult,
  type EstargzCache,
  type FileStat,
  type LayerFS,
  type RangedBlobSource,
  type ReadRange,
} from '../estargz/index.js';
import { LocalSource, type ProgressListener } from './source.js';
import { pushManifest } from './push.js';
import { parsePlatform, platformMatches } from './pull.js';
import { MODE_ANNOTATION } from './push.js';

export interface EstargzPushOptions {
  /** The directory that becomes the layer's root. */
  dir: string;
  chunkSize?: number;
  level?: number;
  /** Set `artifactType` on the manifest (default none: a plain image that podman can pull). */
  artifactType?: string;
  annotations?: Record<string, string>;
  /** `os/arch[/variant]` in the config (default linux and this machine's architecture). */
  platform?: string;
  tags?: string[];
  noCreated?: boolean;
  concurrency?: number;
  progress?: ProgressListener;
  signal?: AbortSignal;
}

export interface EstargzPushResult {
  manifest: Descriptor;
  body: Buffer;
  layer: Descriptor;
  config: Descriptor;
  build: BuildResult;
}

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/**
 * Packs `dir` as one eStargz layer in an OCI image manifest and copies it to `dst`: the layer
 * carries the toc.digest and uncompressed-size annotations, the config its DiffID, so that
 * container runtimes accept it as an image and eStargz readers lazily.
 */
export async function pushEstargz(dst: Target, opts: EstargzPushOptions): Promise<EstargzPushResult> {
  const work = await mkdtemp(join(tmpdir(), 'wharf-estargz-push-'));
  try {
    const file = join(work, 'layer.tar.gz');
    const build = await buildEstargzFile(opts.dir, file, { chunkSize: opts.chunkSize, level: opts.level, signal: opts.signal });
    const layer: Descriptor = {
      mediaType: MediaType.ImageLayerGzip,
      digest: build.digest,
      size: build.size,
      annotations: { [TOC_DIGEST_ANNOTATION]: build.tocDigest, [UNCOMPRESSED_SIZE_ANNOTATION]: String(build.uncompressedSize) },
    };
    const platform = opts.platform ? parsePlatform(opts.platform) : { os: 'linux', architecture: GO_ARCH[arch()] ?? arch() };
    const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const cfg: Record<string, unknown> = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: {},
      rootfs: { type: 'layers', diff_ids: [build.diffId] },
      history: [{ created_by: 'wharf push --estargz', ...(opts.noCreated ? {} : { created }) }],
      ...(opts.noCreated ? {} : { created }),
    };
    const cfgBody = Buffer.from(JSON.stringify(cfg));
    const config: Descriptor = { mediaType: MediaType.ImageConfig, digest: digestOf(cfgBody), size: cfgBody.length };
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] };
    if (opts.artifactType) manifest.artifactType = opts.artifactType;
    const annotations = { ...opts.annotations };
    if (!opts.noCreated && !annotations[Annotation.Created]) annotations[Annotation.Created] = created;
    if (Object.keys(annotations).length) manifest.annotations = annotations;
    const src = new LocalSource();
    src.addFile(layer, file);
    src.addBytes(config, cfgBody);
    const { desc, body } = await pushManifest(src, dst, manifest, opts);
    return { manifest: desc, body, layer, config, build };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * A blob of a store that cannot serve ranges (an OCI layout): fetched whole and verified into a
 * temp file on first use, then read from there.
 */
class FetchedBlobSource implements RangedBlobSource {
  private file?: Promise<{ dir: string; source: FileBlobSource }>;
  readonly stats: TransferStats = { requests: 0, bytes: 0, wholeBlob: true };

  constructor(
    private readonly target: ReadOnlyTarget,
    private readonly desc: Descriptor,
  ) {}

  private load(opts: OpOptions): Promise<{ dir: string; source: FileBlobSource }> {
    this.file ??= (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'wharf-blob-'));
      const path = join(dir, 'blob');
      this.stats.requests++;
      const body = await this.target.fetch(this.desc, opts);
      const count = new Transform({
        transform: (c: Buffer, _e, cb) => {
          this.stats.bytes += c.length;
          cb(null, c);
        },
      });
      await pipeline(body, count, createWriteStream(path, { mode: 0o600 }), { signal: opts.signal });
      return { dir, source: new FileBlobSource(path) };
    })();
    return this.file;
  }

  async size(): Promise<number> {
    return this.desc.size;
  }

  async read(ranges: ByteRange[], opts: OpOptions = {}): Promise<Buffer[]> {
    return (await this.load(opts)).source.read(ranges);
  }

  async close(): Promise<void> {
    if (this.file) await rm((await this.file).dir, { recursive: true, force: true });
  }
}

/**
 * A layer that is one file, named by its title (ORAS's `push README.md`): listed at that path and
 * read by fetching the blob, which the target verifies against its digest as it streams.
 */
class FileLayerFS extends TreeFS {
  readonly kind = 'file' as const;
  protected readonly tree = new Tree();

  constructor(
    private readonly target: ReadOnlyTarget,
    private readonly desc: Descriptor,
    title: string,
  ) {
    super();
    const mode = desc.annotations?.[MODE_ANNOTATION];
    this.tree.add({ path: title, type: 'file', size: desc.size, mode: mode && /^[0-7]{1,4}$/.test(mode) ? parseInt(mode, 8) : 0o644, digest: desc.digest });
  }

  createReadStream(path: string, range?: ReadRange): Readable {
    const st = this.tree.resolve(path);
    if (st.type !== 'file') throw new WharfError('INVALID_ARGUMENT', `${path}: not a regular file (${st.type})`);
    const { start, end } = clampRange(st.size, range, path);
    let pos = 0;
    // Bytes outside the range are read and dropped: the digest covers the whole blob.
    const slice = new Transform({
      transform(c: Buffer, _e, cb) {
        const from = Math.max(0, start - pos);
        const to = Math.min(c.length, end + 1 - pos);
        pos += c.length;
        cb(null, to > from ? c.subarray(from, to) : undefined);
      },
    });
    void this.target.fetch(this.desc).then(
      (body) => pipeline(body, slice).catch((err: unknown) => slice.destroy(err as Error)),
      (err: unknown) => slice.destroy(err as Error),
    );
    return slice;
  }

  async close(): Promise<void> {}
}

const LAYER_TYPES = new Set<string>([MediaType.ImageLayerGzip, MediaType.DockerLayerGzip, 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip']);

/** Several layers seen as one file system, as a container runtime stacks them (whiteouts applied). */
class OverlayFS extends TreeFS {
  readonly kind: LayerFS['kind'];
  protected readonly tree = new Tree();
  private readonly owner = new Map<string, LayerFS>();

  constructor(private readonly layers: LayerFS[]) {
    super();
    const archives = layers.filter((l) => l.kind !== 'file');
    this.kind = archives.length === 0 ? 'file' : archives.every((l) => l.kind === 'estargz') ? 'estargz' : 'tar.gz';
    const merged = new Map<string, { st: FileStat; fs: LayerFS }>();
    // Whiteouts hide what lower layers hold, never what their own layer holds.
    let current: LayerFS | undefined;
    const removeUnder = (dir: string, self: boolean): void => {
      for (const [k, v] of [...merged]) if (v.fs !== current && ((self && k === dir) || k.startsWith(dir === '' ? '' : `${dir}/`))) merged.delete(k);
    };
    for (const fs of layers) {
      current = fs;
      for (const st of fs.list()) {
        const i = st.path.lastIndexOf('/');
        const parent = i < 0 ? '' : st.path.slice(0, i);
        const base = st.path.slice(i + 1);
        if (base === '.wh..wh..opq') removeUnder(parent, false);
        else if (base.startsWith('.wh.')) removeUnder(parent ? `${parent}/${base.slice(4)}` : base.slice(4), true);
        else {
          if (merged.get(st.path)?.st.type === 'dir' && st.type !== 'dir') removeUnder(st.path, false);
          merged.set(st.path, { st, fs });
        }
      }
    }
    for (const [p, { st, fs }] of merged) {
      this.tree.add(st);
      this.owner.set(p, fs);
    }
  }

  createReadStream(path: string, range?: ReadRange): Readable {
    const st = this.tree.resolve(path);
    const fs = this.owner.get(st.path);
    if (!fs || st.type !== 'file') throw new WharfError('INVALID_ARGUMENT', `${path}: not a regular file (${st.type})`);
    return fs.createReadStream(st.path, range);
  }
  async close(): Promise<void> {
    for (const l of this.layers) await l.close();
  }
}

export interface OpenArtifactOptions extends OpOptions {
  cache?: EstargzCache;
  /** From an index, the manifest of this platform (default: this machine's, else the only one). */
  platform?: string;
  /** Said as it happens: a layer read whole, a registry without Range or multi-range. */
  onMessage?: (message: string) => void;
  /** A plain tar.gz layer may unpack to this many bytes at most. */
  maxUnpacked?: number;
}

/** The artifact's files: `fs`, and its read methods on the artifact itself, as the README shows them. */
export interface OpenedArtifact extends Pick<LayerFS, 'readdir' | 'stat' | 'lstat' | 'readFile' | 'createReadStream'> {
  fs: LayerFS;
  root: Descriptor;
  manifest: Descriptor;
  layers: Descriptor[];
  /** Requests and bytes so far, over every layer. */
  stats(): TransferStats;
  close(): Promise<void>;
}

/**
 * Opens the layers of an image or artifact as one read-only file system: eStargz layers by their
 * TOC (only footer and TOC are fetched), other tar.gz layers by reading them whole once, and a
 * layer that is one file with a title (ORAS's files) as that file. A titled tar.gz that is not
 * marked to unpack is a file too: it was pushed as one.
 */
export async function openArtifact(target: ReadOnlyTarget, reference: string, opts: OpenArtifactOptions = {}): Promise<OpenedArtifact> {
  const root = await target.resolve(reference, opts);
  let desc = root;
  let doc = JSON.parse((await fetchManifest(target, desc, opts)).toString('utf8')) as ImageManifest | ImageIndex;
  if (isIndexMediaType(desc.mediaType) || (doc as ImageIndex).manifests) {
    const children = (doc as ImageIndex).manifests ?? [];
    const want = opts.platform ? parsePlatform(opts.platform) : { os: 'linux', architecture: GO_ARCH[arch()] ?? arch() };
    const pick = children.find((m) => platformMatches(want, m.platform)) ?? (!opts.platform && children.length === 1 ? children[0] : undefined);
    if (!pick) throw new WharfError('NOT_FOUND', `no manifest in index ${desc.digest} for platform ${want.os}/${want.architecture}; choose one with --platform`);
    desc = pick;
    doc = JSON.parse((await fetchManifest(target, desc, opts)).toString('utf8')) as ImageManifest;
  }
  const manifest = doc as ImageManifest;
  const title = (l: Descriptor): string | undefined => l.annotations?.[Annotation.Title];
  const isArchive = (l: Descriptor): boolean => LAYER_TYPES.has(l.mediaType) && (!title(l) || l.annotations?.[Annotation.Unpack] === 'true');
  const layers = (manifest.layers ?? []).filter((l) => isArchive(l) || title(l));
  if (layers.length === 0) {
    const kinds = [...new Set((manifest.layers ?? []).map((l) => l.mediaType))].join(', ') || 'none';
    throw new OciError('UNSUPPORTED', `${desc.digest} has no tar+gzip layer and no titled file to read (layers: ${kinds})`);
  }
  const sources: Array<RangedBlobSource & { stats: TransferStats }> = [];
  const opened: LayerFS[] = [];
  try {
    for (const l of layers) {
      if (!isArchive(l)) {
        opened.push(new FileLayerFS(target, l, title(l)!));
        continue;
      }
      const src =
        target instanceof RemoteRepository ? new RemoteBlobSource(target, l, { onMessage: opts.onMessage }) : new FetchedBlobSource(target, l);
      sources.push(src);
      opened.push(
        await openLayer(src, {
          tocDigest: l.annotations?.[TOC_DIGEST_ANNOTATION],
          layerDigest: l.digest,
          cache: opts.cache,
          signal: opts.signal,
          onWarning: opts.onMessage,
          onFallback: opts.onMessage,
          maxUnpacked: opts.maxUnpacked,
        }),
      );
    }
  } catch (err) {
    for (const o of opened) await o.close().catch(() => undefined);
    for (const s of sources) await s.close?.().catch(() => undefined);
    throw err;
  }
  const fs = opened.length === 1 ? opened[0]! : new OverlayFS(opened);
  return {
    fs,
    readdir: (path) => fs.readdir(path),
    stat: (path) => fs.stat(path),
    lstat: (path) => fs.lstat(path),
    readFile: (path) => fs.readFile(path),
    createReadStream: (path, range) => fs.createReadStream(path, range),
    root,
    manifest: desc,
    layers,
    stats: () => {
      const t: TransferStats = { requests: 0, bytes: 0, wholeBlob: false };
      for (const s of sources) {
        t.requests += s.stats.requests;
        t.bytes += s.stats.bytes;
        t.wholeBlob ||= s.stats.wholeBlob;
        if (s.stats.multiRange !== undefined) t.multiRange = s.stats.multiRange;
      }
      return t;
    },
    close: async () => {
      await fs.close();
      for (const s of sources) await s.close?.();
    },
  };
}

// ------------------------------------------------------------------ get

export interface GetOptions extends OpOptions {
  output?: string;
  /** Entries written at most (files, links, directories). Default 100,000. */
  maxFiles?: number;
  /** Bytes written at most, over every file. Default 10 GiB. */
  maxTotalSize?: number;
  /** Bytes of one file at most. Default 4 GiB. */
  maxFileSize?: number;
  keepOldFiles?: boolean;
  allowPathTraversal?: boolean;
  /** Each entry as it is written. */
  onEntry?: (st: FileStat) => void;
}

/** A layer that can fetch many files' chunks in one request (EstargzReader). */
interface Prefetcher {
  prefetch(paths: string[]): Promise<void>;
}
const PREFETCH_FILE = 1 << 20;
const PREFETCH_BATCH = 8 << 20;

export const GET_DEFAULTS = { maxFiles: 100_000, maxTotalSize: 10 * 1024 ** 3, maxFileSize: 4 * 1024 ** 3 } as const;

/** `*` and `?` within a path component, `**` across components; no wildcard means that path. */
export function globToRegExp(glob: string): RegExp {
  const g = glob.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*' && g[i + 1] === '*') {
      re += '.*';
      i++;
      if (g[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The entries the patterns name: matches and, for a directory that matches, all below it. */
export function selectEntries(all: FileStat[], patterns: string[]): FileStat[] {
  if (patterns.length === 0) return all;
  const res = patterns.map(globToRegExp);
  const dirs = new Set<string>();
  const out: FileStat[] = [];
  for (const st of all) {
    const hit = res.some((r) => r.test(st.path)) || [...dirs].some((d) => st.path.startsWith(`${d}/`));
    if (!hit) continue;
    if (st.type === 'dir') dirs.add(st.path);
    out.push(st);
  }
  return out;
}

function within(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
}

/** No parent of `dest` below `root` may be a symlink leading out of `root`. */
async function checkParents(root: string, dest: string, allow: boolean): Promise<void> {
  if (allow) return;
  const realRoot = await realpath(root);
  let p = dirname(dest);
  while (p.length > root.length && within(root, p)) {
    const st = await lstat(p).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      const real = await realpath(p).catch(() => '');
      if (!within(realRoot, real)) throw new WharfError('INVALID_ARGUMENT', `${relative(root, dest)} would be written through a symbolic link out of the output directory (${p}); pass --allow-path-traversal if you trust it`);
    }
    p = dirname(p);
  }
}

export interface GetResult {
  files: number;
  bytes: number;
  entries: FileStat[];
}

/**
 * Extracts some files of an opened artifact into a directory, with `pull`'s safety rules: every
 * path stays below the output directory, symlinks pointing out are refused, nothing is written
 * through a symlink; and limits on the count of entries and on sizes, checked against the TOC
 * before a byte is fetched and again as bytes arrive, so that a zip bomb stops early. Files are
 * written to a temp name and renamed into place when whole.
 */
export async function getFiles(fs: LayerFS, patterns: string[], opts: GetOptions = {}): Promise<GetResult> {
  const out = resolve(opts.output ?? '.');
  const allow = Boolean(opts.allowPathTraversal);
  const maxFiles = opts.maxFiles ?? GET_DEFAULTS.maxFiles;
  const maxTotal = opts.maxTotalSize ?? GET_DEFAULTS.maxTotalSize;
  const maxFile = opts.maxFileSize ?? GET_DEFAULTS.maxFileSize;
  const picked = selectEntries(fs.list(), patterns);
  if (picked.length === 0) throw new WharfError('NOT_FOUND', `nothing in the artifact matches ${patterns.map((p) => `"${p}"`).join(', ')}`);
  if (picked.length > maxFiles) throw new OciError('SIZE_INVALID', `${picked.length} entries selected, over the limit of ${maxFiles} (--max-files)`);
  let total = 0;
  for (const st of picked) {
    const size = st.type === 'hardlink' ? (await fs.stat(st.path)).size : st.size;
    if (size > maxFile) throw new OciError('SIZE_INVALID', `${st.path} is ${size} bytes, over the per-file limit of ${maxFile} (--max-file-size)`);
    total += size;
  }
  if (total > maxTotal) throw new OciError('SIZE_INVALID', `the selection is ${total} bytes, over the limit of ${maxTotal} (--max-total-size)`);
  // Every destination and symlink target is checked before anything is written.
  for (const st of picked) {
    const dest = resolve(out, st.path);
    if (st.path !== '' && !within(out, dest)) throw new WharfError('INVALID_ARGUMENT', `entry "${st.path}" would be written outside the output directory`);
    const target = st.linkName ?? '';
    if (st.type === 'symlink' && !allow && (isAbsolute(target) || !within(out, resolve(dirname(dest), target)))) {
      throw new WharfError('INVALID_ARGUMENT', `entry "${st.path}" is a symbolic link pointing out of the output directory (${target}); pass --allow-path-traversal if you trust it`);
    }
  }
  await mkdir(out, { recursive: true });
  // Small files go in batches: one multi-range request fetches the chunks of many (eStargz).
  const prefetch = (fs as Partial<Prefetcher>).prefetch?.bind(fs);
  const batchOf = new Map<string, string[]>();
  if (prefetch) {
    let batch: string[] = [];
    let n = 0;
    for (const st of picked) {
      if (st.type !== 'file' || st.size === 0 || st.size > PREFETCH_FILE) continue;
      if (n + st.size > PREFETCH_BATCH && batch.length > 0) {
        batch = [];
        n = 0;
      }
      batch.push(st.path);
      n += st.size;
      batchOf.set(st.path, batch);
    }
  }
  const fetched = new Set<string[]>();
  const written = new Set<string>();
  const dirs: Array<[string, FileStat]> = [];
  let bytes = 0;
  let files = 0;
  for (const st of picked) {
    opts.signal?.throwIfAborted();
    const dest = resolve(out, st.path);
    if (!within(out, dest) || st.path === '') {
      if (st.path === '') continue;
      throw new WharfError('INVALID_ARGUMENT', `entry "${st.path}" would be written outside the output directory`);
    }
    // Checked before mkdir, which would otherwise follow a symlink out and create directories there.
    await checkParents(out, dest, allow);
    await mkdir(dirname(dest), { recursive: true });
    const existing = await lstat(dest).catch(() => undefined);
    if (existing && st.type !== 'dir') {
      if (opts.keepOldFiles) throw new WharfError('INVALID_ARGUMENT', `${dest} exists; not overwriting it (--keep-old-files)`);
      if (existing.isDirectory()) throw new WharfError('INVALID_ARGUMENT', `${dest} is a directory; not replacing it with a ${st.type}`);
    }
    switch (st.type) {
      case 'dir':
        if (existing && !existing.isDirectory()) throw new WharfError('INVALID_ARGUMENT', `${dest} exists and is not a directory`);
        await mkdir(dest, { recursive: true });
        dirs.push([dest, st]);
        break;
      case 'symlink': {
        const target = st.linkName ?? '';
        if (!allow && (isAbsolute(target) || !within(out, resolve(dirname(dest), target)))) {
          throw new WharfError('INVALID_ARGUMENT', `entry "${st.path}" is a symbolic link pointing out of the output directory (${target}); pass --allow-path-traversal if you trust it`);
        }
        if (existing) await rm(dest, { force: true });
        await symlink(target, dest);
        break;
      }
      case 'hardlink':
      case 'file': {
        const src = st.type === 'hardlink' ? await fs.stat(st.path) : st;
        if (st.type === 'hardlink' && written.has(src.path)) {
          if (existing) await rm(dest, { force: true });
          await link(resolve(out, src.path), dest);
          break;
        }
        const batch = batchOf.get(src.path);
        if (prefetch && batch && !fetched.has(batch)) {
          fetched.add(batch);
          await prefetch(batch);
        }
        const tmp = join(dirname(dest), `.wharf-${randomUUID()}.tmp`);
        let n = 0;
        const guard = new Transform({
          transform(c: Buffer, _e, cb) {
            n += c.length;
            bytes += c.length;
            if (n > maxFile) cb(new OciError('SIZE_INVALID', `${st.path} is over the per-file limit of ${maxFile} bytes`));
            else if (bytes > maxTotal) cb(new OciError('SIZE_INVALID', `over the limit of ${maxTotal} bytes in all`));
            else cb(null, c);
          },
        });
        try {
          await pipeline(fs.createReadStream(src.path), guard, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal: opts.signal });
          // Files never become setuid or setgid by surprise.
          await chmod(tmp, src.mode & 0o1777);
          if (src.mtime) await utimes(tmp, src.mtime, src.mtime).catch(() => undefined);
          await rename(tmp, dest);
        } finally {
          await rm(tmp, { force: true });
        }
        written.add(st.path);
        if (st.type === 'file') written.add(src.path);
        break;
      }
      default:
        // Devices and fifos are not recreated.
        continue;
    }
    files++;
    opts.onEntry?.(st);
  }
  for (const [p, st] of dirs.reverse()) {
    await chmod(p, st.mode & 0o7777).catch(() => undefined);
    if (st.mtime) await utimes(p, st.mtime, st.mtime).catch(() => undefined);
  }
  return { files, bytes, entries: picked };
}
