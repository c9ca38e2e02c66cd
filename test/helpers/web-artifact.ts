/**
 * Fixtures of the web artifact tests: a registry with users (test/helpers/auth.ts), and artifacts
 * pushed with the wharf client: an image-like artifact, an eStargz image, a Helm-chart-shaped
 * artifact, an SBOM and signatures attached to the image, an index over it, archives in tar and
 * tar.gz layers, and an artifact whose file names are hostile.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import * as zlib from 'node:zlib';
import { createGzip } from 'node:zlib';
import * as tarStream from 'tar-stream';
import { Registry, type RemoteRepository } from '../../src/stores/remote/index.js';
import { createIndex, pushArtifact, pushEstargz } from '../../src/client/index.js';
import type { Descriptor } from '../../src/spec/index.js';
import { USERS, startAuthServer } from './auth.js';
import type { RunningServer } from '../../src/server/index.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes a tar (gzipped when `gzip`) of `entries` to `file`. */
export async function writeTar(file: string, entries: Array<{ name: string; body: Buffer | string; type?: 'file' | 'directory' | 'symlink'; linkname?: string }>, gzip: boolean): Promise<void> {
  const pack = tarStream.pack();
  const done = gzip ? pipeline(pack, createGzip(), createWriteStream(file)) : pipeline(pack, createWriteStream(file));
  for (const e of entries) {
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mode: 0o755 });
    else if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname ?? '' });
    else pack.entry({ name: e.name, mode: 0o644 }, Buffer.from(e.body));
  }
  pack.finalize();
  await done;
}

export interface Fixture {
  server: RunningServer & { dataDir: string };
  work: string;
  /** What was pushed, for the assertions. */
  image: { desc: Descriptor; layerFile: string; layer: Descriptor };
  estargz: { desc: Descriptor; layer: Descriptor; src: string; big: Buffer; small: Buffer };
  chart: { desc: Descriptor; layer: Descriptor; readme: string; values: string };
  sbom: Descriptor;
  signature: Descriptor;
  notation: Descriptor;
  index: Descriptor;
  childSignature: Descriptor;
  files: { desc: Descriptor; readme: string; license: string; data: Buffer; tarLayer: Descriptor; tarEntry: Buffer; dirLayer: Descriptor };
  hostile: { desc: Descriptor; layer: Descriptor };
  /** A 32 MiB file (a download to abort), and a layer that is zstd by its magic bytes. */
  large: { desc: Descriptor; layer: Descriptor; size: number };
  zstd: { layer: Descriptor };
  bigTar: { layer: Descriptor };
  model: Descriptor;
  close(): Promise<void>;
}

function repoOf(server: RunningServer, name: string, user = 'alice'): { repo: RemoteRepository; close(): Promise<void> } {
  const reg = new Registry(new URL(server.url).host, { plainHttp: true, credentials: async () => ({ username: user, password: USERS[user]! }) });
  return { repo: reg.repository(name), close: () => reg.close() };
}

