/**
 * Ctrl-C during a push on a terminal (issue 24): the progress bars hide the cursor and turn line
 * wrap off, and every way out must turn them back on; the push's temporary directory must go too.
 * The CLI runs on a real pseudo-terminal (util-linux `script`), against a real `wharf serve` behind
 * a proxy that holds the upload, so that SIGINT lands while the bars are drawn.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type RunningServer } from '../src/server/index.js';
import { MAIN, TSX } from './helpers/cli.js';
import { startProxy, type Proxy } from './helpers/proxy.js';

const SCRIPT = '/usr/bin/script';
const noScript = spawnSync(SCRIPT, ['--version']).status === 0 ? undefined : 'util-linux script (bsdutils) is not installed';
if (noScript && process.env.CI === 'true') throw new Error(`${noScript}; CI needs it`);

const SHOW_CURSOR = '\x1b[?25h';
const HIDE_CURSOR = '\x1b[?25l';
const WRAP_ON = '\x1b[?7h';
const WRAP_OFF = '\x1b[?7l';
const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describe('Ctrl-C during a push on a terminal', { skip: noScript }, () => {
  let server: RunningServer;
  let proxy: Proxy;
  let dir: string;
  /** Set when the proxy holds an upload's first PATCH: the bars are on the screen then. */
  let held: () => void = () => undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-interrupt-'));
    server = await startServer({ dataDir: join(dir, 'data'), port: 0, logLevel: 'silent', config: { storage: { fsync: false } } });
    // Every PATCH is held: the push waits on it until it is interrupted.
    proxy = await startProxy(server.url, (req) => {
      if (req.method !== 'PATCH') return false;
      held();
      req.resume();
      return true;
    });
  });
  after(async () => {
    await proxy?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    test(`${sig}: the bytes written to the terminal end with the cursor shown and line wrap on; exit 130, no temp directory left`, async () => {
      const home = await mkdtemp(join(dir, 'home-'));
      const tmp = await mkdtemp(join(dir, 'tmp-'));
      const files = join(dir, `files-${sig}`);
      await mkdir(join(files, 'tree'), { recursive: true });
      await writeFile(join(files, 'tree', 'a.txt'), 'a directory makes the push pack a tar in a temporary directory');
      await writeFile(join(files, 'big.bin'), randomBytes(4 << 20));
      const pidFile = join(dir, `pid-${sig}`);
      const typescript = join(dir, `typescript-${sig}`);
      const cmd = `echo $$ > ${sq(pidFile)}; cd ${sq(files)}; exec ${sq(process.execPath)} --import ${sq(TSX)} ${sq(MAIN)} push --plain-http --chunk-size 1M ${proxy.host}/tty/push:v1 tree big.bin`;
      const atPatch = new Promise<void>((r) => (held = r));
      const child = spawn(SCRIPT, ['-q', '-e', '-c', cmd, typescript], { env: { ...process.env, HOME: home, XDG_CACHE_HOME: '', TMPDIR: tmp, COLUMNS: '100' }, stdio: ['pipe', 'ignore', 'ignore'] });
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      await atPatch;
      await sleep(300); // a redraw or two of the bars
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      process.kill(pid, sig);
      const giveUp = new AbortController();
      const code = await Promise.race([exited, sleep(15_000, 'timeout' as const, { signal: giveUp.signal }).catch(() => 'timeout' as const)]);
      giveUp.abort();
      assert.notEqual(code, 'timeout', 'the push stops on the signal');
      const out = (await readFile(typescript)).toString('latin1');
      assert.ok(out.includes(HIDE_CURSOR), 'the bars were drawn (cursor hidden)');
      assert.ok(out.lastIndexOf(SHOW_CURSOR) > out.lastIndexOf(HIDE_CURSOR), 'the cursor is shown again after it was last hidden');
      assert.ok(out.lastIndexOf(WRAP_ON) > out.lastIndexOf(WRAP_OFF), 'line wrap is on again after it was last turned off');
      assert.equal(code, 130);
      assert.match(out, /interrupted/);
      assert.deepEqual((await readdir(tmp)).filter((f) => f.startsWith('wharf-push-')), [], 'no temporary directory is left');
    });
  }
});
