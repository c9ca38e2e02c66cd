import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tarStream from 'tar-stream';
import { digestOf, MediaType, type Descriptor } from '../../src/spec/index.js';
import { LayoutStore } from '../../src/stores/layout/index.js';

/** A tar of small text files (mode 0644, mtime 0), for layers that real tools unpack. */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * An OCI layout directory holding, at `tag`, an index of two runnable single-layer images
 * (linux/amd64 and linux/arm64, in that order in `manifests`).
 */
export async function writeMultiPlatform(dir: string, tag = 'v1'): Promise<{ index: Descriptor; manifests: Descriptor[] }> {
  const store = await LayoutStore.open(dir);
  const push = async (mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Promise<Descriptor> => {
    const d: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
    await store.push(d, Readable.from([bytes]));
    return d;
  };
  const manifests: Descriptor[] = [];
  for (const architecture of ['amd64', 'arm64']) {
    const tar = await tarOf({ 'hello.txt': `hello from ${architecture}\n`, 'etc/os-release': 'ID=wharf\n' });
    const layer = await push(MediaType.ImageLayerGzip, gzipSync(tar));
    const config = await push(
      MediaType.ImageConfig,
      Buffer.from(JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [digestOf(tar)] } })),
    );
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] }));
    manifests.push(await push(MediaType.ImageManifest, m, { platform: { architecture, os: 'linux' } }));
  }
  const index = await push(MediaType.ImageIndex, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests })));
  await store.tag(index, tag);
  return { index, manifests };
}
