import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { SignJWT } from 'jose';
import { startServer } from '../src/server/index.js';
import { call, type Reply } from '../src/testkit/http.js';
import { USERS, basic, errorCode, pushArtifact, startAuthServer, writeUsers } from './helpers/auth.js';
import { makeCa, makeCert } from './helpers/certs.js';

const json = (r: Reply): Record<string, unknown> => JSON.parse(r.body.toString()) as Record<string, unknown>;
const cookieOf = (r: Reply): string => {
  const c = r.headers.get('set-cookie') ?? '';
  return c.split(';')[0]!;
};
const signIn = (url: string, user: string, password: string, headers: Record<string, string> = {}): Promise<Reply> =>
  call(url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ user, password }) });

test('sign in and out with a session cookie; the cookie is the viewer', async (t) => {
  const s = await startAuthServer({ ui: { sessionTtl: '1h' } });
  t.after(() => s.close());
  await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'));

  const anon = await call(s.url, 'GET', '/api/v1/session');
  assert.equal(anon.status, 200);
  assert.equal(anon.headers.get('cache-control'), 'no-store');
  assert.deepEqual(json(anon), { user: null, admin: false, authEnabled: true, deleteEnabled: true, csrf: null });

  const r = await signIn(s.url, 'bob', USERS.bob!);
  assert.equal(r.status, 200, r.body.toString());
  const setCookie = r.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^wharf_session=[\w-]+\.[\w-]+\.[\w-]+; /);
  for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/', 'Max-Age=3600']) assert.ok(setCookie.includes(attr), `${attr} in ${setCookie}`);
  assert.ok(!setCookie.includes('Secure'), 'no Secure flag over plain HTTP');
  const body = json(r);
  assert.equal(body.user, 'bob');
  assert.equal(typeof body.csrf, 'string');

  const cookie = cookieOf(r);
  const me = await call(s.url, 'GET', '/api/v1/session', { headers: { cookie } });
  assert.deepEqual(json(me), { user: 'bob', admin: false, authEnabled: true, deleteEnabled: true, csrf: body.csrf });
  // bob may pull ml/**: the cookie lets the API show it; anonymous sees nothing there.
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/model', { headers: { cookie } })).status, 200);
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/model')).status, 404);
  // An admin is told so.
  const root = await signIn(s.url, 'root', USERS.root!);
  assert.equal(json(root).admin, true);

  // Sign out: CSRF-checked like any change; the cookie is cleared.
  assert.equal((await call(s.url, 'DELETE', '/api/v1/session', { headers: { cookie } })).status, 403);
  const out = await call(s.url, 'DELETE', '/api/v1/session', { headers: { cookie, 'x-csrf-token': String(body.csrf) } });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie') ?? '', /^wharf_session=; .*Max-Age=0/);
  assert.equal(json(out).user, null);
});

test("sign in with a registry token: the session has the token's access and ends with it", async (t) => {
  const s = await startAuthServer({ auth: { tokenExpiresIn: 60 } });
  t.after(() => s.close());
  await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'));
  await pushArtifact(s.url, 'ml/other', 'v1', basic('alice'));
  // alice may pull all of ml/**; her token only ml/model.
  const got = await call(s.url, 'GET', '/token?service=wharf&scope=repository:ml/model:pull', { headers: basic('alice') });
  const token = (JSON.parse(got.body.toString()) as { token: string }).token;
  const tokenSignIn = (tok: string): Promise<Reply> =>
    call(s.url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: tok }) });

  const r = await tokenSignIn(token);
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(json(r).user, 'alice');
  const maxAge = Number(/Max-Age=(\d+)/.exec(r.headers.get('set-cookie') ?? '')?.[1]);
  assert.ok(maxAge > 0 && maxAge <= 60, `the cookie ends with the token (Max-Age ${maxAge})`);
  const cookie = cookieOf(r);
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/model', { headers: { cookie } })).status, 200);
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/other', { headers: { cookie } })).status, 404, 'outside the token scope');

  const bad = await tokenSignIn(`${token.slice(0, -4)}AAAA`);
  assert.equal(bad.status, 401);
  assert.doesNotMatch(bad.headers.get('www-authenticate') ?? '', /^Basic/);
  assert.equal((await tokenSignIn('')).status, 400);
});

