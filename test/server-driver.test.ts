/**
 * The driver contract suite (src/testkit/driver-suite.ts) against FsDriver, with and without
 * direct I/O, and against MemoryDriver. Then what only FsDriver has: its writers, through the page
 * cache and with O_DIRECT. Whatever the sizes and the chunking, a committed file holds exactly the
 * bytes written (no padding of the last direct block), an append continues an unaligned file, and
 * a cancelled append leaves the file as it was.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { FsDriver, MemoryDriver, checkPath, writeDirect, type DriverWriter } from '../src/server/driver/index.js';
import { LARGE_RANGE, alignedBuffer } from '../src/server/io/index.js';
import { RegistryStore } from '../src/server/store/index.js';
import { paths } from '../src/server/store/paths.js';
import type { Digest } from '../src/spec/index.js';
import { driverSuite } from '../src/testkit/driver-suite.js';

for (const directIO of [true, false]) {
  driverSuite(`FsDriver (fsync, ${directIO ? 'direct I/O' : 'page cache'})`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'wharf-driver-suite-'));
    return { driver: new FsDriver(root, { fsync: true, directIO }), cleanup: () => rm(root, { recursive: true, force: true }) };
  });
}
driverSuite('MemoryDriver', async () => ({ driver: new MemoryDriver(), cleanup: async () => undefined }));

/** Writes `data` in chunks of irregular sizes, as a socket delivers them. */
async function writeChunked(w: DriverWriter, data: Buffer): Promise<void> {
  let off = 0;
  let i = 0;
  while (off < data.length) {
    const n = Math.min(data.length - off, [1, 4095, 65536, 7, 300_000, 4096][i++ % 6]!);
    if (!w.write(data.subarray(off, off + n))) await new Promise((r) => w.once('drain', r));
    off += n;
  }
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-driver-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('small writes go through the page cache; large ones direct where the file system takes it', () => {
  assert.equal(writeDirect(dir, 4096), false);
  // Either answer is fine for large ones (some file systems refuse O_DIRECT); the writers below work both ways.
  assert.equal(typeof writeDirect(dir, 8 << 20), 'boolean');
  assert.equal(writeDirect(dir, undefined), writeDirect(dir, 8 << 20));
});

for (const directIO of [true, false]) {
  describe(directIO ? 'direct writes (where the file system takes them)' : 'writes through the page cache', () => {
    let driver: FsDriver;
    before(() => {
      driver = new FsDriver(join(dir, directIO ? 'direct' : 'buffered'), { directIO });
    });

    for (const size of [0, 1, 4095, 4096, 1 << 20, (1 << 20) + 1, (7 << 19) + 333]) {
      test(`a new file of ${size} bytes is committed exactly`, async () => {
        const data = randomBytes(size);
        const w = await driver.writer(`new/${size}`, { size });
        await writeChunked(w, data);
        await w.commit();
        const got = await readFile(join(driver.root, 'new', String(size)));
        assert.equal(got.length, size);
        assert.ok(got.equals(data));
      });
    }

    test('appends continue a file that ends off a block boundary', async () => {
      const first = randomBytes(5000);
      const second = randomBytes((2 << 20) + 123);
      await driver.put('up/a', Buffer.alloc(0));
      let w = await driver.writer('up/a', { appendAt: 0, size: first.length });
      await writeChunked(w, first);
      await w.commit();
      w = await driver.writer('up/a', { appendAt: first.length, size: second.length });
      await writeChunked(w, second);
      await w.commit();
      const got = await readFile(join(driver.root, 'up/a'));
      assert.ok(got.equals(Buffer.concat([first, second])));
    });

    test('a cancelled append leaves the file as it was', async () => {
      const first = randomBytes(10_000);
      await driver.put('up/b', first);
      const w = await driver.writer('up/b', { appendAt: first.length, size: 4 << 20 });
      await writeChunked(w, randomBytes(3 << 20));
      await w.cancel();
      const got = await readFile(join(driver.root, 'up/b'));
      assert.ok(got.equals(first));
    });

    test('a cancelled new file leaves nothing behind', async () => {
      const w = await driver.writer('new/cancelled', { size: 2 << 20 });
      await writeChunked(w, randomBytes(2 << 20));
      await w.cancel();
      await assert.rejects(stat(join(driver.root, 'new/cancelled')), { code: 'ENOENT' });
    });

    test('40 writers at once, more than the aligned blocks there are, all commit their bytes', async () => {
      const datas = Array.from({ length: 40 }, (_, i) => randomBytes((3 << 20) + i * 777));
      await Promise.all(
        datas.map(async (d, i) => {
          const w = await driver.writer(`many/${i}`, { size: d.length });
          await writeChunked(w, d);
          await w.commit();
        }),
      );
      for (const [i, d] of datas.entries()) assert.ok((await readFile(join(driver.root, 'many', String(i)))).equals(d), `file ${i}`);
    });
  });
}

describe('puts', () => {
  test('200 puts into one directory at once (their directory fsyncs shared) all land, and so do puts without syncs', async () => {
    const driver = new FsDriver(join(dir, 'puts'));
    const n = 200;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        i % 3 === 0 ? driver.put(`links/${i}`, '') : driver.put(`links/${i}`, `value ${i}`, { durable: i % 3 === 1 }),
      ),
    );
    for (let i = 0; i < n; i++) assert.equal((await driver.get(`links/${i}`))?.toString(), i % 3 === 0 ? '' : `value ${i}`, `file ${i}`);
    // A later put waits for a fsync of its own, not one that started before its rename.
    await driver.put('links/late', 'x');
    assert.equal((await driver.get('links/late'))?.toString(), 'x');
  });
});

