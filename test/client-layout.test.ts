import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import * as tarStream from 'tar-stream';
import { digestOf, MediaType, Annotation, isOciError, type Descriptor, isKnownError } from '../src/spec/index.js';
import { copyGraph, readAllVerified } from '../src/content/index.js';
import { LayoutStore, LayoutTarStore } from '../src/stores/layout/index.js';
import { openTarget } from '../src/client/index.js';
import { missingPeer } from './helpers/distribution.js';

const noSkopeo = missingPeer('skopeo');
const noUmoci = missingPeer('umoci');

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A small but real runnable-image-shaped manifest: config with diff_ids and one gzipped layer. */
async function writeImage(store: { push(d: Descriptor, r: Readable): Promise<void>; tag(d: Descriptor, t: string): Promise<void> }, tag: string): Promise<Descriptor> {
  const layerTar = await tarOf({ 'hello.txt': 'hello from wharf\n', 'etc/os-release': 'ID=wharf\n' });
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(layerTar).digest('hex')}`] },
    }),
  );
  const layerDesc: Descriptor = { mediaType: MediaType.ImageLayerGzip, digest: digestOf(layer), size: layer.length };
  const configDesc: Descriptor = { mediaType: MediaType.ImageConfig, digest: digestOf(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config: configDesc, layers: [layerDesc] }));
  const mDesc: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(manifest), size: manifest.length };
  await store.push(layerDesc, Readable.from([layer]));
  await store.push(configDesc, Readable.from([config]));
  await store.push(mDesc, Readable.from([manifest]));
  await store.tag(mDesc, tag);
  return mDesc;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

describe('layout directory', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-layout-test-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('writes oci-layout, index.json with ref.name, blobs by digest; reopens', async () => {
    const root = join(dir, 'a');
    const s = await LayoutStore.open(root);
    const m = await writeImage(s, 'v1');
    assert.deepEqual(JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].annotations[Annotation.RefName], 'v1');
    const again = await LayoutStore.open(root);
    assert.deepEqual(await again.resolve('v1'), m);
    assert.deepEqual(await again.resolve(m.digest), m);
    assert.deepEqual(await again.tags(), ['v1']);
    await again.tag(m, 'v2');
    await again.tag(m, 'v2');
    assert.deepEqual(await again.tags(), ['v1', 'v2']);
    await assert.rejects(again.resolve('nope'), (e) => isOciError(e, 'MANIFEST_UNKNOWN'));
  });

  test('a wrong digest leaves nothing behind: no blob, no temp file', async () => {
    const root = join(dir, 'b');
    const s = await LayoutStore.open(root);
    const data = Buffer.from('some bytes');
    const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf('other'), size: data.length };
    await assert.rejects(s.push(d, Readable.from([data])), (e) => isOciError(e, 'DIGEST_INVALID'));
    assert.deepEqual(await readdir(join(root, 'blobs', 'sha256')), []);
    assert.equal(await s.exists(d), false);
  });

  test('reading a corrupted blob fails verification', async () => {
    const root = join(dir, 'c');
    const s = await LayoutStore.open(root);
    const data = Buffer.from('good content');
    const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf(data), size: data.length };
    await s.push(d, Readable.from([data]));
    await writeFile(s.blobPath(d.digest), 'bad content!');
    await assert.rejects(readAllVerified(await s.fetch(d), d), (e) => isOciError(e, 'DIGEST_INVALID'));
  });

  test('referrers are kept in the index and listed', async () => {
    const root = join(dir, 'd');
    const s = await LayoutStore.open(root);
    const subject = await writeImage(s, 'v1');
    const empty = Buffer.from('{}');
    const emptyDesc: Descriptor = { mediaType: MediaType.EmptyJSON, digest: digestOf(empty), size: 2 };
    await s.push(emptyDesc, Readable.from([empty]));
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, artifactType: 'application/vnd.wharf.sig', config: emptyDesc, layers: [emptyDesc], subject }));
    const ref: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
    await s.push(ref, Readable.from([body]));
    const got = await (await LayoutStore.open(root)).referrers(subject);
    assert.deepEqual(got.map((d) => [d.digest, d.artifactType]), [[ref.digest, 'application/vnd.wharf.sig']]);
    // An image manifest without artifactType is listed under its config's media type, as the
    // registry lists it, and the filter sees that type.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const configDesc: Descriptor = { mediaType: MediaType.ImageConfig, digest: digestOf(config), size: config.length };
    await s.push(configDesc, Readable.from([config]));
    const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config: configDesc, layers: [], subject }));
    const imageRef: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(image), size: image.length };
    await s.push(imageRef, Readable.from([image]));
    const reopened = await LayoutStore.open(root);
    assert.deepEqual((await reopened.referrers(subject, { artifactType: MediaType.ImageConfig })).map((d) => [d.digest, d.artifactType]), [[imageRef.digest, MediaType.ImageConfig]]);
    assert.equal((await reopened.referrers(subject)).length, 2);
  });

  test('a missing layout is an error when create is false', async () => {
    await assert.rejects(LayoutStore.open(join(dir, 'nothing'), { create: false }), /not an OCI image layout/);
  });

  test('a path names a layout without --oci-layout; a missing or foreign source says which file is wrong', async () => {
    const dst = await openTarget(`${join(dir, 'by-path')}:v1`, { create: true });
    assert.equal(dst.kind, 'layout');
    assert.equal(dst.reference, 'v1');
    await dst.close();
    const missingTar = join(dir, 'missing.tar');
    await assert.rejects(openTarget(`${missingTar}:v1`, { create: false }), (e: unknown) => isKnownError(e) && e.message === `${missingTar} does not exist`);
    const notTar = join(dir, 'not.tar');
    await writeFile(notTar, 'plain text');
    await assert.rejects(openTarget(notTar, { create: false }), (e: unknown) => isKnownError(e) && e.message.startsWith(`${notTar} is not a readable tar archive`));
    const foreign = join(dir, 'foreign.tar');
    await writeFile(foreign, await tarOf({ 'hello.txt': 'hi' }));
    await assert.rejects(openTarget(foreign, { create: false }), (e: unknown) => isKnownError(e) && e.message.includes(`${foreign} is not an OCI image layout archive`));
  });
});

describe('layout interop with skopeo and umoci', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-interop-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('skopeo reads a layout directory Wharf wrote, and Wharf reads what skopeo wrote', { skip: noSkopeo }, async () => {
    const a = join(dir, 'wharf-dir');
    const m = await writeImage(await LayoutStore.open(a), 'v1');
    const inspect = JSON.parse(run('skopeo', ['inspect', '--raw', `oci:${a}:v1`]));
    assert.equal(inspect.config.mediaType, MediaType.ImageConfig);
    assert.equal(digestOf(run('skopeo', ['inspect', '--raw', `oci:${a}:v1`])), m.digest);
    const b = join(dir, 'skopeo-dir');
    run('skopeo', ['copy', '--quiet', `oci:${a}:v1`, `oci:${b}:copied`]);
    const s = await LayoutStore.open(b, { create: false });
    const desc = await s.resolve('copied');
    const copy = await LayoutStore.open(join(dir, 'roundtrip'));
    await copyGraph(s, copy, desc);
    const manifest = JSON.parse((await readAllVerified(await copy.fetch(desc), desc)).toString());
    const layer = manifest.layers[0] as Descriptor;
    const files = await untarNames(gunzipSync(await readAllVerified(await copy.fetch(layer), layer)));
    assert.deepEqual(files.sort(), ['etc/os-release', 'hello.txt']);
  });

  test('skopeo reads a layout .tar Wharf wrote, and Wharf reads an oci-archive skopeo wrote', { skip: noSkopeo }, async () => {
    const file = join(dir, 'wharf.tar');
    const t = await LayoutTarStore.open(file);
    const m = await writeImage(t, 'v1');
    await t.close();
    assert.equal(digestOf(run('skopeo', ['inspect', '--raw', `oci-archive:${file}:v1`])), m.digest);
    const out = join(dir, 'skopeo.tar');
    run('skopeo', ['copy', '--quiet', `oci-archive:${file}:v1`, `oci-archive:${out}:again`]);
    const r = await LayoutTarStore.open(out, { create: false });
    try {
      const desc = await r.resolve('again');
      assert.equal(desc.digest, m.digest);
      const manifest = JSON.parse((await readAllVerified(await r.fetch(desc), desc)).toString());
      assert.equal(await r.exists(manifest.layers[0]), true);
    } finally {
      await r.close();
    }
  });

  test('umoci unpacks an image from a layout Wharf wrote', { skip: noUmoci }, async () => {
    const a = join(dir, 'for-umoci');
    await writeImage(await LayoutStore.open(a), 'v1');
    const bundle = join(dir, 'bundle');
    run('umoci', ['unpack', '--rootless', '--image', `${a}:v1`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs', 'hello.txt'), 'utf8'), 'hello from wharf\n');
  });
});

async function untarNames(buf: Buffer): Promise<string[]> {
  const ex = tarStream.extract();
  const names: string[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      names.push(entry.header.name);
      entry.resume();
    }
  })();
  ex.end(buf);
  await done;
  return names;
}
