import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { freePort } from './distribution.js';
// Every CLI a test runs gets a temporary home, also when the file runs outside npm test.
import './home.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = join(root, 'src', 'cli', 'main.ts');
/** tsx by path, so that the CLI can run from any working directory. */
export const TSX = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `wharf` entry point (through tsx) as a user would. */
export function wharf(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
      cwd: opts.cwd ?? root,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * `wharf serve --config <dir>/wharf.yaml` as a child process on a free port, for tests that kill it:
 * the config holds the data directory (`<dir>/data`), the port, silent logs and `extraYaml`.
 * Resolves once `/healthz` answers.
 */
export async function spawnServe(dir: string, extraYaml = ''): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  await writeFile(join(dir, 'wharf.yaml'), `data: ${join(dir, 'data')}\nlisten: 127.0.0.1:${port}\nlog: { level: silent }\n${extraYaml}`);
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--config', join(dir, 'wharf.yaml')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`${url}/healthz`).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );
    if (up) return { child, url };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`wharf serve did not answer on ${url}`);
}
