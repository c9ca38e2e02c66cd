import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from '../src/stores/remote/index.js';
import { fetchManifest } from '../src/content/index.js';
import type { ImageManifest } from '../src/spec/index.js';
import { snapshot, startFixtureServer } from './helpers/estargz.js';
import { wharf } from './helpers/cli.js';

let host: string;
let stop: () => Promise<void>;
let work: string;
let src: string;
let env: NodeJS.ProcessEnv;
let ref: string;

before(async () => {
  ({ work, host, src, stop } = await startFixtureServer('wharf-estargz-cli-'));
  env = { WHARF_ESTARGZ_CACHE: join(work, 'cache') };
  ref = `${host}/cli/es:v1`;
});

after(async () => {
  await stop?.();
  await rm(work, { recursive: true, force: true });
});

const run = (args: string[]): ReturnType<typeof wharf> => wharf([args[0]!, '--plain-http', ...args.slice(1)], { env });

test('push --estargz: an image manifest whose layer carries the TOC digest and size, whose config has the DiffID', async () => {
  const r = await run(['push', '--estargz', ref, src, '--estargz-chunk-size', '64K']);
  assert.equal(r.code, 0, r.stderr);
  const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(r.stdout)?.[1];
  assert.ok(digest, r.stdout);
  const reg = new Registry(host, { plainHttp: true });
  const repo = reg.repository('cli/es');
  const desc = await repo.resolve('v1');
  assert.equal(desc.digest, digest);
  const m = JSON.parse((await fetchManifest(repo, desc)).toString()) as ImageManifest;
  assert.equal(m.layers.length, 1);
  const l = m.layers[0]!;
  assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.match(l.annotations?.['containerd.io/snapshot/stargz/toc.digest'] ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.match(l.annotations?.['io.containers.estargz.uncompressed-size'] ?? '', /^\d+$/);
  const cfg = JSON.parse((await fetchManifest(repo, m.config)).toString()) as { rootfs: { diff_ids: string[] }; os: string };
  assert.equal(cfg.os, 'linux');
  assert.equal(cfg.rootfs.diff_ids.length, 1);
  await reg.close();
});

test('ls, ls -l, ls <dir>, cat, cat --offset --length', async () => {
  const ls = await run(['ls', ref]);
  assert.equal(ls.code, 0, ls.stderr);
  const lines = ls.stdout.trim().split('\n');
  for (const p of ['.hidden', 'empty/', 'hello.txt', 'sub/', 'sub/big.bin', 'link-to-small', 'ünïcödé.txt']) assert.ok(lines.includes(p), p);
  const long = await run(['ls', '-l', ref]);
  assert.match(long.stdout, /^-rwxr-x--- +18 2024-03-01 12:00 sub\/run\.sh$/m);
  assert.match(long.stdout, /^drwxrwsr-x .* empty\/$/m);
  assert.match(long.stdout, /^lrwxrwxrwx .* link-to-small -> sub\/deeper\/small\.json$/m);
  const sub = await run(['ls', ref, 'sub']);
  assert.deepEqual(sub.stdout.trim().split('\n'), ['sub/big.bin', 'sub/deeper/', 'sub/hard-hello', 'sub/run.sh']);
  const cat = await run(['cat', ref, 'sub/deeper/small.json']);
  assert.equal(cat.stdout, '{"a":1}');
  const part = await run(['cat', ref, 'hello.txt', '--offset', '7', '--length', '7']);
  assert.equal(part.stdout, 'eStargz');
  const dir = await run(['cat', ref, 'sub']);
  assert.equal(dir.code, 1);
  assert.match(dir.stderr, /is a directory/);
  const json = await run(['ls', ref, '--format', 'json']);
  const doc = JSON.parse(json.stdout) as { kind: string; entries: Array<{ path: string; mode: string }> };
  assert.equal(doc.kind, 'estargz');
  assert.equal(doc.entries.find((e) => e.path === 'sub/run.sh')?.mode, '0750');
});

test('get: everything gives back the exact tree; globs pick some', async () => {
  const all = await run(['get', ref, '-o', join(work, 'all')]);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(await snapshot(join(work, 'all')), await snapshot(src));
  const some = await run(['get', ref, 'sub/**/*.json', '*.txt', '-o', join(work, 'some')]);
  assert.equal(some.code, 0, some.stderr);
  const got = Object.keys(await snapshot(join(work, 'some')));
  assert.deepEqual(got.filter((p) => !['sub', 'sub/deeper'].includes(p)).sort(), ['empty.txt', 'hello.txt', 'sub/deeper/small.json', 'ünïcödé.txt']);
});

test('get stops zip bombs before writing: entry count, total size, size per file', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--max-files', '3'], /over the limit of 3 \(--max-files\)/],
    [['--max-total-size', '100K'], /--max-total-size/],
    [['--max-file-size', '1000'], /sub\/big\.bin is 300000 bytes, over the per-file limit/],
  ];
  for (const [flags, msg] of cases) {
    const out = join(work, `bomb-${flags[0]}`);
    const r = await run(['get', ref, '-o', out, ...flags]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, msg);
    assert.deepEqual(await readdir(out).catch(() => []), [], 'nothing written');
  }
});