export async function pushFixtures(): Promise<Fixture> {
  const server = await startAuthServer({ audit: { flushInterval: 50 } });
  const work = await mkdtemp(join(tmpdir(), 'wharf-web-artifact-'));
  const at = (...p: string[]): string => join(work, ...p);
  const conns: Array<() => Promise<void>> = [];
  const repo = (name: string): RemoteRepository => {
    const r = repoOf(server, name);
    conns.push(r.close);
    return r.repo;
  };

  // An image-like artifact: an image config with entrypoint, env and ports, and a titled tar.gz layer.
  const cfg = { architecture: 'amd64', os: 'linux', created: '2024-05-01T10:00:00Z', config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/usr/bin', 'MODE=prod'], ExposedPorts: { '8080/tcp': {} }, WorkingDir: '/srv' }, rootfs: { type: 'layers', diff_ids: [] } };
  await writeFile(at('config.json'), JSON.stringify(cfg));
  await mkdir(at('img'));
  const layerFile = at('img', 'rootfs.tar.gz');
  await writeTar(layerFile, [{ name: 'bin/', body: '', type: 'directory' }, { name: 'bin/app', body: 'binary of app' }, { name: 'etc/app.conf', body: 'port=8080\n' }], true);
  const img = await pushArtifact(repo('ml/app'), {
    files: [{ path: layerFile, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    config: { path: at('config.json'), mediaType: 'application/vnd.oci.image.config.v1+json' },
    imageSpec: 'v1.0',
    tags: ['v1'],
  });

  // An eStargz image: a small file and a big one in 64 KiB chunks.
  const esrc = at('es');
  await mkdir(join(esrc, 'sub'), { recursive: true });
  const small = Buffer.from('hello from estargz\n');
  const big = randomBytes(1 << 20);
  await writeFile(join(esrc, 'hello.txt'), small);
  await writeFile(join(esrc, 'sub', 'big.bin'), big);
  const es = await pushEstargz(repo('ml/es'), { dir: esrc, chunkSize: 64 * 1024, tags: ['v1'] });

  // A Helm-chart-shaped artifact: Helm's config and a chart .tgz with Chart.yaml, values.yaml and README.
  const readme = '# mychart\n\nA chart for <b>tests</b>.\n';
  const values = 'replicaCount: 2\nimage:\n  repository: nginx\n';
  await writeTar(at('mychart-0.1.0.tgz'), [
    { name: 'mychart/Chart.yaml', body: 'apiVersion: v2\nname: mychart\nversion: 0.1.0\nappVersion: "1.16.0"\ndescription: A Helm chart for Kubernetes\ntype: application\n' },
    { name: 'mychart/values.yaml', body: values },
    { name: 'mychart/README.md', body: readme },
    { name: 'mychart/templates/deployment.yaml', body: 'kind: Deployment\n' },
    { name: 'mychart/charts/sub/Chart.yaml', body: 'name: sub\nversion: 9.9.9\n' },
  ], true);
  await writeFile(at('helm-config.json'), JSON.stringify({ name: 'mychart', version: '0.1.0', appVersion: '1.16.0', apiVersion: 'v2' }));
  const chart = await pushArtifact(repo('ml/charts/mychart'), {
    files: [{ path: at('mychart-0.1.0.tgz'), mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }],
    config: { path: at('helm-config.json'), mediaType: 'application/vnd.cncf.helm.config.v1+json' },
    imageSpec: 'v1.0',
    tags: ['0.1.0'],
  });

  // Referrers of the image: an SBOM, a cosign-like signature, and a notation signature of the SBOM.
  await writeFile(at('sbom.spdx.json'), JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'app' }));
  const sbom = await pushArtifact(repo('ml/app'), { files: [{ path: at('sbom.spdx.json'), mediaType: 'application/spdx+json' }], artifactType: 'application/spdx+json', subject: img.manifest });
  await writeFile(at('sig.json'), JSON.stringify({ critical: { image: { 'docker-manifest-digest': img.manifest.digest } } }));
  const sig = await pushArtifact(repo('ml/app'), {
    files: [{ path: at('sig.json'), mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }],
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    subject: img.manifest,
  });
  await writeFile(at('sig.jws'), '{"payload":"x"}');
  const notation = await pushArtifact(repo('ml/app'), { files: [{ path: at('sig.jws'), mediaType: 'application/jose+json' }], artifactType: 'application/vnd.cncf.notary.signature', subject: sbom.manifest });

  // An index over the image (under another tag), and a signature of the eStargz image pushed into the same repository.
  const index = await createIndex(repo('ml/app'), ['v1'], { tags: ['multi'] });
  await writeFile(at('sig2.json'), '{}');
  const childSig = await pushArtifact(repo('ml/app'), { files: [{ path: at('sig2.json'), mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }], artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: img.manifest });

  // A generic artifact: README, LICENSE, a data file, a plain tar and a directory (tar.gz).
  const fdir = at('files');
  await mkdir(join(fdir, 'tree', 'deep'), { recursive: true });
  const freadme = '# Dataset\n\nSee <script>alert(1)</script> and [x](javascript:alert(1)).\n';
  const license = 'MIT License\n';
  const data = randomBytes(300_000);
  await writeFile(join(fdir, 'README.md'), freadme);
  await writeFile(join(fdir, 'LICENSE'), license);
  await writeFile(join(fdir, 'data.bin'), data);
  const tarEntry = Buffer.from('inside a plain tar\n'.repeat(100));
  await writeTar(join(fdir, 'bundle.tar'), [{ name: 'docs/guide.txt', body: tarEntry }, { name: 'docs/link', body: '', type: 'symlink', linkname: 'guide.txt' }], false);
  await writeFile(join(fdir, 'tree', 'deep', 'leaf.txt'), 'leaf\n');
  const prev = process.cwd();
  process.chdir(fdir);
  let files;
  try {
    files = await pushArtifact(repo('ml/data'), {
      files: [{ path: 'README.md' }, { path: 'LICENSE' }, { path: 'data.bin' }, { path: 'bundle.tar' }, { path: 'tree' }],
      artifactType: 'application/vnd.acme.dataset.v1',
      annotations: { 'org.opencontainers.image.description': 'not used: README.md wins' },
      tags: ['v1'],
    });
  } finally {
    process.chdir(prev);
  }

  // Hostile names: a title that climbs, with control characters and quotes.
  const hdir = at('hostile');
  await mkdir(hdir);
  await writeFile(join(hdir, 'evil'), 'evil bytes');
  const hostile = await pushArtifact(repo('ml/hostile'), {
    files: [{ path: join(hdir, 'evil') }],
    fileAnnotations: { evil: { 'org.opencontainers.image.title': '../../etc/"pass\r\nwd;\u0007\u202e.txt' } },
    artifactType: 'application/vnd.acme.evil',
    tags: ['v1'],
  });

  const largeSize = 32 << 20;
  await writeFile(at('large.bin'), Buffer.alloc(largeSize, 7));
  // A real zstd tar where Node can make one (22.15+, which also reads it); else the magic bytes alone.
  const zstdCompress = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;
  if (zstdCompress) {
    await writeTar(at('inner.tar'), [{ name: 'inside-zstd.txt', body: 'zstd\n' }], false);
    await writeFile(at('fake.tar.zst'), zstdCompress(await readFile(at('inner.tar'))));
  } else await writeFile(at('fake.tar.zst'), Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(1000)]));
  // A plain tar with a big file first, then a small one and one whose name needs a pax header.
  await writeTar(at('big.tar'), [{ name: 'big.bin', body: Buffer.alloc(8 << 20, 1) }, { name: 'after.txt', body: 'after the big one\n' }, { name: `${'d'.repeat(20)}/${'n'.repeat(150)}.txt`, body: 'long name\n' }], false);
  const large = await pushArtifact(repo('ml/large'), {
    files: [{ path: at('large.bin') }, { path: at('fake.tar.zst'), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }, { path: at('big.tar') }],
    tags: ['v1'],
  });

  // A ModelPack model: its config says name, format and parameters.
  await writeFile(at('model-config.json'), JSON.stringify({ descriptor: { name: 'tiny-llm', version: '1.0', licenses: ['Apache-2.0'] }, config: { format: 'gguf', paramSize: '8b', precision: 'fp16', architecture: 'transformer' }, modelfs: { type: 'layers', diff_ids: [] } }));
  await writeFile(at('weights.gguf'), randomBytes(1000));
  const model = await pushArtifact(repo('ml/models/tiny'), {
    files: [{ path: at('weights.gguf'), mediaType: 'application/vnd.cncf.model.weight.v1.raw' }],
    config: { path: at('model-config.json'), mediaType: 'application/vnd.cncf.model.config.v1+json' },
    artifactType: 'application/vnd.cncf.model.manifest.v1+json',
    tags: ['v1'],
  });

  const layerOf = (r: { layers: Descriptor[] }, title: string): Descriptor => r.layers.find((l) => l.annotations?.['org.opencontainers.image.title'] === title)!;
  return {
    server,
    work,
    image: { desc: img.manifest, layerFile, layer: img.layers[0]! },
    estargz: { desc: es.manifest, layer: es.layer, src: esrc, big, small },
    chart: { desc: chart.manifest, layer: chart.layers[0]!, readme, values },
    sbom: sbom.manifest,
    signature: sig.manifest,
    notation: notation.manifest,
    index: index.desc,
    childSignature: childSig.manifest,
    files: { desc: files.manifest, readme: freadme, license, data, tarLayer: layerOf(files, 'bundle.tar'), tarEntry, dirLayer: layerOf(files, 'tree') },
    hostile: { desc: hostile.manifest, layer: hostile.layers[0]! },
    large: { desc: large.manifest, layer: large.layers[0]!, size: largeSize },
    zstd: { layer: large.layers[1]! },
    bigTar: { layer: large.layers[2]! },
    model: model.manifest,
    close: async () => {
      for (const c of conns) await c();
      await server.close();
      await rm(work, { recursive: true, force: true });
      await rm(server.dataDir, { recursive: true, force: true });
    },
  };
}
