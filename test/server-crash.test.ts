/**
 * `kill -9` of the real `wharf serve` process in the middle of an upload, a manifest PUT and a tag
 * move. After a restart, everything acknowledged is served, nothing half-written is visible, and
 * an interrupted upload resumes where the registry says it stopped.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { freePort } from './helpers/distribution.js';
import { MAIN } from './helpers/cli.js';

const TSX = pathToFileURL(join(import.meta.dirname, '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
/** fetch's BodyInit wants an ArrayBuffer-backed view. */
const bytes = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length);
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Proc {
  url: string;
  child: ChildProcess;
}

async function startWharf(dataDir: string, port: number): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`wharf serve exited early: ${stderr}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child };
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`wharf serve did not start: ${stderr}`);
}

async function kill9(p: Proc): Promise<void> {
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}

/**
 * Sends a request whose body is `parts`, written with a pause after each one but the last; returns
 * the request so that the test can kill the server while the body is half sent.
 */
function slowRequest(url: string, method: string, headers: Record<string, string>, parts: Buffer[], pauseMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(-1));
    void (async () => {
      for (const [i, p] of parts.entries()) {
        if (req.destroyed) return;
        req.write(p);
        if (i < parts.length - 1) await sleep(pauseMs);
      }
      req.end();
    })();
  });
}

/** Every file under blobs/ hashes to its own name: nothing partial ever became a blob. */
async function assertBlobStoreSound(dataDir: string): Promise<number> {
  let n = 0;
  for (const alg of await readdir(join(dataDir, 'blobs')).catch(() => [] as string[])) {
    for (const pre of await readdir(join(dataDir, 'blobs', alg))) {
      for (const hex of await readdir(join(dataDir, 'blobs', alg, pre))) {
        const data = await readFile(join(dataDir, 'blobs', alg, pre, hex));
        assert.equal(createHash(alg).update(data).digest('hex'), hex, `blob ${alg}:${hex} is intact`);
        n++;
      }
    }
  }
  return n;
}

function manifestFor(layer: Buffer, label: string): Buffer {
  const config = Buffer.from('{}');
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.wharf.crash-test',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: sha256(layer), size: layer.length }],
      annotations: { label },
    }),
  );
}

async function putBlob(url: string, repo: string, data: Buffer): Promise<void> {
  const r = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: bytes(data), headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(r.status, 201, await r.text());
}

async function putManifest(url: string, repo: string, ref: string, body: Buffer): Promise<number> {
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: bytes(body), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  await r.arrayBuffer();
  return r.status;
}

describe('wharf serve survives kill -9', () => {
  let dataDir: string;
  let port: number;
  let p: Proc | undefined;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wharf-crash-'));
    port = await freePort();
  });
  after(async () => {
    if (p && p.child.exitCode === null && p.child.signalCode === null) await kill9(p);
    await rm(dataDir, { recursive: true, force: true });
  });

  test('in the middle of a chunked upload: the acknowledged chunks survive and the upload resumes', async () => {
    p = await startWharf(dataDir, port);
    const blob = randomBytes(3 << 20);
    // Off a 4 KiB boundary: the chunks after it are written direct, from a block that starts with
    // the file's last partial page read back (see driver/append.ts).
    const first = blob.subarray(0, (1 << 20) + 333);
    const post = await fetch(`${p.url}/v2/crash/upload/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const loc = new URL(post.headers.get('location')!, p.url).href;
    const patch = await fetch(loc, { method: 'PATCH', body: bytes(first), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${first.length - 1}` } });
    assert.equal(patch.status, 202);
    assert.equal(patch.headers.get('range'), `0-${first.length - 1}`);

    // The second chunk is half sent when the server dies.
    const rest = blob.subarray(first.length);
    const half = rest.length >> 1;
    const pending = slowRequest(loc, 'PATCH', { 'content-type': 'application/octet-stream', 'content-range': `${first.length}-${blob.length - 1}`, 'content-length': String(rest.length) }, [rest.subarray(0, half), rest.subarray(half)], 5000);
    await sleep(400);
    await kill9(p);
    assert.equal(await pending, -1, 'the interrupted chunk was never acknowledged');

    p = await startWharf(dataDir, port);
    const status = await fetch(loc);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${first.length - 1}`, 'the upload resumes after the last acknowledged chunk');
    const resumed = await fetch(loc, { method: 'PATCH', body: bytes(rest), headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.length}-${blob.length - 1}` } });
    assert.equal(resumed.status, 202);
    const put = await fetch(`${loc}${loc.includes('?') ? '&' : '?'}digest=${sha256(blob)}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const got = Buffer.from(await (await fetch(`${p.url}/v2/crash/upload/blobs/${sha256(blob)}`)).arrayBuffer());
    assert.ok(got.equals(blob));
    await assertBlobStoreSound(dataDir);
  });

  test('in the middle of a manifest PUT: the previous state is served, nothing half-written shows', async () => {
    p ??= await startWharf(dataDir, port);
    const layer = randomBytes(1000);
    await putBlob(p.url, 'crash/manifest', layer);
    await putBlob(p.url, 'crash/manifest', Buffer.from('{}'));
    const good = manifestFor(layer, 'good');
    assert.equal(await putManifest(p.url, 'crash/manifest', 'v1', good), 201);

    const next = manifestFor(layer, 'never-finished');
    const pending = slowRequest(`${p.url}/v2/crash/manifest/manifests/v1`, 'PUT', { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(next.length) }, [next.subarray(0, 100), next.subarray(100)], 5000);
    await sleep(300);
    await kill9(p);
    assert.equal(await pending, -1);

    p = await startWharf(dataDir, port);
    const r = await fetch(`${p.url}/v2/crash/manifest/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(good), 'the tag still names the acknowledged manifest');
    const missing = await fetch(`${p.url}/v2/crash/manifest/manifests/${sha256(next)}`);
    assert.equal(missing.status, 404, 'the interrupted manifest is not visible');
    await missing.arrayBuffer();
    await assertBlobStoreSound(dataDir);
  });

  test('while tags move and blobs arrive: every acknowledged write is there after each of 4 kills', async () => {
    p ??= await startWharf(dataDir, port);
    const repo = 'crash/churn';
    const layer = randomBytes(512);
    await putBlob(p.url, repo, layer);
    await putBlob(p.url, repo, Buffer.from('{}'));
    const versions = [0, 1, 2, 3, 4, 5].map((i) => manifestFor(layer, `v${i}`));
    const acked = new Map<string, Buffer>();
    for (let round = 0; round < 4; round++) {
      let lastAcked: Buffer | undefined;
      let inFlight: Buffer | undefined;
      let stop = false;
      // A writer that moves the tag and pushes blobs as fast as it can until the kill.
      const churn = (async () => {
        for (let i = 0; !stop; i++) {
          const m = versions[i % versions.length]!;
          inFlight = m;
          try {
            if ((await putManifest(p!.url, repo, 'moving', m)) === 201) lastAcked = m;
            const b = randomBytes(64 * 1024 + i);
            await putBlob(p!.url, repo, b);
            acked.set(sha256(b), b);
          } catch {
            return;
          }
        }
      })();
      await sleep(150 + Math.floor(Math.random() * 400));
      await kill9(p);
      stop = true;
      await churn;

      p = await startWharf(dataDir, port);
      const r = await fetch(`${p.url}/v2/${repo}/manifests/moving`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const body = Buffer.from(await r.arrayBuffer());
      if (lastAcked) {
        assert.equal(r.status, 200);
        assert.ok(body.equals(lastAcked) || (inFlight !== undefined && body.equals(inFlight)), 'the tag names the last acknowledged manifest, or the one in flight');
        assert.equal(r.headers.get('docker-content-digest'), sha256(body));
      }
      for (const [digest, data] of acked) {
        const res: Response = await fetch(`${p.url}/v2/${repo}/blobs/${digest}`);
        assert.equal(res.status, 200, `acknowledged blob ${digest} is served after kill ${round + 1}`);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(data));
      }
    }
    assert.ok(acked.size > 0, 'some blobs were acknowledged before the kills');
    const blobs = await assertBlobStoreSound(dataDir);
    assert.ok(blobs >= acked.size);
    await kill9(p);
  });
});
