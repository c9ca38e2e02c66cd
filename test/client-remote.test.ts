import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { digestOf, MediaType, EMPTY_JSON_DIGEST, EMPTY_JSON_BYTES, isOciError, type Descriptor, isKnownError } from '../src/spec/index.js';
import { readAllVerified, copyGraph } from '../src/content/index.js';
import { MemoryStore } from '../src/stores/memory/index.js';
import { Registry, RemoteRepository, referrersTag } from '../src/stores/remote/index.js';
import { startDistribution, missingPeer, REGISTRY_BIN, type Distribution } from './helpers/distribution.js';
import { startProxy, forward, relayCut, loseAnswer } from './helpers/proxy.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

const skip = missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)');
const FAST_RETRY = { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 };

function blob(data: Buffer, mediaType: string = MediaType.OctetStream): Descriptor {
  return { mediaType, digest: digestOf(data), size: data.length };
}

async function pushBlob(repo: RemoteRepository, data: Buffer, mediaType?: string): Promise<Descriptor> {
  const d = blob(data, mediaType);
  await repo.push(d, Readable.from([data]));
  return d;
}

function manifestOf(layers: Descriptor[], extra: Record<string, unknown> = {}): { desc: Descriptor; body: Buffer } {
  const m = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    artifactType: 'application/vnd.wharf.test',
    config: { mediaType: MediaType.EmptyJSON, digest: EMPTY_JSON_DIGEST, size: 2 },
    layers,
    ...extra,
  };
  const body = Buffer.from(JSON.stringify(m));
  return { desc: { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length }, body };
}

