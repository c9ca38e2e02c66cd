/**
 * What the tests of the cluster helpers (test/helpers/cluster.ts) check with: the processes of a
 * cluster, that it is gone, and a child process that starts one and then ends as told.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** The processes of a cluster: its directory in their command line, or as their working directory. */
export function processesOf(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (pid === String(process.pid)) continue;
    let cmd = '';
    let cwd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // gone meanwhile, or a zombie (no working directory): holds nothing
    }
    if (cmd.includes(dir) || cwd.startsWith(dir)) found.push(`${pid} ${cmd}`);
  }
  return found;
}

/** Waits up to `timeoutMs` for the cluster's processes and directory to be gone, then asserts it. */
export async function gone(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (processesOf(dir).length > 0 || existsSync(dir))) await sleep(100);
  assert.deepEqual(processesOf(dir), [], `left running for ${dir}`);
  assert.equal(existsSync(dir), false, `${dir} left behind`);
}

/**
 * A process that starts a cluster through `helper` (a module URL) and its export `start`, prints
 * the cluster's directory, then exits (`exit`) or waits to be killed (`hang`).
 */
export function childWithCluster(helper: URL, start: string, end: 'exit' | 'hang'): { dir: Promise<string>; kill(): void; exited: Promise<number | null> } {
  const code = `const { ${start} } = await import(${JSON.stringify(helper.href)});
const c = await ${start}();
console.log('DIR=' + c.dir);
${end === 'exit' ? 'process.exit(0);' : 'setInterval(() => {}, 1000);'}`;
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
  const dir = new Promise<string>((resolve, reject) => {
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = out.match(/^DIR=(.+)$/m);
      if (m) resolve(m[1]!);
    });
    void exited.then((c) => reject(new Error(`child exited ${c} before its cluster was up: ${err}`)));
  });
  return { dir, kill: () => p.kill('SIGKILL'), exited };
}
