import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { Registry, type RemoteRepository } from '../src/stores/remote/index.js';
import { pushEstargz, openArtifact, LocalSource, type EstargzPushResult } from '../src/client/index.js';
import { copyGraph } from '../src/content/index.js';
import { MediaType, digestOf, type Descriptor } from '../src/spec/index.js';
import { buildEstargzFile, openEstargz, FileBlobSource } from '../src/estargz/index.js';
import { missingPeer } from './helpers/distribution.js';
import { snapshot, startFixtureServer, type Snap } from './helpers/estargz.js';
import { wharf } from './helpers/cli.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const GOCODE = '/usr/share/gocode';
const STARGZ_GO = join(GOCODE, 'src', 'github.com', 'containerd', 'stargz-snapshotter', 'estargz');

let host: string;
let stop: () => Promise<void>;
let work: string;
let src: string;
let reg: Registry;
let repo: RemoteRepository;
let pushed: EstargzPushResult;
let srcSnap: Record<string, Snap>;

before(async () => {
  ({ work, host, src, stop } = await startFixtureServer('wharf-estargz-interop-'));
  srcSnap = await snapshot(src);
  reg = new Registry(host, { plainHttp: true });
  repo = reg.repository('interop/es');
  pushed = await pushEstargz(repo, { dir: src, chunkSize: 64 * 1024, tags: ['v1'] });
});

after(async () => {
  await reg?.close();
  await stop?.();
  await rm(work, { recursive: true, force: true });
});

/** Runs a peer without blocking the event loop: the registry it talks to runs in this process. */
async function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; ok?: boolean } = {}): Promise<string> {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (opts.ok !== false) assert.equal(code, 0, `${cmd} ${args.join(' ')}: ${stderr}`);
  return opts.ok === false ? String(code) : stdout;
}

/** The source tree, without what the rootfs of a runtime adds or changes of its own. */
function comparable(s: Record<string, Snap>): Record<string, Snap> {
  const out: Record<string, Snap> = {};
  for (const [k, v] of Object.entries(s)) if (k !== 'stargz.index.json' && k !== '.no.prefetch.landmark' && k !== '.prefetch.landmark') out[k] = v;
  return out;
}

test('podman pulls a wharf-pushed eStargz image (DiffID and uncompressed size checked) and its rootfs is the source tree', { skip: missingPeer('podman') }, async () => {
  const root = join(work, 'podman-root');
  const runroot = join(work, 'podman-run');
  const p = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'];
  const image = `${host}/interop/es:v1`;
  try {
    await sh('podman', [...p, 'pull', '--tls-verify=false', image]);
    const mnt = (await sh('podman', [...p, 'image', 'mount', image])).trim();
    assert.deepEqual(comparable(await snapshot(mnt)), srcSnap);
    await sh('podman', [...p, 'image', 'unmount', image]);
  } finally {
    await sh('podman', [...p, 'rmi', '-af'], { ok: false });
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    await rm(runroot, { recursive: true, force: true }).catch(() => undefined);
  }
});

