/**
 * Real clients authenticate against `wharf serve`: skopeo (--creds) and podman (login, push,
 * pull) through the token flow, `wharf login` with stored credentials, and skopeo with a client
 * certificate (mTLS) made by openssl.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { join } from 'node:path';
import { basic, startAuthServer } from './helpers/auth.js';
import { makeCa, makeCert } from './helpers/certs.js';
import { wharf } from './helpers/cli.js';
import { missingPeer } from './helpers/distribution.js';
import { makeImage, pushImage } from './helpers/proxy-images.js';
import { exec as run } from './helpers/exec.js';

const noSkopeo = missingPeer('skopeo');
const noPodman = missingPeer('podman');

describe('real clients through the token flow', () => {
  let s: Awaited<ReturnType<typeof startAuthServer>>;
  let host: string;
  let tmp: string;
  const log: string[] = [];
  /** Token requests the server answered 200, from its request log. */
  const tokens = (): number => log.filter((l) => l.includes('"path":"/token') && l.includes('"status":200')).length;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-auth-clients-'));
    s = await startAuthServer({}, join(tmp, 'data'), pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (log.push(c.toString()), cb()) })));
    host = s.url.replace('http://', '');
    await pushImage(s.url, 'ml/base', 'v1', await makeImage(2, 2048, 'auth-clients'), basic('alice'));
  });
  after(async () => {
    await s.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('skopeo --creds: copy within the registry, inspect; the wrong user is refused', { skip: noSkopeo }, async () => {
    const before = tokens();
    const copy = await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', 'alice:alice-pw', '--dest-creds', 'alice:alice-pw', `docker://${host}/ml/base:v1`, `docker://${host}/ml/copied:v1`]);
    assert.equal(copy.code, 0, copy.err);
    assert.ok(tokens() > before, 'skopeo fetched tokens from /token');
    const inspect = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'bob:bob-pw', `docker://${host}/ml/copied:v1`]);
    assert.equal(inspect.code, 0, inspect.err);
    assert.equal((JSON.parse(inspect.out) as { schemaVersion: number }).schemaVersion, 2);
    const denied = await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', 'bob:bob-pw', '--dest-creds', 'bob:bob-pw', `docker://${host}/ml/base:v1`, `docker://${host}/ml/bob-copy:v1`]);
    assert.notEqual(denied.code, 0);
    const anon = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${host}/ml/base:v1`]);
    assert.notEqual(anon.code, 0);
    // The token service was used: the audit log shows bearer-authenticated pulls by alice.
    s.hooks.audit!.flush();
    assert.ok(s.hooks.audit!.db.query({ repo: 'ml/copied', user: 'alice', action: 'push' }).length > 0);
  });

  test('podman login, push and pull with --tls-verify=false and its own storage', { skip: noPodman }, async () => {
    const p = ['--root', join(tmp, 'podman-root'), '--runroot', join(tmp, 'podman-run'), '--storage-driver', 'vfs'];
    const env = { REGISTRY_AUTH_FILE: join(tmp, 'podman-auth.json') };
    try {
      const before = tokens();
      const login = await run('podman', [...p, 'login', '--tls-verify=false', '-u', 'alice', '--password-stdin', host], { env, input: 'alice-pw\n' });
      assert.equal(login.code, 0, login.err);
      const bad = await run('podman', [...p, 'login', '--tls-verify=false', '-u', 'alice', '--password-stdin', host], { env: { REGISTRY_AUTH_FILE: join(tmp, 'bad.json') }, input: 'wrong\n' });
      assert.notEqual(bad.code, 0);
      const pull = await run('podman', [...p, 'pull', '--tls-verify=false', `${host}/ml/base:v1`], { env });
      assert.equal(pull.code, 0, pull.err);
      assert.equal((await run('podman', [...p, 'tag', `${host}/ml/base:v1`, `${host}/ml/podman:v2`], { env })).code, 0);
      const push = await run('podman', [...p, 'push', '--tls-verify=false', `${host}/ml/podman:v2`], { env });
      assert.equal(push.code, 0, push.err);
      assert.ok(tokens() > before, 'podman fetched tokens from /token');
      const tags = await run('skopeo', ['list-tags', '--tls-verify=false', '--creds', 'bob:bob-pw', `docker://${host}/ml/podman`]);
      assert.deepEqual((JSON.parse(tags.out) as { Tags: string[] }).Tags, ['v2']);
    } finally {
      await run('podman', [...p, 'rmi', '-af'], { env });
    }
  });

  test('wharf login keeps the credentials, and later commands use them', async () => {
    const env = { DOCKER_CONFIG: join(tmp, 'docker'), REGISTRY_AUTH_FILE: join(tmp, 'none.json'), XDG_RUNTIME_DIR: join(tmp, 'xdg') };
    const bad = await wharf(['login', host, '--plain-http', '-u', 'bob', '--password-stdin'], { env, input: 'wrong' });
    assert.notEqual(bad.code, 0);
    const login = await wharf(['login', host, '--plain-http', '-u', 'bob', '--password-stdin'], { env, input: 'bob-pw' });
    assert.equal(login.code, 0, login.stderr);
    assert.match(await readFile(join(tmp, 'docker', 'config.json'), 'utf8'), new RegExp(host.replace('.', '\\.')));
    const tags = await wharf(['repo', 'tags', '--plain-http', `${host}/ml/base`], { env });
    assert.equal(tags.code, 0, tags.stderr);
    assert.match(tags.stdout, /^v1$/m);
    const denied = await wharf(['repo', 'tags', '--plain-http', `${host}/secret/x`], { env });
    assert.notEqual(denied.code, 0);
  });
});

