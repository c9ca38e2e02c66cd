/**
 * Registry points found by bad-input tests run from outside (issue 24): a manifest over the size
 * limit answered to a client that writes its whole body before reading, a manifest whose
 * descriptors lie about blob sizes, and the automatic cross-repository mount (no `from`), with and
 * without access rules. Real `wharf serve` on port 0 (in-process), plain node:http and fetch.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { call, assertSpecError, type Reply } from '../src/testkit/http.js';
import { EMPTY_DESCRIPTOR, EMPTY_JSON, MediaTypes, descriptorOf, imageManifest, imageIndex, randomBlob, type Descriptor } from '../src/testkit/fixtures.js';
import { basic, startAuthServer } from './helpers/auth.js';
import { spawnServe } from './helpers/cli.js';

/**
 * A PUT as Node's http client (and many SDKs) sends it: the whole body is written before the
 * response is read. A server that answers and closes without reading makes this an EPIPE or a
 * reset; resolves to the status and body, or to the error code.
 */
function putWholeBody(url: string, path: string, body: Buffer): Promise<{ status: number; body: Buffer } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(new URL(path, url), { method: 'PUT', agent: false, headers: { 'content-type': MediaTypes.manifest, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end(body);
  });
}

async function pushBlob(url: string, repo: string, body: Buffer, headers: Record<string, string> = {}): Promise<Descriptor> {
  const d = descriptorOf('application/octet-stream', body);
  const r = await call(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d.digest}`, { headers: { ...headers, 'content-type': 'application/octet-stream' }, body });
  assert.equal(r.status, 201, `blob push: ${r.status} ${r.body.toString()}`);
  return d;
}

function putManifest(url: string, repo: string, ref: string, body: Buffer | string, mediaType: string = MediaTypes.manifest, headers: Record<string, string> = {}): Promise<Reply> {
  return call(url, 'PUT', `/v2/${repo}/manifests/${ref}`, { headers: { ...headers, 'content-type': mediaType }, body: typeof body === 'string' ? body : new Uint8Array(body) });
}

describe('wharf serve (its own process): a manifest over the size limit', () => {
  // In its own process, as a client meets it: with client and server on one event loop the race
  // between the server's close and the client's last writes did not show.
  let dir: string;
  let proc: { child: ChildProcess; url: string };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-manifest-limit-'));
    proc = await spawnServe(dir, 'storage: { fsync: false }\n');
  });
  after(async () => {
    proc?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  for (const mib of [5, 40]) {
    test(`a ${mib} MiB manifest (limit 4 MiB) written whole before reading gets 413 with the spec's error body, 40 times of 40`, async () => {
      const body = Buffer.alloc(mib << 20, 0x20);
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const r = await putWholeBody(proc.url, '/v2/big/manifest/manifests/v1', body);
        const key = 'error' in r ? r.error : String(r.status);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (!('error' in r)) {
          assert.equal(r.status, 413);
          const e = JSON.parse(r.body.toString('utf8')) as { errors: Array<{ code: string }> };
          assert.equal(e.errors[0]?.code, 'SIZE_INVALID');
        }
      }
      assert.deepEqual([...outcomes], [['413', 40]], `outcomes of 40 PUTs: ${JSON.stringify([...outcomes])}`);
    });
  }

  test('a body past the drain bound is not read to its end: 413 with the spec body all the same, and the server stays up', async () => {
    // Declared larger than the bound: answered at once, the connection closed; a client that
    // reads while writing (fetch) still hears the 413.
    const r = await call(proc.url, 'PUT', '/v2/big/manifest/manifests/v2', { headers: { 'content-type': MediaTypes.manifest }, body: new Uint8Array(80 << 20) }).catch((err: Error) => err);
    if (!(r instanceof Error)) assertSpecError(r, 413, ['SIZE_INVALID']);
    assert.equal((await call(proc.url, 'GET', '/v2/')).status, 200);
  });

});

