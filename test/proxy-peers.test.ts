/**
 * The pull-through cache in front of real upstreams, pulled by real clients: Distribution with
 * htpasswd (basic) auth, Distribution with token auth (a real token service), Distribution without
 * auth and a second `wharf serve` with its own token auth (src/server/auth). skopeo and podman pull through the cache by path; containerd's `ctr` pulls with a
 * hosts.toml that makes Wharf its mirror (the `?ns=` convention). Each upstream sits behind a
 * counting forwarder, so the tests see exactly what reached it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type RunningServer } from '../src/server/index.js';
import { startDistribution, htpasswdLine, missingPeer, REGISTRY_BIN, type Distribution } from './helpers/distribution.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { makeImage, pushImage, basicAuth, fetchToken, type TestImage } from './helpers/proxy-images.js';
import { run } from './helpers/exec.js';

const noDistribution = missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)');
const noSkopeo = missingPeer('skopeo');
const noPodman = missingPeer('podman');
const noCtr = missingPeer('ctr', 'containerd (ctr)') ?? missingPeer('containerd');

interface Up {
  ns: string;
  fwd: Proxy;
  img: TestImage;
}

let tmp: string;
let cache: RunningServer;
let cacheHost: string;
const ups: Up[] = [];
const stops: Array<() => Promise<void>> = [];

const blobGets = (u: Up): number => u.fwd.requests.filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:')).length;
const manifestGets = (u: Up): number => u.fwd.requests.filter((r) => r.method === 'GET' && r.url.includes('/manifests/')).length;

describe('pull-through cache with real upstreams and clients', { skip: noDistribution }, () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-peers-'));
    const add = async (ns: string, url: string, push: (img: TestImage) => Promise<void>): Promise<void> => {
      const fwd = await startProxy(url);
      stops.push(() => fwd.close());
      const img = await makeImage(2, 2048, ns);
      await push(img);
      ups.push({ ns, fwd, img });
    };

    const basic: Distribution = await startDistribution({ users: { alice: 'wonderland' } });
    stops.push(basic.stop);
    await add('basic', basic.url, (img) => pushImage(basic.url, 'team/app', 'v1', img, basicAuth('alice', 'wonderland')));

    const ts: TokenServer = await startTokenServer({ bob: 'builder' });
    stops.push(ts.close);
    const token: Distribution = await startDistribution({ token: { realm: ts.realm, service: ts.service, issuer: ts.issuer, certFile: ts.certFile } });
    stops.push(token.stop);
    await add('token', token.url, async (img) => pushImage(token.url, 'team/app', 'v1', img, await fetchToken(ts.realm, ts.service, 'repository:team/app:pull,push', 'bob', 'builder')));

    const open: Distribution = await startDistribution();
    stops.push(open.stop);
    await add('open', open.url, (img) => pushImage(open.url, 'team/app', 'v1', img));

    // wharf serve with its own token service (src/server/auth): bearer challenges, htpasswd users.
    const htpasswd = join(tmp, 'wharf-htpasswd');
    await writeFile(htpasswd, `${await htpasswdLine('carol', 'c4rol')}\n`);
    const wharfUp = await startServer({
      dataDir: join(tmp, 'wharf-upstream'),
      logLevel: 'silent',
      config: { storage: { fsync: false }, auth: { htpasswd, challenge: 'bearer', rules: [{ repos: ['**'], users: ['carol'], actions: ['pull', 'push'] }] } } as Parameters<typeof startServer>[0]['config'],
    });
    stops.push(() => wharfUp.close());
    await add('wharf', wharfUp.url, async (img) => pushImage(wharfUp.url, 'team/app', 'v1', img, await fetchToken(`${wharfUp.url}/token`, 'wharf', 'repository:team/app:pull,push', 'carol', 'c4rol')));

    process.env.WHARF_TEST_UPSTREAM_PASSWORD = 'wonderland';
    const url = (ns: string): string => ups.find((u) => u.ns === ns)!.fwd.url;
    cache = await startServer({
      dataDir: join(tmp, 'cache'),
      logLevel: 'silent',
      config: {
        storage: { fsync: false },
        proxy: {
          upstreams: [
            { namespace: 'basic', url: url('basic'), auth: { basic: { username: 'alice', passwordEnv: 'WHARF_TEST_UPSTREAM_PASSWORD' } } },
            { namespace: 'token', url: url('token'), auth: { bearer: { username: 'bob', password: 'builder' } } },
            { namespace: 'open', url: url('open') },
            { namespace: 'wharf', url: url('wharf'), auth: { bearer: { username: 'carol', password: 'c4rol' } } },
          ],
        },
      },
    });
    cacheHost = new URL(cache.url).host;
  });

  after(async () => {
    await cache?.close();
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  });

  const skopeo = (args: string[]): Promise<string> => run('skopeo', ['--insecure-policy', ...args]);

  test('skopeo copies from every upstream through the cache; a second copy reaches no upstream', { skip: noSkopeo }, async () => {
    for (const u of ups) {
      const dst = join(tmp, `skopeo-${u.ns}`);
      await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${cacheHost}/${u.ns}/team/app:v1`, `oci:${dst}:v1`]);
      const raw = await skopeo(['inspect', '--raw', `oci:${dst}:v1`]);
      assert.equal(raw, u.img.manifest.toString(), `${u.ns}: byte for byte`);
      const blobs = blobGets(u);
      const manifests = manifestGets(u);
      assert.equal(blobs, u.img.blobs.length, `${u.ns}: one GET per blob`);
      await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${cacheHost}/${u.ns}/team/app:v1`, `oci:${dst}-again:v1`]);
      assert.equal(blobGets(u), blobs, `${u.ns}: the second copy is served from the cache`);
      assert.equal(manifestGets(u), manifests, `${u.ns}: the tag is within its TTL`);
    }
    // Each upstream saw the credentials its auth asks for.
    const reqs = (ns: string) => ups.find((x) => x.ns === ns)!.fwd.requests;
    assert.ok(reqs('basic').some((r) => r.headers.authorization?.startsWith('Basic ')));
    assert.ok(reqs('token').some((r) => r.headers.authorization?.startsWith('Bearer ')));
    assert.ok(reqs('wharf').some((r) => r.url.startsWith('/token')), 'the token came from wharf serve\'s own token service');
    assert.ok(reqs('wharf').some((r) => r.headers.authorization?.startsWith('Bearer ')));
    assert.ok(reqs('open').every((r) => r.headers.authorization === undefined));
  });

  test('podman pulls through the cache', { skip: noPodman }, async () => {
    const p = join(tmp, 'podman');
    await mkdir(join(p, 'run'), { recursive: true });
    const env = { HOME: p, XDG_RUNTIME_DIR: join(p, 'run'), XDG_CONFIG_HOME: join(p, 'config'), REGISTRY_AUTH_FILE: join(p, 'auth.json') };
    await writeFile(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
    const podman = (args: string[]): Promise<string> =>
      run('podman', ['--root', join(p, 'root'), '--runroot', join(p, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args], { env });
    for (const ns of ['token', 'basic']) {
      const u = ups.find((x) => x.ns === ns)!;
      const ref = `${cacheHost}/${ns}/team/app:v1`;
      await podman(['pull', '--quiet', '--tls-verify=false', ref]);
      assert.equal((await podman(['image', 'inspect', '--format', '{{.Digest}}', ref])).trim(), u.img.digest);
    }
  });

  test('podman with Wharf as a registries.conf mirror (a mirror location with a path: routed by path)', { skip: noPodman }, async () => {
    const p = join(tmp, 'pm');
    await mkdir(join(p, 'run'), { recursive: true });
    const u = ups.find((x) => x.ns === 'wharf')!;
    const conf = join(p, 'registries.conf');
    await writeFile(
      conf,
      `[[registry]]\nlocation = "${u.fwd.host}"\ninsecure = true\n\n[[registry.mirror]]\nlocation = "${cacheHost}/wharf"\ninsecure = true\n`,
    );
    const env = { HOME: p, XDG_RUNTIME_DIR: join(p, 'run'), XDG_CONFIG_HOME: join(p, 'config'), REGISTRY_AUTH_FILE: join(p, 'auth.json'), CONTAINERS_REGISTRIES_CONF: conf };
    await writeFile(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
    const podman = (args: string[]): Promise<string> =>
      run('podman', ['--root', join(p, 'root'), '--runroot', join(p, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args], { env });
    const before = u.fwd.requests.length;
    const ref = `${u.fwd.host}/team/app:v1`;
    await podman(['pull', '--quiet', ref]);
    assert.equal((await podman(['image', 'inspect', '--format', '{{.Digest}}', ref])).trim(), u.img.digest);
    // podman asked the mirror, which answered: nothing reached the upstream but Wharf's own requests.
    assert.deepEqual(u.fwd.requests.slice(before).filter((r) => r.headers['user-agent'] !== 'wharf-proxy'), []);
  });

  test('containerd pulls with Wharf as its mirror (hosts.toml, ?ns=)', { skip: noCtr }, async () => {
    const u = ups.find((x) => x.ns === 'open')!;
    const d = join(tmp, 'containerd');
    const hostsDir = join(d, 'hosts');
    const upHost = u.fwd.host;
    // A counting forwarder in front of Wharf too, to see what containerd asked the mirror.
    const mirror = await startProxy(cache.url);
    stops.push(() => mirror.close());
    await mkdir(join(hostsDir, upHost), { recursive: true });
    await writeFile(
      join(hostsDir, upHost, 'hosts.toml'),
      `server = "http://${upHost}"\n\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`,
    );
    const sock = join(d, 'containerd.sock');
    await writeFile(join(d, 'config.toml'), `version = 2\nroot = "${join(d, 'root')}"\nstate = "${join(d, 'state')}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`);
    const daemon: ChildProcess = spawn('containerd', ['--config', join(d, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    daemon.stderr!.setEncoding('utf8').on('data', (s: string) => (log = (log + s).slice(-4000)));
    try {
      for (let i = 0; i < 100; i++) {
        try {
          await run('ctr', ['--address', sock, 'version']);
          break;
        } catch {
          if (daemon.exitCode !== null) throw new Error(`containerd exited: ${log}`);
          await sleep(100);
        }
      }
      const before = u.fwd.requests.length;
      await run('ctr', ['--address', sock, 'images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', `${upHost}/team/app:v1`]);
      const list = await run('ctr', ['--address', sock, 'images', 'ls', '-q']);
      assert.match(list, /team\/app:v1/);
      const viaNs = mirror.requests.filter((r) => r.url.includes(`ns=${encodeURIComponent(upHost)}`) || r.url.includes(`ns=${upHost}`));
      assert.ok(viaNs.some((r) => r.url.includes('/manifests/')), `containerd asked the mirror with ?ns=: ${mirror.requests.map((r) => r.url).join(' ')}`);
      assert.ok(viaNs.some((r) => r.url.includes('/blobs/')));
      // The mirror answered: its cache holds the image under the upstream's namespace.
      const tag = await readFile(join(tmp, 'cache', 'repositories', 'open', 'team', 'app', '_tags', 'v1'), 'utf8');
      assert.equal(tag, u.img.digest);
      // containerd never fell back to the upstream itself: whatever reached it came from Wharf.
      assert.deepEqual(u.fwd.requests.slice(before).filter((r) => r.headers['user-agent'] !== 'wharf-proxy'), []);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  });
});
