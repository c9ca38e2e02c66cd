import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, stat, chmod, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, MediaType, isOciError, type Descriptor } from '../src/spec/index.js';
import { readAllVerified } from '../src/content/index.js';
import { Registry, referrersTag } from '../src/stores/remote/index.js';
import { LayoutStore } from '../src/stores/layout/index.js';
import { pushArtifact, pullArtifact, copyArtifact, discoverReferrers } from '../src/client/index.js';
import { DISTRIBUTION, WHARF_SERVER, type RegistryKind, type TestRegistry } from './helpers/registries.js';
import { startProxy, forward, relayCut, loseAnswer } from './helpers/proxy.js';

const FAST = { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 };

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The same client behaviour, checked against every registry we have. */
function suite(kind: RegistryKind): void {
  describe(`client conformance: ${kind.name}`, { skip: kind.skip }, () => {
    let reg: TestRegistry;
    let client: Registry;
    let work: string;
    before(async () => {
      reg = await kind.start();
      client = new Registry(reg.host, { plainHttp: true, retry: FAST });
      work = await mkdtemp(join(tmpdir(), 'wharf-conf-'));
    });
    after(async () => {
      await client?.close();
      await reg?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('blobs: monolithic and chunked upload, exists, verified fetch, delete', async () => {
      const repo = client.repository('conf/blobs');
      const chunked = client.repository('conf/blobs', { chunkSize: 40_000 });
      for (const [r, size] of [[repo, 100_000], [chunked, 130_001]] as const) {
        const data = randomBytes(size);
        const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf(data), size };
        await r.push(d, Readable.from([data]));
        assert.equal(await r.exists(d), true);
        assert.deepEqual(await readAll(await r.fetch(d)), data);
        await r.delete(d);
        assert.equal(await r.exists(d), false);
      }
    });

    test('push, tag, resolve, pull an artifact with modes', async () => {
      const f = join(work, 'tool.sh');
      await writeFile(f, '#!/bin/sh\n');
      await chmod(f, 0o751);
      const d = join(work, 'tree');
      await mkdir(join(d, 'x'), { recursive: true });
      await writeFile(join(d, 'x', 'y'), 'y');
      const repo = client.repository('conf/art');
      const res = await pushArtifact(repo, { files: [{ path: f }, { path: d }], tags: ['v1'] });
      assert.deepEqual(await repo.resolve('v1'), { mediaType: MediaType.ImageManifest, digest: res.manifest.digest, size: res.manifest.size });
      await repo.tag(res.manifest, 'v2');
      assert.deepEqual((await repo.tags()).sort(), ['v1', 'v2']);
      const out = join(work, 'out');
      await pullArtifact(repo, 'v2', { output: out });
      assert.equal((await stat(join(out, 'tool.sh'))).mode & 0o777, 0o751);
      assert.equal(await readFile(join(out, 'tree', 'x', 'y'), 'utf8'), 'y');
    });

    test('referrers: attach and discover; the tag schema only where there is no API', async () => {
      const repo = client.repository('conf/refs');
      const f = join(work, 'subject.txt');
      await writeFile(f, 'subject');
      const { manifest: subject } = await pushArtifact(repo, { files: [{ path: f }], tags: ['v1'] });
      const { manifest: sig } = await pushArtifact(repo, { files: [], artifactType: 'application/vnd.conf.sig', subject });
      const { manifest: sbom } = await pushArtifact(repo, { files: [], artifactType: 'application/vnd.conf.sbom', subject });
      const all = await discoverReferrers(repo, subject);
      assert.deepEqual(all.map((n) => n.desc.digest).sort(), [sig.digest, sbom.digest].sort());
      assert.deepEqual((await repo.referrers(subject, { artifactType: 'application/vnd.conf.sbom' })).map((d) => d.digest), [sbom.digest]);
      const hasTagSchema = (await repo.tags()).includes(referrersTag(subject.digest));
      assert.equal(hasTagSchema, !reg.referrersApi);
    });

    test('copy -r into a layout and back into another repository; mount within the registry', async () => {
      const repo = client.repository('conf/copy');
      const f = join(work, 'c.bin');
      await writeFile(f, randomBytes(20_000));
      const { manifest } = await pushArtifact(repo, { files: [{ path: f }], tags: ['v1'] });
      await pushArtifact(repo, { files: [], artifactType: 'application/vnd.conf.sig', subject: manifest });
      const layout = await LayoutStore.open(join(work, 'layout'));
      await copyArtifact(repo, 'v1', layout, ['v1'], { referrers: true });
      const other = client.repository('conf/copy-back');
      await copyArtifact(layout, 'v1', other, ['v1'], { referrers: true });
      assert.equal((await other.referrers(manifest)).length, 1);
      const mounted = client.repository('conf/copy-mounted');
      const layer = JSON.parse((await readAllVerified(await repo.fetch(manifest), manifest)).toString()).layers[0] as Descriptor;
      assert.equal(await mounted.mount(layer, 'conf/copy'), true);
      assert.equal(await mounted.exists(layer), true);
    });

    test('a download dropped halfway resumes with Range', async () => {
      const data = randomBytes(1_500_000);
      const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf(data), size: data.length };
      await client.repository('conf/drop').push(d, Readable.from([data]));
      let dropped = false;
      const proxy = await startProxy(reg.url, async (req, res, target) => {
        if (req.method !== 'GET' || !req.url?.includes('/blobs/sha256') || req.headers.range || dropped) return false;
        dropped = true;
        relayCut(await forward(req, target), res, data.length / 3);
        return true;
      });
      const r = new Registry(proxy.host, { plainHttp: true, retry: FAST });
      try {
        assert.deepEqual(await readAll(await r.repository('conf/drop').fetch(d)), data);
        assert.ok(proxy.requests.some((q) => q.headers.range));
      } finally {
        await r.close();
        await proxy.close();
      }
    });

    test('manifest unknown and blob unknown are told apart', async () => {
      const repo = client.repository('conf/missing');
      await assert.rejects(repo.resolve('nope'), (e) => isOciError(e, 'MANIFEST_UNKNOWN'));
      const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf('nothing'), size: 7 };
      await assert.rejects(repo.fetch(d), (e) => isOciError(e, 'BLOB_UNKNOWN'));
    });
  });
}

suite(DISTRIBUTION);
suite(WHARF_SERVER);

test('wharf serve: a chunk whose answer was lost is not sent again (the upload resumes from Range)', { skip: WHARF_SERVER.skip }, async () => {
  const reg = await WHARF_SERVER.start();
  let patches = 0;
  const proxy = await startProxy(reg.url, async (req, res, target) => {
    if (req.method === 'PATCH' && ++patches === 2) {
      await loseAnswer(req, res, target);
      return true;
    }
    return false;
  });
  const client = new Registry(proxy.host, { plainHttp: true, retry: FAST, chunkSize: 30_000 });
  try {
    const data = randomBytes(100_000);
    const d: Descriptor = { mediaType: MediaType.OctetStream, digest: digestOf(data), size: data.length };
    const repo = client.repository('conf/lost-answer');
    await repo.push(d, Readable.from([data]));
    assert.deepEqual(await readAll(await repo.fetch(d)), data);
    assert.equal(patches, 4);
  } finally {
    await client.close();
    await proxy.close();
    await reg.stop();
  }
});
