import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile, lstat, readlink, link, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tarStream from 'tar-stream';
import { digestOf, MediaType, Annotation, EMPTY_JSON_DIGEST, EMPTY_JSON_BYTES, isOciError, type Descriptor, isWharfError } from '../src/spec/index.js';
import { readAllVerified } from '../src/content/index.js';
import { Registry, type RemoteRepository } from '../src/stores/remote/index.js';
import { LayoutStore, LayoutTarStore } from '../src/stores/layout/index.js';
import { pushArtifact, pullArtifact, copyArtifact, copyTags, discoverReferrers, MODE_ANNOTATION } from '../src/client/index.js';
import { startDistribution, missingPeer, REGISTRY_BIN, type Distribution } from './helpers/distribution.js';
import { startProxy, forward } from './helpers/proxy.js';

const skip = missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)');

async function tarGz(entries: Array<{ name: string; type?: 'file' | 'directory' | 'symlink'; content?: string; linkname?: string; mode?: number }>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? 0o644 } as const;
    if ((e.type ?? 'file') === 'file') pack.entry(header, e.content ?? '');
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** Pushes a hand-made (possibly hostile) artifact: layers given as bytes with their annotations. */
async function pushRaw(repo: RemoteRepository, layers: Array<{ data: Buffer; annotations: Record<string, string>; mediaType?: string }>, tag: string): Promise<Descriptor> {
  const empty: Descriptor = { mediaType: MediaType.EmptyJSON, digest: EMPTY_JSON_DIGEST, size: 2 };
  await repo.push(empty, Readable.from([Buffer.from(EMPTY_JSON_BYTES)]));
  const descs: Descriptor[] = [];
  for (const l of layers) {
    const d: Descriptor = { mediaType: l.mediaType ?? MediaType.ImageLayer, digest: digestOf(l.data), size: l.data.length };
    await repo.push(d, Readable.from([l.data]));
    descs.push({ ...d, annotations: l.annotations });
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, artifactType: 'application/x-test', config: empty, layers: descs }));
  const desc: Descriptor = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
  await repo.pushManifest(desc, body, tag);
  return desc;
}