async function pushArtifact(repo: RemoteRepository, files: Buffer[], tag?: string, extra?: Record<string, unknown>): Promise<Descriptor> {
  await pushBlob(repo, Buffer.from(EMPTY_JSON_BYTES), MediaType.EmptyJSON);
  const layers = [];
  for (const f of files) layers.push(await pushBlob(repo, f));
  const { desc, body } = manifestOf(layers, extra);
  await repo.pushManifest(desc, body, tag ?? desc.digest);
  return desc;
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('remote: Distribution over plain HTTP', { skip }, () => {
  let dist: Distribution;
  let reg: Registry;
  before(async () => {
    dist = await startDistribution();
    reg = new Registry(dist.host, { plainHttp: true, retry: FAST_RETRY });
  });
  after(async () => {
    await reg?.close();
    await dist?.stop();
  });

  test('blobs: push, exists, fetch verified, re-push skipped, delete', async () => {
    const repo = reg.repository('test/blobs');
    const data = randomBytes(300_000);
    const d = blob(data);
    assert.equal(await repo.exists(d), false);
    await repo.push(d, Readable.from([data]));
    assert.equal(await repo.exists(d), true);
    assert.deepEqual(await readAll(await repo.fetch(d)), data);
    // Re-push of present content: HEAD only, no upload session.
    await repo.push(d, Readable.from([data]));
    await repo.delete(d);
    assert.equal(await repo.exists(d), false);
    await assert.rejects(repo.fetch(d), (e) => isOciError(e, 'BLOB_UNKNOWN'));
  });

  test('a push whose content does not match its descriptor fails and commits nothing', async () => {
    const repo = reg.repository('test/bad');
    const data = randomBytes(1000);
    const d = { ...blob(data), digest: digestOf(randomBytes(10)) };
    await assert.rejects(repo.push(d, Readable.from([data])));
    assert.equal(await repo.exists(d), false);
  });

  test('manifests: push by tag, resolve, fetch, tags, tag, delete', async () => {
    const repo = reg.repository('test/manifests');
    const desc = await pushArtifact(repo, [Buffer.from('hello')], 'v1');
    const r = await repo.resolve('v1');
    assert.deepEqual(r, desc);
    assert.deepEqual(await repo.resolve(desc.digest), desc);
    const body = await readAllVerified(await repo.fetch(desc), desc);
    assert.equal(JSON.parse(body.toString()).artifactType, 'application/vnd.wharf.test');
    await repo.tag(desc, 'v2');
    assert.deepEqual((await repo.tags()).sort(), ['v1', 'v2']);
    assert.deepEqual(await repo.tags({ n: 1 }), ['v1']);
    assert.deepEqual(await repo.tags({ last: 'v1' }), ['v2']);
    await assert.rejects(repo.resolve('nope'), (e) => isOciError(e, 'MANIFEST_UNKNOWN'));
    await repo.delete(desc);
    await assert.rejects(repo.resolve('v1'), (e) => isOciError(e, 'MANIFEST_UNKNOWN'));
    assert.ok((await reg.catalog()).includes('test/manifests'));
  });

  test('chunked upload', async () => {
    const repo = reg.repository('test/chunked', { chunkSize: 64 * 1024 });
    const data = randomBytes(64 * 1024 * 3 + 17);
    const d = await pushBlob(repo, data);
    assert.deepEqual(await readAll(await repo.fetch(d)), data);
  });

  test('cross-repository mount', async () => {
    const a = reg.repository('test/mount-a');
    const b = reg.repository('test/mount-b');
    const d = await pushBlob(a, randomBytes(5000));
    assert.equal(await b.mount(d, 'test/mount-a'), true);
    assert.equal(await b.exists(d), true);
    const missing = blob(randomBytes(10));
    assert.equal(await b.mount(missing, 'test/mount-a'), false);
  });

  test('referrers: tag schema fallback, maintained on push (Distribution 2.8 has no referrers API)', async () => {
    const repo = reg.repository('test/referrers');
    const subject = await pushArtifact(repo, [Buffer.from('subject')], 'main');
    const sig = await pushArtifact(repo, [Buffer.from('sig')], undefined, { artifactType: 'application/vnd.wharf.sig', subject });
    const sbom = await pushArtifact(repo, [Buffer.from('sbom')], undefined, { artifactType: 'application/vnd.wharf.sbom', subject });
    const all = await repo.referrers(subject);
    assert.deepEqual(all.map((d) => d.digest).sort(), [sig.digest, sbom.digest].sort());
    const only = await repo.referrers(subject, { artifactType: 'application/vnd.wharf.sbom' });
    assert.deepEqual(only.map((d) => d.digest), [sbom.digest]);
    assert.ok((await repo.tags()).includes(referrersTag(subject.digest)));
    // A fresh client (nothing learnt) finds them too.
    const fresh = new Registry(dist.host, { plainHttp: true }).repository('test/referrers');
    assert.equal((await fresh.referrers(subject)).length, 2);
  });

  test('copyGraph from memory to the registry and back', async () => {
    const mem = new MemoryStore();
    const files = [randomBytes(1000), randomBytes(2000)];
    const layers: Descriptor[] = [];
    for (const f of files) {
      const d = blob(f);
      await mem.push(d, Readable.from([f]));
      layers.push(d);
    }
    await mem.push({ mediaType: MediaType.EmptyJSON, digest: EMPTY_JSON_DIGEST, size: 2 }, Readable.from([Buffer.from(EMPTY_JSON_BYTES)]));
    const { desc, body } = manifestOf(layers);
    await mem.push(desc, Readable.from([body]));
    const repo = reg.repository('test/copy');
    await copyGraph(mem, repo, desc);
    await repo.tag(desc, 'latest');
    const back = new MemoryStore();
    await copyGraph(repo, back, await repo.resolve('latest'));
    for (const l of layers) assert.equal(await back.exists(l), true);
  });

  test('a host that is down: one clear error', async () => {
    const r = new Registry('127.0.0.1:1', { plainHttp: true, retry: { attempts: 1 } });
    await assert.rejects(r.repository('x').resolve('latest'), (e) => isOciError(e, 'UNAVAILABLE') && /cannot reach 127\.0\.0\.1:1/.test(e.message));
    await r.close();
  });
});

describe('remote: Distribution behind htpasswd basic auth', { skip }, () => {
  let dist: Distribution;
  before(async () => {
    dist = await startDistribution({ users: { alice: 's3cret' } });
  });
  after(async () => dist?.stop());

  test('push and pull with credentials', async () => {
    const reg = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ username: 'alice', password: 's3cret' }) });
    const repo = reg.repository('team/app');
    const desc = await pushArtifact(repo, [randomBytes(10_000)], 'v1');
    assert.deepEqual(await repo.resolve('v1'), desc);
    await reg.ping();
    await reg.close();
  });

  test('no credentials or wrong ones: UNAUTHORIZED with a hint', async () => {
    const anon = new Registry(dist.host, { plainHttp: true });
    await assert.rejects(anon.repository('team/app').resolve('v1'), (e) => isOciError(e, 'UNAUTHORIZED') && /wharf login/.test(e.message));
    const wrong = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ username: 'alice', password: 'nope' }) });
    await assert.rejects(wrong.repository('team/app').resolve('v1'), (e) => isOciError(e, 'UNAUTHORIZED'));
    await anon.close();
    await wrong.close();
  });

  test('Authorization is not sent to another origin after a redirect', async () => {
    const reg0 = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ username: 'alice', password: 's3cret' }) });
    const data = randomBytes(50_000);
    const d = await pushBlob(reg0.repository('team/redirect'), data);
    await reg0.close();
    // "Storage": another origin that serves the blob and records what headers it got.
    const seen: IncomingMessage['headers'][] = [];
    const storage = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    const storageUrl = `http://localhost:${(storage.address() as AddressInfo).port}`;
    const proxy = await startProxy(dist.url, (req, res) => {
      if (req.method === 'GET' && req.url?.includes('/blobs/sha256:')) {
        // Like a registry whose blobs live in object storage: 307 to a signed URL.
        if (!req.headers.authorization) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="basic-realm"' }).end();
          return true;
        }
        res.writeHead(307, { location: `${storageUrl}/signed/${d.digest}?sig=abc` }).end();
        return true;
      }
      return false;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, credentials: async () => ({ username: 'alice', password: 's3cret' }), headers: { 'x-extra': 'yes' } });
    try {
      assert.deepEqual(await readAll(await reg.repository('team/redirect').fetch(d)), data);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.authorization, undefined);
      assert.ok(proxy.requests.some((r) => r.headers.authorization?.startsWith('Basic ')), 'the registry itself got credentials');
    } finally {
      await reg.close();
      await proxy.close();
      storage.closeAllConnections();
      storage.close();
    }
  });
});