describe('skopeo with a client certificate (mTLS)', { skip: noSkopeo ?? missingPeer('openssl') }, () => {
  test('the certificate subject is the user; without it the same request is refused', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'wharf-mtls-skopeo-'));
    const ca = makeCa(tmp);
    const srv = makeCert(tmp, ca, 'server', 'server', '127.0.0.1');
    const bob = makeCert(tmp, ca, 'bob', 'client');
    const s = await startAuthServer({ tls: { cert: srv.cert, key: srv.key, clientCa: ca.cert } }, join(tmp, 'data'));
    try {
      const host = s.url.replace('https://', '');
      // skopeo's cert dir: *.crt are CAs, a *.cert/*.key pair is the client certificate.
      const withCert = join(tmp, 'certs-bob');
      const caOnly = join(tmp, 'certs-ca');
      await mkdir(withCert);
      await mkdir(caOnly);
      await copyFile(ca.cert, join(withCert, 'ca.crt'));
      await copyFile(bob.cert, join(withCert, 'client.cert'));
      await copyFile(bob.key, join(withCert, 'client.key'));
      await copyFile(ca.cert, join(caOnly, 'ca.crt'));
      // Push as alice by password over TLS, then read as bob by certificate.
      const push = await run('skopeo', ['copy', '--dest-cert-dir', caOnly, '--dest-creds', 'alice:alice-pw', `oci:${await ociLayout(tmp)}:v1`, `docker://${host}/ml/mtls:v1`]);
      assert.equal(push.code, 0, push.err);
      const ok = await run('skopeo', ['inspect', '--raw', '--cert-dir', withCert, '--no-creds', `docker://${host}/ml/mtls:v1`]);
      assert.equal(ok.code, 0, ok.err);
      const no = await run('skopeo', ['inspect', '--raw', '--cert-dir', caOnly, '--no-creds', `docker://${host}/ml/mtls:v1`]);
      assert.notEqual(no.code, 0);
      s.hooks.audit!.flush();
      assert.ok(s.hooks.audit!.db.query({ repo: 'ml/mtls', user: 'bob', action: 'pull' }).some((r) => r.status === 200));
    } finally {
      await s.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

/** An OCI layout with one small image, written by skopeo from a wharf-made image in a plain registry. */
async function ociLayout(tmp: string): Promise<string> {
  const { startServer } = await import('../src/server/index.js');
  const plain = await startServer({ dataDir: join(tmp, 'plain'), logLevel: 'silent' });
  try {
    await pushImage(plain.url, 'img', 'v1', await makeImage(1, 1024, 'mtls'));
    const dir = join(tmp, 'layout');
    const r = await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${plain.url.replace('http://', '')}/img:v1`, `oci:${dir}:v1`]);
    if (r.code !== 0) throw new Error(r.err);
    return dir;
  } finally {
    await plain.close();
  }
}