test('skopeo copy to an OCI layout, then umoci unpack, gives back the source tree', { skip: missingPeer('skopeo') ?? missingPeer('umoci') }, async () => {
  const layout = join(work, 'layout');
  await sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/interop/es:v1`, `oci:${layout}:v1`]);
  const bundle = join(work, 'bundle');
  await sh('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  assert.deepEqual(comparable(await snapshot(join(bundle, 'rootfs'))), srcSnap);
});

/** Builds scripts/estargz-check against Debian's Go sources (GOPATH mode). */
async function goCheck(): Promise<string> {
  const bin = join(tmpdir(), `wharf-estargz-check-${process.pid}`);
  await sh('go', ['build', '-o', bin, './scripts/estargz-check'], { cwd: ROOT, env: { GO111MODULE: 'off', GOPATH: GOCODE, GOFLAGS: '', GOCACHE: join(tmpdir(), 'wharf-go-cache') } });
  return bin;
}
const goSkip = missingPeer('go', 'Go (golang-go)') ?? (existsSync(STARGZ_GO) ? undefined : missingPeer(STARGZ_GO, 'golang-github-containerd-stargz-snapshotter-dev'));

test('the reference Go library opens a Wharf layer, verifies its TOC and every chunk, and reads the same files', { skip: goSkip }, async () => {
  const bin = await goCheck();
  try {
    const layer = join(work, 'wharf-layer.tar.gz');
    const res = await buildEstargzFile(src, layer, { chunkSize: 64 * 1024 });
    const lines = (await sh(bin, ['verify', layer, res.tocDigest])).trim().split('\n').map((l) => JSON.parse(l) as { name: string; type: string; size: number; mode: number; linkName?: string; sha256?: string });
    const byName = new Map(lines.map((l) => [l.name, l]));
    for (const [p, s] of Object.entries(srcSnap)) {
      const e = byName.get(p);
      assert.ok(e, `${p} is listed by estargz.Open`);
      if (s.type === 'file') {
        assert.equal(e.sha256, s.sha, p);
        assert.equal(e.mode & 0o7777, s.mode, p);
      }
      if (s.type === 'symlink') assert.equal(e.linkName, s.link, p);
      if (s.type === 'dir') assert.equal(e.mode & 0o7777, s.mode, p);
    }
    assert.equal(lines.length, Object.keys(srcSnap).length);
    // A wrong TOC digest is refused by the reference too.
    assert.notEqual(await sh(bin, ['verify', layer, `sha256:${'0'.repeat(64)}`], { ok: false }), '0');
  } finally {
    await rm(bin, { force: true });
  }
});

test('Wharf reads a layer that the reference Go library built (estargz.Build)', { skip: goSkip }, async () => {
  const bin = await goCheck();
  try {
    const tar = join(work, 'src.tar');
    await sh('tar', ['-cf', tar, '-C', src, '.']);
    const layer = join(work, 'go-layer.tar.gz');
    const out = JSON.parse(await sh(bin, ['build', tar, layer, String(64 * 1024)])) as { tocDigest: string; diffID: string };
    const data = await readFile(layer);
    assert.equal(`sha256:${createHash('sha256').update(gunzipSync(data)).digest('hex')}`, out.diffID);
    const fs = await openEstargz(new FileBlobSource(layer), { tocDigest: out.tocDigest });
    for (const [p, s] of Object.entries(srcSnap)) {
      const st = await fs.lstat(p);
      if (s.type === 'file') assert.equal(createHash('sha256').update(await fs.readFile(p)).digest('hex'), s.sha, p);
      else assert.equal(st.type, s.type, p);
    }
    await fs.close();
  } finally {
    await rm(bin, { force: true });
  }
});

/** Pushes `dir` as a plain (not eStargz) tar.gz image. */
async function pushPlainImage(dir: string, tag: string): Promise<void> {
  const blob = join(work, `${tag}.tar.gz`);
  await sh('tar', ['-czf', blob, '-C', dir, '.']);
  const data = await readFile(blob);
  const layer: Descriptor = { mediaType: MediaType.ImageLayerGzip, digest: digestOf(data), size: data.length };
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [digestOf(gunzipSync(data))] } }));
  const config: Descriptor = { mediaType: MediaType.ImageConfig, digest: digestOf(cfg), size: cfg.length };
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] }));
  const desc: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
  const s = new LocalSource();
  s.addFile(layer, blob);
  s.addBytes(config, cfg);
  s.addBytes(desc, body);
  await copyGraph(s, repo, desc);
  await repo.tag(desc, tag);
}

test('an image that ctr-remote converted to eStargz and pushed is listed and read by Wharf', { skip: missingPeer('ctr-remote', 'ctr-remote (stargz-snapshotter)') ?? missingPeer('containerd') }, async () => {
  await pushPlainImage(src, 'plain');
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ctrd-'));
  const sock = join(dir, 'c.sock');
  // Content store and image store only: no CRI, and the native snapshotter (no mounts).
  await writeFile(
    join(dir, 'config.toml'),
    `version = 2\nroot = "${join(dir, 'root')}"\nstate = "${join(dir, 'state')}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`,
  );
  const ctrd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(50);
    const ctr = (args: string[]): Promise<string> => sh('ctr-remote', ['--address', sock, ...args]);
    await ctr(['image', 'pull', '--plain-http', '--snapshotter', 'native', `${host}/interop/es:plain`]);
    await ctr(['image', 'convert', '--estargz', '--oci', '--estargz-chunk-size', String(64 * 1024), `${host}/interop/es:plain`, `${host}/interop/es:ctr`]);
    await ctr(['image', 'push', '--plain-http', `${host}/interop/es:ctr`]);
    const art = await openArtifact(repo, 'ctr');
    assert.equal(art.fs.kind, 'estargz');
    for (const [p, s] of Object.entries(srcSnap)) {
      if (s.type === 'file') assert.equal(createHash('sha256').update(await art.fs.readFile(p)).digest('hex'), s.sha, p);
      else assert.equal((await art.fs.lstat(p)).type, s.type, p);
    }
    await art.close();
    const cat = await wharf(['cat', '--plain-http', '--no-cache', `${host}/interop/es:ctr`, 'sub/deeper/small.json']);
    assert.equal(cat.stdout, '{"a":1}', cat.stderr);
  } finally {
    ctrd.kill('SIGTERM');
    await new Promise((r) => ctrd.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
});

test('the pushed layer is what buildEstargz makes: digest, DiffID and TOC annotation agree', async () => {
  const fs = await openArtifact(repo, 'v1');
  assert.equal(fs.fs.kind, 'estargz');
  assert.equal(fs.layers[0]!.annotations?.['containerd.io/snapshot/stargz/toc.digest'], pushed.build.tocDigest);
  await fs.close();
});
