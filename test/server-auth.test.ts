/**
 * Access control of `wharf serve`: htpasswd users, rules from the config, 401/403 without
 * existence leaks, filtered listings, mounts, path tricks, the token service and rate limiting.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { pino } from 'pino';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { HtpasswdFile, REDACT_PATHS, parseHtpasswd } from '../src/server/auth/index.js';
import { missingPeer } from './helpers/distribution.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { call, callRaw, type Reply } from '../src/testkit/http.js';
import { RULES, basic, bearer, errorCode, pushArtifact, startAuthServer, writeUsers } from './helpers/auth.js';
import { startTokenServer } from './helpers/token-server.js';
import { wharf } from './helpers/cli.js';

const ROOT = basic('root');

describe('access control', () => {
  let s: RunningServer & { dataDir: string };
  let url: string;
  let secret: { digest: string; layer: string };
  let ml: { digest: string; layer: string };
  before(async () => {
    s = await startAuthServer();
    url = s.url;
    secret = await pushArtifact(url, 'secret/model', 'v1', ROOT);
    ml = await pushArtifact(url, 'ml/model', 'v1', basic('alice'));
    await pushArtifact(url, 'public/tool', 'v1', ROOT);
  });
  after(async () => {
    await s.close();
    await rm(s.dataDir, { recursive: true, force: true });
  });

  test('anonymous /v2/ gets 401 UNAUTHORIZED with a Bearer challenge naming realm and service', async () => {
    const r = await call(url, 'GET', '/v2/');
    assert.equal(r.status, 401);
    assert.equal(errorCode(r), 'UNAUTHORIZED');
    assert.equal(r.headers.get('www-authenticate'), `Bearer realm="${url}/token",service="wharf"`);
    assert.equal((await call(url, 'GET', '/v2/', { headers: basic('bob') })).status, 200);
  });

  test('anonymous read of a public repository works; elsewhere a 401 that asks for the scope, same for missing repositories', async () => {
    assert.equal((await call(url, 'GET', '/v2/public/tool/manifests/v1')).status, 200);
    const a = await call(url, 'GET', '/v2/ml/model/manifests/v1');
    const b = await call(url, 'GET', '/v2/ml/nothing/manifests/v1');
    assert.equal(a.status, 401);
    assert.match(a.headers.get('www-authenticate') ?? '', /scope="repository:ml\/model:pull"/);
    assert.equal(b.status, 401);
    assert.deepEqual(JSON.parse(a.body.toString()), JSON.parse(b.body.toString()));
    const push = await call(url, 'POST', '/v2/public/tool/blobs/uploads/');
    assert.equal(push.status, 401);
    assert.match(push.headers.get('www-authenticate') ?? '', /scope="repository:public\/tool:pull,push"/);
  });

  test('a wrong password is 401, never anonymous access', async () => {
    const r = await call(url, 'GET', '/v2/public/tool/manifests/v1', { headers: basic('bob', 'nope') });
    assert.equal(r.status, 401);
    assert.equal(errorCode(r), 'UNAUTHORIZED');
  });

  test('authenticated but not allowed is 403 DENIED, the same for a repository that exists and one that does not', async () => {
    const a = await call(url, 'GET', '/v2/secret/model/manifests/v1', { headers: basic('bob') });
    const b = await call(url, 'GET', '/v2/secret/nothing/manifests/v1', { headers: basic('bob') });
    assert.equal(a.status, 403);
    assert.equal(errorCode(a), 'DENIED');
    assert.equal(b.status, 403);
    assert.deepEqual(a.body, b.body);
    assert.equal((await call(url, 'GET', `/v2/secret/model/blobs/${secret.layer}`, { headers: basic('bob') })).status, 403);
    assert.equal((await call(url, 'GET', '/v2/secret/model/tags/list', { headers: basic('bob') })).status, 403);
    assert.equal((await call(url, 'GET', `/v2/secret/model/referrers/${secret.digest}`, { headers: basic('bob') })).status, 403);
    // bob may pull ml/** but not push or delete; alice (by group) may push but not delete.
    assert.equal((await call(url, 'GET', `/v2/ml/model/blobs/${ml.layer}`, { headers: basic('bob') })).status, 200);
    assert.equal((await call(url, 'POST', '/v2/ml/model/blobs/uploads/', { headers: basic('bob') })).status, 403);
    assert.equal((await call(url, 'DELETE', `/v2/ml/model/manifests/${ml.digest}`, { headers: basic('alice') })).status, 403);
  });

  test('_catalog lists only the repositories the caller may read', async () => {
    const list = async (h: Record<string, string>): Promise<string[]> => (JSON.parse((await call(url, 'GET', '/v2/_catalog', { headers: h })).body.toString()) as { repositories: string[] }).repositories;
    assert.deepEqual(await list({}), ['public/tool']);
    assert.deepEqual(await list(basic('bob')), ['ml/model', 'public/tool']);
    assert.deepEqual(await list(ROOT), ['ml/model', 'public/tool', 'secret/model']);
    const page = await call(url, 'GET', '/v2/_catalog?n=1', { headers: basic('bob') });
    assert.deepEqual(JSON.parse(page.body.toString()), { repositories: ['ml/model'] });
    assert.match(page.headers.get('link') ?? '', /last=ml%2Fmodel/);
  });

  test('the filtered catalog pages as the unfiltered one: an n past the page size (even past 9 digits) gets a page, a bad n the spec error', async () => {
    // Access control answered the catalog itself before, with its own check of n: 10 digits got 400 there and 200 without auth.
    const big = await call(url, 'GET', '/v2/_catalog?n=12345678901', { headers: ROOT });
    assert.equal(big.status, 200);
    assert.deepEqual(JSON.parse(big.body.toString()), { repositories: ['ml/model', 'public/tool', 'secret/model'] });
    assert.equal(errorCode(await call(url, 'GET', '/v2/_catalog?n=x', { headers: ROOT })), 'UNSUPPORTED');
  });

  test('a mount from a repository the user cannot read becomes a plain upload (202), not a mount (201)', async () => {
    const r = await call(url, 'POST', `/v2/ml/copy/blobs/uploads/?mount=${secret.layer}&from=secret/model`, { headers: basic('alice') });
    assert.equal(r.status, 202);
    assert.equal((await call(url, 'HEAD', `/v2/ml/copy/blobs/${secret.layer}`, { headers: basic('alice') })).status, 404);
    const ok = await call(url, 'POST', `/v2/ml/copy/blobs/uploads/?mount=${ml.layer}&from=ml/model`, { headers: basic('alice') });
    assert.equal(ok.status, 201);
  });

  // Each trick asks for secret/model while naming something bob may read; none may serve it.
  const tricks: Array<[string, string]> = [
    ['encoded dots', '/v2/ml/%2e%2e/secret/model/manifests/v1'],
    ['encoded slash', '/v2/ml%2f..%2fsecret/model/manifests/v1'],
    ['dot segments', '/v2/ml/model/../../secret/model/manifests/v1'],
    ['doubled slashes', '/v2/ml//../secret/model/manifests/v1'],
    ['doubled slash inside the name', '/v2/secret//model/manifests/v1'],
    ['case', '/v2/Secret/Model/manifests/v1'],
    ['case of /v2', '/V2/secret/model/manifests/v1'],
    ['trailing slash', '/v2/secret/model/manifests/v1/'],
    ['ignored segment (./)', '/v2/secret/./model/manifests/v1'],
    ['ignored query naming an allowed repository', '/v2/secret/model/manifests/v1?/v2/ml/model/manifests/v1'],
    ['ignored matrix parameter', '/v2/ml;/../secret/model/manifests/v1'],
    ['fragment', '/v2/secret/model/manifests/v1#/v2/ml/model/manifests/v1'],
    ['absolute-form request target', '{url}/v2/secret/model/manifests/v1'],
    ['doubled leading slash', '//v2/secret/model/manifests/v1'],
  ];
  for (const [name, path] of tricks) {
    test(`path trick: ${name}`, async () => {
      for (const h of [basic('bob'), {}]) {
        const r: Reply = await callRaw(url, 'GET', path.replace('{url}', url), { headers: h });
        assert.ok([400, 401, 403, 404].includes(r.status), `${path} → ${r.status}`);
        assert.ok(!r.body.includes(Buffer.from(secret.layer.slice(7))), `${path} served the secret manifest`);
      }
    });
  }

  test('tokens: granted exactly, used per repository, rejected when expired, foreign, alg none or a refresh token', async () => {
    const get = await call(url, 'GET', '/token?service=wharf&scope=repository:ml/model:pull,push&scope=repository:secret/model:pull', { headers: basic('bob') });
    assert.equal(get.status, 200);
    const body = JSON.parse(get.body.toString()) as { token: string; access_token: string; expires_in: number };
    assert.equal(body.expires_in, 300);
    const claims = JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString()) as { access: unknown; sub: string };
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'ml/model', actions: ['pull'] }]);
    assert.equal(claims.sub, 'bob');
    const t = bearer(body.token);
    assert.equal((await call(url, 'GET', '/v2/ml/model/manifests/v1', { headers: t })).status, 200);
    const b = await call(url, 'GET', '/v2/secret/model/manifests/v1', { headers: t });
    assert.equal(b.status, 401);
    assert.match(b.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
    assert.equal((await call(url, 'POST', '/v2/ml/model/blobs/uploads/', { headers: t })).status, 401);

    const jwk = JSON.parse(await readFile(join(s.dataDir, 'auth', 'token-key.jwk'), 'utf8')) as JWK;
    const key = await importJWK(jwk, 'ES256');
    const access = [{ type: 'repository', name: 'ml/model', actions: ['pull'] }];
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ access, sub: 'bob' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('wharf').setAudience('wharf').setIssuedAt(now - 600).setExpirationTime(now - 300).sign(key);
    const other = await generateKeyPair('ES256');
    const foreign = await new SignJWT({ access, sub: 'bob' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('wharf').setAudience('wharf').setExpirationTime(now + 300).sign(other.privateKey);
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ access, sub: 'bob', iss: 'wharf', aud: 'wharf', exp: now + 300 })).toString('base64url')}.`;
    const wrongAud = await new SignJWT({ access, sub: 'bob' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('wharf').setAudience('elsewhere').setExpirationTime(now + 300).sign(key);
    for (const [what, tok] of [['expired', expired], ['foreign key', foreign], ['alg none', none], ['wrong audience', wrongAud]] as const) {
      const r = await call(url, 'GET', '/v2/ml/model/manifests/v1', { headers: bearer(tok) });
      assert.equal(r.status, 401, what);
      assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/, what);
    }

    const post = await call(url, 'POST', '/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-pw', service: 'wharf', scope: 'repository:ml/model:push,pull', access_type: 'offline', client_id: 'test' }).toString(),
    });
    assert.equal(post.status, 200);
    const p = JSON.parse(post.body.toString()) as { access_token: string; refresh_token: string };
    assert.ok(p.refresh_token);
    assert.equal((await call(url, 'GET', '/v2/ml/model/manifests/v1', { headers: bearer(p.refresh_token) })).status, 401, 'a refresh token is no access token');
    const refreshed = await call(url, 'POST', '/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: p.refresh_token, service: 'wharf', scope: 'repository:ml/model:push' }).toString(),
    });
    assert.equal(refreshed.status, 200);
    const r2 = JSON.parse(refreshed.body.toString()) as { access_token: string };
    assert.equal((await call(url, 'POST', '/v2/ml/model/blobs/uploads/', { headers: bearer(r2.access_token) })).status, 202);
    const bad = await call(url, 'POST', '/token', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=alice&password=wrong' });
    assert.equal(bad.status, 401);
    // registry:catalog:* is granted to users; the catalog then shows what the user may read.
    const cat = JSON.parse((await call(url, 'GET', '/token?scope=registry:catalog:*', { headers: basic('bob') })).body.toString()) as { token: string };
    const repos = JSON.parse((await call(url, 'GET', '/v2/_catalog', { headers: bearer(cat.token) })).body.toString()) as { repositories: string[] };
    assert.deepEqual(repos.repositories.filter((r) => !r.startsWith('ml/copy')), ['ml/model', 'public/tool']);
    // Anonymous tokens carry only anonymous rights.
    const anon = JSON.parse((await call(url, 'GET', '/token?scope=repository:public/tool:pull,push&scope=repository:ml/model:pull')).body.toString()) as { token: string };
    const ac = JSON.parse(Buffer.from(anon.token.split('.')[1]!, 'base64url').toString()) as { access: unknown };
    assert.deepEqual(ac.access, [{ type: 'repository', name: 'public/tool', actions: ['pull'] }]);
  });

  test('wharf user add, ls, passwd and rm manage the htpasswd file the server reads', async () => {
    const file = join(s.dataDir, 'auth', 'htpasswd');
    const add = await wharf(['user', 'add', 'carol', '--htpasswd', file, '--password-stdin', '--cost', '4'], { input: 'carol-pw\n' });
    assert.equal(add.code, 0, add.stderr);
    assert.match(await readFile(file, 'utf8'), /^carol:\$2[aby]\$04\$/m);
    assert.match((await wharf(['user', 'ls', '--htpasswd', file])).stdout, /^carol$/m);
    // The server sees the new user without a restart (the file is re-read when it changes).
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = (await call(url, 'GET', '/v2/', { headers: basic('carol', 'carol-pw') })).status === 200;
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, 'carol can log in');
    assert.equal((await wharf(['user', 'passwd', 'carol', '--htpasswd', file, '--password-stdin', '--cost', '4'], { input: 'new-pw' })).code, 0);
    assert.equal((await wharf(['user', 'add', 'carol', '--htpasswd', file, '--password-stdin'], { input: 'x' })).code, 1);
    assert.equal((await wharf(['user', 'rm', 'carol', '--htpasswd', file])).code, 0);
    assert.doesNotMatch(await readFile(file, 'utf8'), /carol/);
  });
});

describe('login rate limiting', () => {
  test('1,000 wrong passwords: refused with 429 past the limit, and the server keeps answering', async () => {
    const s = await startAuthServer({ auth: { rateLimit: { perClient: 20, perUser: 10, window: '1m' } } });
    try {
      const codes = new Map<number, number>();
      for (let i = 0; i < 1000; i += 50) {
        const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => call(s.url, 'GET', '/v2/', { headers: basic(j % 2 ? 'victim' : `nobody${i + j}`, 'wrong') })));
        for (const r of batch) codes.set(r.status, (codes.get(r.status) ?? 0) + 1);
        assert.equal((await call(s.url, 'GET', '/healthz')).status, 200);
      }
      assert.ok((codes.get(429) ?? 0) >= 970, `statuses ${JSON.stringify([...codes])}`);
      // Wrong passwords checked side by side (50 at once here) still count against one limit.
      assert.ok((codes.get(401) ?? 0) <= 20, `statuses ${JSON.stringify([...codes])}`);
      assert.equal([...codes.keys()].filter((c) => c !== 401 && c !== 429).length, 0);
      const r = await call(s.url, 'GET', '/v2/', { headers: basic('victim', 'wrong') });
      assert.equal(r.status, 429);
      assert.equal(errorCode(r), 'TOOMANYREQUESTS');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      // The public repository still answers anonymous pulls.
      assert.equal((await call(s.url, 'GET', '/v2/public/none/tags/list')).status, 404);
    } finally {
      await s.close();
      await rm(s.dataDir, { recursive: true, force: true });
    }
  });
});

describe('external token issuers', () => {
  test('a certificate bundle: tokens of that issuer are honoured, scoped by their claims', async () => {
    const ts = await startTokenServer({ erin: 'erin-pw' });
    const s = await startAuthServer({ auth: { realm: ts.realm, service: ts.service, external: { issuer: ts.issuer, certs: ts.certFile } } });
    try {
      await pushArtifact(s.url, 'ext/repo', 'v1', ROOT);
      const tok = (await (await fetch(`${ts.realm}?service=${ts.service}&scope=repository:ext/repo:pull`, { headers: basic('erin', 'erin-pw') })).json()) as { token: string };
      assert.equal((await call(s.url, 'GET', '/v2/ext/repo/manifests/v1', { headers: bearer(tok.token) })).status, 200);
      assert.equal((await call(s.url, 'GET', '/v2/ml/model/manifests/v1', { headers: bearer(tok.token) })).status, 401);
      const anon = await call(s.url, 'GET', '/v2/ext/repo/manifests/v1');
      assert.match(anon.headers.get('www-authenticate') ?? '', new RegExp(`realm="${ts.realm}",service="${ts.service}"`));
    } finally {
      await s.close();
      await ts.close();
      await rm(s.dataDir, { recursive: true, force: true });
    }
  });

  test('a JWKS file: the key with the token kid verifies it; another issuer name does not pass', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-jwks-'));
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    const s = await startAuthServer({ auth: { external: { issuer: 'idp', jwks: join(dir, 'jwks.json') } } });
    const sign = (iss: string): Promise<string> =>
      new SignJWT({ access: [{ type: 'repository', name: 'ext/repo', actions: ['pull', 'push'] }], sub: 'frank' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(iss).setAudience('wharf').setExpirationTime('5m').sign(privateKey);
    try {
      assert.equal((await call(s.url, 'POST', '/v2/ext/repo/blobs/uploads/', { headers: bearer(await sign('idp')) })).status, 202);
      assert.equal((await call(s.url, 'POST', '/v2/ext/repo/blobs/uploads/', { headers: bearer(await sign('someone-else')) })).status, 401);
    } finally {
      await s.close();
      await rm(s.dataDir, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('external token issuers by JWKS URL', () => {
  test('keys are fetched from the issuer URL', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'u1', alg: 'ES256', use: 'sig' }] });
    const idp = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks));
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    const s = await startAuthServer({ auth: { external: { issuer: 'idp2', jwks: `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks.json` } } });
    try {
      const tok = await new SignJWT({ access: [{ type: 'repository', name: 'ext/url', actions: ['push'] }], sub: 'henry' })
        .setProtectedHeader({ alg: 'ES256', kid: 'u1' }).setIssuer('idp2').setAudience('wharf').setExpirationTime('5m').sign(privateKey);
      assert.equal((await call(s.url, 'POST', '/v2/ext/url/blobs/uploads/', { headers: bearer(tok) })).status, 202);
      assert.equal((await call(s.url, 'POST', '/v2/ext/other/blobs/uploads/', { headers: bearer(tok) })).status, 401);
    } finally {
      await s.close();
      await new Promise<void>((resolve) => idp.close(() => resolve()));
      await rm(s.dataDir, { recursive: true, force: true });
    }
  });
});

describe('secrets in logs', () => {
  test('passwords and tokens never reach the log, also at trace level with errors', async () => {
    const lines: string[] = [];
    const dest = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) });
    const dir = await mkdtemp(join(tmpdir(), 'wharf-logs-'));
    await writeUsers(join(dir, 'auth', 'htpasswd'));
    const s = await startServer({ dataDir: dir, logger: pino({ level: 'trace', redact: REDACT_PATHS }, dest), config: { auth: { rules: RULES, groups: { 'ml-team': ['alice'] } } } });
    try {
      const tok = JSON.parse((await call(s.url, 'GET', '/token?scope=repository:ml/model:pull', { headers: basic('alice') })).body.toString()) as { token: string };
      await call(s.url, 'GET', '/v2/ml/model/manifests/v1', { headers: bearer(tok.token) });
      await call(s.url, 'GET', '/v2/ml/model/manifests/v1', { headers: basic('alice', 'wrong-secret-pw') });
      await call(s.url, 'POST', '/token', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=alice&password=alice-pw&access_type=offline' });
      await call(s.url, 'GET', '/v2/ml/%zz/manifests/v1', { headers: basic('alice') });
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
    const log = lines.join('');
    assert.ok(log.length > 0);
    for (const secret of ['alice-pw', 'wrong-secret-pw', Buffer.from('alice:alice-pw').toString('base64'), 'eyJ']) {
      assert.ok(!log.includes(secret), `the log holds ${secret.slice(0, 12)}`);
    }
  });
});

describe('htpasswd files from Apache', { skip: missingPeer('htpasswd', 'htpasswd (apache2-utils)') }, () => {
  test('htpasswd -B entries verify; MD5 and SHA entries are refused with a message that says bcrypt', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-htpasswd-'));
    try {
      const file = join(dir, 'htpasswd');
      assert.equal(spawnSync('htpasswd', ['-B', '-C', '4', '-b', '-c', file, 'gina', 'gina-pw']).status, 0);
      const h = new HtpasswdFile(file);
      assert.equal(await h.verify('gina', 'gina-pw'), true);
      assert.equal(await h.verify('gina', 'nope'), false);
      assert.equal(await h.verify('nobody', 'gina-pw'), false);
      assert.equal(spawnSync('htpasswd', ['-m', '-b', file, 'md5user', 'pw']).status, 0);
      assert.throws(() => parseHtpasswd(readFileSync(file, 'utf8'), file), /line 2: expected user:bcrypt-hash/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('basic challenge', () => {
  test('auth.challenge basic: 401s ask for basic credentials, which then work', async () => {
    const s = await startAuthServer({ auth: { challenge: 'basic' } });
    try {
      const r = await call(s.url, 'GET', '/v2/ml/model/tags/list');
      assert.equal(r.status, 401);
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="wharf"');
      assert.equal((await call(s.url, 'GET', '/v2/', { headers: basic('bob') })).status, 200);
    } finally {
      await s.close();
      await rm(s.dataDir, { recursive: true, force: true });
    }
  });
});
