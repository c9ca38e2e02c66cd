import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runningDigest, OFF_THREAD_MIN, type RunningDigest } from '../src/content/index.js';

const hex = (algorithm: string, ...parts: Buffer[]): string => {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return `${algorithm}:${h.digest('hex')}`;
};

async function feed(d: RunningDigest, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) await d.update(c);
}

// Sizes around the thread's 1 MiB buffers: smaller, exactly one, straddling two, several at once.
const chunks = [1, 65_536, 1 << 20, (1 << 20) - 1, 3 * (1 << 20) + 7, 0, 12_345].map((n) => randomBytes(n));

for (const [where, hint] of [['on the caller thread', 1024], ['on the digest thread', OFF_THREAD_MIN]] as const) {
  test(`a running digest ${where} equals a one-shot hash, for sha256 and sha512`, async () => {
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const d = runningDigest(algorithm, hint);
      await feed(d, chunks);
      assert.equal(await d.digest(), hex(algorithm, ...chunks));
    }
    assert.equal(await runningDigest('sha256', hint).digest(), hex('sha256'));
  });

  test(`a copy ${where} goes on apart from its original (a failed chunk rolls back)`, async () => {
    const d = runningDigest('sha256', hint);
    await feed(d, chunks.slice(0, 3));
    const before = d.copy();
    await feed(d, chunks.slice(3));
    await feed(before, [chunks[6]!]);
    assert.equal(await d.digest(), hex('sha256', ...chunks));
    assert.equal(await before.digest(), hex('sha256', ...chunks.slice(0, 3), chunks[6]!));
  });
}

test('digests on the thread running side by side keep their bytes apart', async () => {
  const bodies = Array.from({ length: 12 }, (_, i) => Array.from({ length: 6 }, (_, k) => randomBytes(200_000 + i * 1000 + k)));
  const got = await Promise.all(
    bodies.map(async (parts) => {
      const d = runningDigest('sha256', OFF_THREAD_MIN);
      for (const p of parts) {
        await d.update(p);
        await new Promise((r) => setImmediate(r));
      }
      return d.digest();
    }),
  );
  assert.deepEqual(got, bodies.map((parts) => hex('sha256', ...parts)));
});

test('an idle digest thread does not keep the process alive, and a digest in progress does', () => {
  const module = fileURLToPath(new URL('../src/content/digest.ts', import.meta.url));
  const script = `
    import { runningDigest } from ${JSON.stringify(module)};
    const d = runningDigest('sha256', ${OFF_THREAD_MIN});
    d.update(Buffer.alloc(${3 * OFF_THREAD_MIN}, 1));
    d.digest().then((x) => console.log(x));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), hex('sha256', Buffer.alloc(3 * OFF_THREAD_MIN, 1)));
});