describe('wharf serve: registry input', () => {
  let server: RunningServer;
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wharf-registry-input-'));
    server = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: { fsync: false } } });
  });
  after(async () => {
    await server?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a manifest whose layer or config descriptor gives a size other than the stored blob\'s is refused with MANIFEST_INVALID', async () => {
    const repo = 'sizes/lie';
    const layer = await pushBlob(server.url, repo, randomBlob(1000, 'sizes'));
    const config = await pushBlob(server.url, repo, EMPTY_JSON);
    for (const [what, m] of [
      ['layer too small', imageManifest({ config, layers: [{ ...layer, size: layer.size - 1 }] })],
      ['layer too large', imageManifest({ config, layers: [{ ...layer, size: layer.size + 1 }] })],
      ['config', imageManifest({ config: { ...EMPTY_DESCRIPTOR, size: 3 }, layers: [layer] })],
    ] as const) {
      const r = await putManifest(server.url, repo, 'v1', m.body);
      const e = assertSpecError(r, 400, ['MANIFEST_INVALID']);
      assert.match(e!.errors[0]!.message ?? '', /size/, what);
    }
    // The honest manifest goes in; an index that lies about a child's size does not.
    const ok = imageManifest({ config, layers: [layer] });
    assert.equal((await putManifest(server.url, repo, 'v1', ok.body)).status, 201);
    const lying = imageIndex({ manifests: [{ ...ok.descriptor, size: ok.descriptor.size + 5 }] });
    assertSpecError(await putManifest(server.url, repo, 'idx', lying.body, MediaTypes.index), 400, ['MANIFEST_INVALID']);
    const honest = imageIndex({ manifests: [ok.descriptor] });
    assert.equal((await putManifest(server.url, repo, 'idx', honest.body, MediaTypes.index)).status, 201);
    // Nothing of the refused manifests became visible.
    assert.equal((await call(server.url, 'GET', `/v2/${repo}/tags/list`)).body.toString(), JSON.stringify({ name: repo, tags: ['idx', 'v1'] }));
  });

  test('a mount without `from` of a blob stored in another repository answers 201 with the blob\'s Location and digest', async () => {
    const blob = await pushBlob(server.url, 'mount/source', randomBlob(4096, 'automount'));
    const r = await call(server.url, 'POST', `/v2/mount/target/blobs/uploads/?mount=${blob.digest}`);
    assert.equal(r.status, 201, `${r.status} ${r.body.toString()}`);
    assert.equal(r.headers.get('location'), `/v2/mount/target/blobs/${blob.digest}`);
    assert.equal(r.headers.get('docker-content-digest'), blob.digest);
    const got = await call(server.url, 'GET', `/v2/mount/target/blobs/${blob.digest}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.length, blob.size);
    // A blob nobody holds: an ordinary upload session.
    const none = await call(server.url, 'POST', `/v2/mount/target/blobs/uploads/?mount=sha256:${'0'.repeat(64)}`);
    assert.equal(none.status, 202);
    assert.match(none.headers.get('location') ?? '', /^\/v2\/mount\/target\/blobs\/uploads\//);
  });
});

describe('wharf serve: automatic cross-repository mount under access rules', () => {
  let server: Awaited<ReturnType<typeof startAuthServer>>;
  let secret: Descriptor;
  let open: Descriptor;
  before(async () => {
    server = await startAuthServer({ storage: { fsync: false } });
    // Only root can read secret/**; public/** is readable by anyone, ml/** by alice.
    secret = await pushBlob(server.url, 'secret/store', randomBlob(2048, 'secret'), basic('root'));
    open = await pushBlob(server.url, 'public/tool', randomBlob(2048, 'public'), basic('root'));
  });
  after(async () => {
    await server?.close();
    await rm(server.dataDir, { recursive: true, force: true });
  });

  test('a blob the caller can pull elsewhere is mounted (201)', async () => {
    const r = await call(server.url, 'POST', `/v2/ml/model/blobs/uploads/?mount=${open.digest}`, { headers: basic('alice') });
    assert.equal(r.status, 201, `${r.status} ${r.body.toString()}`);
    assert.equal(r.headers.get('docker-content-digest'), open.digest);
    assert.equal((await call(server.url, 'HEAD', `/v2/ml/model/blobs/${open.digest}`, { headers: basic('alice') })).status, 200);
  });

  test('a blob held only where the caller cannot pull is not mounted: 202, an ordinary upload, and nothing leaks', async () => {
    const r = await call(server.url, 'POST', `/v2/ml/model/blobs/uploads/?mount=${secret.digest}`, { headers: basic('alice') });
    assert.equal(r.status, 202, `${r.status} ${r.body.toString()}`);
    assert.equal((await call(server.url, 'HEAD', `/v2/ml/model/blobs/${secret.digest}`, { headers: basic('alice') })).status, 404);
    // An explicit `from` the caller cannot read is no way around it either.
    const from = await call(server.url, 'POST', `/v2/ml/model/blobs/uploads/?mount=${secret.digest}&from=secret/store`, { headers: basic('alice') });
    assert.equal(from.status, 202);
    // root may read it, so root's automatic mount works.
    const root = await call(server.url, 'POST', `/v2/ml/other/blobs/uploads/?mount=${secret.digest}`, { headers: basic('root') });
    assert.equal(root.status, 201);
  });
});
