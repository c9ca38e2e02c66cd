#!/usr/bin/env node
// The TypeScript build, run only when dist/ is missing or older than what it is built from: npm
// runs this for `prepare` (npm install, and npx linking this checkout) and `prestart`, and the tsc
// run it saves takes seconds each time. Plain JavaScript, so that the check itself costs ~50 ms.
// `node scripts/build.mjs --force` (npm run build) always builds.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', 'cli', 'main.js');

/** The newest mtime under a directory (or of a file), in ms. */
function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const e of readdirSync(path)) m = Math.max(m, newest(join(path, e)));
  return m;
}

/** Why a build is needed, or undefined when dist/ is up to date. */
export function staleReason() {
  if (!existsSync(stamp)) return 'dist/ is missing';
  const built = statSync(stamp).mtimeMs;
  const sources = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'].map((p) => join(root, p));
  return sources.some((p) => existsSync(p) && newest(p) > built) ? 'src/ changed since the last build' : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force');
  const why = force ? 'asked for' : staleReason();
  if (why !== undefined) {
    process.stderr.write(`wharf: building dist/ with tsc (${why})\n`);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  }
}
