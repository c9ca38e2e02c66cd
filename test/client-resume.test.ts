/**
 * Interrupted transfers resume across processes (issue 24). The real `wharf` CLI runs as a child
 * process against a real `wharf serve`, through a proxy that counts what crosses the wire and
 * kills the CLI (`kill -9`) part-way. Run again, a push sends only what the registry had not
 * acknowledged, and a pull fetches only what it had not written; both end verified.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { MAIN, TSX } from './helpers/cli.js';
import { forward, startProxy, type Proxy } from './helpers/proxy.js';

const MiB = 1 << 20;

interface Counts {
  /**
   * PATCHes of file content the registry acknowledged (202), and their body bytes; the 2-byte
   * empty config, uploaded too, is left out.
   */
  patches: number;
  patchBytes: number;
  /** Body bytes of blob GETs relayed to the client. */
  blobBytes: number;
}

/** The CLI as a child process, with its own HOME (the upload sessions and the digest memo live there). */
function runWharf(args: string[], home: string): { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], { env: { ...process.env, HOME: home, XDG_CACHE_HOME: '', WHARF_CACHE: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  return { child, done };
}

describe('interrupted transfers resume across processes', () => {
  let server: RunningServer;
  let proxy: Proxy;
  let dir: string;
  let counts: Counts;
  /** Called after each PATCH the registry acknowledged, and after each relayed piece of a blob GET. */
  let onPatch: (n: number) => void = () => undefined;
  let onBlobBytes: (total: number) => void = () => undefined;
  /** Counts start again for each run; a request of a run before (still draining) counts no more. */
  let run = 0;
  const reset = (): void => {
    counts = { patches: 0, patchBytes: 0, blobBytes: 0 };
    run++;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-resume-'));
    server = await startServer({ dataDir: join(dir, 'data'), port: 0, logLevel: 'silent', config: { storage: { fsync: false } } });
    reset();
    proxy = await startProxy(server.url, async (req, res, target) => {
      const mine = run;
      if (req.method === 'PATCH') {
        const len = Number(req.headers['content-length'] ?? 0);
        const up = await forward(req, target);
        // Counted when the registry acknowledges, not when the client hears it: a client killed
        // with a PATCH in flight never reads that answer, but the bytes are the registry's.
        if (up.statusCode === 202 && len > 2 && mine === run) {
          counts.patches++;
          counts.patchBytes += len;
          onPatch(counts.patches);
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        await new Promise((r) => res.on('close', r));
        return true;
      }
      if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
        const up = await forward(req, target);
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.on('close', () => up.destroy());
        up.on('data', (c: Buffer) => {
          if (mine !== run) return;
          counts.blobBytes += c.length;
          res.write(c);
          onBlobBytes(counts.blobBytes);
        });
        up.on('end', () => res.end());
        return true;
      }
      return false;
    });
  });
  after(async () => {
    await proxy?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const memo of [true, false]) {
    test(`a chunked push killed after 3 of 8 chunks sends only the 5 others when run again (${memo ? 'hashed as it uploads' : 'hashed first, --no-digest-memo'})`, async () => {
      const home = await mkdtemp(join(dir, 'home-'));
      const file = join(dir, `model-${memo}.bin`);
      const data = randomBytes(8 * MiB);
      await writeFile(file, data);
      const ref = `${proxy.host}/resume/push-${memo}:v1`;
      const args = ['push', '--plain-http', '--chunk-size', '1M', ...(memo ? [] : ['--no-digest-memo']), ref, file];

      reset();
      const first = runWharf(args, home);
      onPatch = (n) => {
        if (n === 3) first.child.kill('SIGKILL');
      };
      const r1 = await first.done;
      onPatch = () => undefined;
      assert.equal(r1.signal, 'SIGKILL', `the first push was killed: ${r1.stderr}`);
      const acked = counts.patchBytes;
      assert.ok(acked >= 3 * MiB && acked < data.length, `acknowledged before the kill: ${acked}`);

      reset();
      const second = await runWharf(args, home).done;
      assert.equal(second.code, 0, second.stderr);
      // Every byte acknowledged before the kill stays acknowledged: only the rest is sent.
      assert.equal(counts.patchBytes, data.length - acked, `bytes sent again: ${counts.patchBytes} of ${data.length}, ${acked} acknowledged before`);
      assert.equal(counts.patches, Math.ceil((data.length - acked) / MiB));

      const got = await fetch(`${server.url}/v2/resume/push-${memo}/blobs/sha256:${createHash('sha256').update(data).digest('hex')}`);
      assert.equal(got.status, 200);
      assert.ok(Buffer.from(await got.arrayBuffer()).equals(data));
      // The session is forgotten once the blob is in.
      const sessions = JSON.parse(await readFile(join(home, '.cache', 'wharf', 'uploads.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(sessions), []);
    });
  }

  test('a push whose saved session the registry no longer knows starts a fresh upload', async () => {
    const home = await mkdtemp(join(dir, 'home-'));
    const file = join(dir, 'gone.bin');
    const data = randomBytes(3 * MiB);
    await writeFile(file, data);
    const st = await stat(file, { bigint: true });
    await mkdir(join(home, '.cache', 'wharf'), { recursive: true });
    const key = `${proxy.host}/resume/gone@${file}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    await writeFile(join(home, '.cache', 'wharf', 'uploads.json'), JSON.stringify({ [key]: { location: `${proxy.url}/v2/resume/gone/blobs/uploads/00000000-0000-4000-8000-000000000000`, offset: 2 * MiB, at: Date.now() } }));
    reset();
    const r = await runWharf(['push', '--plain-http', '--chunk-size', '1M', `${proxy.host}/resume/gone:v1`, file], home).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(counts.patchBytes, data.length);
  });

  test('a pull killed part-way fetches only the rest when run again, and checks the whole file', async () => {
    const home = await mkdtemp(join(dir, 'home-'));
    const file = join(dir, 'dataset.bin');
    const data = randomBytes(24 * MiB);
    await writeFile(file, data);
    const ref = `${proxy.host}/resume/pull:v1`;
    assert.equal((await runWharf(['push', '--plain-http', ref, file], home).done).code, 0);

    const out = join(dir, 'out');
    const args = ['pull', '--plain-http', ref, '-o', out];
    reset();
    const first = runWharf(args, home);
    onBlobBytes = (total) => {
      if (total >= 10 * MiB) first.child.kill('SIGKILL');
    };
    const r1 = await first.done;
    onBlobBytes = () => undefined;
    assert.equal(r1.signal, 'SIGKILL');
    const partial = (await readdir(out)).filter((f) => f.endsWith('.partial'));
    assert.equal(partial.length, 1, `the interrupted download is kept: ${(await readdir(out)).join(', ')}`);
    const have = (await stat(join(out, partial[0]!))).size;
    assert.ok(have > 0 && have < data.length, `bytes written before the kill: ${have}`);

    reset();
    const r2 = await runWharf(args, home).done;
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(counts.blobBytes, data.length - have, `bytes fetched again: ${counts.blobBytes}, ${have} kept from before`);
    assert.ok((await readFile(join(out, 'dataset.bin'))).equals(data));
    assert.deepEqual((await readdir(out)).filter((f) => f.startsWith('.wharf-')), []);

    // A kept part whose bytes are wrong is found out at the end, and the file fetched again whole.
    await rm(join(out, 'dataset.bin'));
    const bad = Buffer.from(data.subarray(0, 5 * MiB));
    bad[1234] = bad[1234]! ^ 0xff;
    await writeFile(join(out, partial[0]!), bad);
    reset();
    const r3 = await runWharf(args, home).done;
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(counts.blobBytes, data.length - bad.length + data.length);
    assert.ok((await readFile(join(out, 'dataset.bin'))).equals(data));
  });
});
