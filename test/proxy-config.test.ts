/**
 * Pull-through configuration: the default namespace (and local repositories taking precedence),
 * per-upstream TLS (a custom CA, mTLS client certificates, insecure), credentials from the
 * environment, and config errors that name the key.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startServer, parseConfig, type RunningServer } from '../src/server/index.js';
import { forward, relay } from './helpers/proxy.js';
import { loadServeConfig } from '../src/cli/run/serve.js';
import { missingPeer } from './helpers/distribution.js';
import { makeImage, pushImage, type TestImage } from './helpers/proxy-images.js';

const noOpenssl = missingPeer('openssl');
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

let tmp: string;
let upstream: RunningServer;
let img: TestImage;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-config-'));
  upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent', config: { storage: { fsync: false } } });
  img = await makeImage(1, 1000);
  await pushImage(upstream.url, 'library/alpine', '3', img);
});

after(async () => {
  await upstream?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('config', () => {
  test('errors name the key at fault', () => {
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ namespace: 'Docker.IO', url: 'https://x' }] } }), /proxy\.upstreams\.0\.namespace/);
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ namespace: 'a', url: 'ftp://x' }] } }), /proxy\.upstreams\.0\.url/);
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ namespace: 'a', url: 'https://x' }, { namespace: 'a', url: 'https://y' }] } }), /declared twice/);
    assert.throws(() => parseConfig({ proxy: { defaultNamespace: 'b', upstreams: [{ namespace: 'a', url: 'https://x' }] } }), /proxy\.defaultNamespace/);
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ namespace: 'a', url: 'https://x', ttl: 'soon' }] } }), /proxy\.upstreams\.0\.ttl/);
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ namespace: 'a', url: 'https://x', auth: { basic: { password: 'p' } } }] } }), /proxy\.upstreams\.0\.auth/);
    const ok = parseConfig({ proxy: { upstreams: [{ namespace: 'a', url: 'https://x', ttl: '2h', auth: 'anonymous' }] } });
    assert.equal(ok.proxy.upstreams[0]!.ttl, 7200e3);
  });

  test('serve --offline and --preload (repeatable) add to the config file', async () => {
    const file = join(tmp, 'serve.yaml');
    await writeFile(file, 'proxy:\n  preload: [from-file.tar]\n  upstreams: [{ namespace: a, url: "https://x" }]\n');
    const cfg = await loadServeConfig({ config: file, offline: true, preload: ['one.tar', 'two-dir'] }, {});
    assert.equal(cfg.proxy.offline, true);
    assert.deepEqual(cfg.proxy.preload, ['from-file.tar', 'one.tar', 'two-dir']);
    const single = await loadServeConfig({ preload: 'list.txt' }, {});
    assert.deepEqual(single.proxy.preload, ['list.txt']);
    assert.equal(single.proxy.offline, false);
  });

  test('a passwordEnv that is not set stops the start with its name', async () => {
    delete process.env.WHARF_TEST_UNSET_PW;
    await assert.rejects(
      startServer({ dataDir: join(tmp, 'nopw'), logLevel: 'silent', config: { proxy: { upstreams: [{ namespace: 'a', url: upstream.url, auth: { basic: { username: 'u', passwordEnv: 'WHARF_TEST_UNSET_PW' } } }] } } }),
      /WHARF_TEST_UNSET_PW/,
    );
  });
});

describe('default namespace', () => {
  let cache: RunningServer;
  before(async () => {
    cache = await startServer({
      dataDir: join(tmp, 'default-ns'),
      logLevel: 'silent',
      config: { storage: { fsync: false }, proxy: { defaultNamespace: 'hub', upstreams: [{ namespace: 'hub', url: upstream.url }] } },
    });
  });
  after(async () => cache?.close());

  test('unqualified names go to the default upstream; local repositories win; pushes stay local', async () => {
    const r = await fetch(`${cache.url}/v2/library/alpine/manifests/3`, { headers: { accept: ACCEPT } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('oci-namespace'), 'hub');
    assert.equal(r.headers.get('docker-content-digest'), img.digest);
    await r.arrayBuffer();
    // A local repository of the same name is served from the store, not the upstream.
    const mine = await makeImage(1, 500);
    await pushImage(cache.url, 'library/alpine', '3', mine);
    const l = await fetch(`${cache.url}/v2/library/alpine/manifests/3`, { headers: { accept: ACCEPT } });
    assert.equal(l.headers.get('docker-content-digest'), mine.digest);
    assert.equal(l.headers.get('oci-namespace'), null);
    await l.arrayBuffer();
    // The cached copy is still there under its namespace.
    const c = await fetch(`${cache.url}/v2/hub/library/alpine/manifests/3`, { headers: { accept: ACCEPT } });
    assert.equal(c.headers.get('docker-content-digest'), img.digest);
    await c.arrayBuffer();
  });
});

describe('access rules see the cached repository', () => {
  test('a ?ns= request is checked as <namespace>/<repo>, the repository it is served from', async () => {
    const start = (repos: string[], name: string): Promise<RunningServer> =>
      startServer({
        dataDir: join(tmp, `rules-${name}`),
        logLevel: 'silent',
        config: {
          storage: { fsync: false },
          auth: { challenge: 'basic', rules: [{ repos, anonymous: true, actions: ['pull'] }] },
          proxy: { upstreams: [{ namespace: 'hub', url: upstream.url }] },
        } as Parameters<typeof startServer>[0]['config'],
      });
    const cached = await start(['hub/**'], 'cached');
    try {
      const r = await fetch(`${cached.url}/v2/library/alpine/manifests/3?ns=hub`, { headers: { accept: ACCEPT } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('docker-content-digest'), img.digest);
      await r.arrayBuffer();
      const tags = await fetch(`${cached.url}/v2/library/alpine/tags/list?ns=hub`);
      assert.deepEqual(await tags.json(), { name: 'library/alpine', tags: ['3'] });
    } finally {
      await cached.close();
    }
    const unqualified = await start(['library/**'], 'unqualified');
    try {
      const r = await fetch(`${unqualified.url}/v2/library/alpine/manifests/3?ns=hub`, { headers: { accept: ACCEPT } });
      assert.equal(r.status, 401, 'rights on library/** do not open the cache of hub');
      await r.arrayBuffer();
    } finally {
      await unqualified.close();
    }
  });
});

describe('TLS to the upstream', { skip: noOpenssl }, () => {
  let tls: Server;
  let tlsUrl: string;
  const pem: Record<string, string> = {};

  before(async () => {
    const d = join(tmp, 'pki');
    const sh = (cmd: string): void => {
      const r = spawnSync('sh', ['-c', cmd], { cwd: tmp, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    };
    sh(`mkdir -p ${d} && cd ${d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=wharf-test-ca 2>/dev/null`);
    await writeFile(join(d, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    for (const who of ['server', 'client']) {
      sh(`cd ${d} && openssl req -newkey rsa:2048 -nodes -keyout ${who}.key -out ${who}.csr -subj /CN=${who} 2>/dev/null && openssl x509 -req -in ${who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${who}.pem -days 2 ${who === 'server' ? '-extfile san.cnf' : ''} 2>/dev/null`);
    }
    for (const f of ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key']) pem[f] = join(d, f);
    // A TLS front that demands a client certificate signed by the CA, relaying to the upstream.
    tls = createServer(
      { key: await readFile(pem['server.key']!), cert: await readFile(pem['server.pem']!), ca: await readFile(pem['ca.pem']!), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        forward(req, upstream.url).then((up) => relay(up, res), () => res.destroy());
      },
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
  });
  after(async () => {
    tls?.closeAllConnections();
    await new Promise<void>((r) => (tls ? tls.close(() => r()) : r()));
  });

  const pullVia = async (tlsCfg: Record<string, unknown>, name: string): Promise<{ status: number; warning: string | null }> => {
    const s = await startServer({ dataDir: join(tmp, `tls-${name}`), logLevel: 'silent', config: { storage: { fsync: false }, proxy: { upstreams: [{ namespace: 'sec', url: tlsUrl, tls: tlsCfg }] } } });
    try {
      const r = await fetch(`${s.url}/v2/sec/library/alpine/manifests/3`, { headers: { accept: ACCEPT } });
      await r.arrayBuffer();
      return { status: r.status, warning: r.headers.get('warning') };
    } finally {
      await s.close();
    }
  };

  test('a custom CA and a client certificate (mTLS) reach the upstream', async () => {
    assert.equal((await pullVia({ ca: pem['ca.pem'], cert: pem['client.pem'], key: pem['client.key'] }, 'mtls')).status, 200);
  });
  test('insecure skips verification of the server', async () => {
    assert.equal((await pullVia({ insecure: true, cert: pem['client.pem'], key: pem['client.key'] }, 'insecure')).status, 200);
  });
  test('without the CA, or without the client certificate, the upstream is unreachable (503)', async () => {
    assert.equal((await pullVia({ cert: pem['client.pem'], key: pem['client.key'] }, 'noca')).status, 503);
    assert.equal((await pullVia({ ca: pem['ca.pem'] }, 'nocert')).status, 503);
  });
});
