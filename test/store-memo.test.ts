/** The store's in-memory caches stay within their bounds, counted in the bytes entries really hold. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManifestCache, VerifiedFiles } from '../src/server/store/memo.js';

const digest = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;

test('ManifestCache counts each entry beyond its body and evicts the least recently used', () => {
  const body = Buffer.alloc(400, 'x');
  const cache = new ManifestCache(100_000);
  for (let i = 0; i < 1000; i++) cache.set(digest(i), { body, mediaType: 'application/json' });
  const { entries, bytes } = cache.size;
  assert.ok(bytes <= 100_000, `${bytes} bytes counted`);
  // 400 bytes of body would let 250 in; the bookkeeping per entry is counted too.
  assert.ok(entries < 150 && entries > 50, `${entries} entries`);
  assert.ok(bytes > entries * 800);
  assert.equal(cache.get(digest(0)), undefined);
  assert.ok(cache.get(digest(999)));
});

test('ManifestCache keeps a pooled body in memory of its own', () => {
  const pooled = Buffer.concat([Buffer.from('{"schemaVersion":2}')]);
  assert.ok(pooled.buffer.byteLength > pooled.length, 'a small Buffer.concat is a view into the pool');
  const cache = new ManifestCache(1 << 20);
  cache.set(digest(1), { body: pooled, mediaType: 'application/json' });
  const got = cache.get(digest(1))!;
  assert.deepEqual(got.body, pooled);
  assert.equal(got.body.buffer.byteLength, pooled.length);
  assert.equal(got.body.byteOffset, 0);
});

test('VerifiedFiles stays within its bytes, dropping the least recently added first', () => {
  const v = new VerifiedFiles(3600e3, 50_000);
  for (let i = 0; i < 2000; i++) v.add(digest(i), `1:${i}:1024:1:1`);
  const { entries, bytes } = v.size;
  assert.ok(bytes <= 50_000 && entries > 100 && entries < 2000, `${entries} entries, ${bytes} bytes`);
  assert.equal(v.has(digest(0), '1:0:1024:1:1'), false);
  assert.equal(v.has(digest(1999), '1:1999:1024:1:1'), true);
  // Re-adding an entry replaces it, counted once.
  v.add(digest(1999), '1:1999:1024:1:2');
  assert.equal(v.size.bytes, bytes);
  assert.equal(v.has(digest(1999), '1:1999:1024:1:1'), false);
  assert.equal(v.has(digest(1999), '1:1999:1024:1:2'), true);
});

test('VerifiedFiles keeps a file that is read while others come and go', () => {
  const v = new VerifiedFiles(3600e3, 20_000);
  v.add(digest(0), 'hot');
  for (let i = 1; i < 1000; i++) {
    v.add(digest(i), `1:${i}:1024:1:1`);
    assert.equal(v.has(digest(0), 'hot'), true, `evicted after ${i} others`);
  }
});
