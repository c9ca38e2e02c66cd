/**
 * Operating wharf serve: /healthz, /metrics, one log line per request, a graceful stop on
 * SIGTERM, a clear failure when the port is taken, and the defaults of `npm start`.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../src/server/index.js';
import { freePort } from './helpers/distribution.js';
import { wharf } from './helpers/cli.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const TSX = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushBlob(url: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const r = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
  await r.body?.cancel();
  assert.equal(r.status, 201);
  return digest;
}

/** A `wharf serve` process, started as a user would and read until it answers on /v2/. */
interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function spawnProc(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Proc {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
  const child = spawn(cmd, args, { cwd, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

async function waitFor(what: string, p: Proc, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (p.child.exitCode !== null) throw new Error(`exited ${p.child.exitCode} while waiting for ${what}: ${p.out()}`);
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}: ${p.out()}`);
}

async function answers(url: string): Promise<boolean> {
  const r = await fetch(`${url}/v2/`);
  await r.body?.cancel();
  return r.status === 200;
}

async function kill(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

describe('wharf serve in process: health, metrics, logs', () => {
  let dir: string;
  let server: RunningServer;
  const lines: Record<string, unknown>[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-ops-'));
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    server = await startServer({ dataDir: join(dir, 'data'), port: 0, logger: pino({ level: 'info' }, sink) });
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('/healthz answers 200', async () => {
    const r = await fetch(`${server.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
  });

  test('/metrics counts requests and bytes in Prometheus text', async () => {
    const blob = randomBytes(100_000);
    const digest = await pushBlob(server.url, 'ops/metrics', blob);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${server.url}/v2/ops/metrics/blobs/${digest}`);
      assert.equal((await r.arrayBuffer()).byteLength, blob.length);
    }
    const r = await fetch(`${server.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await r.text();
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    assert.equal(value(/^wharf_http_request_duration_seconds_count\{[^}]*endpoint="blob"[^}]*method="GET"[^}]*status="200"[^}]*\} (\d+)$/m), 3);
    assert.ok(value(/^wharf_http_response_bytes_total\{endpoint="blob"\} (\d+)$/m) >= 3 * blob.length);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
  });

  test('/metrics shows the memory of the process: RSS, heap, external, array buffers', async () => {
    const r = await fetch(`${server.url}/metrics`);
    const text = await r.text();
    for (const series of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes', 'wharf_process_memory_bytes{kind="array_buffers"}']) {
      const m = new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
      assert.ok(m, `no ${series} in /metrics`);
      assert.ok(Number(m[1]) > 0, `${series} is ${m[1]}`);
    }
  });

  test('one JSON log line per request, without credentials', async () => {
    lines.length = 0;
    const secret = 'hunter2-secret-token';
    const auth = `Basic ${Buffer.from(`alice:${secret}`).toString('base64')}`;
    const paths = ['/v2/', '/v2/ops/logs/manifests/missing', '/v2/ops/logs/tags/list', '/healthz'];
    for (const p of paths) {
      const r = await fetch(`${server.url}${p}`, { headers: { authorization: auth, cookie: `session=${secret}` } });
      await r.body?.cancel();
    }
    await sleep(20); // pino writes synchronously to the sink; this lets the last onResponse hook run
    const requests = lines.filter((l) => l.msg === 'request');
    assert.deepEqual(requests.map((l) => l.path), paths);
    assert.deepEqual(requests.map((l) => l.status), [200, 404, 404, 200]);
    for (const l of requests) {
      assert.equal(l.method, 'GET');
      assert.equal(typeof l.bytes, 'number');
      assert.equal(typeof l.ms, 'number');
    }
    const all = lines.map((l) => JSON.stringify(l)).join('\n');
    assert.ok(!all.includes(secret) && !all.includes(auth.slice(6)), `a credential reached the log:\n${all}`);
  });
});

// Timeouts below only stop a hung process (a server that never exits) from stalling the suite.
describe('wharf serve as a process', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-ops-proc-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('SIGTERM finishes a blob download in flight, then exits 0', { timeout: 120_000 }, async () => {
    let p: Proc | undefined;
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      p = spawnProc(process.execPath, ['--import', TSX, MAIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'sigterm')], dir);
      const proc = p;
      await waitFor('the server', proc, () => answers(url));
      const blob = randomBytes(32 << 20);
      const digest = await pushBlob(url, 'ops/sigterm', blob);

      // Start the download, read a little, then hold it: the socket buffers fill and the rest waits.
      const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${url}/v2/ops/sigterm/blobs/${digest}`, resolve).on('error', reject));
      assert.equal(res.statusCode, 200);
      const chunks: Buffer[] = [];
      const first = await new Promise<Buffer>((resolve) => res.once('data', (c: Buffer) => resolve(c)));
      chunks.push(first);
      res.pause();

      proc.child.kill('SIGTERM');
      // It stops listening at once: new connections are refused while the download goes on.
      await waitFor('new connections to be refused', proc, () => refused(port));
      assert.equal(proc.child.exitCode, null, 'it must wait for the download');

      res.on('data', (c: Buffer) => chunks.push(c));
      res.resume();
      await new Promise<void>((resolve, reject) => res.once('end', resolve).once('error', reject));
      const got = Buffer.concat(chunks);
      assert.equal(got.length, blob.length);
      assert.equal(sha256(got), digest);
      assert.equal(await proc.exited, 0, proc.out());
    } finally {
      await kill(p);
    }
  });

  test('a port in use gives a one-line error and a non-zero exit', { timeout: 60_000 }, async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const addr = blocker.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      const r = await wharf(['serve', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'inuse')], { cwd: dir });
      assert.notEqual(r.code, 0);
      const errLines = r.stderr.trim().split('\n');
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0]!, new RegExp(`^wharf: cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`));
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  test('npm start: the built CLI listens on 127.0.0.1:5000 with ./wharf-data', { timeout: 180_000 }, async (t) => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, 'node dist/cli/main.js serve');
    if (await portBusy(5000)) {
      t.skip('port 5000 is in use on this machine');
      return;
    }
    buildIfStale();
    const cwd = await mkdtemp(join(dir, 'start-'));
    let p: Proc | undefined;
    try {
      p = spawnProc(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'serve'], cwd);
      const proc = p;
      await waitFor('127.0.0.1:5000', proc, () => answers('http://127.0.0.1:5000'));
      assert.ok(existsSync(join(cwd, 'wharf-data')), 'state goes to ./wharf-data');
      assert.match(proc.out(), /listening on http:\/\/127\.0\.0\.1:5000/);
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
    } finally {
      await kill(p);
    }
  });
});

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(true));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
  });
}

/**
 * What `npm start` runs first (prestart): scripts/build.mjs, which builds only when dist/ is stale.
 * Run twice: the second run must find dist/ fresh and not start tsc, as npm start after npm
 * install does.
 */
function buildIfStale(): void {
  const build = (): { status: number | null; stderr: string } => spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, encoding: 'utf8' });
  const first = build();
  assert.equal(first.status, 0, `the build failed: ${first.stderr}`);
  const t0 = Date.now();
  const again = build();
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /building/, 'a fresh dist/ is not built again');
  assert.ok(Date.now() - t0 < 5000, `the freshness check took ${Date.now() - t0} ms`);
}
