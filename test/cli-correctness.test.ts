/**
 * What a new user of the CLI hit first (issue 24, "CLI correctness"), each against a real
 * `wharf serve` on port 0: credentials on the catalog, manifest delete and tag rm, `-o -`, help
 * of every action and shell completion, `ls` of every file, one-line errors that name cause and
 * fix, empty pushes, failed pulls, and login without a credential helper.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { GROUPS } from '../src/cli/commands.js';
import { actionName } from '../src/cli/shared/group.js';
import { Registry, openArtifact } from '../src/index.js';
import { basic, pushArtifact as pushRaw, startAuthServer } from './helpers/auth.js';
import { wharf, type RunResult } from './helpers/cli.js';

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Fails with exactly one line on stderr that matches every pattern. */
function oneLine(r: RunResult, ...patterns: RegExp[]): string {
  assert.notEqual(r.code, 0, `expected a failure, got exit 0\nstdout: ${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  for (const p of patterns) assert.match(lines[0]!, p);
  return lines[0]!;
}

describe('cli on wharf serve with users and rules', () => {
  let s: RunningServer & { dataDir: string };
  let host: string;
  let work: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    s = await startAuthServer();
    host = new URL(s.url).host;
    work = await mkdtemp(join(tmpdir(), 'wharf-cli-correct-'));
    env = { DOCKER_CONFIG: join(work, 'docker'), REGISTRY_AUTH_FILE: join(work, 'none.json') };
    await pushRaw(s.url, 'ml/img', 'v1', basic('alice'));
    await pushRaw(s.url, 'public/tool', 'v1', basic('root'));
  });
  after(async () => {
    await s.close();
    await rm(s.dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });
  const run = (args: string[], opts: { input?: string; cwd?: string } = {}): Promise<RunResult> => wharf([...args, '--plain-http'], { ...opts, env });

  test('repo ls sends the credentials of -u/-p and of wharf login with the catalog request', async () => {
    assert.deepEqual(ok(await run(['repo', 'ls', host])).stdout.trim().split('\n'), ['public/tool']);
    const withFlags = ok(await run(['repo', 'ls', '-u', 'alice', '-p', 'alice-pw', host]));
    assert.deepEqual(withFlags.stdout.trim().split('\n'), ['ml/img', 'public/tool']);
    ok(await run(['login', host, '-u', 'alice', '--password-stdin'], { input: 'alice-pw\n' }));
    const stored = ok(await run(['repo', 'ls', host]));
    assert.deepEqual(stored.stdout.trim().split('\n'), ['ml/img', 'public/tool']);
    ok(await wharf(['logout', host], { env }));
  });

  test('login that stores the password in config.json says no credential helper is configured', async () => {
    const r = ok(await run(['login', host, '-u', 'bob', '--password-stdin'], { input: 'bob-pw\n' }));
    assert.match(r.stderr, /no credential helper/i);
    assert.match(r.stderr, /config\.json/);
    assert.match(r.stdout, /Login Succeeded/);
    ok(await wharf(['logout', host], { env }));
  });

  test('a valid user without rights gets a permission message, not "check wharf login"', async () => {
    await writeFile(join(work, 'f.txt'), 'x');
    // bob may pull ml/**, not push.
    const r = await run(['push', '--format', 'json', '-u', 'bob', '-p', 'bob-pw', `${host}/ml/bob:v1`, 'f.txt'], { cwd: work });
    const line = oneLine(r, /permission|not allowed|denied/i, /bob/);
    assert.doesNotMatch(line, /check "?wharf login/);
    // Wrong password: that is a login problem, and says so.
    const bad = await run(['repo', 'tags', '-u', 'bob', '-p', 'wrong', `${host}/ml/img`]);
    oneLine(bad, /credentials|password/i, /wharf login/);
  });
});

describe('cli on an open wharf serve', () => {
  let s: RunningServer;
  let host: string;
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'wharf-cli-correct-'));
    s = await startServer({ dataDir: join(work, 'data'), port: 0, logLevel: 'silent' });
    host = new URL(s.url).host;
    await mkdir(join(work, 'model', 'sub'), { recursive: true });
    await writeFile(join(work, 'model', 'weights.bin'), 'weights');
    await writeFile(join(work, 'model', 'sub', 'cfg.json'), '{}');
    await writeFile(join(work, 'README.md'), '# model\n');
  });
  after(async () => {
    await s.close();
    await rm(work, { recursive: true, force: true });
  });
  const run = (args: string[], opts: { input?: string; cwd?: string } = {}): Promise<RunResult> => wharf([...args, '--plain-http'], { cwd: work, ...opts });

  test('ls lists every file of an artifact: the directory layer and the plain file layer', async () => {
    ok(await run(['push', `${host}/ml/model:v1`, 'model', 'README.md:text/markdown']));
    const ls = ok(await run(['ls', `${host}/ml/model:v1`])).stdout.trim().split('\n');
    for (const p of ['README.md', 'model/', 'model/weights.bin', 'model/sub/cfg.json']) assert.ok(ls.includes(p), `${p} in:\n${ls.join('\n')}`);
    assert.equal(ok(await run(['cat', `${host}/ml/model:v1`, 'README.md'])).stdout, '# model\n');
    assert.equal(ok(await run(['cat', `${host}/ml/model:v1`, 'README.md', '--offset', '2', '--length', '5'])).stdout, 'model');
  });

  test('openArtifact offers readdir, stat, readFile and createReadStream, as the README shows', async () => {
    const reg = new Registry(host, { plainHttp: true });
    try {
      const art = await openArtifact(reg.repository('ml/model'), 'v1');
      try {
        assert.deepEqual(await art.readdir(''), ['README.md', 'model']);
        assert.equal((await art.stat('model/weights.bin')).size, 7);
        assert.equal((await art.readFile('README.md')).toString(), '# model\n');
        const chunks: Buffer[] = [];
        for await (const c of art.createReadStream('model/weights.bin', { start: 1, end: 3 })) chunks.push(c as Buffer);
        assert.equal(Buffer.concat(chunks).toString(), 'eig');
      } finally {
        await art.close();
      }
    } finally {
      await reg.close();
    }
  });

  test('manifest delete names every tag that goes and asks; without a terminal it needs --force; tag rm removes one tag', async () => {
    ok(await run(['push', `${host}/del/app:v1,latest,stable`, 'README.md']));
    const refused = await run(['manifest', 'delete', `${host}/del/app:v1`]);
    assert.equal(refused.code, 2);
    oneLine(refused, /--force/, /v1, latest, stable|latest, stable, v1/, /tag rm/);
    assert.deepEqual(ok(await run(['repo', 'tags', `${host}/del/app`])).stdout.trim().split('\n'), ['latest', 'stable', 'v1'], 'nothing went');

    const rm1 = ok(await run(['tag', 'rm', `${host}/del/app:stable`]));
    assert.match(rm1.stdout, /Untagged .*del\/app:stable/);
    assert.deepEqual(ok(await run(['repo', 'tags', `${host}/del/app`])).stdout.trim().split('\n'), ['latest', 'v1']);
    ok(await run(['untag', `${host}/del/app:latest`]));
    assert.deepEqual(ok(await run(['repo', 'tags', `${host}/del/app`])).stdout.trim().split('\n'), ['v1']);
    oneLine(await run(['tag', 'rm', `${host}/del/app@sha256:${'0'.repeat(64)}`]), /one tag/, /manifest delete/);

    const del = ok(await run(['manifest', 'delete', '--force', `${host}/del/app:v1`]));
    assert.match(del.stdout, /Deleted/);
    assert.match(del.stdout, /v1/);
  });

  test('manifest delete on a terminal asks, and deletes only on yes', { skip: spawnSync('sh', ['-c', 'command -v script']).status === 0 ? false : 'script (util-linux) is not installed' }, async () => {
    ok(await run(['push', `${host}/ask/app:v1,v2`, 'README.md']));
    const { MAIN, TSX } = await import('./helpers/cli.js');
    // Asynchronous: the registry runs in this process and must go on answering while the CLI asks.
    const ask = (answer: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const child = spawn('script', ['-qec', `${process.execPath} --import ${TSX} ${MAIN} manifest delete --plain-http ${host}/ask/app:v1`, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        child.on('error', reject);
        child.on('close', () => resolve(out));
        child.stdin.end(`${answer}\n`);
      });
    const no = await ask('n');
    assert.match(no, /v1, v2/);
    assert.match(no, /not deleted/);
    assert.deepEqual(ok(await run(['repo', 'tags', `${host}/ask/app`])).stdout.trim().split('\n'), ['v1', 'v2']);
    const yes = await ask('y');
    assert.match(yes, /Deleted/);
  });

  test('-o - writes to stdout wherever --output=- does', async () => {
    const push = ok(await run(['push', '--format', 'json', `${host}/out/app:v1`, 'README.md']));
    const digest = (JSON.parse(push.stdout) as { digest: string }).digest;
    const long = ok(await run(['manifest', 'fetch', `${host}/out/app:v1`, '--output=-'])).stdout;
    assert.equal(ok(await run(['manifest', 'fetch', `${host}/out/app:v1`, '-o', '-'])).stdout, long);
    assert.equal(ok(await run(['manifest', 'fetch', '-o', '-', `${host}/out/app@${digest}`])).stdout, long);
    const layer = (JSON.parse(long) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
    assert.equal(ok(await run(['blob', 'fetch', `${host}/out/app@${layer}`, '-o', '-'])).stdout, '# model\n');
  });

  test('pushing no files is refused unless --allow-empty', async () => {
    const r = await run(['push', `${host}/empty/app:v1`]);
    oneLine(r, /no files/i, /--allow-empty/);
    assert.equal((await run(['resolve', `${host}/empty/app:v1`])).code, 1, 'nothing was pushed');
    ok(await run(['push', '--allow-empty', `${host}/empty/app:v1`]));
  });

  test('a failed pull leaves no output directory it created; file-system errors say what and how to fix', async () => {
    const out = join(work, 'never');
    oneLine(await run(['pull', `${host}/none/app:v1`, '-o', out]), /not found/);
    assert.equal(existsSync(out), false, 'the output directory it created is gone');

    ok(await run(['push', `${host}/fs/app:v1`, 'README.md']));
    const file = join(work, 'a-file');
    await writeFile(file, 'x');
    const exists = oneLine(await run(['pull', `${host}/fs/app:v1`, '-o', file]), /a-file/, /not a directory|is a file/i);
    assert.doesNotMatch(exists, /EEXIST:|ENOTDIR:/);
    if (process.getuid?.() !== 0) {
      const ro = join(work, 'ro');
      await mkdir(ro);
      await chmod(ro, 0o555);
      const line = oneLine(await run(['pull', `${host}/fs/app:v1`, '-o', join(ro, 'x')]), /permission/i);
      assert.doesNotMatch(line, /EACCES: EACCES/);
    }
    // A target below a file: ENOTDIR/ENOENT as a sentence, not the raw errno twice.
    const below = oneLine(await run(['pull', `${host}/fs/app:v1`, '-o', join(file, 'sub')]), /cannot create/i);
    assert.doesNotMatch(below, /(ENOENT|ENOTDIR): \1/);
    assert.ok((await stat(file)).isFile());
  });

  test('pulling an image, whose layers have no file names, says what to use instead', async () => {
    await pushRaw(s.url, 'img/plain', 'v1', {});
    const out = join(work, 'img-out');
    oneLine(await run(['pull', `${host}/img/plain:v1`, '-o', out]), /has no files to pull/, /file name/, /wharf get/, /wharf cp/);
    assert.equal(existsSync(out), false);
  });
});

describe('cli: the server\'s own explanation is shown', () => {
  let server: Server;
  let host: string;
  before(async () => {
    // A registry front that is down for maintenance: the CLI must pass on what it says, not just the status.
    server = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0', warning: '111 - "upstream registry-1 is unreachable"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable', detail: 'read-only for maintenance until 14:00' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  test('a 503 reason, its detail and a Warning header reach the user', async () => {
    const r = await wharf(['resolve', '--plain-http', `${host}/a/b:v1`]);
    oneLine(r, /503/, /maintenance until 14:00/, /upstream registry-1 is unreachable/);
  });
});

describe('cli help and completion', () => {
  test('every action of every command has its own --help with options and examples; the bare command lists its actions', async () => {
    for (const g of GROUPS) {
      const bare = ok(await wharf([g.alsoCommand ? `${g.name}` : g.name, ...(g.alsoCommand ? ['--help'] : [])]));
      if (!g.alsoCommand) for (const a of g.actions) assert.match(bare.stdout, new RegExp(`^\\s+${actionName(a)}\\b`, 'm'), `wharf ${g.name} lists ${actionName(a)}`);
      for (const a of g.actions) {
        const h = await wharf([g.name, actionName(a), '--help']);
        assert.equal(h.code, 0, `wharf ${g.name} ${actionName(a)} --help: ${h.stderr}`);
        assert.equal(h.stderr, '');
        assert.match(h.stdout, new RegExp(`Usage:\\s+\\$ wharf ${g.name} ${actionName(a)}`));
        assert.match(h.stdout, /Options:/);
        assert.match(h.stdout, /Examples:/);
      }
    }
    const unknown = await wharf(['manifest', 'frob']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown action "frob" of wharf manifest/);
  });

  test('wharf completion bash is valid bash and completes commands, actions and flags', { skip: spawnSync('sh', ['-c', 'command -v bash']).status === 0 ? false : 'bash is not installed' }, async () => {
    const script = ok(await wharf(['completion', 'bash'])).stdout;
    const dir = await mkdtemp(join(tmpdir(), 'wharf-completion-'));
    try {
      const file = join(dir, 'wharf.bash');
      await writeFile(file, script);
      assert.equal(spawnSync('bash', ['-n', file]).status, 0, 'bash -n');
      const complete = (...words: string[]): string[] => {
        const r = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _wharf; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.split('\n').filter(Boolean);
      };
      assert.deepEqual(complete('wharf', 'pu'), ['push', 'pull']);
      assert.deepEqual(complete('wharf', 'manifest', 'de'), ['delete']);
      assert.ok(complete('wharf', 'manifest', 'delete', '--fo').includes('--force'));
      assert.ok(complete('wharf', 'push', '--artifact-').includes('--artifact-type'));
      assert.ok(complete('wharf', 'tag', 'r').includes('rm'));
      for (const shell of ['zsh', 'fish']) assert.match(ok(await wharf(['completion', shell])).stdout, /manifest/);
      assert.equal((await wharf(['completion', 'tcsh'])).code, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('the README quick start and examples say what the code does', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  assert.match(readme, /```sh\nnpm install && npm start\nnpm test\n```/);
  assert.doesNotMatch(readme, /wharf pull [^\n]*alpine/, 'pull writes the files of artifacts; an image is unpacked with wharf get');
});