test('get refuses a symlink out of the output directory', async () => {
  const evil = join(work, 'evil');
  await mkdir(evil);
  await writeFile(join(evil, 'ok.txt'), 'ok');
  await symlink('../../../etc/passwd', join(evil, 'escape'));
  const evilRef = `${host}/cli/evil:v1`;
  assert.equal((await run(['push', '--estargz', evilRef, evil])).code, 0);
  const r = await run(['get', evilRef, '-o', join(work, 'evil-out')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /symbolic link pointing out of the output directory/);
  assert.deepEqual(await readdir(join(work, 'evil-out')).catch(() => []), [], 'nothing written');
  const ok = await run(['get', evilRef, 'ok.txt', '-o', join(work, 'evil-out2')]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('a plain tar.gz artifact is listed and read by reading the layer once, with a note', async () => {
  const plainRef = `${host}/cli/plain:v1`;
  const push = await wharf(['push', '--plain-http', plainRef, 'src'], { env, cwd: work });
  assert.equal(push.code, 0, push.stderr);
  const ls = await run(['ls', plainRef]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stderr, /not eStargz.*reading the whole layer once/);
  assert.ok(ls.stdout.split('\n').includes('src/hello.txt'), ls.stdout);
  const cat = await run(['cat', plainRef, 'src/sub/deeper/small.json']);
  assert.equal(cat.stdout, '{"a":1}');
});

test('cache info, prune, clear', async () => {
  const dir = join(work, 'cache');
  const info = await wharf(['cache', 'info', '--cache-dir', dir, '--format', 'json']);
  assert.equal(info.code, 0, info.stderr);
  const i = JSON.parse(info.stdout) as { tocs: number; chunks: number; bytes: number };
  assert.ok(i.tocs >= 1 && i.chunks >= 1, info.stdout);
  const keep = await wharf(['cache', 'prune', '--cache-dir', dir, '--max-age', '1d']);
  assert.match(keep.stdout, /^Removed 0 entries/);
  const prune = await wharf(['cache', 'prune', '--cache-dir', dir, '--max-size', '0']);
  assert.match(prune.stdout, /^Removed [1-9]\d* entries/);
  const clear = await wharf(['cache', 'clear', '--cache-dir', dir]);
  assert.equal(clear.code, 0);
  const after = JSON.parse((await wharf(['cache', 'info', '--cache-dir', dir, '--format', 'json'])).stdout) as { bytes: number };
  assert.equal(after.bytes, 0);
  const bad = await wharf(['cache', 'prune', '--cache-dir', dir]);
  assert.equal(bad.code, 2);
});

test('push --estargz into an OCI layout, and ls and cat from it', async () => {
  const layout = join(work, 'layout');
  const push = await wharf(['push', '--estargz', '--oci-layout', `${layout}:v1`, src], { env });
  assert.equal(push.code, 0, push.stderr);
  const ls = await wharf(['ls', '--oci-layout', `${layout}:v1`], { env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(ls.stdout.split('\n').includes('sub/big.bin'));
  const cat = await wharf(['cat', '--oci-layout', `${layout}:v1`, 'hello.txt'], { env });
  assert.equal(cat.stdout, 'hello, eStargz\n');
});

test('an image of two eStargz layers is read as a runtime stacks them: later files win, whiteouts delete', async () => {
  const { buildEstargzFile, TOC_DIGEST_ANNOTATION } = await import('../src/estargz/index.js');
  const { LocalSource, openArtifact } = await import('../src/client/index.js');
  const { copyGraph } = await import('../src/content/index.js');
  const { MediaType, digestOf } = await import('../src/spec/index.js');
  const lower = join(work, 'lower');
  const upper = join(work, 'upper');
  await mkdir(join(lower, 'dir'), { recursive: true });
  await mkdir(join(upper, 'dir'), { recursive: true });
  await writeFile(join(lower, 'a.txt'), 'old a');
  await writeFile(join(lower, 'b.txt'), 'b');
  await writeFile(join(lower, 'dir', 'c.txt'), 'c');
  await writeFile(join(upper, 'a.txt'), 'new a');
  await writeFile(join(upper, '.wh.b.txt'), '');
  await writeFile(join(upper, 'dir', '.wh..wh..opq'), '');
  await writeFile(join(upper, 'dir', 'd.txt'), 'd');
  const s = new LocalSource();
  const layers = [];
  for (const [i, d] of [lower, upper].entries()) {
    const f = join(work, `layer${i}.tar.gz`);
    const r = await buildEstargzFile(d, f);
    const l = { mediaType: MediaType.ImageLayerGzip, digest: r.digest, size: r.size, annotations: { [TOC_DIGEST_ANNOTATION]: r.tocDigest } };
    s.addFile(l, f);
    layers.push(l);
  }
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const config = { mediaType: MediaType.ImageConfig, digest: digestOf(cfg), size: cfg.length };
  s.addBytes(config, cfg);
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers }));
  const desc = { mediaType: MediaType.ImageManifest, digest: digestOf(body), size: body.length };
  s.addBytes(desc, body);
  const reg = new Registry(host, { plainHttp: true });
  const repo = reg.repository('cli/stack');
  await copyGraph(s, repo, desc);
  const art = await openArtifact(repo, desc.digest);
  assert.deepEqual(art.fs.list().map((e) => e.path).sort(), ['a.txt', 'dir', 'dir/d.txt']);
  assert.equal((await art.fs.readFile('a.txt')).toString(), 'new a');
  assert.equal((await art.fs.readFile('dir/d.txt')).toString(), 'd');
  await art.close();
  await reg.close();
});

test('get does not write through a symlink already in the output directory that leads out', async () => {
  const out = join(work, 'trap');
  const outside = join(work, 'outside');
  await mkdir(out);
  await mkdir(outside);
  await symlink(outside, join(out, 'sub'));
  const r = await run(['get', ref, 'sub/deeper/small.json', '-o', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /through a symbolic link out of the output directory/);
  assert.deepEqual(await readdir(outside), [], 'nothing created outside');
});
