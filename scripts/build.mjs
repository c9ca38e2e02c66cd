#!/usr/bin/env node
// The build, run only for what is missing or older than what it is built from: npm runs this for
// `prepare` (npm install, and npx linking this checkout) and `prestart`, and each build it saves
// takes seconds. Two parts: the TypeScript of src/ into dist/ (tsc), and the web UI of web/ into
// dist/web/ (Vite). Plain JavaScript, so that the check itself costs ~50 ms.
// `node scripts/build.mjs --force` (npm run build) always builds both; `--web` checks the UI only.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', 'cli', 'main.js');
const web = join(root, 'web');
const webOut = join(root, 'dist', 'web');
const webStamp = join(webOut, 'index.html');

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

/**
 * Why the UI needs a build, or undefined when dist/web/ is up to date or cannot be built here: an
 * installed package ships dist/web/ built, without web/ or Vite.
 */
export function webStaleReason() {
  if (!existsSync(web)) return undefined;
  if (!existsSync(webStamp)) return 'dist/web/ is missing';
  const built = statSync(webStamp).mtimeMs;
  // The lock file: a new Preact or Vite changes the output as much as a new source does.
  const sources = [web, join(root, 'src', 'server', 'web', 'types.ts'), join(root, 'package-lock.json')];
  return sources.some((p) => existsSync(p) && newest(p) > built) ? 'web/ changed since the last build' : undefined;
}

/** Every file under a directory, as paths. */
function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/;

/**
 * Builds web/ into dist/web/ with Vite's JS API, then writes a .gz beside each text file: the
 * server sends it to a browser that takes gzip, and compresses nothing per request. Returns the
 * sizes of what the first page loads.
 */
export async function buildWeb() {
  const t0 = performance.now();
  let vite;
  try {
    vite = await import('vite');
  } catch {
    throw new Error('the web UI needs Vite to build: run `npm install` (it is a devDependency)');
  }
  const { default: config } = await import(join(web, 'vite.config.mjs'));
  await vite.build({ ...config, configFile: false });
  for (const f of filesUnder(webOut)) {
    if (!COMPRESSIBLE.test(f)) continue;
    const body = readFileSync(f);
    const z = gzipSync(body, { level: constants.Z_BEST_COMPRESSION });
    writeFileSync(`${f}.gz`, z);
  }
  return { ms: Math.round(performance.now() - t0), firstPage: firstPageSize(), files: filesUnder(webOut).filter((f) => !f.endsWith('.gz')).map((f) => relative(webOut, f)) };
}

/**
 * What a browser loads for the first page of a built UI (default dist/web/): index.html, what it
 * names (the entry's script, its styles, preloads), and the modules the entry imports statically;
 * `raw` and `gzip` in bytes (gzip: the .gz twin the server sends, else the file), `files` relative.
 * `npm run bench` (bench/ui.ts) reports the same figure.
 */
export function firstPageSize(dir = webOut) {
  let raw = 0;
  let gzip = 0;
  const counted = [];
  // Once each: a module the entry imports is often named by a modulepreload link as well.
  const add = (f) => {
    const p = join(dir, f);
    if (counted.includes(f) || !existsSync(p)) return;
    raw += statSync(p).size;
    gzip += existsSync(`${p}.gz`) ? statSync(`${p}.gz`).size : statSync(p).size;
    counted.push(f);
  };
  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  const first = ['index.html', ...[...html.matchAll(/(?:src|href)="\/([^"]+)"/g)].map((m) => m[1])];
  for (const f of first) add(f);
  // The modules the entry imports statically are preloaded too: count them.
  const entry = first.find((f) => f.endsWith('.js'));
  if (entry) {
    for (const m of readFileSync(join(dir, entry), 'utf8').matchAll(/from"\.\/([\w.-]+\.js)"/g)) add(join('assets', m[1]));
  }
  return { raw, gzip, files: counted };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force');
  const webOnly = process.argv.includes('--web');
  if (!webOnly) {
    const why = force ? 'asked for' : staleReason();
    if (why !== undefined) {
      process.stderr.write(`wharf: building dist/ with tsc (${why})\n`);
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    }
  }
  const whyWeb = force && existsSync(web) ? 'asked for' : webStaleReason();
  if (whyWeb !== undefined && !process.exitCode) {
    process.stderr.write(`wharf: building dist/web/ with Vite (${whyWeb})\n`);
    try {
      const r = await buildWeb();
      process.stderr.write(`wharf: web UI built in ${r.ms} ms; first page ${(r.firstPage.gzip / 1024).toFixed(1)} KiB gzipped (${(r.firstPage.raw / 1024).toFixed(1)} KiB)\n`);
    } catch (err) {
      process.stderr.write(`wharf: the web UI did not build: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