describe('remote: Distribution with token auth and a real token service', { skip }, () => {
  let dist: Distribution;
  let tokens: TokenServer;
  before(async () => {
    tokens = await startTokenServer({ bob: 'pw' }, { refreshTokens: { 'refresh-123': 'bob' } });
    dist = await startDistribution({ token: tokens });
  });
  after(async () => {
    await dist?.stop();
    await tokens?.close();
  });

  test('bearer flow: scoped tokens, cached per scope', async () => {
    const reg = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ username: 'bob', password: 'pw' }) });
    const repo = reg.repository('proj/tok');
    const desc = await pushArtifact(repo, [randomBytes(1000), randomBytes(1000)], 'v1');
    const pushTokens = tokens.requests.length;
    assert.ok(pushTokens >= 1 && pushTokens <= 3, `token requests while pushing: ${pushTokens}`);
    assert.ok(tokens.requests.every((r) => r.user === 'bob'));
    assert.ok(tokens.requests.some((r) => r.scopes.includes('repository:proj/tok:pull,push')));
    assert.deepEqual(await repo.resolve('v1'), desc);
    await repo.resolve('v1');
    await repo.fetch(desc).then(readAll);
    // Pull scope: at most one more token, reused for every pull request.
    assert.ok(tokens.requests.length <= pushTokens + 1, `token requests: ${tokens.requests.length}`);
    await reg.close();
  });

  test('identity token (refresh token) via the OAuth2 POST', async () => {
    const reg = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ identityToken: 'refresh-123' }) });
    const repo = reg.repository('proj/tok2');
    await pushArtifact(repo, [randomBytes(100)], 'v1');
    assert.ok(tokens.requests.some((r) => r.method === 'POST' && r.user === 'bob'));
    await reg.close();
  });

  test('anonymous gets a token without access: UNAUTHORIZED', async () => {
    const reg = new Registry(dist.host, { plainHttp: true });
    await assert.rejects(reg.repository('proj/tok').resolve('v1'), (e) => isOciError(e, 'UNAUTHORIZED'));
    await reg.close();
  });

  test('wrong password: the token service refuses, one clear error', async () => {
    const reg = new Registry(dist.host, { plainHttp: true, credentials: async () => ({ username: 'bob', password: 'wrong' }) });
    await assert.rejects(reg.repository('proj/tok').resolve('v1'), (e) => isOciError(e, 'UNAUTHORIZED') && /refused the credentials/.test(e.message));
    await reg.close();
  });
});

