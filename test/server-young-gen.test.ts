/**
 * The young generation's cap (src/server/io/young-gc.ts): a process that allocates at the rate of
 * a busy server, with objects that survive a scavenge or two, keeps V8's new space at the cap,
 * where without it V8 doubles the space up to 32 MiB; and a size chosen on the command line wins.
 * Each case runs in a fresh Node process: the cap holds from where it is set, and a test runner's
 * own new space has grown long before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const MiB = 1 << 20;
const TSX = pathToFileURL(fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url))).href;
const YOUNG_GC = pathToFileURL(fileURLToPath(new URL('../src/server/io/young-gc.ts', import.meta.url))).href;

/** Runs the allocation in a child; returns the new space's size before the cap and its most after. */
function churn(cap: number | undefined, nodeArgs: string[] = [], worker?: 'reassert'): { before: number; most: number } {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { Worker } from 'node:worker_threads';
    import { capYoungGeneration, reassertYoungCap } from ${JSON.stringify(YOUNG_GC)};
    const size = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    const before = size();
    ${cap === undefined ? '' : `capYoungGeneration(${cap});`}
    ${
      worker === undefined
        ? ''
        : `const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
           await new Promise((r) => w.once('online', r));
           reassertYoungCap();
           w.unref();`
    }
    let most = size();
    // Requests in flight: each lives across a few scavenges before it is let go; the event loop
    // turns between requests, as a server's does.
    let live = [];
    for (let i = 0; i < 3e6; i++) {
      live.push({ i, s: 'request ' + i });
      if (live.length > 40000) live = [];
      if (i % 1000 === 0) {
        most = Math.max(most, size());
        await new Promise((r) => setImmediate(r));
      }
    }
    await new Promise((r) => setImmediate(r));
    console.log(JSON.stringify({ before, most: Math.max(most, size()) }));
  `;
  const r = spawnSync(process.execPath, [...nodeArgs, '--import', TSX, '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { before: number; most: number };
}

test('without the cap, the allocation grows new space past 8 MiB (what the cap is for)', () => {
  const { most } = churn(undefined);
  assert.ok(most > 8 * MiB, `new space ${most / MiB} MiB`);
});

/**
 * Node 24's V8 (13.6) sometimes commits pages past the semi-spaces' capacity while the capacity
 * itself holds (seen on a loaded 2-core machine: 4.75 and 9.7 MiB under a cap of 4, and 8 MiB
 * when idle); its own default there is 64 MiB.
 */
const SLACK = Number(process.versions.node.split('.')[0]) >= 24 ? 3 : 1;

test('capped at 4 or 8 MiB, new space stays there under the same allocation', () => {
  for (const cap of [4 * MiB, 8 * MiB]) {
    const { before, most } = churn(cap);
    assert.ok(before <= cap, `new space was ${before / MiB} MiB before the cap`);
    assert.ok(most <= cap * SLACK, `new space ${most / MiB} MiB under a cap of ${cap / MiB} MiB`);
  }
});

// A worker thread's start undoes the growth factor: before the cap set it again at every
// collection and on the worker's 'online', this took new space to 32 MiB.
test('the cap holds after a worker thread starts', () => {
  const { most } = churn(4 * MiB, [], 'reassert');
  assert.ok(most <= 4 * MiB * SLACK, `new space ${most / MiB} MiB under a cap of 4 MiB after a worker started`);
});

test('a young generation sized on the command line is left alone', () => {
  const { most } = churn(4 * MiB, ['--max-semi-space-size=8']);
  assert.ok(most > 4 * MiB, `new space ${most / MiB} MiB`);
});
