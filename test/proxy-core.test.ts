/**
 * The pull-through cache against a real upstream (a second `wharf serve`), seen through a counting
 * HTTP forwarder that can also inject faults: routing, caching for good by digest, TTL and
 * revalidation, coalescing of concurrent misses, ranges on a miss, and failures that must never
 * leave anything cached. The cache registry runs over each storage driver (fs, memory, s3); its
 * upstream stays on fs. What is cached is checked through the cache's storage driver, not its files.
 */
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startServer, type RunningServer } from '../src/server/index.js';
import { paths } from '../src/server/store/paths.js';
import { startProxy, forward, type Proxy } from './helpers/proxy.js';
import { makeImage, pushImage, pushBlob, sha256, type TestImage } from './helpers/proxy-images.js';
import { DRIVERS, driverSkip, setMtime, storageConfig } from './helpers/drivers.js';

for (const driver of DRIVERS) describe(`pull-through cache (${driver})`, { skip: driverSkip(driver) }, () => {
  let tmp: string;
  let upstream: RunningServer;
  let fwd: Proxy;
  let cache: RunningServer;
  let fault: ((req: IncomingMessage, res: ServerResponse, target: string) => Promise<boolean>) | undefined;
  let img: TestImage;

  const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
  const upstreamHits = (pred: (r: Proxy['requests'][number]) => boolean): number => fwd.requests.filter(pred).length;
  const blobGets = (digest: string): number => upstreamHits((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`));
  const ago = (ms: number): Date => new Date(Date.now() - ms);
  /** Waits until a blob's fill (if one is under way) has made it durable in the store. */
  const settled = async (digest: string): Promise<void> => {
    await cache.proxy!.backend.fillDone(digest as `sha256:${string}`);
  };
  /** A file of the cache's store, through its driver, or undefined. */
  const stored = (path: string) => cache.store.driver.stat(path);

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-core-'));
    upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent', config: { storage: { fsync: false } } });
    fwd = await startProxy(upstream.url, async (req, res, target) => (fault ? fault(req, res, target) : false));
    cache = await startServer({
      dataDir: join(tmp, 'cache'),
      logLevel: 'silent',
      config: {
        storage: await storageConfig(driver, join(tmp, 'cache')),
        // maxFails high: the fault tests must not leave the upstream marked down for the others.
        proxy: { upstreams: [{ namespace: 'up', url: fwd.url, ttl: '1h', alwaysRevalidate: ['latest', 'nightly-*'], maxFails: 1000 }] },
      },
    });
    img = await makeImage(2, 4096);
    await pushImage(upstream.url, 'team/app', 'v1', img);
    await pushImage(upstream.url, 'team/app', 'latest', img);
  });

  after(async () => {
    await cache?.close();
    await fwd?.close();
    await upstream?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    fault = undefined;
  });

  async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const r = await fetch(`${cache.url}${path}`, { headers: { accept: MANIFEST_ACCEPT, ...headers } });
    return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
  }

  describe('routing and caching', () => {
    test('a pull by path goes upstream once; the second is served from the cache', async () => {
      const before = fwd.requests.length;
      const m = await get('/v2/up/team/app/manifests/v1');
      assert.equal(m.status, 200);
      assert.equal(m.headers.get('oci-namespace'), 'up');
      assert.equal(m.headers.get('docker-content-digest'), img.digest);
      assert.deepEqual(m.body, img.manifest);
      for (const b of img.blobs) {
        const r = await get(`/v2/up/team/app/blobs/${b.digest}`);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, b.data);
      }
      const first = fwd.requests.length - before;
      assert.ok(first >= 1 + img.blobs.length, `upstream saw ${first} requests`);
      const again = fwd.requests.length;
      assert.equal((await get('/v2/up/team/app/manifests/v1')).status, 200);
      assert.equal((await get(`/v2/up/team/app/manifests/${img.digest}`)).status, 200);
      for (const b of img.blobs) assert.deepEqual((await get(`/v2/up/team/app/blobs/${b.digest}`)).body, b.data);
      assert.equal(fwd.requests.length, again, 'cached content needs no upstream request');
      // Cached in the server's own store, shared by digest.
      for (const b of img.blobs) {
        await settled(b.digest);
        assert.ok(await stored(paths.blobData(b.digest)));
      }
      assert.ok(await stored(paths.tag('up/team/app', 'v1')));
    });

    test('containerd mirror convention: ?ns= names the upstream by namespace or host', async () => {
      const byNs = await get(`/v2/team/app/manifests/v1?ns=up`);
      assert.equal(byNs.status, 200);
      assert.equal(byNs.headers.get('oci-namespace'), 'up');
      const byHost = await get(`/v2/team/app/blobs/${img.blobs[1]!.digest}?ns=${fwd.host}`);
      assert.equal(byHost.status, 200);
      assert.deepEqual(byHost.body, img.blobs[1]!.data);
    });

    test('pushes to a proxied namespace are refused with DENIED; local repositories still take pushes', async () => {
      const r = await fetch(`${cache.url}/v2/up/team/app/blobs/uploads/`, { method: 'POST' });
      assert.equal(r.status, 403);
      assert.equal(((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'DENIED');
      const m = await fetch(`${cache.url}/v2/up/team/app/manifests/v9`, { method: 'PUT', body: new Uint8Array(img.manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(m.status, 403);
      await m.arrayBuffer();
      const d = await fetch(`${cache.url}/v2/up/team/app/manifests/${img.digest}`, { method: 'DELETE' });
      assert.equal(d.status, 403);
      await d.arrayBuffer();
      await pushImage(cache.url, 'mine/app', 'v1', img);
      assert.equal((await get('/v2/mine/app/manifests/v1')).status, 200);
    });

    test('a blob of a local repository is not served through a cached namespace unless the upstream has it', async () => {
      const secret = randomBytes(2048);
      const d = await pushBlob(cache.url, 'private/model', secret);
      const r = await get(`/v2/up/team/app/blobs/${d}`);
      assert.equal(r.status, 404, 'a digest alone does not open a local repository through the cache');
      assert.equal((await get(`/v2/up/team/app/blobs/${d}`, { range: 'bytes=0-9' })).status, 404);
      // Once the upstream has the same content, the stored bytes are linked and served, not fetched again.
      await pushBlob(upstream.url, 'team/app', secret);
      const gets = blobGets(d);
      const ok = await get(`/v2/up/team/app/blobs/${d}`);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, secret);
      assert.equal(blobGets(d), gets, 'the bytes came from the store');
    });

    test('unknown content upstream is a 404 with the spec code, and nothing is cached', async () => {
      const r = await get('/v2/up/team/app/manifests/nope');
      assert.equal(r.status, 404);
      assert.equal((JSON.parse(r.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'MANIFEST_UNKNOWN');
      const b = await get(`/v2/up/team/app/blobs/${sha256(Buffer.from('nothing'))}`);
      assert.equal(b.status, 404);
    });

    test('20 concurrent pulls of an uncached tag: one upstream manifest GET', async () => {
      const other = await makeImage(1, 256);
      await pushImage(upstream.url, 'team/popular', 'v1', other);
      const rs = await Promise.all(Array.from({ length: 20 }, () => get('/v2/up/team/popular/manifests/v1')));
      for (const r of rs) assert.equal(r.headers.get('docker-content-digest'), other.digest);
      assert.equal(upstreamHits((r) => r.method === 'GET' && r.url.endsWith('/team/popular/manifests/v1')), 1);
    });

    test('an image index and its platform manifests are cached like any manifest', async () => {
      const amd = await makeImage(1, 300, 'amd64');
      const arm = await makeImage(1, 300, 'arm64');
      await pushImage(upstream.url, 'team/multi', 'amd64', amd);
      await pushImage(upstream.url, 'team/multi', 'arm64', arm);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.digest, size: amd.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.digest, size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
          ],
        }),
      );
      const put = await fetch(`${upstream.url}/v2/team/multi/manifests/v1`, { method: 'PUT', body: new Uint8Array(index), headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
      assert.equal(put.status, 201);
      const r = await get('/v2/up/team/multi/manifests/v1');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(r.body, index);
      const child = await get(`/v2/up/team/multi/manifests/${arm.digest}`);
      assert.deepEqual(child.body, arm.manifest);
      const n = fwd.requests.length;
      assert.deepEqual((await get(`/v2/up/team/multi/manifests/${arm.digest}`)).body, arm.manifest);
      assert.equal(fwd.requests.length, n);
    });

    test('tags list is the upstream one', async () => {
      const r = await get('/v2/up/team/app/tags/list');
      assert.equal(r.status, 200);
      assert.deepEqual((JSON.parse(r.body.toString()) as { tags: string[] }).tags, ['latest', 'v1']);
    });

    test('a proxied tags list checks n as every list does (it was ignored there before)', async () => {
      const bad = await get('/v2/up/team/app/tags/list?n=x');
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED');
      const one = await get('/v2/up/team/app/tags/list?n=1');
      assert.deepEqual((JSON.parse(one.body.toString()) as { tags: string[] }).tags, ['latest']);
    });
  });

  describe('TTL and revalidation', () => {
    /** Makes a cached tag look last checked `ms` ago. */
    const age = (tag: string, ms: number): Promise<void> => setMtime(cache.store.driver, paths.tag('up/team/app', tag), ago(ms));
    const manifestReqs = (tag: string) => ({
      head: upstreamHits((r) => r.method === 'HEAD' && r.url.endsWith(`/manifests/${tag}`)),
      get: upstreamHits((r) => r.method === 'GET' && r.url.endsWith(`/manifests/${tag}`)),
    });

    test('a fresh tag is not revalidated; an expired one gets one conditional HEAD', async () => {
      await get('/v2/up/team/app/manifests/v1');
      const a = manifestReqs('v1');
      await get('/v2/up/team/app/manifests/v1');
      assert.deepEqual(manifestReqs('v1'), a, 'within the TTL: no upstream request');
      await age('v1', 2 * 3600e3);
      const r = await get('/v2/up/team/app/manifests/v1');
      assert.equal(r.status, 200);
      const b = manifestReqs('v1');
      assert.equal(b.head, a.head + 1, 'one HEAD');
      assert.equal(b.get, a.get, 'no GET: the tag did not move');
      const cond = fwd.requests.filter((x) => x.method === 'HEAD' && x.url.endsWith('/manifests/v1')).at(-1)!;
      assert.equal(cond.headers['if-none-match'], `"${img.digest}"`);
      // The validation time moved: the next pull is fresh again.
      await get('/v2/up/team/app/manifests/v1');
      assert.deepEqual(manifestReqs('v1'), b);
    });

    test('a moved tag is fetched again after its TTL', async () => {
      const next = await makeImage(1, 512);
      await pushImage(upstream.url, 'team/app', 'moving', img);
      assert.equal((await get('/v2/up/team/app/manifests/moving')).headers.get('docker-content-digest'), img.digest);
      await pushImage(upstream.url, 'team/app', 'moving', next);
      assert.equal((await get('/v2/up/team/app/manifests/moving')).headers.get('docker-content-digest'), img.digest, 'still fresh');
      await age('moving', 2 * 3600e3);
      const r = await get('/v2/up/team/app/manifests/moving');
      assert.equal(r.headers.get('docker-content-digest'), next.digest);
      assert.deepEqual(r.body, next.manifest);
    });

    test('always-revalidate patterns are checked on every pull', async () => {
      await get('/v2/up/team/app/manifests/latest');
      const a = manifestReqs('latest');
      await get('/v2/up/team/app/manifests/latest');
      await get('/v2/up/team/app/manifests/latest');
      const b = manifestReqs('latest');
      assert.equal(b.head, a.head + 2);
      assert.equal(b.get, a.get);
    });

    test('upstream down: cached content is served with a Warning; uncached content fails with 503', async () => {
      await get('/v2/up/team/app/manifests/v1');
      await get('/v2/up/team/app/manifests/latest');
      await age('v1', 2 * 3600e3);
      fault = async (_req, res) => {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"down"}]}');
        return true;
      };
      const r = await get('/v2/up/team/app/manifests/v1');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, img.manifest);
      assert.match(r.headers.get('warning') ?? '', /^111 /);
      const latest = await get('/v2/up/team/app/manifests/latest');
      assert.equal(latest.status, 200);
      assert.match(latest.headers.get('warning') ?? '', /^111 /);
      const miss = await get('/v2/up/team/app/manifests/never-pulled');
      assert.equal(miss.status, 503);
      const blob = await get(`/v2/up/team/app/blobs/${sha256(randomBytes(8))}`);
      assert.equal(blob.status, 503);
    });
  });

  describe('a hanging upstream', () => {
    test('revalidation gives up after the timeout; after maxFails failures the upstream is left alone', async () => {
      const s = await startServer({
        dataDir: join(tmp, 'hang'),
        logLevel: 'silent',
        config: { storage: await storageConfig(driver, join(tmp, 'hang')), proxy: { upstreams: [{ namespace: 'up', url: fwd.url, ttl: '1h', timeout: '300ms', maxFails: 2, failTimeout: '1h' }] } },
      });
      const hung: ServerResponse[] = [];
      try {
        const pull = async (tag: string): Promise<{ status: number; warning: string | null }> => {
          const r = await fetch(`${s.url}/v2/up/team/app/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
          await r.arrayBuffer();
          return { status: r.status, warning: r.headers.get('warning') };
        };
        assert.equal((await pull('v1')).status, 200);
        await setMtime(s.store.driver, paths.tag('up/team/app', 'v1'), ago(2 * 3600e3));
        // The upstream accepts connections and never answers.
        fault = async (_req, res) => {
          hung.push(res);
          return true;
        };
        for (let i = 0; i < 2; i++) {
          const r = await pull('v1');
          assert.equal(r.status, 200);
          assert.match(r.warning ?? '', /^111 /);
        }
        const seen = fwd.requests.length;
        const r = await pull('v1');
        assert.equal(r.status, 200, 'still served from the cache');
        assert.match(r.warning ?? '', /failed 2 times in a row/);
        assert.equal((await pull('never-cached')).status, 503);
        assert.equal(fwd.requests.length, seen, 'marked down: no request reached it');
      } finally {
        for (const res of hung) res.destroy();
        await s.close();
      }
    });
  });

  describe('blobs', () => {
    // 8 MiB by default to stay quick on a shared machine; WHARF_PROXY_COALESCE_MIB=100 for the size.
    const mib = Number(process.env.WHARF_PROXY_COALESCE_MIB ?? 8);
    test(`50 concurrent pulls of one uncached ${mib} MiB blob: exactly one upstream GET, every client gets it whole`, async () => {
      const data = randomBytes(mib << 20);
      const digest = await pushBlob(upstream.url, 'team/big', data);
      // Each client hashes as it reads: 50 copies are never held in memory at once.
      const results = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const r = await fetch(`${cache.url}/v2/up/team/big/blobs/${digest}`);
          const h = createHash('sha256');
          let n = 0;
          for await (const c of r.body as AsyncIterable<Uint8Array>) {
            h.update(c);
            n += c.length;
          }
          return { status: r.status, n, digest: `sha256:${h.digest('hex')}` };
        }),
      );
      for (const r of results) assert.deepEqual(r, { status: 200, n: data.length, digest });
      assert.equal(blobGets(digest), 1);
      const metrics = await (await fetch(`${cache.url}/metrics`)).text();
      assert.match(metrics, /wharf_proxy_coalesced_total\{namespace="up",kind="blob"\} \d+/);
      assert.match(metrics, /wharf_proxy_upstream_bytes_total\{namespace="up"\} \d+/);
    });

    test('the first bytes reach the client while the upstream is still sending (stream, not store-and-forward)', async () => {
      const data = randomBytes(4 << 20);
      const digest = await pushBlob(upstream.url, 'team/stream', data);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      fault = async (req, res, target) => {
        if (!req.url?.includes(`/blobs/${digest}`) || req.method !== 'GET') return false;
        const up = await forward(req, target);
        res.writeHead(up.statusCode ?? 502, up.headers);
        // Half the blob, then the upstream stalls until the test has seen bytes arrive.
        const chunks: Buffer[] = [];
        for await (const c of up as AsyncIterable<Buffer>) chunks.push(c);
        const body = Buffer.concat(chunks);
        res.write(body.subarray(0, body.length / 2));
        await held;
        res.end(body.subarray(body.length / 2));
        return true;
      };
      const r = await fetch(`${cache.url}/v2/up/team/stream/blobs/${digest}`);
      assert.equal(r.status, 200);
      const reader = r.body!.getReader();
      const first = await reader.read();
      assert.ok(first.value && first.value.length > 0, 'bytes arrived while the upstream holds the rest back');
      release();
      const h = createHash('sha256').update(first.value);
      for (let c = await reader.read(); !c.done; c = await reader.read()) h.update(c.value);
      assert.equal(`sha256:${h.digest('hex')}`, digest);
    });

    test('a Range request on a miss gets exactly the bytes asked for, and the blob is cached whole', async () => {
      const data = randomBytes(3 << 20);
      const digest = await pushBlob(upstream.url, 'team/ranged', data);
      const r = await get(`/v2/up/team/ranged/blobs/${digest}`, { range: 'bytes=1000000-1000999' });
      assert.equal(r.status, 206);
      assert.equal(r.headers.get('content-range'), `bytes 1000000-1000999/${data.length}`);
      assert.deepEqual(r.body, data.subarray(1000000, 1001000));
      const tail = await get(`/v2/up/team/ranged/blobs/${digest}`, { range: 'bytes=-10' });
      assert.equal(tail.status, 206);
      assert.deepEqual(tail.body, data.subarray(data.length - 10));
      const whole = await get(`/v2/up/team/ranged/blobs/${digest}`);
      assert.equal(sha256(whole.body), digest);
      assert.equal(blobGets(digest), 1);
    });

    test('a Range far past what the fill has written is fetched on its own: a tail read does not wait for the blob', async () => {
      const data = randomBytes(12 << 20);
      const digest = await pushBlob(upstream.url, 'team/lazy', data);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      fault = async (req, res, target) => {
        // The whole-blob GET stalls after its first MiB; ranged GETs pass.
        if (!req.url?.includes(`/blobs/${digest}`) || req.method !== 'GET' || req.headers.range) return false;
        const up = await forward(req, target);
        res.writeHead(up.statusCode ?? 502, up.headers);
        const chunks: Buffer[] = [];
        for await (const c of up as AsyncIterable<Buffer>) chunks.push(c);
        const body = Buffer.concat(chunks);
        res.write(body.subarray(0, 1 << 20));
        await held;
        res.end(body.subarray(1 << 20));
        return true;
      };
      const first = fetch(`${cache.url}/v2/up/team/lazy/blobs/${digest}`); // starts the fill
      const head = await first;
      const reader = head.body!.getReader();
      await reader.read(); // the fill is under way
      const tail = await get(`/v2/up/team/lazy/blobs/${digest}`, { range: `bytes=${data.length - 1000}-${data.length - 1}` });
      assert.equal(tail.status, 206);
      assert.deepEqual(tail.body, data.subarray(data.length - 1000));
      release();
      for (let c = await reader.read(); !c.done; c = await reader.read());
      assert.equal(upstreamHits((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`) && !r.headers.range), 1);
    });

    test('HEAD on a miss answers the size without caching', async () => {
      const data = randomBytes(1000);
      const digest = await pushBlob(upstream.url, 'team/head', data);
      const r = await fetch(`${cache.url}/v2/up/team/head/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-length'), '1000');
      assert.equal(await stored(paths.blobData(digest)), undefined);
    });

    test('the upstream dies mid-blob: the client gets an error, nothing is cached, the next pull succeeds', async () => {
      const data = randomBytes(4 << 20);
      const digest = await pushBlob(upstream.url, 'team/flaky', data);
      fault = async (req, res, target) => {
        if (!req.url?.includes(`/blobs/${digest}`) || req.method !== 'GET') return false;
        const up = await forward(req, target);
        res.writeHead(up.statusCode ?? 502, up.headers);
        let sent = 0;
        up.on('data', (c: Buffer) => {
          sent += c.length;
          if (sent > data.length / 2) {
            up.destroy();
            res.destroy();
          } else res.write(c);
        });
        return true;
      };
      await assert.rejects(get(`/v2/up/team/flaky/blobs/${digest}`));
      assert.equal(await stored(paths.blobData(digest)), undefined);
      fault = undefined;
      const ok = await get(`/v2/up/team/flaky/blobs/${digest}`);
      assert.equal(ok.status, 200);
      assert.equal(sha256(ok.body), digest);
      await settled(digest);
      assert.ok(await stored(paths.blobData(digest)));
    });

    test('corrupted bytes from upstream: an error, never cached, never served as valid', async () => {
      const data = randomBytes(2 << 20);
      const digest = await pushBlob(upstream.url, 'team/corrupt', data);
      fault = async (req, res, target) => {
        if (!req.url?.includes(`/blobs/${digest}`) || req.method !== 'GET') return false;
        const up = await forward(req, target);
        res.writeHead(up.statusCode ?? 502, up.headers);
        let first = true;
        up.on('data', (c: Buffer) => {
          if (first) {
            c = Buffer.from(c);
            c[0] = c[0]! ^ 0xff;
            first = false;
          }
          res.write(c);
        });
        up.on('end', () => res.end());
        return true;
      };
      const attempts = await Promise.allSettled([get(`/v2/up/team/corrupt/blobs/${digest}`), get(`/v2/up/team/corrupt/blobs/${digest}`)]);
      for (const a of attempts) {
        // Either the transfer breaks, or (never) a full body arrives: it must not be a valid 200.
        if (a.status === 'fulfilled') assert.ok(a.value.status !== 200 || sha256(a.value.body) !== digest || a.value.body.length !== data.length);
      }
      assert.ok(attempts.every((a) => a.status === 'rejected'), 'the transfer is cut, not completed');
      assert.equal(await stored(paths.blobData(digest)), undefined);
      if (driver === 'fs') {
        const leftovers = (await readdir(join(tmp, 'cache', '_tmp')).catch(() => [])).filter((n) => n.includes('proxy'));
        assert.deepEqual(leftovers, []);
      } else {
        // No files: staged bytes left under no name are what sweepTemp would drop (none, here).
        assert.equal(await cache.store.driver.sweepTemp(0), 0, 'staged bytes were left behind');
      }
      fault = undefined;
      assert.equal(sha256((await get(`/v2/up/team/corrupt/blobs/${digest}`)).body), digest);
    });
  });

  describe('metrics', () => {
    test('metrics count hits, misses, upstream bytes and errors per namespace', async () => {
      const text = await (await fetch(`${cache.url}/metrics`)).text();
      const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
      assert.ok(value(/^wharf_proxy_hits_total\{namespace="up",kind="manifest"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_hits_total\{namespace="up",kind="blob"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_misses_total\{namespace="up",kind="manifest"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_misses_total\{namespace="up",kind="blob"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_upstream_bytes_total\{namespace="up"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_upstream_requests_total\{namespace="up",kind="manifest"\} (\d+)/m) > 0);
      assert.ok(value(/^wharf_proxy_upstream_errors_total\{namespace="up",kind="blob"\} (\d+)/m) >= 2, 'the broken and the corrupted blob');
      assert.ok(value(/^wharf_proxy_upstream_errors_total\{namespace="up",kind="revalidate"\} (\d+)/m) > 0, 'the upstream that was down');
      assert.ok(value(/^wharf_proxy_stale_total\{namespace="up"\} (\d+)/m) > 0);
    });
  });
});