describe('paths', () => {
  test('only plain relative paths reach the file system', async () => {
    const driver = new FsDriver(join(dir, 'paths'));
    for (const bad of ['', '/etc/passwd', 'a//b', 'a/', 'a\\b', 'a\0b', '.', '..', 'a/./b', 'a/..', './a', '../x', 'a/../../b']) {
      assert.throws(() => checkPath(bad), /not a plain relative path/, JSON.stringify(bad));
      await assert.rejects(driver.put(bad, 'x'), /not a plain relative path/, JSON.stringify(bad));
    }
    for (const good of ['a', 'a.b', '.hidden', 'd/.x/b', 'd/..b', 'd/b..', '...']) {
      assert.equal(checkPath(good), good);
      await driver.put(good, good);
      assert.equal((await driver.get(good))?.toString(), good);
    }
  });
});

describe('reads', () => {
  test('a sequential read of a large file (direct where the file system takes it) returns its bytes exactly, and so do unaligned reads', async () => {
    const driver = new FsDriver(join(dir, 'reads'));
    const data = randomBytes(3 * (1 << 20) + 123);
    await driver.put('big', data);
    const file = await driver.open('big', { sequential: true });
    try {
      // Into buffers of any kind, and into page-aligned ones (read into without a copy).
      for (const make of [(n: number) => Buffer.alloc(n), (n: number) => alignedBuffer().subarray(0, n)]) {
        const chunks: Buffer[] = [];
        for (let pos = 0; pos < data.length; ) {
          const into = make(Math.min(1 << 20, data.length - pos));
          const n = await file.read(into, pos);
          assert.ok(n > 0, `read at ${pos}`);
          chunks.push(Buffer.from(into.subarray(0, n)));
          pos += n;
        }
        assert.ok(Buffer.concat(chunks).equals(data));
      }
      // Past the end, an unaligned position, and a buffer that is not one block.
      assert.equal(await file.read(Buffer.alloc(4096), data.length), 0);
      const odd = Buffer.alloc(5000);
      assert.equal(await file.read(odd, 1001), 5000);
      assert.ok(odd.equals(data.subarray(1001, 6001)));
      const big = Buffer.alloc((1 << 20) + 1);
      assert.equal(await file.read(big, 0), big.length);
      assert.ok(big.equals(data.subarray(0, big.length)));
    } finally {
      await file.close();
    }
  });
});

