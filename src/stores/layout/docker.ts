import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MediaType, type Descriptor, WharfError } from '../../spec/index.js';
import { verifyReader, type ReadOnlyStorage } from '../../content/index.js';
import { LayoutStore } from './dir.js';
import { LayoutTarStore } from './tar.js';

/** One image of a `docker save` tarball, as an OCI image manifest. */
export interface DockerImage {
  /** `name:tag` as saved (RepoTags); none for an image saved by ID. */
  repoTags: string[];
  root: Descriptor;
}

/**
 * A `docker save` tarball (manifest.json, a config JSON, layer tars) read as OCI images: each
 * image's manifest is built from its config and layers, whose digests are computed from the
 * files. Read-only; `close()` removes the unpacked files.
 */
export class DockerArchive implements ReadOnlyStorage {
  private constructor(
    private readonly work: string,
    readonly images: DockerImage[],
    private readonly files: Map<string, string>,
    private readonly manifests: Map<string, Buffer>,
  ) {}

  /** Opens an archive already unpacked into `work`, which the archive then owns. */
  static async fromDir(work: string): Promise<DockerArchive> {
    const inside = (p: string): string => {
      const abs = join(work, p);
      if (!abs.startsWith(work + '/')) throw new WharfError('INVALID_ARGUMENT', `docker archive path "${p}" leaves the archive`);
      return abs;
    };
    const entries = JSON.parse(await readFile(join(work, 'manifest.json'), 'utf8')) as Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>;
    const files = new Map<string, string>();
    const manifests = new Map<string, Buffer>();
    const images: DockerImage[] = [];
    for (const e of entries) {
      const config = await fileDesc(inside(e.Config), MediaType.ImageConfig);
      files.set(config.digest, inside(e.Config));
      const layers: Descriptor[] = [];
      for (const l of e.Layers) {
        const d = await fileDesc(inside(l), (await isGzip(inside(l))) ? MediaType.ImageLayerGzip : MediaType.ImageLayer);
        layers.push(d);
        files.set(d.digest, inside(l));
      }
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers }));
      const root: Descriptor = { mediaType: MediaType.ImageManifest, digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, size: body.length };
      manifests.set(root.digest, body);
      images.push({ repoTags: e.RepoTags ?? [], root });
    }
    return new DockerArchive(work, images, files, manifests);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.manifests.has(desc.digest) || this.files.has(desc.digest);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const body = this.manifests.get(desc.digest);
    if (body) return verifyReader(Readable.from([body]), desc);
    const file = this.files.get(desc.digest);
    if (!file) throw new WharfError('NOT_FOUND', `${desc.digest} is not in the docker archive`);
    return verifyReader(createReadStream(file), desc);
  }

  async close(): Promise<void> {
    await rm(this.work, { recursive: true, force: true });
  }
}

/** What a file handed to `wharf cache load` holds: images, or (any other file) text, such as an image list. */
export type ImageArchive =
  | { kind: 'layout'; layout: LayoutStore | LayoutTarStore; close(): Promise<void> }
  | { kind: 'docker'; archive: DockerArchive; close(): Promise<void> }
  | { kind: 'text'; text: string; close(): Promise<void> };

/** Opens an OCI image layout (a directory or a .tar), a `docker save` tarball, or a text file. The caller closes it. */
export async function openImageArchive(path: string): Promise<ImageArchive> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new WharfError('INVALID_ARGUMENT', `${path} does not exist`);
  if (st.isDirectory()) {
    const layout = await LayoutStore.open(path, { create: false });
    return { kind: 'layout', layout, close: async () => undefined };
  }
  if (!/\.(tar|tar\.gz|tgz)$/.test(path) && !(await isTar(path))) return { kind: 'text', text: await readFile(path, 'utf8'), close: async () => undefined };
  const work = await mkdtemp(join(tmpdir(), 'wharf-load-'));
  try {
    // tar is loaded only here: a server that never loads a tarball does not carry it.
    await (await import('tar')).x({ file: path, cwd: work, strict: true });
    const names = await readdir(work);
    if (names.includes('oci-layout')) {
      await rm(work, { recursive: true, force: true });
      const t = await LayoutTarStore.open(path, { create: false });
      return { kind: 'layout', layout: t, close: () => t.close({ discard: true }) };
    }
    if (names.includes('manifest.json')) {
      const archive = await DockerArchive.fromDir(work);
      return { kind: 'docker', archive, close: () => archive.close() };
    }
    throw new WharfError('INVALID_ARGUMENT', `${path} is neither an OCI layout archive nor a docker save tarball`);
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err;
  }
}

async function head(file: string, n: number, at = 0): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, at);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function isTar(file: string): Promise<boolean> {
  return (await head(file, 262)).subarray(257, 262).toString('latin1') === 'ustar';
}

async function isGzip(file: string): Promise<boolean> {
  const b = await head(file, 2);
  return b[0] === 0x1f && b[1] === 0x8b;
}

async function fileDesc(file: string, mediaType: string): Promise<Descriptor> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(file)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { mediaType, digest: `sha256:${h.digest('hex')}`, size };
}
