import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { encodeHeader, decodeHeader } from '../src/estargz/tar.js';
import { encodeFooter, parseFooter, cleanName, mergeRanges } from '../src/estargz/index.js';
import { parseMultipart } from '../src/stores/remote/index.js';
import { multipartByteranges } from '../src/server/http/ranges.js';

test('tar headers round-trip: long, non-ASCII names (pax) and sizes past 8 GiB', () => {
  const name = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }).filter((s) => !s.includes('\0'));
  fc.assert(
    fc.property(name, fc.integer({ min: 0, max: 2 ** 40 }), (n, size) => {
      const h = decodeHeader(Buffer.concat([encodeHeader({ name: n, type: 'file', mode: 0o644, mtime: 1_700_000_000, size }), Buffer.alloc(512)]));
      assert.ok(h);
      assert.equal(h.name, n);
      assert.equal(h.size, size);
      assert.equal(h.headerLength % 512, 0);
    }),
  );
});

test('the footer round-trips every offset and is 51 bytes', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (off) => {
      const f = encodeFooter(off);
      assert.equal(f.length, 51);
      assert.equal(parseFooter(f), off);
    }),
  );
  assert.equal(parseFooter(Buffer.alloc(51)), undefined);
});

test('cleanName never leaves the root', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('a', 'b', '..', '.', '', 'c d'), { maxLength: 8 }), (parts) => {
      const c = cleanName(parts.join('/'));
      assert.ok(!c.split('/').includes('..'));
      assert.ok(!c.startsWith('/'));
    }),
  );
});

const ranges = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 0, max: 300 })).map(([s, l]) => ({ start: s, end: s + l })),
  { minLength: 1, maxLength: 12 },
);

test('mergeRanges: sorted, disjoint, and each input inside the range it maps to', () => {
  fc.assert(
    fc.property(ranges, (rs) => {
      const { merged, map } = mergeRanges(rs);
      for (let i = 1; i < merged.length; i++) assert.ok(merged[i]!.start > merged[i - 1]!.end + 1);
      rs.forEach((r, i) => {
        const m = merged[map[i]!]!;
        assert.ok(m.start <= r.start && m.end >= r.end);
      });
    }),
  );
});

test("parseMultipart reads back what wharf serve's multipart/byteranges writes", async () => {
  const blob = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  await fc.assert(
    fc.asyncProperty(ranges, async (rs) => {
      const { merged } = mergeRanges(rs);
      const { boundary, length, body } = multipartByteranges(merged, blob.length, 'application/octet-stream', async (r) => Readable.from([blob.subarray(r.start, r.end + 1)]));
      const buf = Buffer.concat(await body.toArray());
      assert.equal(buf.length, length);
      const parts = parseMultipart(buf, `multipart/byteranges; boundary=${boundary}`);
      assert.equal(parts.length, merged.length);
      parts.forEach((p, i) => {
        assert.deepEqual(p.range, merged[i]);
        assert.deepEqual(p.data, blob.subarray(p.range.start, p.range.end + 1));
      });
    }),
    { numRuns: 50 },
  );
});

test('a layer with random bytes altered either reads back right or fails with an OciError', async () => {
  const { mkdtemp, mkdir, rm, readFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { makeFixture } = await import('./helpers/estargz.js');
  const { buildEstargzFile, openEstargz, BufferBlobSource } = await import('../src/estargz/index.js');
  const { OciError } = await import('../src/spec/index.js');
  const work = await mkdtemp(join(tmpdir(), 'wharf-estargz-fuzz-'));
  try {
    await mkdir(join(work, 'src'));
    await makeFixture(join(work, 'src'), { big: 20_000 });
    const res = await buildEstargzFile(join(work, 'src'), join(work, 'l.gz'), { chunkSize: 8192 });
    const data = await readFile(join(work, 'l.gz'));
    const good = await openEstargz(new BufferBlobSource(data), { tocDigest: res.tocDigest });
    const files = good.list().filter((e) => e.type === 'file');
    const want = new Map<string, Buffer>();
    for (const f of files) want.set(f.path, await good.readFile(f.path));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(data.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), async (flips) => {
        const bad = Buffer.from(data);
        for (const [at, x] of flips) bad.writeUInt8(bad.readUInt8(at) ^ x, at);
        try {
          const fs = await openEstargz(new BufferBlobSource(bad), { tocDigest: res.tocDigest });
          for (const f of files) {
            try {
              assert.deepEqual(await fs.readFile(f.path), want.get(f.path), f.path);
            } catch (err) {
              if (!(err instanceof OciError)) throw err;
            }
          }
        } catch (err) {
          if (!(err instanceof OciError)) throw err;
        }
      }),
      { numRuns: 150 },
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
