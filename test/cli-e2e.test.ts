import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDistribution, missingPeer, REGISTRY_BIN, type Distribution } from './helpers/distribution.js';
import { wharf as run, MAIN, TSX, type RunResult } from './helpers/cli.js';
import { parseAnnotations } from '../src/cli/shared/artifact.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const skip = missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)');

let home: string;
const env = (): NodeJS.ProcessEnv => ({ DOCKER_CONFIG: join(home, '.docker'), HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache'), REGISTRY_AUTH_FILE: '' });
const wharf = (args: string[], opts: { input?: string; cwd?: string } = {}): Promise<RunResult> => run(args, { ...opts, env: env() });

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

function failsWithOneLine(r: RunResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^wharf: /);
  assert.match(lines[0]!, pattern);
}

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'wharf-cli-home-'));
});
after(async () => rm(home, { recursive: true, force: true }));

test('-a keys are kept as given, __proto__ included (an assignment would have set the prototype)', () => {
  const a = parseAnnotations(['__proto__=x', 'k=v=w', 'k2=']);
  assert.deepEqual(Object.entries(a), [['__proto__', 'x'], ['k', 'v=w'], ['k2', '']]);
  assert.throws(() => parseAnnotations(['=v']), /key=value/);
});

test('version, help, unknown command', async () => {
  const v = ok(await wharf(['version', '--format', 'json']));
  assert.match(JSON.parse(v.stdout).version, /^\d+\.\d+\.\d+/);
  const h = ok(await wharf(['push', '--help']));
  assert.match(h.stdout, /--artifact-type/);
  assert.match(h.stdout, /Examples:/);
  const u = await wharf(['frobnicate']);
  assert.equal(u.code, 2);
});

