/**
 * Upload sessions that never complete (issue 24): `wharf gc` reports them with their bytes (and
 * removes them without --dry-run), and the audit log records them, both when the purge removes a
 * session and when a PATCH's client goes away mid-body. Real `wharf serve` on port 0, the real CLI.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type RunningServer } from '../src/server/index.js';
import { call } from '../src/testkit/http.js';
import { wharf } from './helpers/cli.js';

/** Opens a session and has `n` bytes acknowledged in it; returns its id. */
async function partialUpload(url: string, repo: string, n: number): Promise<string> {
  const post = await call(url, 'POST', `/v2/${repo}/blobs/uploads/`);
  assert.equal(post.status, 202);
  const loc = post.headers.get('location')!;
  const patch = await call(url, 'PATCH', loc, { headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${n - 1}` }, body: new Uint8Array(n) });
  assert.equal(patch.status, 202);
  return loc.split('/').pop()!;
}

describe('abandoned uploads', () => {
  let server: RunningServer;
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wharf-abandoned-'));
    // A purge timer that runs every second, for sessions idle a little longer than that.
    server = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: { fsync: false }, uploads: { purgeAfter: '1500ms' }, audit: { flushInterval: '100ms' } } });
  });
  after(async () => {
    await server?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('wharf gc --dry-run names a session idle past --uploads-purge-after with its bytes; wharf gc removes it', async () => {
    // A server of its own, whose purge timer (24 h) leaves the aged session to gc.
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-abandoned-gc-'));
    const server = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: { fsync: false } } });
    try {
      await gcAbandoned(server, dataDir);
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  async function gcAbandoned(server: RunningServer, dataDir: string): Promise<void> {
    const repo = 'abandoned/gc';
    const id = await partialUpload(server.url, repo, 177_000);
    const uploads = join(dataDir, 'repositories', 'abandoned', 'gc', '_uploads');
    const old = new Date(Date.now() - 3 * 3600e3);
    for (const f of await readdir(uploads)) await utimes(join(uploads, f), old, old);

    const dry = await wharf(['gc', '--data', dataDir, '--dry-run', '--uploads-purge-after', '2h']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would delete upload session abandoned/gc/${id} \\(177000 bytes, idle 180 min\\)`));
    assert.match(dry.stdout, /would free .*; 1 abandoned upload\(s\), 172\.9 KiB;/);
    assert.deepEqual((await readdir(uploads)).sort(), [id, `${id}.info`]);
    // Younger than the limit: not mentioned.
    const young = await wharf(['gc', '--data', dataDir, '--dry-run', '--uploads-purge-after', '4h']);
    assert.match(young.stdout, /; 0 abandoned upload\(s\), 0 B;/);

    const real = await wharf(['gc', '--data', dataDir, '--uploads-purge-after', '2h']);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, new RegExp(`delete upload session abandoned/gc/${id} \\(177000 bytes`));
    assert.deepEqual(await readdir(uploads), []);
  }

  test('the audit log records a session the purge removed unfinished, with its bytes', async () => {
    const id = await partialUpload(server.url, 'abandoned/purge', 4096);
    let row: { method: string; bytes: number; outcome: string; status: number; reference: string | null } | undefined;
    for (let i = 0; i < 100 && !row; i++) {
      await sleep(100);
      server.hooks.audit!.flush();
      row = server.hooks.audit!.db.query({ repo: 'abandoned/purge', action: 'upload' }).find((r) => r.method === 'PURGE');
    }
    assert.ok(row, 'a PURGE row was recorded');
    assert.deepEqual({ bytes: row.bytes, outcome: row.outcome, status: row.status, reference: row.reference }, { bytes: 4096, outcome: 'aborted', status: 410, reference: id });
  });

  test('the audit log records a PATCH whose client went away mid-body (it was dropped: the socket, and so req.ip, was gone)', async () => {
    const post = await call(server.url, 'POST', '/v2/abandoned/patch/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!, server.url);
    await new Promise<void>((resolve) => {
      const req = request(loc, { method: 'PATCH', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': String(1 << 20) } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(64 * 1024));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    let row: { status: number; method: string; ip: string } | undefined;
    for (let i = 0; i < 50 && !row; i++) {
      await sleep(100);
      server.hooks.audit!.flush();
      row = server.hooks.audit!.db.query({ repo: 'abandoned/patch' }).find((r) => r.method === 'PATCH');
    }
    assert.ok(row, 'the interrupted PATCH was recorded');
    // Answered BLOB_UPLOAD_INVALID: "the client closed the connection before the body was complete".
    assert.equal(row.status, 400);
    assert.equal(row.ip, '127.0.0.1');
  });
});
