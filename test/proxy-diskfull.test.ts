/**
 * The disk fills up. In the cache, a blob larger than the free space fails cleanly (the client gets
 * an error, the partial file is removed), and the cache serves and caches again at once
 * afterwards. A push gets 507 with the spec's JSON error body, keeps its acknowledged chunks, and
 * goes on once there is room.
 * The data directory is a small tmpfs; mounting one needs root, so elsewhere the test skips (and
 * fails on CI, where it must run).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { paths } from '../src/server/store/paths.js';
import { makeImage, pushBlob, pushImage, sha256 } from './helpers/proxy-images.js';

let tmp: string;
let mnt: string;
let upstream: RunningServer;
let cache: RunningServer;
let skip: string | undefined;
let unmount: () => void = () => undefined;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-full-'));
  mnt = join(tmp, 'small');
  await mkdir(mnt);
  // As root directly; otherwise through sudo when it needs no password (CI runners).
  const asRoot = (cmd: string[]): ReturnType<typeof spawnSync> =>
    process.getuid?.() === 0 ? spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' }) : spawnSync('sudo', ['-n', ...cmd], { encoding: 'utf8' });
  unmount = () => void asRoot(['umount', mnt]);
  const r = asRoot(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  if (r.status === 0 && process.getuid?.() !== 0) asRoot(['chown', `${process.getuid?.()}`, mnt]);
  if (r.status !== 0) {
    skip = `cannot mount a tmpfs (${String(r.stderr || r.error?.message || '').trim()}); needs root or password-less sudo`;
    if (process.env.CI === 'true') throw new Error(`${skip}; CI needs it`);
    console.log(`# skip: ${skip}`);
    return;
  }
  upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent', config: { storage: { fsync: false } } });
  cache = await startServer({
    dataDir: join(mnt, 'data'),
    logLevel: 'silent',
    // The audit log (on by default) keeps its database in the data directory; on a full disk its
    // failures would be mixed into these. It is not what this test is about.
    config: { storage: { fsync: false }, audit: { enabled: false }, proxy: { upstreams: [{ namespace: 'up', url: upstream.url }] } } as Parameters<typeof startServer>[0]['config'],
  });
});

after(async () => {
  await cache?.close();
  await upstream?.close();
  if (!skip) unmount();
  await rm(tmp, { recursive: true, force: true });
});

test('a full disk fails the pull, leaves nothing behind, and the cache recovers', async (t) => {
  if (skip) return t.skip(skip);
  const big = randomBytes(12 << 20);
  const bigDigest = await pushBlob(upstream.url, 'team/big', big);
  const small = randomBytes(64 << 10);
  const smallDigest = await pushBlob(upstream.url, 'team/small', small);

  let failed = false;
  try {
    const r = await fetch(`${cache.url}/v2/up/team/big/blobs/${bigDigest}`);
    const body = Buffer.from(await r.arrayBuffer());
    failed = r.status === 200 && body.length === big.length && sha256(body) === bigDigest;
  } catch {
    // the transfer broke off: what must happen
  }
  assert.equal(failed, false, 'the 12 MiB blob cannot have been served whole from an 8 MiB disk');
  await assert.rejects(stat(join(mnt, 'data', paths.blobData(bigDigest))));
  const leftovers = (await readdir(join(mnt, 'data', '_tmp')).catch(() => [])).filter((n) => n.includes('proxy'));
  assert.deepEqual(leftovers, [], 'the partial file is gone, and with it the space');

  const r = await fetch(`${cache.url}/v2/up/team/small/blobs/${smallDigest}`);
  assert.equal(r.status, 200);
  assert.equal(sha256(Buffer.from(await r.arrayBuffer())), smallDigest);
  await cache.proxy!.backend.fillDone(smallDigest);
  assert.ok(await stat(join(mnt, 'data', paths.blobData(smallDigest))), 'cached again');
});

test('a manifest miss on a full disk is a 503 with the reason; space back, it is cached', async (t) => {
  if (skip) return t.skip(skip);
  const img = await makeImage(1, 100);
  await pushImage(upstream.url, 'team/tiny', 'v1', img).catch((e: Error) => {
    throw new Error(`push failed: ${e.message} ${String((e.cause as Error | undefined)?.message ?? '')}`);
  });
  // Fill what is left of the tmpfs.
  const filler = join(mnt, 'filler');
  const fh = await open(filler, 'w');
  try {
    for (;;) await fh.write(Buffer.alloc(256 << 10));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    await fh.close();
  }
  const r = await fetch(`${cache.url}/v2/up/team/tiny/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).catch((e: Error) => {
    throw new Error(`fetch failed: ${String((e.cause as Error | undefined)?.message ?? e.cause)}`);
  });
  const body = await r.text();
  assert.equal(r.status, 503, body);
  assert.match(body, /disk is full/);
  await rm(filler);
  const ok = await fetch(`${cache.url}/v2/up/team/tiny/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).catch((e: Error) => {
    throw new Error(`fetch (after) failed: ${String((e.cause as Error | undefined)?.message ?? e.cause)}`);
  });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('docker-content-digest'), img.digest);
  await ok.arrayBuffer();
});

test('a push to a full disk is a 507 with a JSON error; acknowledged chunks stay, and the push resumes once there is room', async (t) => {
  if (skip) return t.skip(skip);
  const url = cache.url;
  const big = randomBytes(12 << 20);
  const mono = await fetch(`${url}/v2/local/big/blobs/uploads/?digest=${sha256(big)}`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } });
  const monoBody = await mono.text();
  assert.equal(mono.status, 507, monoBody);
  assert.match(JSON.parse(monoBody).errors[0].message, /storage is full/);
  assert.equal((await fetch(`${url}/v2/local/big/blobs/${sha256(big)}`, { method: 'HEAD' })).status, 404);

  // In chunks: the first fits, the second does not.
  const start = await fetch(`${url}/v2/local/big/blobs/uploads/`, { method: 'POST' });
  let at = new URL(start.headers.get('location')!, url).href;
  const first = await fetch(at, { method: 'PATCH', body: big.subarray(0, 2 << 20), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${(2 << 20) - 1}` } });
  assert.equal(first.status, 202);
  at = new URL(first.headers.get('location')!, url).href;
  const second = await fetch(at, { method: 'PATCH', body: big.subarray(2 << 20), headers: { 'content-type': 'application/octet-stream', 'content-range': `${2 << 20}-${big.length - 1}` } });
  assert.equal(second.status, 507, await second.text());
  const status = await fetch(at);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${(2 << 20) - 1}`, 'the acknowledged chunk stays');

  // Room again (the first push's bytes are gone): the upload resumes where it stood.
  const rest = big.subarray(2 << 20, 4 << 20);
  const resumed = await fetch(at, { method: 'PATCH', body: rest, headers: { 'content-type': 'application/octet-stream', 'content-range': `${2 << 20}-${(4 << 20) - 1}` } });
  assert.equal(resumed.status, 202, await resumed.text());
  const done = new URL(resumed.headers.get('location')!, url);
  done.searchParams.set('digest', sha256(big.subarray(0, 4 << 20)));
  assert.equal((await fetch(done, { method: 'PUT' })).status, 201);
  const got = await fetch(`${url}/v2/local/big/blobs/${sha256(big.subarray(0, 4 << 20))}`);
  assert.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(big.subarray(0, 4 << 20)));
});
