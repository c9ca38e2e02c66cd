/**
 * TLS for `wharf serve`: HTTPS from PEM files, client certificates as users (mTLS), and a reload
 * on SIGHUP that new connections see while open ones go on. Certificates come from `openssl`.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { basic, startAuthServer } from './helpers/auth.js';
import { makeCa, makeCert } from './helpers/certs.js';
import { MAIN } from './helpers/cli.js';
import { freePort, missingPeer } from './helpers/distribution.js';

const TSX = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

interface Got {
  status: number;
  body: string;
  fingerprint: string;
  socket: TLSSocket;
  challenge: string;
}

function get(url: string, path: string, opts: { ca: Buffer; cert?: Buffer; key?: Buffer; agent?: Agent; headers?: Record<string, string> }): Promise<Got> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path, ca: opts.ca, cert: opts.cert, key: opts.key, agent: opts.agent ?? false, headers: opts.headers }, (res) => {
      let body = '';
      const socket = res.socket as TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint, socket, challenge: String(res.headers['www-authenticate'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const skip = missingPeer('openssl');

describe('TLS and client certificates', { skip }, () => {
  let dir: string;
  let s: Awaited<ReturnType<typeof startAuthServer>>;
  let ca: Buffer;
  let alice: { cert: Buffer; key: Buffer };
  let stranger: { cert: Buffer; key: Buffer };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-tls-'));
    const c = makeCa(dir);
    const srv = makeCert(dir, c, 'server', 'server', '127.0.0.1');
    const cl = makeCert(dir, c, 'alice', 'client');
    const other = makeCa(dir, 'other-ca');
    const st = makeCert(dir, other, 'stranger', 'client', 'root');
    ca = await readFile(c.cert);
    alice = { cert: await readFile(cl.cert), key: await readFile(cl.key) };
    stranger = { cert: await readFile(st.cert), key: await readFile(st.key) };
    s = await startAuthServer({ tls: { cert: srv.cert, key: srv.key, clientCa: c.cert } }, join(dir, 'data'));
  });
  after(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('HTTPS: the server URL is https and the challenge realm too', async () => {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(s.url, '/v2/', { ca });
    assert.equal(r.status, 401);
    assert.match(r.challenge, new RegExp(`^Bearer realm="${s.url}/token"`));
  });

  test('a client certificate from the trusted CA makes its subject CN the user', async () => {
    assert.equal((await get(s.url, '/v2/', { ca, ...alice })).status, 200);
    // alice (group ml-team) may push to ml/**: the upload starts.
    const r = await new Promise<number>((resolve, reject) => {
      const u = new URL(s.url);
      const req = request({ host: u.hostname, port: u.port, method: 'POST', path: '/v2/ml/tls/blobs/uploads/', ca, ...alice, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r, 202);
  });

  test('a certificate from another CA counts as none, whatever its CN says', async () => {
    assert.equal((await get(s.url, '/v2/', { ca, ...stranger })).status, 401);
    assert.equal((await get(s.url, '/v2/', { ca, ...stranger, headers: basic('bob') })).status, 200);
  });
});

describe('TLS reload on SIGHUP', { skip }, () => {
  test('new connections get the new certificate; an open keep-alive connection goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-tls-hup-'));
    const c = makeCa(dir);
    const one = makeCert(dir, c, 'one', 'server', '127.0.0.1');
    const two = makeCert(dir, c, 'two', 'server', '127.0.0.1');
    await copyFile(one.cert, join(dir, 'live.pem'));
    await copyFile(one.key, join(dir, 'live.key'));
    const port = await freePort();
    await writeFile(join(dir, 'wharf.yaml'), `data: ${join(dir, 'data')}\nlog: { level: silent }\n`);
    const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--config', join(dir, 'wharf.yaml'), '--listen', `127.0.0.1:${port}`, '--tls-cert', join(dir, 'live.pem'), '--tls-key', join(dir, 'live.key')], { stdio: 'ignore' });
    const url = `https://127.0.0.1:${port}`;
    const ca = await readFile(c.cert);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let first: Got | undefined;
      for (let i = 0; i < 100 && !first; i++) {
        first = await get(url, '/healthz', { ca, agent }).catch(() => undefined);
        if (!first) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(first, 'server started');
      const fpOne = first.fingerprint;
      await copyFile(two.cert, join(dir, 'live.pem'));
      await copyFile(two.key, join(dir, 'live.key'));
      child.kill('SIGHUP');
      let fresh = fpOne;
      for (let i = 0; i < 100 && fresh === fpOne; i++) {
        fresh = (await get(url, '/healthz', { ca })).fingerprint;
        if (fresh === fpOne) await new Promise((r) => setTimeout(r, 100));
      }
      assert.notEqual(fresh, fpOne, 'a new connection sees the new certificate');
      const again = await get(url, '/healthz', { ca, agent });
      assert.equal(again.status, 200);
      assert.equal(again.socket, first.socket, 'the keep-alive connection was not dropped');
      assert.equal(again.fingerprint, fpOne);
    } finally {
      agent.destroy();
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