describe('remote: faults injected by a proxy in front of Distribution', { skip }, () => {
  let dist: Distribution;
  let seed: Registry;
  before(async () => {
    dist = await startDistribution();
    seed = new Registry(dist.host, { plainHttp: true });
  });
  after(async () => {
    await seed?.close();
    await dist?.stop();
  });

  test('a connection dropped halfway through a blob: the download resumes with Range', async () => {
    const data = randomBytes(2_000_000);
    const d = await pushBlob(seed.repository('fault/drop'), data);
    let dropped = 0;
    const ranges: string[] = [];
    const proxy = await startProxy(dist.url, async (req, res, target) => {
      if (req.method !== 'GET' || !req.url?.includes('/blobs/')) return false;
      if (req.headers.range) {
        ranges.push(req.headers.range);
        return false;
      }
      if (dropped++ > 0) return false;
      relayCut(await forward(req, target), res, data.length / 2);
      return true;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY });
    try {
      assert.deepEqual(await readAll(await reg.repository('fault/drop').fetch(d)), data);
      assert.equal(ranges.length, 1);
      assert.match(ranges[0]!, /^bytes=\d+-$/);
      assert.ok(Number(/\d+/.exec(ranges[0]!)![0]) > 0);
    } finally {
      await reg.close();
      await proxy.close();
    }
  });

  test('a registry serving wrong bytes: DIGEST_INVALID, nothing kept', async () => {
    const data = randomBytes(100_000);
    const d = await pushBlob(seed.repository('fault/corrupt'), data);
    const proxy = await startProxy(dist.url, async (req, res, target) => {
      if (req.method !== 'GET' || !req.url?.includes('/blobs/')) return false;
      const up = await forward(req, target);
      const body = await readAll(up);
      body[body.length - 1] = body[body.length - 1]! ^ 0xff;
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      return true;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY });
    const dst = new MemoryStore();
    try {
      await assert.rejects(readAll(await reg.repository('fault/corrupt').fetch(d)), (e) => isOciError(e, 'DIGEST_INVALID'));
      await assert.rejects(copyGraph(reg.repository('fault/corrupt'), dst, d), (e) => isOciError(e, 'DIGEST_INVALID'));
      assert.equal(await dst.exists(d), false);
      // Into another registry, the body the source verifies goes up without a second hash, and
      // still fails here, before the last byte could reach the destination.
      const other = new Registry(dist.host, { plainHttp: true, retry: FAST_RETRY });
      try {
        const into = other.repository('fault/corrupt-copy');
        await assert.rejects(copyGraph(reg.repository('fault/corrupt'), into, d), (e) => isOciError(e, 'DIGEST_INVALID'));
        assert.equal(await into.exists(d), false);
        await copyGraph(seed.repository('fault/corrupt'), into, d);
        assert.deepEqual(await readAll(await into.fetch(d)), data);
      } finally {
        await other.close();
      }
    } finally {
      await reg.close();
      await proxy.close();
    }
  });

  test('5xx and 429 with Retry-After are retried', async () => {
    const desc = await pushArtifact(seed.repository('fault/retry'), [Buffer.from('x')], 'v1');
    let n = 0;
    const when: number[] = [];
    const proxy = await startProxy(dist.url, (req, res) => {
      if (req.method !== 'HEAD' || !req.url?.includes('/manifests/')) return false;
      when.push(Date.now());
      n++;
      if (n === 1) {
        res.writeHead(503).end();
        return true;
      }
      if (n === 2) {
        res.writeHead(429, { 'retry-after': '1' }).end();
        return true;
      }
      return false;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY });
    try {
      assert.deepEqual(await reg.repository('fault/retry').resolve('v1'), desc);
      assert.equal(n, 3);
      assert.ok(when[2]! - when[1]! >= 950, 'Retry-After honoured');
    } finally {
      await reg.close();
      await proxy.close();
    }
  });

  test('persistent 500: gives up after the configured attempts with one error', async () => {
    let n = 0;
    const proxy = await startProxy(dist.url, (_req, res) => {
      n++;
      res.writeHead(500).end();
      return true;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY });
    try {
      await assert.rejects(reg.repository('fault/down').resolve('v1'), (e) => isKnownError(e) && /HTTP 500/.test(e.message));
      // Every attempt of the HEAD, then one GET for the error body that HEAD cannot carry.
      assert.equal(n, FAST_RETRY.attempts + 1);
    } finally {
      await reg.close();
      await proxy.close();
    }
  });

  test('chunked upload: a chunk that fails is resent from the registry\'s Range', async () => {
    const data = randomBytes(100_000);
    let patches = 0;
    let statusChecks = 0;
    const proxy = await startProxy(dist.url, (req, res) => {
      if (req.method === 'GET' && req.url?.includes('/blobs/uploads/')) statusChecks++;
      if (req.method === 'PATCH' && ++patches === 2) {
        // The second chunk never reaches the registry: a proxy in between failed.
        req.resume();
        res.writeHead(502).end();
        return true;
      }
      return false;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY, chunkSize: 30_000 });
    try {
      const repo = reg.repository('fault/chunks');
      const d = await pushBlob(repo, data);
      assert.deepEqual(await readAll(await repo.fetch(d)), data);
      assert.equal(statusChecks, 1);
      assert.equal(patches, 5);
    } finally {
      await reg.close();
      await proxy.close();
    }
  });

  test('chunked upload: a lost answer to a chunk the registry kept ends in one clear error', async () => {
    // Distribution 2.x cancels an upload whose status is asked with a superseded Location (its
    // `_state` offset no longer matches), so the client cannot resume; it must say so, and the
    // blob must not appear half-written.
    const data = randomBytes(100_000);
    let patches = 0;
    const proxy = await startProxy(dist.url, async (req, res, target) => {
      if (req.method === 'PATCH' && ++patches === 2) {
        await loseAnswer(req, res, target);
        return true;
      }
      return false;
    });
    const reg = new Registry(proxy.host, { plainHttp: true, retry: FAST_RETRY, chunkSize: 30_000 });
    try {
      const repo = reg.repository('fault/chunks2');
      const d = blob(data);
      await assert.rejects(repo.push(d, Readable.from([data])), (e) => isKnownError(e) && /upload status/.test(e.message));
      assert.equal(await repo.exists(d), false);
    } finally {
      await reg.close();
      await proxy.close();
    }
  });
});
