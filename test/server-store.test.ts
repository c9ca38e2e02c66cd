/**
 * The registry store over the filesystem driver, below HTTP: what a manifest PUT leaves on disk,
 * and that stores written by earlier versions read the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PerformanceObserver, constants as perf } from 'node:perf_hooks';
import { FsDriver } from '../src/server/driver/index.js';
import { RegistryStore } from '../src/server/store/registry.js';
import { paths } from '../src/server/store/paths.js';
import { bodyBytesConsumed } from '../src/server/io/young-gc.js';
import { KeyedLock } from '../src/server/store/locks.js';
import { asDigest, type Digest } from '../src/spec/index.js';

const sha256 = (b: Uint8Array): Digest => asDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`);
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY = Buffer.from('{}');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A store with the empty config pushed to `repo`. */
async function storeWithConfig(name: string, repo: string): Promise<{ driver: FsDriver; store: RegistryStore }> {
  const driver = new FsDriver(join(dir, name));
  const store = new RegistryStore(driver);
  const { id } = await store.uploads.start(repo);
  await store.finishUpload(repo, id, sha256(EMPTY), Readable.from([EMPTY]));
  return { driver, store };
}

function manifest(withMediaType: boolean): Buffer {
  const m: Record<string, unknown> = { schemaVersion: 2 };
  if (withMediaType) m.mediaType = OCI_MANIFEST;
  m.config = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY), size: 2 };
  m.layers = [];
  return Buffer.from(JSON.stringify(m));
}

describe('manifest links', () => {
  test('a manifest that names its media type gets an empty link; one that does not keeps the type in its link', async () => {
    const { driver, store } = await storeWithConfig('links', 'r');
    const named = manifest(true);
    const bare = manifest(false);
    await store.putManifest('r', 'named', named, OCI_MANIFEST);
    await store.putManifest('r', 'bare', bare, `${OCI_MANIFEST}; charset=utf-8`);
    assert.equal((await readFile(join(driver.root, paths.manifestLink('r', sha256(named))))).length, 0);
    assert.equal((await readFile(join(driver.root, paths.manifestLink('r', sha256(bare))), 'utf8')), OCI_MANIFEST);
    // A fresh store (no cache) reads both back from disk.
    const fresh = new RegistryStore(driver);
    for (const [ref, body] of [['named', named], ['bare', bare]] as const) {
      const m = await fresh.getManifest('r', ref);
      assert.equal(m.mediaType, OCI_MANIFEST);
      assert.ok(m.body.equals(body));
    }
  });

  test('a link written by an earlier version (the media type as its content) still decides the type', async () => {
    const { driver, store } = await storeWithConfig('legacy', 'r');
    const body = manifest(true);
    await store.putManifest('r', 'latest', body, OCI_MANIFEST);
    const link = join(driver.root, paths.manifestLink('r', sha256(body)));
    await writeFile(link, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal((await new RegistryStore(driver).getManifest('r', 'latest')).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  });

  test('a tag takes its name only after the manifest it names is on disk; when the manifest fails, no tag appears', async () => {
    const { driver, store } = await storeWithConfig('order', 'r');
    const body = manifest(true);
    // The manifest's link cannot be written: its directory's place is taken by a file.
    await writeFile(join(driver.root, 'repositories', 'r', '_manifests'), 'in the way');
    await assert.rejects(store.putManifest('r', 'latest', body, OCI_MANIFEST));
    await assert.rejects(stat(join(driver.root, paths.tag('r', 'latest'))), { code: 'ENOENT' });
  });
});

test('every 8 MiB of request body consumed, the young generation is collected (so dead chunks leave the malloc heap)', async () => {
  const minor: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind === perf.NODE_PERFORMANCE_GC_MINOR) minor.push(e.startTime);
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    const t0 = performance.now();
    for (let i = 0; i < 3 * 128; i++) bodyBytesConsumed(64 << 10);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(minor.filter((t) => t >= t0).length >= 3, `minor collections seen: ${minor.length}`);
  } finally {
    obs.disconnect();
  }
});

describe('repository lock', () => {
  /** Runs `fn` under the lock and logs when it starts and ends; it ends when `release` is called. */
  function holder(lock: KeyedLock, log: string[], name: string, exclusive: boolean): { done: Promise<void>; release: () => void } {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fn = async (): Promise<void> => {
      log.push(`${name}+`);
      await gate;
      log.push(`${name}-`);
    };
    return { done: exclusive ? lock.exclusive('repo', fn) : lock.shared('repo', fn), release };
  }
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

  test('manifest PUTs (shared) run together; a DELETE (exclusive) waits for them, and later PUTs wait for it', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const a = holder(lock, log, 'a', false);
    const b = holder(lock, log, 'b', false);
    const x = holder(lock, log, 'x', true);
    const c = holder(lock, log, 'c', false);
    await tick();
    assert.deepEqual(log, ['a+', 'b+'], 'two shared holders at once; the exclusive one and the shared one behind it wait');
    a.release();
    await tick();
    assert.deepEqual(log, ['a+', 'b+', 'a-']);
    b.release();
    await tick();
    assert.deepEqual(log, ['a+', 'b+', 'a-', 'b-', 'x+']);
    x.release();
    await tick();
    assert.deepEqual(log, ['a+', 'b+', 'a-', 'b-', 'x+', 'x-', 'c+']);
    c.release();
    await Promise.all([a.done, b.done, x.done, c.done]);
  });

  test('a holder that throws releases the lock; other keys never wait', async () => {
    const lock = new KeyedLock();
    await assert.rejects(lock.exclusive('repo', async () => Promise.reject(new Error('boom'))), /boom/);
    const log: string[] = [];
    const x = holder(lock, log, 'x', true);
    await tick();
    assert.deepEqual(log, ['x+'], 'the failed holder left the lock free');
    assert.equal(await lock.exclusive('other', async () => 'free'), 'free');
    x.release();
    await x.done;
  });
});