describe('client: push, pull, copy, attach, discover, backup against Distribution', { skip }, () => {
  let dist: Distribution;
  let reg: Registry;
  let work: string;
  before(async () => {
    dist = await startDistribution();
    reg = new Registry(dist.host, { plainHttp: true, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
    work = await mkdtemp(join(tmpdir(), 'wharf-client-'));
  });
  after(async () => {
    await reg?.close();
    await dist?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('push files and a directory, pull them back with their modes', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'tree', 'bin'), { recursive: true });
    await writeFile(join(src, 'a.txt'), 'alpha');
    await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(src, 'run.sh'), 0o750);
    await writeFile(join(src, 'tree', 'bin', 'tool'), randomBytes(70_000));
    await chmod(join(src, 'tree', 'bin', 'tool'), 0o755);
    await writeFile(join(src, 'tree', 'secret'), 's');
    await chmod(join(src, 'tree', 'secret'), 0o600);
    await symlink('bin/tool', join(src, 'tree', 'link'));
    // Modes that a "portable" tar would rewrite, a hard link, an empty dir, a dotfile, old mtimes.
    await writeFile(join(src, 'tree', 'shared'), 'group-writable');
    await chmod(join(src, 'tree', 'shared'), 0o664);
    await writeFile(join(src, 'tree', '.readonly'), 'r');
    await chmod(join(src, 'tree', '.readonly'), 0o400);
    await link(join(src, 'tree', 'shared'), join(src, 'tree', 'shared-link'));
    await mkdir(join(src, 'tree', 'empty'));
    await chmod(join(src, 'tree', 'empty'), 0o2775);
    const old = new Date('2020-02-02T02:02:02Z');
    await utimes(join(src, 'tree', 'bin'), old, old);
    const repo = reg.repository('client/files');
    const cwd = process.cwd();
    process.chdir(src);
    let res;
    try {
      res = await pushArtifact(repo, {
        files: [{ path: 'a.txt', mediaType: 'text/plain' }, { path: 'run.sh' }, { path: 'tree' }],
        artifactType: 'application/vnd.wharf.demo',
        annotations: { 'com.example.k': 'v' },
        tags: ['v1', 'latest'],
      });
    } finally {
      process.chdir(cwd);
    }
    const m = JSON.parse(res.body.toString());
    assert.equal(m.artifactType, 'application/vnd.wharf.demo');
    assert.deepEqual(m.config, { mediaType: MediaType.EmptyJSON, digest: EMPTY_JSON_DIGEST, size: 2 });
    assert.equal(m.annotations['com.example.k'], 'v');
    assert.deepEqual(m.layers.map((l: Descriptor) => l.annotations?.[Annotation.Title]), ['a.txt', 'run.sh', 'tree']);
    assert.equal(m.layers[0].mediaType, 'text/plain');
    assert.equal(m.layers[2].mediaType, MediaType.ImageLayerGzip);
    assert.equal(m.layers[2].annotations[Annotation.Unpack], 'true');
    assert.equal(m.layers[1].annotations[MODE_ANNOTATION], '0750');
    assert.deepEqual((await repo.tags()).sort(), ['latest', 'v1']);

    const out = join(work, 'out');
    const pulled = await pullArtifact(repo, 'v1', { output: out });
    assert.equal(pulled.files.length, 3);
    assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'alpha');
    assert.equal((await stat(join(out, 'run.sh'))).mode & 0o777, 0o750);
    assert.equal((await stat(join(out, 'tree', 'bin', 'tool'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(out, 'tree', 'secret'))).mode & 0o777, 0o600);
    assert.deepEqual(await readFile(join(out, 'tree', 'bin', 'tool')), await readFile(join(src, 'tree', 'bin', 'tool')));
    assert.equal(await readlink(join(out, 'tree', 'link')), 'bin/tool');
    assert.equal((await stat(join(out, 'tree', 'shared'))).mode & 0o777, 0o664);
    assert.equal((await stat(join(out, 'tree', '.readonly'))).mode & 0o777, 0o400);
    assert.equal((await stat(join(out, 'tree', 'shared-link'))).ino, (await stat(join(out, 'tree', 'shared'))).ino, 'hard link kept');
    assert.equal((await stat(join(out, 'tree', 'empty'))).mode & 0o7777, 0o2775);
    assert.equal((await stat(join(out, 'tree', 'bin'))).mtime.toISOString(), old.toISOString());
    assert.deepEqual((await readdir(out)).sort(), ['a.txt', 'run.sh', 'tree'], 'no temp files left');

    await assert.rejects(pullArtifact(repo, 'v1', { output: out, keepOldFiles: true }), /keep-old-files/);
  });

  test('re-pushing present content moves no blob bytes', async () => {
    const f = join(work, 'big.bin');
    await writeFile(f, randomBytes(200_000));
    const repo = reg.repository('client/repush');
    await pushArtifact(repo, { files: [{ path: f }], noCreated: true });
    let bytes = 0;
    const skipped: string[] = [];
    await pushArtifact(repo, { files: [{ path: f }], noCreated: true, progress: { bytes: (_d, n) => (bytes += n), skipped: (d) => skipped.push(d.digest) } });
    assert.equal(bytes, 0);
    assert.equal(skipped.length, 1, 'the manifest itself is found and its whole graph skipped');
  });

  test('image spec v1.0: artifact type in config.mediaType, no artifactType field', async () => {
    const f = join(work, 'one.txt');
    await writeFile(f, '1');
    const res = await pushArtifact(reg.repository('client/v10'), { files: [{ path: f }], artifactType: 'application/vnd.old', imageSpec: 'v1.0' });
    const m = JSON.parse(res.body.toString());
    assert.equal(m.artifactType, undefined);
    assert.equal(m.config.mediaType, 'application/vnd.old');
  });

  test('pull refuses titles with .. or absolute paths unless allowed', async () => {
    const repo = reg.repository('client/hostile-title');
    await pushRaw(repo, [{ data: Buffer.from('x'), annotations: { [Annotation.Title]: '../escape.txt' } }], 'dotdot');
    await pushRaw(repo, [{ data: Buffer.from('y'), annotations: { [Annotation.Title]: '/tmp/abs.txt' } }], 'abs');
    const out = join(work, 'hostile1', 'out');
    await assert.rejects(pullArtifact(repo, 'dotdot', { output: out }), /outside the output directory/);
    await assert.rejects(pullArtifact(repo, 'abs', { output: out }), /outside the output directory/);
    await assert.rejects(stat(join(work, 'hostile1', 'escape.txt')));
    await pullArtifact(repo, 'dotdot', { output: out, allowPathTraversal: true });
    assert.equal(await readFile(join(work, 'hostile1', 'escape.txt'), 'utf8'), 'x');
  });

  test('pull refuses tar entries that escape, and symlinks pointing out', async () => {
    const repo = reg.repository('client/hostile-tar');
    const outside = join(work, 'outside');
    await mkdir(outside, { recursive: true });
    const unpack = (title: string) => ({ [Annotation.Title]: title, [Annotation.Unpack]: 'true' });
    await pushRaw(repo, [{ data: await tarGz([{ name: 'd/ok', content: 'ok' }, { name: 'd/../../evil', content: 'evil' }]), annotations: unpack('d'), mediaType: MediaType.ImageLayerGzip }], 'dotdot');
    await pushRaw(repo, [{ data: await tarGz([{ name: 'd/l', type: 'symlink', linkname: outside }]), annotations: unpack('d'), mediaType: MediaType.ImageLayerGzip }], 'symabs');
    await pushRaw(repo, [{ data: await tarGz([{ name: 'd/l', type: 'symlink', linkname: '../../outside' }, { name: 'd/l/planted', content: 'p' }]), annotations: unpack('d'), mediaType: MediaType.ImageLayerGzip }], 'symrel');
    await pushRaw(repo, [{ data: await tarGz([{ name: 'd/inner', type: 'symlink', linkname: 'x' }, { name: 'd/x', content: 'fine' }]), annotations: unpack('d'), mediaType: MediaType.ImageLayerGzip }], 'fine');
    const out = join(work, 'hostile2');
    for (const tag of ['dotdot', 'symabs', 'symrel']) {
      await assert.rejects(pullArtifact(repo, tag, { output: out }), (e) => isWharfError(e, 'INVALID_ARGUMENT'), tag);
    }
    assert.deepEqual(await readdir(outside), []);
    assert.equal(existsSync(out), false, 'nothing left behind, not even the output directory the pull made');
    await pullArtifact(repo, 'fine', { output: out });
    assert.equal(await readFile(join(out, 'd', 'inner'), 'utf8'), 'fine');
  });

  test('pull refuses to write through a hostile symlink already in the output directory', async () => {
    const repo = reg.repository('client/hostile-out');
    await pushRaw(repo, [{ data: Buffer.from('payload'), annotations: { [Annotation.Title]: 'sub/file.txt' } }], 'v1');
    const outside = join(work, 'outside2');
    await mkdir(outside, { recursive: true });
    const out = join(work, 'hostile3');
    await mkdir(out, { recursive: true });
    await symlink(outside, join(out, 'sub'));
    await assert.rejects(pullArtifact(repo, 'v1', { output: out }), /symbolic link out of the output directory/);
    assert.deepEqual(await readdir(outside), []);
    // A symlink in place of the file itself is replaced, never followed.
    const out2 = join(work, 'hostile4');
    await mkdir(join(out2, 'sub'), { recursive: true });
    await writeFile(join(outside, 'victim'), 'untouched');
    await symlink(join(outside, 'victim'), join(out2, 'sub', 'file.txt'));
    await pullArtifact(repo, 'v1', { output: out2 });
    assert.equal(await readFile(join(outside, 'victim'), 'utf8'), 'untouched');
    assert.equal((await lstat(join(out2, 'sub', 'file.txt'))).isFile(), true);
  });

  test('a wrong digest served on pull: error, nothing left in the output directory', async () => {
    const f = join(work, 'c.bin');
    await writeFile(f, randomBytes(50_000));
    await pushArtifact(reg.repository('client/corrupt'), { files: [{ path: f }], tags: ['v1'] });
    const proxy = await startProxy(dist.url, async (req, res, target) => {
      if (req.method !== 'GET' || !req.url?.includes('/blobs/')) return false;
      const up = await forward(req, target);
      const chunks: Buffer[] = [];
      for await (const c of up) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      body[0] = body[0]! ^ 1;
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      return true;
    });
    const r = new Registry(proxy.host, { plainHttp: true, retry: { attempts: 1 } });
    const out = join(work, 'corrupt-out');
    try {
      await assert.rejects(pullArtifact(r.repository('client/corrupt'), 'v1', { output: out }), (e) => isOciError(e, 'DIGEST_INVALID'));
      assert.equal(existsSync(out), false, 'the output directory the pull made is gone');
      // An output directory that was there before stays, empty.
      await mkdir(out);
      await assert.rejects(pullArtifact(r.repository('client/corrupt'), 'v1', { output: out }), (e) => isOciError(e, 'DIGEST_INVALID'));
      assert.deepEqual(await readdir(out), []);
    } finally {
      await r.close();
      await proxy.close();
    }
  });

  test('attach, discover (referrers tag schema), copy -r to a layout and back, mount across repositories', async () => {
    const repo = reg.repository('client/app');
    const f = join(work, 'app.bin');
    await writeFile(f, randomBytes(30_000));
    const { manifest: subject } = await pushArtifact(repo, { files: [{ path: f }], tags: ['v1'] });
    const sigFile = join(work, 'sig.txt');
    await writeFile(sigFile, 'signature');
    const { manifest: sig } = await pushArtifact(repo, { files: [{ path: sigFile }], artifactType: 'application/vnd.wharf.sig', subject });
    const { manifest: sigOfSig } = await pushArtifact(repo, { files: [], artifactType: 'application/vnd.wharf.countersig', subject: sig });
    const tree = await discoverReferrers(repo, subject);
    assert.deepEqual(tree.map((n) => n.desc.digest), [sig.digest]);
    assert.deepEqual(tree[0]!.referrers.map((n) => n.desc.digest), [sigOfSig.digest]);
    assert.equal((await discoverReferrers(repo, subject, { depth: 1 }))[0]!.referrers.length, 0);

    const layout = await LayoutStore.open(join(work, 'layout'));
    await copyArtifact(repo, 'v1', layout, ['v1'], { referrers: true });
    assert.equal((await layout.referrers(subject)).length, 1);
    assert.equal((await layout.referrers(sig)).length, 1);

    const other = reg.repository('client/app-copy');
    await copyArtifact(layout, 'v1', other, ['restored'], { referrers: true });
    assert.deepEqual((await other.referrers(subject)).map((d) => d.digest), [sig.digest]);

    // Same registry, another repository: blobs are mounted, not sent.
    const proxy = await startProxy(dist.url);
    const viaProxy = new Registry(proxy.host, { plainHttp: true });
    try {
      let sent = 0;
      await copyArtifact(viaProxy.repository('client/app'), 'v1', viaProxy.repository('client/app-mounted'), ['v1'], { progress: { bytes: (d, n) => { if (!d.mediaType.includes('manifest')) sent += n; } } });
      assert.ok(proxy.requests.some((r) => r.method === 'POST' && r.url.includes('mount=')), 'mount requested');
      assert.equal(sent, 0);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  test('backup a repository to a layout .tar and restore it into another', async () => {
    const repo = reg.repository('client/backup');
    const f = join(work, 'bk.bin');
    await writeFile(f, randomBytes(10_000));
    const a = await pushArtifact(repo, { files: [{ path: f }], tags: ['one'] });
    await pushArtifact(repo, { files: [{ path: f }], tags: ['two'], annotations: { x: 'y' } });
    await pushArtifact(repo, { files: [], artifactType: 'application/vnd.wharf.sig', subject: a.manifest });
    const file = join(work, 'backup.tar');
    const t = await LayoutTarStore.open(file);
    const saved = await copyTags(repo, t, { referrers: true });
    await t.close();
    assert.deepEqual(saved.map((s) => s.tag).sort(), ['one', 'two']);
    const r = await LayoutTarStore.open(file, { create: false });
    const dst = reg.repository('client/restored');
    await copyTags(r, dst, { referrers: true });
    await r.close();
    assert.deepEqual((await dst.tags()).filter((x) => !x.startsWith('sha256-')).sort(), ['one', 'two']);
    assert.equal((await dst.referrers(a.manifest)).length, 1);
    const m = await dst.resolve('one');
    assert.equal(JSON.parse((await readAllVerified(await dst.fetch(m), m)).toString()).layers.length, 1);
  });
});
