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
