/**
 * `wharf serve` on S3 (Ceph RGW), from outside, for what only an object store makes hard: uploads
 * of any chunking (parts of at least 5 MiB whatever the PATCH sizes), a restart between two
 * PATCHes, a wrong digest that leaves nothing behind, the store going away in the middle of a push
 * and of a pull, and a blob over S3's 5 GiB single-request limit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { parseConfig, startServer, type RunningServer } from '../src/server/index.js';
import { wharf } from './helpers/cli.js';
import { startProxy } from './helpers/proxy.js';
import { missingPeer } from './helpers/distribution.js';
import { exec, run } from './helpers/exec.js';
import { makeImage, pushImage } from './helpers/proxy-images.js';
import { makeBucket, missingRgw, s3Options, startRgw, type Rgw } from './helpers/rgw.js';

const MiB = 1024 * 1024;
const skip = missingRgw();
const noSkopeo = missingPeer('skopeo');
const noCurl = missingPeer('curl');
/** WHARF_TEST_HUGE=0: CI's runs on other runtimes leave out the 6 GiB blob, which tests storage, not the runtime. */
const hugeSkip = process.env.WHARF_TEST_HUGE === '0' ? 'WHARF_TEST_HUGE=0: the 6 GiB blob ran on the first runtime' : false;
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('wharf serve on S3 (Ceph RGW)', { skip }, () => {
  let rgw: Rgw;
  let bucket: string;
  let s3: S3Client;
  let dataDir: string;
  let server: RunningServer;
  const start = async (): Promise<RunningServer> =>
    startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: { driver: 's3', s3: { ...s3Options(rgw, bucket), timeout: '5s' } } } });

  before(async () => {
    rgw = await startRgw();
    bucket = await makeBucket(rgw, 's3-registry');
    s3 = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
    dataDir = await mkdtemp(join(tmpdir(), 'wharf-s3-registry-'));
    server = await start();
  });
  after(async () => {
    await server?.close();
    s3?.destroy();
    await rgw?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const url = (path: string): string => `${server.url}${path}`;
  async function post(repo: string): Promise<string> {
    const r = await request(url(`/v2/${repo}/blobs/uploads/`), { method: 'POST' });
    await r.body.dump();
    assert.equal(r.statusCode, 202);
    return new URL(String(r.headers.location), server.url).pathname + new URL(String(r.headers.location), server.url).search;
  }
  async function patch(location: string, chunk: Buffer, from: number): Promise<string> {
    const r = await request(url(location), {
      method: 'PATCH',
      body: chunk,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${from + chunk.length - 1}`, 'content-length': String(chunk.length) },
    });
    const text = await r.body.text();
    assert.equal(r.statusCode, 202, text);
    assert.equal(r.headers.range, `0-${from + chunk.length - 1}`);
    const loc = new URL(String(r.headers.location), server.url);
    return loc.pathname + loc.search;
  }
  async function put(location: string, digest: string, body?: Buffer): Promise<{ status: number; text: string }> {
    const sep = location.includes('?') ? '&' : '?';
    const r = await request(url(`${location}${sep}digest=${digest}`), { method: 'PUT', body: body ?? '', headers: { 'content-type': 'application/octet-stream', 'content-length': String(body?.length ?? 0) } });
    return { status: r.statusCode, text: await r.body.text() };
  }
  async function getBlob(repo: string, digest: string): Promise<Buffer> {
    const r = await request(url(`/v2/${repo}/blobs/${digest}`));
    assert.equal(r.statusCode, 200);
    return Buffer.from(await r.body.arrayBuffer());
  }
  /** Every key and unfinished multipart upload in the bucket. */
  async function bucketState(): Promise<{ keys: string[]; uploads: string[] }> {
    const keys = ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!);
    const uploads = ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key!);
    return { keys, uploads };
  }

  test('PATCHes of 1 B, 1 MiB, 7 MiB, 64 MiB, 1 B and 3 MiB in one upload make the blob (parts of at least 5 MiB, no EntityTooSmall)', async () => {
    const sizes = [1, MiB, 7 * MiB, 64 * MiB, 1, 3 * MiB];
    const chunks = sizes.map((n) => randomBytes(n));
    const whole = Buffer.concat(chunks);
    let loc = await post('mix/blobs');
    let at = 0;
    for (const c of chunks) {
      loc = await patch(loc, c, at);
      at += c.length;
    }
    const digest = sha256(whole);
    const done = await put(loc, digest);
    assert.equal(done.status, 201, done.text);
    assert.ok((await getBlob('mix/blobs', digest)).equals(whole));
    const state = await bucketState();
    assert.deepEqual(state.uploads, [], 'no multipart upload is left open');
    assert.deepEqual(
      state.keys.filter((k) => k.includes('_uploads/') || k.startsWith('_s3/')),
      [],
      'the session left nothing',
    );
  });

  test('a monolithic PUT and a POST with the digest store the blob in one request; HEAD answers from HeadObject', async () => {
    const data = randomBytes(3 * MiB + 17);
    const digest = sha256(data);
    const loc = await post('mono/a');
    const done = await put(loc, digest, data);
    assert.equal(done.status, 201, done.text);
    const head = await request(url(`/v2/mono/a/blobs/${digest}`), { method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(data.length));
    assert.ok((await getBlob('mono/a', digest)).equals(data));
    const small = Buffer.from('tiny');
    const r = await request(url(`/v2/mono/b/blobs/uploads/?digest=${sha256(small)}`), { method: 'POST', body: small, headers: { 'content-type': 'application/octet-stream', 'content-length': '4' } });
    await r.body.dump();
    assert.equal(r.statusCode, 201);
    assert.ok((await getBlob('mono/b', sha256(small))).equals(small));
  });

  test('a wrong final digest, chunked or monolithic, is DIGEST_INVALID and leaves no blob and no session', async () => {
    const data = randomBytes(6 * MiB);
    const right = sha256(data);
    const wrong = sha256(Buffer.from('something else'));
    let loc = await post('wrong/chunked');
    loc = await patch(loc, data, 0);
    const a = await put(loc, wrong);
    assert.equal(a.status, 400);
    assert.match(a.text, /DIGEST_INVALID/);
    const b = await put(await post('wrong/mono'), wrong, data);
    assert.equal(b.status, 400);
    assert.match(b.text, /DIGEST_INVALID/);
    for (const d of [right, wrong]) {
      const h = await request(url(`/v2/wrong/mono/blobs/${d}`), { method: 'HEAD' });
      await h.body.dump();
      assert.equal(h.statusCode, 404);
    }
    const state = await bucketState();
    assert.deepEqual(state.uploads, []);
    assert.deepEqual(
      state.keys.filter((k) => k.startsWith('blobs/') && (k.endsWith(right.slice(7)) || k.endsWith(wrong.slice(7)))),
      [],
    );
    assert.deepEqual(
      state.keys.filter((k) => k.includes('/wrong/') && k.includes('_uploads/')),
      [],
    );
  });

  test('an upload goes on after a restart of the server between two PATCHes', async () => {
    const first = randomBytes(7 * MiB + 5);
    const second = randomBytes(2 * MiB + 3);
    let loc = await post('restart/a');
    loc = await patch(loc, first, 0);
    await server.close();
    server = await start();
    const status = await request(url(loc.split('?')[0]!));
    await status.body.dump();
    assert.equal(status.statusCode, 204);
    assert.equal(status.headers.range, `0-${first.length - 1}`);
    loc = await patch(loc, second, first.length);
    const whole = Buffer.concat([first, second]);
    const done = await put(loc, sha256(whole));
    assert.equal(done.status, 201, done.text);
    assert.ok((await getBlob('restart/a', sha256(whole))).equals(whole));
  });

  test('the store down in the middle of a push and of a pull: 503 with the spec error body, then it works again', async () => {
    const data = randomBytes(8 * MiB);
    const digest = sha256(data);
    let loc = await post('faults/a');
    loc = await patch(loc, data.subarray(0, 6 * MiB), 0);
    const stored = randomBytes(2 * MiB);
    assert.equal((await put(await post('faults/a'), sha256(stored), stored)).status, 201);
    await rgw.halt();
    try {
      const r = await request(url(loc), { method: 'PATCH', body: data.subarray(6 * MiB), headers: { 'content-range': `${6 * MiB}-${8 * MiB - 1}`, 'content-type': 'application/octet-stream' } });
      const body = await r.body.text();
      assert.equal(r.statusCode, 503, body);
      assert.equal(JSON.parse(body).errors[0].code, 'UNAVAILABLE');
      const g = await request(url(`/v2/faults/a/blobs/${sha256(stored)}`));
      const gb = await g.body.text();
      assert.equal(g.statusCode, 503, gb);
      assert.equal(JSON.parse(gb).errors[0].code, 'UNAVAILABLE');
    } finally {
      await rgw.resume();
    }
    // The server kept running; the upload goes on from its acknowledged offset.
    const st = await request(url(loc.split('?')[0]!));
    await st.body.dump();
    assert.equal(st.statusCode, 204);
    assert.equal(st.headers.range, `0-${6 * MiB - 1}`);
    loc = await patch(loc, data.subarray(6 * MiB), 6 * MiB);
    assert.equal((await put(loc, digest)).status, 201);
    assert.ok((await getBlob('faults/a', digest)).equals(data));
    assert.ok((await getBlob('faults/a', sha256(stored))).equals(stored));
  });

  test('redirects: a blob GET answers 307 to a presigned URL on the public endpoint, after the audit row; curl follows it, Ranges too', { skip: noCurl }, async () => {
    const data = randomBytes(5 * MiB + 1);
    const digest = sha256(data);
    assert.equal((await put(await post('redir/a'), digest, data)).status, 201);
    // The public endpoint clients reach: here the same gateway by another name for the same host.
    const publicEndpoint = rgw.endpoint.replace('127.0.0.1', 'localhost');
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-redirect-'));
    const r = await startServer({
      dataDir: dir,
      port: 0,
      logLevel: 'silent',
      config: { storage: { driver: 's3', s3: { ...s3Options(rgw, bucket), redirect: { enabled: true, expiry: '5m', publicEndpoint } } }, audit: { enabled: true } },
    });
    try {
      const res = await request(`${r.url}/v2/redir/a/blobs/${digest}`);
      await res.body.dump();
      assert.equal(res.statusCode, 307);
      assert.equal(res.headers['docker-content-digest'], digest);
      const location = String(res.headers.location);
      assert.ok(location.startsWith(`${publicEndpoint}/`), location);
      assert.match(location, /X-Amz-Expires=300/);
      r.hooks.audit?.flush();
      const [row] = r.hooks.audit!.db.query({ repo: 'redir/a', digest, action: 'pull' });
      assert.equal(row?.status, 307, 'the redirect is recorded as a pull');
      const HEAD = await request(`${r.url}/v2/redir/a/blobs/${digest}`, { method: 'HEAD' });
      await HEAD.body.dump();
      assert.equal(HEAD.statusCode, 200, 'HEAD answers itself');
      const got = await exec('sh', ['-c', `curl -sSfL '${r.url}/v2/redir/a/blobs/${digest}' | sha256sum`]);
      assert.equal(got.out.split(' ')[0], digest.slice(7));
      const part = await exec('sh', ['-c', `curl -sSfL -r 1000-1999 '${r.url}/v2/redir/a/blobs/${digest}' | sha256sum`]);
      assert.equal(part.out.split(' ')[0], sha256(data.subarray(1000, 2000)).slice(7));
      // A tampered URL is refused by the store.
      const bad = await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', location.replace(/X-Amz-Signature=[0-9a-f]{4}/, 'X-Amz-Signature=0000')]);
      assert.equal(bad.out, '403');
    } finally {
      await r.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('redirects: skopeo copies an image whose blobs it fetches from the presigned URLs', { skip: noSkopeo }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-skopeo-'));
    const r = await startServer({ dataDir: dir, port: 0, logLevel: 'silent', config: { storage: { driver: 's3', s3: { ...s3Options(rgw, bucket), redirect: { enabled: true } } } } });
    try {
      const img = await makeImage(2, 300_000);
      await pushImage(r.url, 'redir/img', 'v1', img);
      const out = join(dir, 'copy');
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${r.url.replace('http://', '')}/redir/img:v1`, `dir:${out}`]);
      for (const b of img.layers) {
        assert.ok((await readFile(join(out, sha256(b).slice(7)))).equals(b));
      }
    } finally {
      await r.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  /**
   * `size` bytes made as they are read: 1 MiB blocks of one random block, each numbered in its
   * first 4 bytes. `stream(from, to)` gives bytes [from, to) (whole blocks), so a blob can be sent
   * in parts that are never all in memory.
   */
  function generated(size: number): { stream: (from?: number, to?: number) => Readable; digest: string } {
    const block = randomBytes(MiB);
    const blocks = function* (from: number, to: number): Generator<Buffer> {
      for (let at = from; at < to; at += MiB) {
        const b = Buffer.from(block);
        b.writeUInt32BE(at / MiB, 0);
        yield to - at >= MiB ? b : b.subarray(0, to - at);
      }
    };
    const h = createHash('sha256');
    for (const b of blocks(0, size)) h.update(b);
    return { stream: (from = 0, to = size) => Readable.from(blocks(from, to)), digest: `sha256:${h.digest('hex')}` };
  }

  /** The sha256 of a blob GET's body, read as a stream. */
  async function digestOfGet(path: string): Promise<{ digest: string; bytes: number }> {
    const res = await request(url(path));
    assert.equal(res.statusCode, 200);
    const h = createHash('sha256');
    let bytes = 0;
    for await (const c of res.body) {
      h.update(c as Buffer);
      bytes += (c as Buffer).length;
    }
    return { digest: `sha256:${h.digest('hex')}`, bytes };
  }

  test('a 6 GiB blob (over S3\'s 5 GiB single request): pushed whole and in two PATCHes, pulled, mounted without a copy', { timeout: 900_000, skip: hugeSkip }, async () => {
    const size = 6 * 1024 * MiB;
    const blob = generated(size);
    // Whole, in one PUT: a multipart upload straight to the blob's key.
    const loc = await post('big/a');
    const sep = loc.includes('?') ? '&' : '?';
    const res = await request(url(`${loc}${sep}digest=${blob.digest}`), { method: 'PUT', body: blob.stream(), headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } });
    assert.equal(res.statusCode, 201, await res.body.text());
    assert.deepEqual(await digestOfGet(`/v2/big/a/blobs/${blob.digest}`), { digest: blob.digest, bytes: size });
    // Mounted into another repository: a link, no bytes copied.
    const before = new Set((await bucketState()).keys);
    const m = await request(url(`/v2/big/b/blobs/uploads/?mount=${blob.digest}&from=big/a`), { method: 'POST' });
    await m.body.dump();
    assert.equal(m.statusCode, 201);
    const added = (await bucketState()).keys.filter((k) => !before.has(k)).sort();
    const hex = blob.digest.slice(7);
    // The link, and the marker that keeps gc off the blob (a 6 GiB blob is not copied onto itself to touch it).
    assert.deepEqual(added, [`_s3/touched/blobs/sha256/${hex.slice(0, 2)}/${hex}`, `repositories/big/b/_blobs/sha256/${hex}`]);
    const head = await request(url(`/v2/big/b/blobs/${blob.digest}`), { method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.headers['content-length'], String(size));

    // In two 3 GiB PATCHes, to another repository: the session's parts are copied into the blob
    // inside the store (a multipart copy: one CopyObject cannot take more than 5 GiB).
    const other = generated(size);
    let at = 0;
    let l = await post('big/c');
    const half = size / 2;
    for (const n of [half, half]) {
      const chunk = other.stream(at, at + n);
      const p = await request(url(l), { method: 'PATCH', body: chunk, headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + n - 1}`, 'content-length': String(n) } });
      assert.equal(p.statusCode, 202, await p.body.text());
      l = new URL(String(p.headers.location), server.url).pathname + new URL(String(p.headers.location), server.url).search;
      at += n;
    }
    const done = await put(l, other.digest);
    assert.equal(done.status, 201, done.text);
    assert.deepEqual(await digestOfGet(`/v2/big/c/blobs/${other.digest}`), { digest: other.digest, bytes: size });
    assert.deepEqual((await bucketState()).uploads, []);
  });

  test('start-up: a bad storage.s3 value is named; a missing bucket, wrong keys and an unreachable store stop the start with the S3 error', async () => {
    assert.throws(() => parseConfig({ storage: { driver: 's3' } }), /storage\.s3\.bucket/);
    assert.throws(() => parseConfig({ storage: { driver: 's3', s3: { bucket: 'Bad_Name' } } }), /storage\.s3\.bucket.*bucket name/);
    assert.throws(() => parseConfig({ storage: { driver: 's3', s3: { bucket: 'ok-name', endpoint: 'ftp://x' } } }), /storage\.s3\.endpoint/);
    assert.throws(() => parseConfig({ storage: { driver: 's3', s3: { bucket: 'ok-name', prefix: '/abs' } } }), /storage\.s3\.prefix/);
    assert.throws(() => parseConfig({ storage: { driver: 's3', s3: { bucket: 'ok-name', nope: 1 } } }), /storage\.s3\.nope/);
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-start-'));
    const env = { WHARF_S3_ACCESS_KEY_ID: rgw.accessKeyId, WHARF_S3_SECRET_ACCESS_KEY: rgw.secretAccessKey };
    const serve = (bucketName: string, endpoint: string, extra: NodeJS.ProcessEnv = {}) =>
      wharf(['serve', '--storage', 's3', '--s3-bucket', bucketName, '--s3-endpoint', endpoint, '--data', dir, '--listen', '127.0.0.1:0'], { env: { ...env, ...extra } });
    try {
      const missing = await serve('no-such-bucket-here', rgw.endpoint);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /bucket "no-such-bucket-here" .* no such bucket \(NoSuchBucket\)/);
      const denied = await serve(bucket, rgw.endpoint, { WHARF_S3_SECRET_ACCESS_KEY: 'wrong' });
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /access denied \(403 Forbidden\)/);
      const down = await serve(bucket, 'http://127.0.0.1:9');
      assert.notEqual(down.code, 0);
      assert.match(down.stderr, /cannot be reached: ECONNREFUSED/);
      for (const r of [missing, denied, down]) assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a store that stops answering: 503 within the configured timeout, and the next request after it answers again works', async () => {
    let stalled = false;
    const held: Array<() => void> = [];
    // Between the registry and RGW: while stalled, requests are taken and never answered.
    const gate = await startProxy(rgw.endpoint, (req, res) => {
      if (!stalled) return false;
      held.push(() => res.destroy());
      req.resume();
      return true;
    });
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-stall-'));
    const r = await startServer({ dataDir: dir, port: 0, logLevel: 'silent', config: { storage: { driver: 's3', s3: { ...s3Options(rgw, bucket), endpoint: gate.url, timeout: '2s' } } } });
    try {
      const data = randomBytes(MiB);
      const digest = sha256(data);
      const up = await request(`${r.url}/v2/stall/a/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) } });
      await up.body.dump();
      assert.equal(up.statusCode, 201);
      stalled = true;
      for (const [method, path] of [['GET', `/v2/stall/a/blobs/${digest}`], ['HEAD', `/v2/stall/a/blobs/${digest}`], ['POST', '/v2/stall/a/blobs/uploads/'], ['GET', '/v2/stall/a/tags/list']] as const) {
        const t0 = Date.now();
        const res = await request(`${r.url}${path}`, { method });
        const text = await res.body.text();
        const took = Date.now() - t0;
        assert.equal(res.statusCode, 503, `${method} ${path}: ${text}`);
        if (method !== 'HEAD') assert.equal(JSON.parse(text).errors[0].code, 'UNAVAILABLE');
        assert.ok(took < 4000, `${method} ${path} answered after ${took} ms (timeout 2 s)`);
      }
      stalled = false;
      for (const h of held.splice(0)) h();
      const again = await request(`${r.url}/v2/stall/a/blobs/${digest}`);
      assert.equal(again.statusCode, 200);
      assert.ok(Buffer.from(await again.body.arrayBuffer()).equals(data));
    } finally {
      stalled = false;
      for (const h of held.splice(0)) h();
      await r.close();
      await gate.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the upload purge ends an abandoned session: its multipart upload is aborted and its tail removed', async () => {
    let loc = await post('purge/a');
    loc = await patch(loc, randomBytes(7 * MiB), 0);
    loc = await patch(loc, randomBytes(MiB), 7 * MiB);
    const id = loc.split('?')[0]!.split('/').pop()!;
    const mine = async (): Promise<{ keys: string[]; uploads: string[] }> => {
      const st = await bucketState();
      return { keys: st.keys.filter((k) => k.includes(id)), uploads: st.uploads.filter((k) => k.includes(id)) };
    };
    const before = await mine();
    assert.equal(before.uploads.length, 1, 'the session holds a multipart upload');
    assert.ok(before.keys.some((k) => k.startsWith('_s3/tail/')), 'and a tail');
    await setTimeout(20);
    const gone = await server.store.purgeUploads(10);
    assert.ok(gone.uploads.some((u) => u.id === id && u.bytes === 8 * MiB), JSON.stringify(gone.uploads));
    assert.deepEqual(await mine(), { keys: [], uploads: [] });
    const st = await request(url(loc.split('?')[0]!));
    await st.body.dump();
    assert.equal(st.statusCode, 404);
  });

  test('a manifest read twice costs no round trip to the store; a tag moved by this server is read at once', async () => {
    const gate = await startProxy(rgw.endpoint);
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-cache-'));
    const r = await startServer({ dataDir: dir, port: 0, logLevel: 'silent', config: { storage: { driver: 's3', s3: { ...s3Options(rgw, bucket), endpoint: gate.url } } } });
    try {
      const one = await makeImage(1, 100);
      const two = await makeImage(1, 100);
      await pushImage(r.url, 'cached/m', 'v1', one);
      const get = async (): Promise<string> => {
        const res = await request(`${r.url}/v2/cached/m/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
        await res.body.dump();
        assert.equal(res.statusCode, 200);
        return String(res.headers['docker-content-digest']);
      };
      assert.equal(await get(), one.digest);
      const before = gate.requests.length;
      assert.equal(await get(), one.digest);
      const head = await request(`${r.url}/v2/cached/m/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      await head.body.dump();
      assert.equal(head.statusCode, 200);
      assert.equal(gate.requests.length, before, 'no request to the store');
      await pushImage(r.url, 'cached/m', 'v1', two);
      assert.equal(await get(), two.digest, 'the moved tag at once');
      const del = await request(`${r.url}/v2/cached/m/manifests/${two.digest}`, { method: 'DELETE' });
      await del.body.dump();
      assert.equal(del.statusCode, 202);
      const gone = await request(`${r.url}/v2/cached/m/manifests/v1`);
      await gone.body.dump();
      assert.equal(gone.statusCode, 404, 'a deleted manifest at once');
    } finally {
      await r.close();
      await gate.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
