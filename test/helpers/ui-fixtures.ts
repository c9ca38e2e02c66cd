/**
 * What the web UI's browser tests and the screenshot script (scripts/screenshots.ts) push: a
 * model pushed with `wharf push`, a Helm chart, an SBOM and a cosign signature referring to the
 * model, an artifact full of hostile strings, and a private repository. Plain /v2 pushes besides
 * the CLI's, so that the fixtures cost a second, not one CLI start each.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { call } from '../../src/testkit/http.js';
import { EMPTY_DESCRIPTOR, MediaTypes, descriptorOf, imageManifest, type Descriptor } from '../../src/testkit/fixtures.js';
import { USERS, basic } from './auth.js';
import { wharf } from './cli.js';

/** A tar (gzipped when asked) of the given files, made in memory: the fixtures are a few bytes. */
export async function tarOf(files: Record<string, string | Buffer>, gzip = true): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  return gzip ? gzipSync(tar) : tar;
}

/** The files of a tar, by name. */
export async function untar(body: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (h.type === 'file') out.set(h.name, Buffer.concat(chunks));
        next();
      });
      stream.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(body);
  await done;
  return out;
}

export async function putBlob(url: string, repo: string, d: Descriptor, body: Buffer, auth: Record<string, string>): Promise<void> {
  const r = await call(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d.digest}`, { headers: { ...auth, 'content-type': 'application/octet-stream' }, body });
  assert.equal(r.status, 201, `blob push to ${repo}: ${r.body.toString()}`);
}

/** Pushes a manifest with its layers (and the empty config, or `config`); returns its descriptor. */
export async function pushManifest(
  url: string,
  repo: string,
  /** A tag, or null to push by digest (a referrer). */
  ref: string | null,
  auth: Record<string, string>,
  m: { layers: Array<{ d: Descriptor; body: Buffer }>; config?: { d: Descriptor; body: Buffer }; artifactType?: string; subject?: Descriptor; annotations?: Record<string, string> },
): Promise<Descriptor> {
  const config = m.config ?? { d: EMPTY_DESCRIPTOR, body: Buffer.from('{}') };
  for (const b of [config, ...m.layers]) await putBlob(url, repo, b.d, b.body, auth);
  const built = imageManifest({
    config: config.d,
    layers: m.layers.map((l) => l.d),
    ...(m.artifactType ? { artifactType: m.artifactType } : {}),
    ...(m.subject ? { subject: m.subject } : {}),
    ...(m.annotations ? { annotations: m.annotations } : {}),
  });
  const r = await call(url, 'PUT', `/v2/${repo}/manifests/${ref ?? built.digest}`, { headers: { ...auth, 'content-type': MediaTypes.manifest }, body: built.body });
  assert.equal(r.status, 201, `manifest push to ${repo}:${ref ?? built.digest}: ${r.body.toString()}`);
  return { mediaType: MediaTypes.manifest, digest: built.digest, size: Buffer.byteLength(built.body) };
}

export const HOSTILE = '<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned=\'img\'">';
export const HOSTILE_README = [
  '# Hostile <script>window.__pwned = "readme-script"</script>',
  '',
  '[click me](javascript:window.__pwned="link")',
  '',
  '<svg onload="window.__pwned=\'svg\'"><script>window.__pwned="svg-script"</script></svg>',
  '',
  '<img src="x" onerror="window.__pwned=\'readme-img\'">',
  '',
  '| a | b |',
  '|--:|:--|',
  '| 1 | 2 |',
  '',
].join('\n');
export const HOSTILE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=\'svgfile\'"><script>window.__pwned="svgfile-script"</script></svg>';

export interface UiFixtures {
  /** The files of ml/model:v1, as pushed. */
  files: Record<string, Buffer>;
  /** ml/model:v1's manifest. */
  model: Descriptor;
}

/** Pushes the fixtures to the server at `url` (users and rules of test/helpers/auth.ts); `work` is a scratch directory. */
export async function seedUiFixtures(url: string, work: string): Promise<UiFixtures> {
  const alice = basic('alice');
  const root = basic('root');
  const files: Record<string, Buffer> = { 'model.bin': Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)), 'README.md': Buffer.from('# The model\n\nWeights of a **small** model.\n') };
  for (const [n, b] of Object.entries(files)) await writeFile(join(work, n), b);
  const host = url.replace(/^https?:\/\//, '');
  // What a user does: `wharf push` of two files, as alice.
  const push = await wharf(['push', '--plain-http', '-u', 'alice', '-p', USERS.alice!, `${host}/ml/model:v1`, 'model.bin', 'README.md', '--artifact-type', 'application/vnd.example.model.v1', '-a', 'org.opencontainers.image.description=A small model', '--format', 'json'], { cwd: work });
  assert.equal(push.code, 0, push.stderr);
  const head = await call(url, 'HEAD', `/v2/ml/model/manifests/v1`, { headers: alice });
  const model: Descriptor = { mediaType: MediaTypes.manifest, digest: head.headers.get('docker-content-digest')!, size: Number(head.headers.get('content-length')) };

  // A Helm chart.
  const chart = await tarOf({ 'web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 1.0.0\ndescription: A web chart\n', 'web/values.yaml': 'replicas: 2\n' });
  const chartConfig = Buffer.from(JSON.stringify({ name: 'web', version: '1.0.0', apiVersion: 'v2' }));
  await pushManifest(url, 'ml/charts/web', '1.0.0', alice, {
    config: { d: descriptorOf('application/vnd.cncf.helm.config.v1+json', chartConfig), body: chartConfig },
    layers: [{ d: descriptorOf('application/vnd.cncf.helm.chart.content.v1.tar+gzip', chart), body: chart }],
  });
  // An SPDX SBOM and a cosign signature referring to the model.
  const sbom = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'model', packages: [] }));
  await pushManifest(url, 'ml/model', null, alice, {
    artifactType: 'application/spdx+json',
    subject: model,
    layers: [{ d: descriptorOf('application/spdx+json', sbom, { annotations: { 'org.opencontainers.image.title': 'sbom.spdx.json' } }), body: sbom }],
  });
  const sig = Buffer.from('{"critical":{}}');
  await pushManifest(url, 'ml/model', null, alice, {
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    subject: model,
    layers: [{ d: descriptorOf('application/vnd.dev.cosign.simplesigning.v1+json', sig, { annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ==' } }), body: sig }],
  });
  // Hostile content: annotations, a file name, a README and an SVG that try to run script.
  const readme = Buffer.from(HOSTILE_README);
  const svg = Buffer.from(HOSTILE_SVG);
  const evil = Buffer.from('evil');
  await pushManifest(url, 'ml/hostile', 'v1', alice, {
    artifactType: 'application/vnd.example.hostile',
    annotations: { 'org.opencontainers.image.description': HOSTILE, 'org.opencontainers.image.title': HOSTILE, 'x-evil': 'javascript:window.__pwned="ann"' },
    layers: [
      { d: descriptorOf('text/markdown', readme, { annotations: { 'org.opencontainers.image.title': 'README.md' } }), body: readme },
      { d: descriptorOf('image/svg+xml', svg, { annotations: { 'org.opencontainers.image.title': 'logo.svg' } }), body: svg },
      { d: descriptorOf('text/plain', evil, { annotations: { 'org.opencontainers.image.title': '<img src=x onerror=alert(1)>.txt' } }), body: evil },
    ],
  });
  // A private repository: only root (admin) may see it.
  const secret = Buffer.from('secret');
  await pushManifest(url, 'secret/thing', 'v1', root, { artifactType: 'application/vnd.example.secret', layers: [{ d: descriptorOf('text/plain', secret, { annotations: { 'org.opencontainers.image.title': 'secret.txt' } }), body: secret }] });

  return { files, model };
}
