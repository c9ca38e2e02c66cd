/**
 * The off-thread hasher gives the digests node:crypto gives, whatever the sizes and the chunking,
 * in place (one batch or less) and on a hashing thread (more); copies go on independently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createHasher, type Hasher } from '../src/content/index.js';

async function feed(h: Hasher, data: Buffer, step: number): Promise<void> {
  for (let off = 0; off < data.length; off += step) {
    const chunk = Buffer.from(data.subarray(off, off + step));
    const behind = h.update(chunk);
    chunk.fill(0); // the hasher copied it: the caller may reuse its buffer at once
    if (behind) await behind;
  }
}

const sha = (alg: string, b: Buffer): string => createHash(alg).update(b).digest('hex');

for (const size of [0, 1, 65536, 1 << 20, (1 << 20) + 1, (20 << 20) + 17]) {
  for (const alg of ['sha256', 'sha512'] as const) {
    test(`${alg} of ${size} bytes matches node:crypto`, async () => {
      const data = randomBytes(size);
      const h = createHasher(alg);
      await feed(h, data, 65_531);
      assert.equal(await h.digest(), sha(alg, data));
    });
  }
}

for (const at of [1000, 3 << 20]) {
  test(`a copy taken after ${at} bytes goes on independently of its original`, async () => {
    const a = randomBytes(at);
    const b = randomBytes(2 << 20);
    const c = randomBytes(5000);
    const h = createHasher();
    await feed(h, a, 100_000);
    const twin = h.copy();
    await feed(h, b, 70_000);
    await feed(twin, c, 1000);
    assert.equal(await h.digest(), sha('sha256', Buffer.concat([a, b])));
    assert.equal(await twin.digest(), sha('sha256', Buffer.concat([a, c])));
  });
}

test('50 hashers at once, some dropped half-way, give the right digests', async () => {
  const datas = Array.from({ length: 50 }, (_, i) => randomBytes((i % 5) << 20 || 777));
  const out = await Promise.all(
    datas.map(async (d, i) => {
      const h = createHasher();
      await feed(h, d, 1 << 16);
      if (i % 7 === 3) {
        h.dispose();
        return undefined;
      }
      return h.digest();
    }),
  );
  out.forEach((hex, i) => {
    if (hex !== undefined) assert.equal(hex, sha('sha256', datas[i]!), `hasher ${i}`);
  });
});

test('digest() twice, or update() after it, is a programming error', async () => {
  const h = createHasher();
  h.update(Buffer.from('x'));
  await h.digest();
  await assert.rejects(h.digest());
  assert.throws(() => h.update(Buffer.from('y')));
});
