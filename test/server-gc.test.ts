/**
 * `wharf gc`: mark and sweep over a store that a running server is using, over each storage
 * driver. On fs the collection runs on its own FsDriver over the server's data directory, as the
 * CLI does from another process; on memory, on the server's own MemoryDriver (nothing else can
 * reach it); on s3, on the server's S3Driver, and the CLI on the same bucket and prefix through a
 * config file.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { FsDriver, type StorageDriver } from '../src/server/driver/index.js';
import { RegistryStore, collectGarbage } from '../src/server/store/index.js';
import { paths } from '../src/server/store/paths.js';
import { asDigest, type Digest } from '../src/spec/index.js';
import { wharf } from './helpers/cli.js';
import { DRIVERS, adminArgs, driverSkip, setMtimeAll, storageConfig } from './helpers/drivers.js';

const sha256 = (b: Uint8Array): Digest => asDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`);
const bytes = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length);
const EMPTY = Buffer.from('{}');
const LONG_AGO = new Date(Date.now() - 48 * 3600e3);

async function putBlob(url: string, repo: string, data: Buffer): Promise<Digest> {
  const r = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: bytes(data), headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(r.status, 201, await r.text());
  return sha256(data);
}

function manifest(layers: Buffer[], subject?: Buffer): Buffer {
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.wharf.gc-test',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY), size: 2 },
    layers: layers.map((l) => ({ mediaType: 'application/octet-stream', digest: sha256(l), size: l.length })),
  };
  if (subject) m.subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(subject), size: subject.length };
  return Buffer.from(JSON.stringify(m));
}

async function putManifest(url: string, repo: string, ref: string, body: Buffer): Promise<number> {
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: bytes(body), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  await r.arrayBuffer();
  return r.status;
}

async function status(url: string, path: string): Promise<number> {
  const r = await fetch(`${url}${path}`, { method: 'HEAD' });
  return r.status;
}

for (const driver of DRIVERS) describe(`wharf gc (${driver})`, { skip: driverSkip(driver) }, () => {
  let dataDir: string;
  let s: RunningServer;
  /** A driver on the server's store for the collection: see the top of the file. */
  const storeDriver = (): StorageDriver => (driver === 'fs' ? new FsDriver(dataDir) : s.store.driver);
  /** Ages every stored file (under `under`), as if pushed two days ago: only the mark keeps it now. */
  const ageAll = (under?: string): Promise<void> => setMtimeAll(storeDriver(), LONG_AGO, under);
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wharf-gc-'));
    s = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: await storageConfig(driver, dataDir) } });
  });
  after(async () => {
    await s?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('frees unreferenced blobs, keeps tagged content, and --delete-untagged removes what no tag reaches', async () => {
    const repo = 'gc/app';
    const shared = randomBytes(2000);
    const keep = randomBytes(3000);
    const onlyUntagged = randomBytes(4000);
    const orphan = randomBytes(5000);
    const sig = randomBytes(100);
    for (const b of [EMPTY, shared, keep, onlyUntagged, orphan, sig]) await putBlob(s.url, repo, b);
    const tagged = manifest([shared, keep]);
    const untagged = manifest([shared, onlyUntagged]);
    const referrer = manifest([sig], tagged);
    assert.equal(await putManifest(s.url, repo, 'v1', tagged), 201);
    assert.equal(await putManifest(s.url, repo, sha256(untagged), untagged), 201);
    assert.equal(await putManifest(s.url, repo, sha256(referrer), referrer), 201);
    await ageAll();
    const driver = storeDriver();

    // Within the grace period nothing goes, whatever the mark says.
    const fresh = await collectGarbage(new RegistryStore(driver), { graceMs: 100 * 24 * 3600e3 });
    assert.equal(fresh.blobs, 0);

    const dry = await collectGarbage(new RegistryStore(driver), { graceMs: 3600e3, dryRun: true, deleteUntagged: true });
    assert.equal(dry.blobs, 3, 'the dry run previews the real outcome: the orphan, the untagged manifest and its own layer');
    assert.equal(dry.manifests, 1);
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(orphan)}`), 200, 'a dry run frees nothing');
    assert.equal(await status(s.url, `/v2/${repo}/manifests/${sha256(untagged)}`), 200);

    const plain = await collectGarbage(new RegistryStore(driver), { graceMs: 3600e3 });
    assert.equal(plain.blobs, 1);
    assert.equal(plain.bytes, orphan.length);
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(orphan)}`), 404, 'the orphan and its link are gone');
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(onlyUntagged)}`), 200, 'an untagged manifest still holds its blobs');

    const untaggedToo = await collectGarbage(new RegistryStore(driver), { graceMs: 3600e3, deleteUntagged: true });
    assert.equal(untaggedToo.manifests, 1);
    assert.equal(await status(s.url, `/v2/${repo}/manifests/${sha256(untagged)}`), 404);
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(onlyUntagged)}`), 404);
    for (const b of [shared, keep, sig, EMPTY]) assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(b)}`), 200, 'tagged content and referrers stay');
    assert.equal(await status(s.url, `/v2/${repo}/manifests/v1`), 200);
    assert.equal(await status(s.url, `/v2/${repo}/manifests/${sha256(referrer)}`), 200, 'a referrer of a tagged manifest stays');
    const refs = (await (await fetch(`${s.url}/v2/${repo}/referrers/${sha256(tagged)}`)).json()) as { manifests: unknown[] };
    assert.equal(refs.manifests.length, 1);
  });

  test('a manifest PUT that uses an old, unreferenced blob during the sweep keeps it', async () => {
    const repo = 'gc/race';
    const layer = randomBytes(1500);
    await putBlob(s.url, repo, EMPTY);
    await putBlob(s.url, repo, layer);
    await ageAll();
    const m = manifest([layer]);
    const target = paths.blobData(sha256(layer));
    // The PUT lands right after the sweep has read the blob's (old) mtime: the worst moment.
    const base = storeDriver();
    let fired = false;
    const stat = async (path: string): Promise<Awaited<ReturnType<StorageDriver['stat']>>> => {
      const st = await base.stat(path);
      if (path === target && !fired) {
        fired = true;
        assert.equal(await putManifest(s.url, repo, 'v1', m), 201);
      }
      return st;
    };
    // The driver, but for stat; its other methods run on the driver itself.
    const racing = new Proxy(base, {
      get: (t, k) => {
        if (k === 'stat') return stat;
        const v: unknown = Reflect.get(t, k, t);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    await collectGarbage(new RegistryStore(racing), { graceMs: 3600e3 });
    assert.ok(fired);
    const r = await fetch(`${s.url}/v2/${repo}/blobs/${sha256(layer)}`);
    assert.equal(r.status, 200, 'the blob the new manifest references survived');
    assert.equal(sha256(Buffer.from(await r.arrayBuffer())), sha256(layer));
  });

  test('a blob that a crashed collection left aside is put back', async () => {
    const repo = 'gc/trash';
    const layer = randomBytes(700);
    await putBlob(s.url, repo, EMPTY);
    await putBlob(s.url, repo, layer);
    assert.equal(await putManifest(s.url, repo, 'v1', manifest([layer])), 201);
    const driver = storeDriver();
    await driver.move(paths.blobData(sha256(layer)), paths.trash(sha256(layer)));
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(layer)}`), 404);
    await collectGarbage(new RegistryStore(driver), { graceMs: 3600e3 });
    assert.equal(await status(s.url, `/v2/${repo}/blobs/${sha256(layer)}`), 200);
  });

  test('a link whose content is gone goes once it is older than the grace period; a fresh one (a push in flight) stays', async () => {
    const repo = 'gc/links';
    const driver = storeDriver();
    const [oldBlob, newBlob, oldManifest] = [randomBytes(10), randomBytes(11), randomBytes(12)].map(sha256) as [Digest, Digest, Digest];
    await driver.put(paths.blobLink(repo, oldBlob), '');
    await driver.put(paths.manifestLink(repo, oldManifest), 'application/vnd.oci.image.manifest.v1+json');
    await ageAll('repositories/gc/links');
    // Written side by side with a blob that is being renamed into place right now.
    await driver.put(paths.blobLink(repo, newBlob), '');
    await collectGarbage(new RegistryStore(driver), { graceMs: 3600e3 });
    assert.equal(await driver.stat(paths.blobLink(repo, oldBlob)), undefined);
    assert.equal(await driver.stat(paths.manifestLink(repo, oldManifest)), undefined);
    assert.ok(await driver.stat(paths.blobLink(repo, newBlob)), 'a fresh link stays');
  });

  // Not on memory: the CLI opens the store from another process (fs: --data; s3: --config).
  test('the CLI prints what it would free and what it freed', { skip: driver === 'memory' && 'the CLI works on a data directory or a bucket; a memory store is reachable only in its server' }, async () => {
    const repo = 'gc/cli';
    await putBlob(s.url, repo, randomBytes(10_000));
    await ageAll();
    const store = await adminArgs(driver, dataDir);
    const dry = await wharf(['gc', ...store, '--dry-run', '--grace', '1h']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would delete blob sha256:[0-9a-f]{64} \(10000 bytes\)/);
    assert.match(dry.stdout, /would free 1 blob\(s\), 9\.8 KiB/);
    const real = await wharf(['gc', ...store, '--grace', '1h']);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /^freed 1 blob\(s\), 9\.8 KiB/m);
    const again = await wharf(['gc', ...store, '--grace', '1h']);
    assert.match(again.stdout, /^freed 0 blob\(s\), 0 B/m);

    const bad = await wharf(['gc', '--data', join(dataDir, 'nope')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /does not exist/);
    const badGrace = await wharf(['gc', ...store, '--grace', 'soon']);
    assert.notEqual(badGrace.code, 0);
    assert.match(badGrace.stderr, /--grace/);
  });
});