describe('staged files', () => {
  for (const directIO of [true, false]) {
    test(`reads of a staged file while it grows, at any position, return its bytes (${directIO ? 'direct I/O where the file system takes it' : 'page cache'})`, async () => {
      const driver = new FsDriver(join(dir, directIO ? 'staged-direct' : 'staged-buffered'), { directIO });
      const data = randomBytes(5 * (1 << 20) + 777);
      const staged = await driver.stage({ size: data.length });
      try {
        const sizes = [1, 4095, 65536, 7, 300_000, 4096];
        let checked = 0;
        // Whatever has reached the file so far reads back exactly, from odd positions and lengths.
        const check = async (): Promise<void> => {
          while (checked + 1001 + 5000 <= staged.written) {
            const at = checked + 1001;
            const into = Buffer.alloc(Math.min(checked % 2 ? 5000 : (1 << 20) + 3, staged.written - at));
            const got = await staged.read(into, at);
            assert.equal(got, into.length, `read at ${at}`);
            assert.ok(into.equals(data.subarray(at, at + got)), `bytes at ${at}`);
            checked += 300_001;
          }
        };
        for (let off = 0, i = 0; off < data.length; i++) {
          const n = Math.min(data.length - off, sizes[i % sizes.length]!);
          await staged.append([data.subarray(off, off + n)]);
          off += n;
          await check();
        }
        // A direct appender keeps the last partial block until commit; the rest reaches the file.
        const whole = data.length - (data.length % (1 << 20));
        while (staged.written < whole) await new Promise((r) => setTimeout(r, 5));
        await check();
        assert.ok(checked >= whole - 1001 - 5000 - 300_001, `reads reached the end of what was written (${checked})`);
        await staged.commit('staged-blob');
        assert.ok((await readFile(join(dir, directIO ? 'staged-direct' : 'staged-buffered', 'staged-blob'))).equals(data));
      } finally {
        await staged.close();
      }
    });
  }
});

/** A response stand-in that keeps a copy of every chunk (sendFileRange reuses its buffers once written). */
class Collected extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
}

describe('ranges of a stored blob', () => {
  for (const directIO of [true, false]) {
    test(`large ranges at unaligned offsets send exactly their bytes, small ones too (${directIO ? 'direct I/O' : 'page cache'})`, async () => {
      const driver = new FsDriver(join(dir, `ranges-${directIO ? 'direct' : 'buffered'}`), { directIO });
      const data = randomBytes(5 * (1 << 20) + 777);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
      // Written as an upload writes it: direct, when large and the file system takes it.
      const w = await driver.writer(paths.blobData(digest), { size: data.length });
      await writeChunked(w, data);
      await w.commit();
      // Which reads the store asks to go around the page cache.
      const asked: boolean[] = [];
      const open = driver.open.bind(driver);
      driver.open = (path, opts) => {
        asked.push(opts?.sequential ?? false);
        return open(path, opts);
      };
      const blob = new RegistryStore(driver).storedBlob(digest, data.length);
      const last = data.length - 1;
      const ranges: Array<[number, number]> = [
        [1, LARGE_RANGE],
        [4095, last],
        [4097, 3 * (1 << 20) + 5],
        [0, last - 1],
        [3 * 4096, 3 * 4096 + 2 * (1 << 20) - 1],
        [last - LARGE_RANGE, last],
        [last - LARGE_RANGE - 4096 * 2 - 1, last - 4096 + 1],
        [123, 123 + LARGE_RANGE - 2],
        [5000, 5000],
        [last, last],
        [0, last],
      ];
      for (const [start, end] of ranges) {
        const res = new Collected();
        await blob.send(res as unknown as ServerResponse, start, end);
        const got = Buffer.concat(res.chunks);
        assert.equal(got.length, end - start + 1, `bytes=${start}-${end}`);
        assert.ok(got.equals(data.subarray(start, end + 1)), `bytes=${start}-${end}`);
      }
      // Ranges of 1 MiB or more (and the whole blob) are read like a whole blob; smaller ones not.
      assert.deepEqual(
        asked,
        ranges.map(([start, end]) => end - start + 1 >= LARGE_RANGE),
      );
      // A file shorter than the size given fails the response instead of sending too few bytes.
      const short = new RegistryStore(driver).storedBlob(digest, data.length + 5000);
      await assert.rejects(short.send(new Collected() as unknown as ServerResponse, 4097, data.length + 4999), /the file ended after/);
    });
  }
});
