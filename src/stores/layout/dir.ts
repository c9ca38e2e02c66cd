import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciError, MediaType, Annotation, isDigest, parseDigest, parseManifest, referrerDescriptor, isManifestMediaType, type Descriptor, type ImageIndex, WharfError, isKnownError } from '../../spec/index.js';
import {
  fileReader,
  verifyReader,
  readAllVerified,
  MAX_MANIFEST_SIZE,
  type OpOptions,
  type Target,
  type ReferrerLister,
  type TagLister,
  type Deleter,
} from '../../content/index.js';

export const LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
const LAYOUT_VERSION = '1.0.0';

export interface LayoutOptions {
  /** Create the directory and its `oci-layout` file when missing (default true). */
  create?: boolean;
}

/**
 * An OCI image layout directory (image-spec image-layout.md) as a Target. Blobs are written to a
 * temp file beside their final path and renamed once verified, so a reader never sees a partial
 * blob; `index.json` is rewritten the same way. Tags are index entries annotated with
 * `org.opencontainers.image.ref.name`; manifests with a subject are kept in the index, untagged,
 * so that their referrers stay reachable.
 */
export class LayoutStore implements Target, ReferrerLister, TagLister, Deleter {
  readonly root: string;
  private index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] };
  private loaded = false;
  private readonly create: boolean;
  /** Serialises index updates: each one reads and writes the whole file. */
  private indexLock: Promise<void> = Promise.resolve();

  constructor(root: string, opts: LayoutOptions = {}) {
    this.root = root;
    this.create = opts.create ?? true;
  }

  /** Opens (and, unless told otherwise, creates) the layout. */
  static async open(root: string, opts: LayoutOptions = {}): Promise<LayoutStore> {
    const s = new LayoutStore(root, opts);
    await s.load();
    return s;
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex);
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    let layout: string | undefined;
    try {
      layout = await readFile(join(this.root, LAYOUT_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (layout === undefined) {
      if (!this.create) throw new WharfError('NOT_FOUND', `${this.root} is not an OCI image layout (no ${LAYOUT_FILE} file)`);
      await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
      await writeFile(join(this.root, LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
    } else {
      let v: unknown;
      try {
        v = (JSON.parse(layout) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        v = undefined;
      }
      if (typeof v !== 'string' || !v.startsWith('1.')) throw new WharfError('INVALID_ARGUMENT', `${this.root}: unsupported image layout version ${JSON.stringify(v)}`);
    }
    try {
      const doc = JSON.parse(await readFile(join(this.root, INDEX_FILE), 'utf8')) as ImageIndex;
      if (!Array.isArray(doc.manifests)) throw new Error('no manifests array');
      this.index = doc;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new OciError('MANIFEST_INVALID', `${join(this.root, INDEX_FILE)} is not a valid index: ${(err as Error).message}`);
      }
      await this.saveIndex();
    }
    this.loaded = true;
  }

  private async saveIndex(): Promise<void> {
    const target = join(this.root, INDEX_FILE);
    const tmp = join(this.root, `.${INDEX_FILE}.${randomUUID()}.tmp`);
    try {
      await writeFile(tmp, JSON.stringify(this.index));
      await rename(tmp, target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  private updateIndex(fn: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
    const run = this.indexLock.then(async () => {
      this.index = { ...this.index, manifests: fn(this.index.manifests) };
      await this.saveIndex();
    });
    this.indexLock = run.catch(() => undefined);
    return run;
  }

  /** Descriptors listed in index.json, tagged or not. */
  async indexManifests(): Promise<Descriptor[]> {
    await this.load();
    return [...this.index.manifests];
  }

  async exists(desc: Descriptor): Promise<boolean> {
    await this.load();
    try {
      return (await stat(this.blobPath(desc.digest))).isFile();
    } catch {
      return false;
    }
  }

  /** A blob's descriptor from the file's size. */
  async statBlob(digest: Descriptor['digest']): Promise<Descriptor> {
    await this.load();
    try {
      const st = await stat(this.blobPath(digest));
      return { mediaType: 'application/octet-stream', digest, size: st.size };
    } catch {
      throw new OciError('BLOB_UNKNOWN', `${digest} not found in ${this.root}`);
    }
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    await this.load();
    const path = this.blobPath(desc.digest);
    try {
      await stat(path);
    } catch {
      throw new OciError(isManifestMediaType(desc.mediaType) ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${desc.digest} not found in ${this.root}`);
    }
    return verifyReader(fileReader(path), desc);
  }

  async push(desc: Descriptor, content: Readable, opts: OpOptions = {}): Promise<void> {
    await this.load();
    const final = this.blobPath(desc.digest);
    if (await this.exists(desc)) {
      content.resume();
      content.destroy();
    } else {
      const dir = join(final, '..');
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `.tmp-${randomUUID()}`);
      try {
        await pipeline(verifyReader(content, desc), createWriteStream(tmp, { flags: 'wx' }), { signal: opts.signal });
        await rename(tmp, final);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
    }
    if (isManifestMediaType(desc.mediaType)) {
      const body = await readAllVerified(createReadStream(final), desc, MAX_MANIFEST_SIZE);
      const info = parseManifest(body, desc.mediaType);
      if (info.subject) {
        const entry: Descriptor = { mediaType: info.mediaType, digest: desc.digest, size: desc.size };
        if (info.artifactType) entry.artifactType = info.artifactType;
        if (info.annotations) entry.annotations = info.annotations;
        await this.updateIndex((ms) => (ms.some((m) => m.digest === desc.digest && !m.annotations?.[Annotation.RefName]) ? ms : [...ms, entry]));
      }
    }
  }

  async resolve(reference: string): Promise<Descriptor> {
    await this.load();
    if (isDigest(reference)) {
      const listed = this.index.manifests.find((m) => m.digest === reference);
      if (listed) return strip(listed);
      // Not in the index: read the blob to learn what it is.
      let body: Buffer;
      try {
        const st = await stat(this.blobPath(reference));
        if (st.size > MAX_MANIFEST_SIZE) throw new OciError('MANIFEST_UNKNOWN', `${reference} is not a manifest`);
        body = await readAllVerified(fileReader(this.blobPath(reference)), { digest: reference, size: st.size });
      } catch (err) {
        if (isKnownError(err)) throw err;
        throw new OciError('MANIFEST_UNKNOWN', `${reference} not found in ${this.root}`);
      }
      const info = parseManifest(body, undefined);
      return { mediaType: info.mediaType, digest: reference, size: body.length };
    }
    const d = this.index.manifests.find((m) => m.annotations?.[Annotation.RefName] === reference);
    if (!d) throw new OciError('MANIFEST_UNKNOWN', `${reference} not found in ${this.root}`);
    return strip(d);
  }

  async tag(desc: Descriptor, reference: string): Promise<void> {
    await this.load();
    if (!(await this.exists(desc))) throw new OciError('MANIFEST_UNKNOWN', `${desc.digest} not found in ${this.root}`);
    const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (desc.artifactType) entry.artifactType = desc.artifactType;
    if (desc.platform) entry.platform = desc.platform;
    entry.annotations = { [Annotation.RefName]: reference };
    await this.updateIndex((ms) => [...ms.filter((m) => m.annotations?.[Annotation.RefName] !== reference), entry]);
  }

  async tags(opts: { last?: string; n?: number } = {}): Promise<string[]> {
    await this.load();
    const all = this.index.manifests
      .map((m) => m.annotations?.[Annotation.RefName])
      .filter((t): t is string => t !== undefined)
      .sort()
      .filter((t) => opts.last === undefined || t > opts.last);
    return opts.n === undefined ? all : all.slice(0, opts.n);
  }

  async referrers(subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Descriptor[]> {
    await this.load();
    const out: Descriptor[] = [];
    const seen = new Set<string>();
    for (const m of this.index.manifests) {
      if (seen.has(m.digest) || !isManifestMediaType(m.mediaType) || m.size > MAX_MANIFEST_SIZE) continue;
      seen.add(m.digest);
      let info;
      try {
        info = parseManifest(await readAllVerified(createReadStream(this.blobPath(m.digest)), m, MAX_MANIFEST_SIZE), m.mediaType);
      } catch {
        continue; // an index entry whose blob is missing is not a referrer we can report
      }
      if (info.subject?.digest !== subject.digest) continue;
      const r = referrerDescriptor(info, m.digest, m.size);
      if (!opts.artifactType || r.artifactType === opts.artifactType) out.push(r);
    }
    return out;
  }

  /** Deletes a blob, and for a manifest its index entries (tags). */
  async delete(desc: Descriptor): Promise<void> {
    await this.load();
    if (!(await this.exists(desc))) throw new WharfError('NOT_FOUND', `${desc.digest} not found in ${this.root}`);
    await this.updateIndex((ms) => ms.filter((m) => m.digest !== desc.digest));
    await rm(this.blobPath(desc.digest), { force: true });
  }

  /** Removes a tag; the manifest stays. */
  async untag(reference: string): Promise<void> {
    await this.load();
    await this.updateIndex((ms) => ms.filter((m) => m.annotations?.[Annotation.RefName] !== reference));
  }
}

function strip(d: Descriptor): Descriptor {
  const r: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType) r.artifactType = d.artifactType;
  if (d.platform) r.platform = d.platform;
  return r;
}