test('a wrong password is 401 (not a Basic challenge); failures count toward the /v2 limit, then 429 with Retry-After', async (t) => {
  const s = await startAuthServer({ auth: { rateLimit: { perClient: 100, perUser: 3, window: '1m' } } });
  t.after(() => s.close());
  const bad = await signIn(s.url, 'alice', 'nope');
  assert.equal(bad.status, 401);
  assert.equal(errorCode(bad), 'UNAUTHORIZED');
  assert.ok(!/^basic/i.test(bad.headers.get('www-authenticate') ?? ''), 'a browser must not pop up its own dialog');
  assert.equal(bad.headers.get('set-cookie'), null);
  assert.equal((await signIn(s.url, 'nobody', 'x')).status, 401);
  // Bad bodies are 4xx with the error body.
  assert.equal((await call(s.url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json' }, body: '{"user":1}' })).status, 400);
  assert.equal((await call(s.url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json' }, body: 'not json' })).status, 400);
  assert.equal((await call(s.url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=a&password=b' })).status, 415);
  assert.equal((await signIn(s.url, 'alice', 'x'.repeat(20_000))).status, 413);

  // One failure through /v2 and one more here reach alice's limit of 3.
  assert.equal((await call(s.url, 'GET', '/v2/ml/x/tags/list', { headers: basic('alice', 'wrong') })).status, 401);
  assert.equal((await signIn(s.url, 'alice', 'nope')).status, 401);
  const blocked = await signIn(s.url, 'alice', USERS.alice!);
  assert.equal(blocked.status, 429);
  assert.equal(errorCode(blocked), 'TOOMANYREQUESTS');
  assert.ok(Number(blocked.headers.get('retry-after')) > 0);
  // The limit is per user: bob still signs in.
  assert.equal((await signIn(s.url, 'bob', USERS.bob!)).status, 200);
});

test('tampered, expired, foreign and removed users\' cookies count as no session', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-session-'));
  const s = await startAuthServer({ ui: { sessionSecret: 'x'.repeat(40) } }, dir);
  t.after(() => s.close());
  await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'));
  const who = async (cookie: string): Promise<unknown> => json(await call(s.url, 'GET', '/api/v1/session', { headers: { cookie } })).user;

  const good = cookieOf(await signIn(s.url, 'alice', USERS.alice!));
  assert.equal(await who(good), 'alice');
  // One character in the middle of the signature changed (the last one may only carry padding bits).
  const c = good.at(-10) === 'A' ? 'B' : 'A';
  const tampered = `${good.slice(0, -10)}${c}${good.slice(-9)}`;
  assert.equal(await who(tampered), null);
  const cleared = await call(s.url, 'GET', '/api/v1/session', { headers: { cookie: tampered } });
  assert.match(cleared.headers.get('set-cookie') ?? '', /Max-Age=0/);
  // The payload changed to another user, signature kept.
  const [h, , sig] = good.slice('wharf_session='.length).split('.');
  const forged = Buffer.from(JSON.stringify({ sub: 'root', sid: 'x', aud: 'wharf-ui', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
  assert.equal(await who(`wharf_session=${h}.${forged}.${sig}`), null);
  // Signed with the right secret but expired; signed with another secret.
  const key = Buffer.from('x'.repeat(40));
  const expired = await new SignJWT({ sid: 's1' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setAudience('wharf-ui').setIssuedAt(1000).setExpirationTime(2000).sign(key);
  assert.equal(await who(`wharf_session=${expired}`), null);
  const foreign = await new SignJWT({ sid: 's1' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setAudience('wharf-ui').setExpirationTime('1h').sign(Buffer.from('y'.repeat(40)));
  assert.equal(await who(`wharf_session=${foreign}`), null);
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'alice', sid: 's', aud: 'wharf-ui', exp: 9e9 })).toString('base64url')}.`;
  assert.equal(await who(`wharf_session=${none}`), null);
  // A private repository stays hidden with any of them.
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/model', { headers: { cookie: foreign } })).status, 404);

  // alice leaves the htpasswd file: her cookie stops working (the file is re-read within a second).
  const { alice: _gone, ...rest } = USERS;
  await writeUsers(join(dir, 'auth', 'htpasswd'), rest);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await who(good), null);
  assert.equal((await call(s.url, 'GET', '/api/v1/tags?repo=ml/model', { headers: { cookie: good } })).status, 404);
});

test('a cookie is good on every replica with the same secret; without one, a key is made once in <data>/ui/session.key', async (t) => {
  const secret = 'shared-secret-of-the-replicas-0123456789';
  const a = await startAuthServer({ ui: { sessionSecret: secret } });
  const b = await startAuthServer({ ui: { sessionSecret: secret } });
  const c = await startAuthServer({});
  t.after(() => Promise.all([a.close(), b.close(), c.close()]));
  const cookie = cookieOf(await signIn(a.url, 'bob', USERS.bob!));
  assert.equal(json(await call(b.url, 'GET', '/api/v1/session', { headers: { cookie } })).user, 'bob');
  assert.equal(json(await call(c.url, 'GET', '/api/v1/session', { headers: { cookie } })).user, null);

  const keyPath = join(c.dataDir, 'ui', 'session.key');
  const st = await stat(keyPath);
  assert.equal(st.mode & 0o777, 0o600);
  const key = await readFile(keyPath, 'utf8');
  assert.match(key, /^[0-9a-f]{64}\n$/);
  const cCookie = cookieOf(await signIn(c.url, 'bob', USERS.bob!));
  await c.close();
  // Restarted on the same data: same key, so the cookie still works.
  const c2 = await startAuthServer({}, c.dataDir);
  t.after(() => c2.close());
  assert.equal(await readFile(keyPath, 'utf8'), key);
  assert.equal(json(await call(c2.url, 'GET', '/api/v1/session', { headers: { cookie: cCookie } })).user, 'bob');
});

test('CSRF: a cookie-borne change needs x-csrf-token; Origin must match Host; Authorization is exempt', async (t) => {
  const s = await startAuthServer();
  t.after(() => s.close());
  await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'));
  await pushArtifact(s.url, 'ml/model', 'v2', basic('alice'));
  await pushArtifact(s.url, 'ml/model', 'v3', basic('alice'));
  const r = await signIn(s.url, 'root', USERS.root!);
  const cookie = cookieOf(r);
  const csrf = String(json(r).csrf);
  const del = (tag: string, headers: Record<string, string>): Promise<Reply> => call(s.url, 'DELETE', `/api/v1/tags?repo=ml/model&tag=${tag}`, { headers });

  const missing = await del('v1', { cookie });
  assert.equal(missing.status, 403);
  assert.equal(errorCode(missing), 'DENIED');
  const wrong = await del('v1', { cookie, 'x-csrf-token': csrf.slice(0, -2) + 'xx' });
  assert.equal(wrong.status, 403);
  assert.equal(errorCode(wrong), 'DENIED');
  // Another session's token is no good either.
  const other = String(json(await signIn(s.url, 'root', USERS.root!)).csrf);
  assert.equal((await del('v1', { cookie, 'x-csrf-token': other })).status, 403);
  const host = new URL(s.url).host;
  const cross = await del('v1', { cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' });
  assert.equal(cross.status, 403);
  assert.equal(errorCode(cross), 'DENIED');
  assert.equal((await del('v1', { cookie, 'x-csrf-token': csrf, origin: 'null' })).status, 403);
  // Sign-in from another origin is refused too (login CSRF).
  assert.equal((await signIn(s.url, 'root', USERS.root!, { origin: 'https://evil.example' })).status, 403);

  assert.equal((await del('v1', { cookie, 'x-csrf-token': csrf, origin: `http://${host}` })).status, 204);
  assert.equal((await del('v2', { cookie, 'x-csrf-token': csrf })).status, 204);
  // Basic credentials are no ambient credential: no token needed (an Origin still must match).
  assert.equal((await del('v3', basic('root'))).status, 204);
  const left = await call(s.url, 'GET', '/v2/ml/model/tags/list', { headers: basic('root') });
  assert.deepEqual(json(left).tags, []);
});

test('with auth off there is no sign-in', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-open-'));
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  const me = await call(s.url, 'GET', '/api/v1/session');
  assert.deepEqual(json(me), { user: null, admin: false, authEnabled: false, deleteEnabled: true, csrf: null });
  const r = await signIn(s.url, 'alice', 'x');
  assert.equal(r.status, 404);
  assert.ok(errorCode(r) !== undefined);
  await assert.rejects(stat(join(dir, 'ui', 'session.key')), /ENOENT/);
});

/** One HTTPS request with the test CA (and a client certificate, if given). */
function tlsCall(url: string, method: string, path: string, opts: { ca: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpsRequest({ host: u.hostname, port: u.port, method, path, ca: opts.ca, cert: opts.cert, key: opts.key, agent: false, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('over TLS the cookie is Secure; a client certificate signs its user in without a password', { skip: spawnSync('openssl', ['version']).status !== 0 ? 'no openssl' : false }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-tls-'));
  const ca = makeCa(dir);
  const srv = makeCert(dir, ca, 'server', 'server');
  const cl = makeCert(dir, ca, 'bob-cert', 'client', 'bob');
  const s = await startAuthServer({ tls: { cert: srv.cert, key: srv.key, clientCa: ca.cert } }, join(dir, 'data'));
  t.after(() => s.close());
  const caPem = await readFile(ca.cert);
  const r = await tlsCall(s.url, 'POST', '/api/v1/session', { ca: caPem, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice', password: USERS.alice }) });
  assert.equal(r.status, 200, r.body);
  const setCookie = String(r.headers['set-cookie']);
  assert.match(setCookie, /; HttpOnly; SameSite=Strict; Secure$/);

  const me = await tlsCall(s.url, 'GET', '/api/v1/session', { ca: caPem, cert: await readFile(cl.cert), key: await readFile(cl.key) });
  assert.equal(me.status, 200);
  const info = JSON.parse(me.body) as { user: string | null; csrf: string | null };
  assert.equal(info.user, 'bob');
  // No cookie, so nothing to protect with a CSRF token.
  assert.equal(info.csrf, null);
});