describe('cli against Distribution', { skip }, () => {
  let dist: Distribution;
  let work: string;
  let R: string;
  before(async () => {
    dist = await startDistribution();
    work = await mkdtemp(join(tmpdir(), 'wharf-cli-'));
    R = dist.host;
  });
  after(async () => {
    await dist?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('push and pull files and a directory, json output, modes kept', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'dir', 'sub'), { recursive: true });
    await writeFile(join(src, 'hello.txt'), 'hello');
    await writeFile(join(src, 'dir', 'sub', 'x.sh'), '#!/bin/sh\n');
    await chmod(join(src, 'dir', 'sub', 'x.sh'), 0o700);
    const p = ok(await wharf(['push', '--plain-http', `${R}/cli/files:v1,latest`, 'hello.txt:text/plain', 'dir', '--artifact-type', 'application/vnd.test', '-a', 'k=v', '--format', 'json'], { cwd: src }));
    const pushed = JSON.parse(p.stdout);
    assert.match(pushed.digest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(pushed.tags, ['v1', 'latest']);
    assert.equal(pushed.artifactType, 'application/vnd.test');

    const out = join(work, 'out');
    const l = ok(await wharf(['pull', '--plain-http', `${R}/cli/files:latest`, '-o', out, '--format', 'json']));
    const pulled = JSON.parse(l.stdout);
    assert.equal(pulled.digest, pushed.digest);
    assert.equal(pulled.files.length, 2);
    assert.equal(await readFile(join(out, 'hello.txt'), 'utf8'), 'hello');
    assert.equal((await stat(join(out, 'dir', 'sub', 'x.sh'))).mode & 0o777, 0o700);

    const r = ok(await wharf(['resolve', '--plain-http', `${R}/cli/files:v1`]));
    assert.equal(r.stdout.trim(), pushed.digest);
    const t = ok(await wharf(['repo', 'tags', '--plain-http', `${R}/cli/files`]));
    assert.deepEqual(t.stdout.trim().split('\n').sort(), ['latest', 'v1']);
    ok(await wharf(['tag', '--plain-http', `${R}/cli/files:v1`, 'stable']));
    const ls = ok(await wharf(['repo', 'ls', '--plain-http', R, '--format', 'json']));
    assert.ok(JSON.parse(ls.stdout).repositories.includes('cli/files'));
    const m = ok(await wharf(['manifest', 'fetch', '--plain-http', `${R}/cli/files:stable`]));
    assert.equal(JSON.parse(m.stdout).annotations.k, 'v');
    const cfg = ok(await wharf(['manifest', 'fetch-config', '--plain-http', `${R}/cli/files:stable`]));
    assert.equal(cfg.stdout, '{}');
  });

  test('plain progress lines when not on a terminal', async () => {
    const f = join(work, 'prog.bin');
    await writeFile(f, randomBytes(10_000));
    const r = ok(await wharf(['push', '--plain-http', `${R}/cli/progress:v1`, f]));
    // A file pushed for the first time is uploaded as it is hashed: its digest is known at the end.
    assert.match(r.stderr, /^Uploading sha256:\S* +prog\.bin \(9\.8 KiB\)/m);
    assert.match(r.stderr, /^Uploaded  sha256:[0-9a-f]{12} prog\.bin/m);
    const again = ok(await wharf(['push', '--plain-http', `${R}/cli/progress:v1`, f, '--format', 'json']));
    assert.equal(again.stderr, '', 'json mode keeps stderr quiet');
  });

  test('progress bars on a terminal: a total and one bar per blob, ending at 100%', { skip: missingPeer('script', 'script (util-linux)') }, async () => {
    const f = join(work, 'tty.bin');
    const data = randomBytes(300_000);
    await writeFile(f, data);
    ok(await wharf(['push', '--plain-http', `${R}/cli/tty:v1`, f]));
    const out = join(work, 'tty-out');
    // script(1) gives the command a pseudo-terminal, as a user's shell would.
    const cmd = [process.execPath, '--import', TSX, MAIN, 'pull', '--plain-http', `${R}/cli/tty:v1`, '-o', out].map((a) => `'${a}'`).join(' ');
    const { stdout } = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, ...env() } });
    assert.match(stdout, / total +\|[^|]*\| 100% /);
    // All of it fits the pseudo-terminal's 80 columns: the bar gives way.
    assert.match(stdout, /Downloaded +tty\.bin +\|[^|]*\| 100% 293\.0 KiB\/293\.0 KiB \S+ \S+\/s ETA +0s/);
    assert.deepEqual(await readFile(join(out, 'tty.bin')), data);
  });

  test('attach and discover (tree, table, json)', async () => {
    const f = join(work, 'app.bin');
    await writeFile(f, 'app');
    const pushed = JSON.parse(ok(await wharf(['push', '--plain-http', `${R}/cli/app:v1`, f, '--format', 'json'])).stdout);
    const sig = join(work, 'sig.txt');
    await writeFile(sig, 'sig');
    const missing = await wharf(['attach', '--plain-http', `${R}/cli/app:v1`, sig]);
    failsWithOneLine(missing, /--artifact-type/);
    const a = JSON.parse(ok(await wharf(['attach', '--plain-http', `${R}/cli/app:v1`, sig, '--artifact-type', 'application/vnd.sig', '--format', 'json'])).stdout);
    assert.equal(a.subject.digest, pushed.digest);
    const tree = ok(await wharf(['discover', '--plain-http', `${R}/cli/app:v1`]));
    assert.match(tree.stdout, /application\/vnd\.sig/);
    assert.ok(tree.stdout.includes(a.digest));
    const table = ok(await wharf(['discover', '--plain-http', `${R}/cli/app:v1`, '--format', 'table']));
    assert.match(table.stdout, /^DEPTH/);
    const json = JSON.parse(ok(await wharf(['discover', '--plain-http', `${R}/cli/app:v1`, '--format', 'json'])).stdout);
    assert.deepEqual(json.referrers.map((x: { digest: string }) => x.digest), [a.digest]);
    const tags = ok(await wharf(['repo', 'tags', '--plain-http', `${R}/cli/app`, '--exclude-digest-tags']));
    assert.equal(tags.stdout.trim(), 'v1');
  });

  test('cp -r to a layout tar and back; backup and restore', async () => {
    const f = join(work, 'cp.bin');
    await writeFile(f, randomBytes(5000));
    ok(await wharf(['push', '--plain-http', `${R}/cli/cp:v1`, f]));
    const sig = join(work, 'cp-sig');
    await writeFile(sig, 's');
    ok(await wharf(['attach', '--plain-http', `${R}/cli/cp:v1`, sig, '--artifact-type', 'application/vnd.sig']));
    const tarFile = join(work, 'cp.tar');
    ok(await wharf(['cp', '-r', '--plain-http', `${R}/cli/cp:v1`, `${tarFile}:v1`, '--to-oci-layout']));
    const back = ok(await wharf(['cp', '-r', '--plain-http', `${tarFile}:v1`, `${R}/cli/cp-back:v1`, '--from-oci-layout', '--format', 'json']));
    assert.deepEqual(JSON.parse(back.stdout).tags, ['v1']);
    const d = JSON.parse(ok(await wharf(['discover', '--plain-http', `${R}/cli/cp-back:v1`, '--format', 'json'])).stdout);
    assert.equal(d.referrers.length, 1);

    const bdir = join(work, 'backup-dir');
    ok(await wharf(['backup', '--plain-http', `${R}/cli/cp`, bdir, '--include-referrers']));
    assert.ok((await readdir(join(bdir, 'blobs', 'sha256'))).length >= 4);
    const restored = JSON.parse(ok(await wharf(['restore', '--plain-http', bdir, `${R}/cli/restored`, '--include-referrers', '--format', 'json'])).stdout);
    assert.deepEqual(restored.tags.map((t: { tag: string }) => t.tag), ['v1']);
  });

  test('manifest push/delete, index create/update, blob push/fetch/delete', async () => {
    const f = join(work, 'blob.bin');
    const data = randomBytes(3000);
    await writeFile(f, data);
    const b = JSON.parse(ok(await wharf(['blob', 'push', '--plain-http', `${R}/cli/raw`, f, '--format', 'json'])).stdout);
    const got = join(work, 'blob.out');
    ok(await wharf(['blob', 'fetch', '--plain-http', `${R}/cli/raw@${b.digest}`, '-o', got]));
    assert.deepEqual(await readFile(got), data);
    ok(await wharf(['blob', 'push', '--plain-http', `${R}/cli/raw`, join(work, 'app.bin')]));
    const empty = '{}';
    await writeFile(join(work, 'empty.json'), empty);
    ok(await wharf(['blob', 'push', '--plain-http', `${R}/cli/raw`, join(work, 'empty.json')]));
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/x', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 }, layers: [{ mediaType: 'application/octet-stream', digest: b.digest, size: b.size }] });
    const mp = JSON.parse(ok(await wharf(['manifest', 'push', '--plain-http', `${R}/cli/raw:m1`, '--format', 'json'], { input: manifest })).stdout);
    ok(await wharf(['manifest', 'push', '--plain-http', `${R}/cli/raw:m2`], { input: manifest.replace('"application/x"', '"application/y"') }));
    const idx = JSON.parse(ok(await wharf(['manifest', 'index', 'create', '--plain-http', `${R}/cli/raw:all`, 'm1', '--format', 'json'])).stdout);
    assert.equal(idx.manifests.length, 1);
    const upd = JSON.parse(ok(await wharf(['manifest', 'index', 'update', '--plain-http', `${R}/cli/raw:all`, '--add', 'm2', '--remove', 'm1', '--format', 'json'])).stdout);
    assert.deepEqual(upd.manifests.map((m: { artifactType: string }) => m.artifactType), ['application/y']);
    ok(await wharf(['manifest', 'delete', '--force', '--plain-http', `${R}/cli/raw@${mp.digest}`]));
    const gone = await wharf(['resolve', '--plain-http', `${R}/cli/raw@${mp.digest}`]);
    failsWithOneLine(gone, /MANIFEST_UNKNOWN/);
    ok(await wharf(['blob', 'delete', '--plain-http', `${R}/cli/raw@${b.digest}`]));
    failsWithOneLine(await wharf(['blob', 'fetch', '--plain-http', `${R}/cli/raw@${b.digest}`, '-o', got]), /BLOB_UNKNOWN/);
  });

  test('tag rm on Distribution, which does not delete a tag alone: one line that says so, and every tag stays', async () => {
    await writeFile(join(work, 'untag.txt'), 'untag');
    ok(await wharf(['push', '--plain-http', `${R}/cli/untag:v1,v2`, 'untag.txt'], { cwd: work }));
    const r = await wharf(['tag', 'rm', '--plain-http', `${R}/cli/untag:v2`]);
    failsWithOneLine(r, /does not delete a tag alone/);
    assert.match(r.stderr, /wharf manifest delete/);
    assert.deepEqual(ok(await wharf(['repo', 'tags', '--plain-http', `${R}/cli/untag`])).stdout.trim().split('\n'), ['v1', 'v2']);
  });

  test('errors are one line: no tag, bad reference, unreachable registry, TLS to a plain registry', async () => {
    failsWithOneLine(await wharf(['pull', '--plain-http', `${R}/cli/files`]), /names no tag or digest/);
    failsWithOneLine(await wharf(['pull', 'files:v1']), /needs a registry host/);
    failsWithOneLine(await wharf(['resolve', '--plain-http', '127.0.0.1:1/x:v1']), /cannot reach 127\.0\.0\.1:1/);
    failsWithOneLine(await wharf(['resolve', `${R}/cli/files:v1`]), /--plain-http/);
  });
});

describe('cli login/logout against Distribution with basic auth', { skip }, () => {
  let dist: Distribution;
  before(async () => {
    dist = await startDistribution({ users: { carol: 'pw1' } });
  });
  after(async () => dist?.stop());

  test('login checks and stores credentials like docker; logout forgets them', async () => {
    failsWithOneLine(await wharf(['login', '--plain-http', dist.host, '-u', 'carol', '-p', 'wrong']), /UNAUTHORIZED/);
    ok(await wharf(['login', '--plain-http', dist.host, '-u', 'carol', '--password-stdin'], { input: 'pw1\n' }));
    const cfg = JSON.parse(await readFile(join(home, '.docker', 'config.json'), 'utf8'));
    assert.equal(Buffer.from(cfg.auths[dist.host].auth, 'base64').toString(), 'carol:pw1');
    const f = join(home, 'f.txt');
    await writeFile(f, 'x');
    ok(await wharf(['push', '--plain-http', `${dist.host}/private/a:v1`, f]));
    ok(await wharf(['logout', dist.host]));
    failsWithOneLine(await wharf(['resolve', '--plain-http', `${dist.host}/private/a:v1`]), /wharf login/);
  });
});
