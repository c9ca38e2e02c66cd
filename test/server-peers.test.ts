/**
 * wharf serve against real clients: skopeo (a multi-platform image in and out, byte for byte),
 * podman (push and pull of a locally imported image) and umoci (unpacking what skopeo took out).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, MediaType, type Descriptor } from '../src/spec/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { missingPeer } from './helpers/distribution.js';
import { run } from './helpers/exec.js';
import { tarOf, writeMultiPlatform } from './helpers/layouts.js';

const noSkopeo = missingPeer('skopeo');
const noPodman = missingPeer('podman');
const noUmoci = missingPeer('umoci');

/** Every blob file of a layout directory: digest → bytes. */
async function layoutBlobs(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const hex of await readdir(join(dir, 'blobs', 'sha256'))) out.set(`sha256:${hex}`, await readFile(join(dir, 'blobs', 'sha256', hex)));
  return out;
}

describe('wharf serve with real clients', { timeout: 300_000 }, () => {
  let dir: string;
  let server: RunningServer;
  let host: string;
  let index: Descriptor;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-peers-'));
    server = await startServer({ dataDir: join(dir, 'data'), port: 0, logLevel: 'silent' });
    host = new URL(server.url).host;
    ({ index } = await writeMultiPlatform(join(dir, 'src'), 'v1'));
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const skopeo = (args: string[]): Promise<string> =>
    run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', ...args]);

  test('skopeo copies a multi-platform image in and out byte for byte', { skip: noSkopeo }, async () => {
    await skopeo(['--all', '--preserve-digests', `oci:${join(dir, 'src')}:v1`, `docker://${host}/peers/multi:v1`]);
    // What the registry serves is the index's bytes, under its digest.
    const r = await fetch(`${server.url}/v2/peers/multi/manifests/v1`, { headers: { accept: MediaType.ImageIndex } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), MediaType.ImageIndex);
    assert.equal(r.headers.get('docker-content-digest'), index.digest);
    assert.equal(digestOf(Buffer.from(await r.arrayBuffer())), index.digest);

    const out = join(dir, 'out');
    await skopeo(['--all', '--preserve-digests', `docker://${host}/peers/multi:v1`, `oci:${out}:v1`]);
    const outIndex = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.equal(outIndex.manifests[0]?.digest, index.digest);
    const want = await layoutBlobs(join(dir, 'src'));
    const got = await layoutBlobs(out);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [d, bytes] of got) assert.equal(digestOf(bytes), d, `blob ${d} has other bytes`);
  });

  test('umoci unpacks the amd64 image skopeo took out of wharf serve', { skip: noSkopeo ?? noUmoci }, async () => {
    const src = `docker://${host}/peers/umoci:v1`;
    await skopeo(['--all', '--preserve-digests', `oci:${join(dir, 'src')}:v1`, src]);
    const out = join(dir, 'for-umoci');
    await run('skopeo', ['--insecure-policy', '--override-arch', 'amd64', '--override-os', 'linux', 'copy', '--quiet', '--src-tls-verify=false', src, `oci:${out}:v1`]);
    const bundle = join(dir, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs', 'hello.txt'), 'utf8'), 'hello from amd64\n');
  });

  test('podman pushes an imported image to wharf serve and pulls it back', { skip: noPodman }, async () => {
    const p = join(dir, 'podman');
    await mkdir(p, { recursive: true });
    const env = { HOME: p, XDG_RUNTIME_DIR: join(p, 'run'), XDG_CONFIG_HOME: join(p, 'config'), REGISTRY_AUTH_FILE: join(p, 'auth.json') };
    await mkdir(env.XDG_RUNTIME_DIR, { recursive: true });
    await writeFile(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
    const podman = (args: string[]): Promise<string> =>
      run('podman', ['--root', join(p, 'root'), '--runroot', join(p, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args], { env });
    const tarball = join(p, 'rootfs.tar');
    await writeFile(tarball, await tarOf({ 'hello.txt': 'hello from podman\n' }));
    await podman(['import', '--quiet', tarball, 'localhost/peers/imported:v1']);
    const ref = `${host}/peers/podman:v1`;
    await podman(['push', '--quiet', '--tls-verify=false', 'localhost/peers/imported:v1', ref]);

    const head = await fetch(`${server.url}/v2/peers/podman/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: [MediaType.ImageManifest, 'application/vnd.docker.distribution.manifest.v2+json'].join(', ') },
    });
    assert.equal(head.status, 200);
    const digest = head.headers.get('docker-content-digest');
    assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/);

    await podman(['rmi', '--all', '--force']);
    await podman(['pull', '--quiet', '--tls-verify=false', ref]);
    const pulled = (await podman(['image', 'inspect', '--format', '{{.Digest}}', ref])).trim();
    assert.equal(pulled, digest);
  });
});
