/**
 * The StorageDriver contract (src/server/driver/types.ts), run against every driver: each test
 * gets a fresh, empty driver from `make`. Only what the interface promises is checked, so that
 * drivers may differ in the rest (a directory's size, the order of a listing, whether a directory
 * outlives its last file).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { StorageDriver } from '../server/driver/types.js';
import { MiB, writeFile, drain, sorted, text, pause, gate, stageContracts, writerContracts } from './driver-suite-writes.js';

export interface DriverUnderTest {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

const UNSAFE = ['', '../x', '/abs', 'a//b', 'a/./b', 'a\\b', 'a\0b', 'a/', '.', '..', 'a/..', './a', 'a/../../b'];
const REFUSED = /not a plain relative path/;

export interface SuiteOptions {
  /**
   * An object store (S3): directories are only key prefixes (stat finds none, a file may sit where
   * a prefix is, and delete and move take files only), a reader sees a file as it is when each read
   * is made, and a file grows only from the end of its last two commits. What the registry store
   * needs holds either way; the tests of the rest are skipped with this reason.
   */
  objectStore?: boolean;
}

export function driverSuite(name: string, make: () => Promise<DriverUnderTest>, opts: SuiteOptions = {}): void {
  /** A test on a fresh driver, cleaned up whatever happens. */
  const it = (title: string, fn: (d: StorageDriver) => Promise<void>): void => {
    test(title, async () => {
      const { driver, cleanup } = await make();
      try {
        await fn(driver);
      } finally {
        await cleanup();
      }
    });
  };

  /** A test of what files on a disk do and an object store need not (SuiteOptions.objectStore). */
  const itFiles = (title: string, fn: (d: StorageDriver) => Promise<void>): void => {
    if (opts.objectStore) test(title, { skip: 'an object store has no such semantics (SuiteOptions.objectStore)' }, () => undefined);
    else it(title, fn);
  };

  describe(`storage driver: ${name}`, () => {
    describe('stat, get, put', () => {
      it('a missing file: stat and get give undefined; open, reader and an append writer fail with ENOENT', async (d) => {
        assert.equal(await d.stat('no/such'), undefined);
        assert.equal(await d.get('no/such'), undefined);
        await assert.rejects(d.open('no/such'), { code: 'ENOENT' });
        await assert.rejects(d.reader('no/such'), { code: 'ENOENT' });
        await assert.rejects(d.reader('no/such', { start: 0, end: 0 }), { code: 'ENOENT' });
        await assert.rejects(d.writer('no/such', { appendAt: 0 }), { code: 'ENOENT' });
      });

      it('put then get gives the bytes back; stat gives their size, a file, and a version', async (d) => {
        const data = randomBytes(70_001);
        await d.put('a/b/c', data);
        assert.ok((await d.get('a/b/c'))?.equals(data));
        const st = await d.stat('a/b/c');
        assert.equal(st?.size, data.length);
        assert.equal(st?.isDir, false);
        assert.equal(typeof st?.mtimeMs, 'number');
        assert.ok(Math.abs(st!.mtimeMs - Date.now()) < 60_000, 'mtime is about now');
        await d.put('s', 'a string, héllo');
        assert.equal(await text(d.get('s')), 'a string, héllo');
      });

      it('empty files: put of no bytes, of an empty string, stat size 0', async (d) => {
        await d.put('e/bytes', Buffer.alloc(0));
        await d.put('e/string', '');
        for (const p of ['e/bytes', 'e/string']) {
          assert.equal((await d.get(p))?.length, 0);
          assert.deepEqual({ ...(await d.stat(p)), mtimeMs: 0, version: '' }, { size: 0, isDir: false, mtimeMs: 0, version: '' });
        }
        assert.deepEqual(await sorted(d.list('e')), ['bytes', 'string']);
      });

      it('put keeps its own copy: the caller may reuse its buffer once put resolved, and so may a reader of get', async (d) => {
        // Only after: FsDriver reads the caller's buffer after an await, so a change made while
        // put runs may be what is stored.
        const data = Buffer.from('original');
        await d.put('copy', data);
        data.fill(0x78);
        assert.equal(await text(d.get('copy')), 'original');
        const got = (await d.get('copy'))!;
        got.fill(0x79);
        assert.equal(await text(d.get('copy')), 'original');
      });

      it('put replaces a file whole, also with fewer bytes and with none; durable: false too', async (d) => {
        await d.put('r', randomBytes(10_000));
        await d.put('r', 'short');
        assert.equal(await text(d.get('r')), 'short');
        assert.equal((await d.stat('r'))?.size, 5);
        await d.put('r', '', { durable: false });
        assert.equal((await d.stat('r'))?.size, 0);
        await d.put('r', 'again', { durable: false });
        assert.equal(await text(d.get('r')), 'again');
      });

      itFiles('directories are implicit: put makes the parents; stat of one says isDir; get of one is undefined', async (d) => {
        await d.put('x/y/z/file', 'f');
        for (const dir of ['x', 'x/y', 'x/y/z']) {
          assert.equal((await d.stat(dir))?.isDir, true, dir);
          assert.equal(await d.get(dir), undefined, dir);
        }
      });

      itFiles('a file cannot be put beneath a file, nor where a directory is', async (d) => {
        await d.put('f', 'file');
        await d.put('dir/inner', 'x');
        await assert.rejects(d.put('f/under', 'x'));
        await assert.rejects(d.put('dir', 'x'));
        assert.equal(await text(d.get('f')), 'file');
        assert.equal(await text(d.get('dir/inner')), 'x');
      });

      it('put with `after` writes meanwhile but names the file only once `after` resolves', async (d) => {
        await d.put('tags/old', 'v1');
        const g = gate();
        const fresh = d.put('tags/new', 'v2', { after: g.promise });
        const replaced = d.put('tags/old', 'v2', { after: g.promise });
        const empty = d.put('tags/empty', '', { after: g.promise });
        let done = false;
        void Promise.all([fresh, replaced, empty]).then(() => (done = true));
        await pause(30);
        assert.equal(done, false);
        assert.equal(await d.stat('tags/new'), undefined);
        assert.equal(await d.stat('tags/empty'), undefined);
        assert.equal(await text(d.get('tags/old')), 'v1');
        assert.deepEqual(await d.list('tags'), ['old']);
        g.open();
        await Promise.all([fresh, replaced, empty]);
        assert.equal(await text(d.get('tags/new')), 'v2');
        assert.equal(await text(d.get('tags/old')), 'v2');
        assert.equal((await d.stat('tags/empty'))?.size, 0);
      });

      it('put whose `after` rejects writes nothing and rejects with its reason', async (d) => {
        await d.put('tags/old', 'v1');
        const g = gate();
        const puts = [d.put('tags/new', 'v2', { after: g.promise }), d.put('tags/old', 'v2', { after: g.promise }), d.put('tags/empty', '', { after: g.promise })];
        await pause(20);
        const reason = new Error('the manifest did not make it');
        g.fail(reason);
        await Promise.all(puts.map((p) => assert.rejects(p, (err) => err === reason)));
        assert.deepEqual(await d.list('tags'), ['old']);
        assert.equal(await text(d.get('tags/old')), 'v1');
        assert.equal(await d.sweepTemp(0), 0, 'no temporary bytes are left');
      });

      it('200 concurrent puts into one directory all land', async (d) => {
        const n = 200;
        await Promise.all(Array.from({ length: n }, (_, i) => d.put(`links/${i}`, i % 4 === 0 ? '' : `value ${i}`, { durable: i % 2 === 0 })));
        assert.deepEqual(await sorted(d.list('links')), Array.from({ length: n }, (_, i) => String(i)).sort());
        for (let i = 0; i < n; i++) assert.equal(await text(d.get(`links/${i}`)), i % 4 === 0 ? '' : `value ${i}`, `file ${i}`);
      });
    });

    describe('open', () => {
      it('reads at any position, fewer bytes at the end, 0 at and past the end', async (d) => {
        const data = randomBytes(3 * MiB + 123);
        await d.put('big', data);
        for (const sequential of [true, false]) {
          const f = await d.open('big', { sequential });
          try {
            const chunks: Buffer[] = [];
            for (let pos = 0; pos < data.length; ) {
              const into = Buffer.alloc(MiB);
              const n = await f.read(into, pos);
              assert.ok(n > 0, `read at ${pos}`);
              chunks.push(into.subarray(0, n));
              pos += n;
            }
            assert.ok(Buffer.concat(chunks).equals(data));
            assert.equal(await f.read(Buffer.alloc(4096), data.length), 0);
            assert.equal(await f.read(Buffer.alloc(10), data.length + 5000), 0);
            const odd = Buffer.alloc(5000);
            assert.equal(await f.read(odd, 1001), 5000);
            assert.ok(odd.equals(data.subarray(1001, 6001)));
            const tail = Buffer.alloc(100);
            assert.equal(await f.read(tail, data.length - 7), 7);
            assert.ok(tail.subarray(0, 7).equals(data.subarray(-7)));
          } finally {
            await f.close();
          }
        }
      });

      it('open with the size the caller stat\'ed reads the file; one gone since fails the open or its first read', async (d) => {
        const data = randomBytes(2 * MiB + 5);
        await d.put('sized', data);
        const f = await d.open('sized', { sequential: true, size: data.length });
        const into = Buffer.alloc(data.length + 10);
        let n = 0;
        for (let got = 1; got > 0 && n < data.length; n += got) got = await f.read(into.subarray(n, n + MiB), n);
        assert.ok(into.subarray(0, n).equals(data));
        await f.close();
        await d.delete('sized');
        await assert.rejects(async () => {
          const g = await d.open('sized', { size: data.length });
          try {
            await g.read(Buffer.alloc(16), 0);
          } finally {
            await g.close();
          }
        });
      });

      it('an empty file opens and reads 0', async (d) => {
        await d.put('empty', '');
        const f = await d.open('empty');
        assert.equal(await f.read(Buffer.alloc(16), 0), 0);
        await f.close();
      });

      itFiles('an open file keeps its bytes when its name is replaced, and follows it through a move', async (d) => {
        await d.put('o/a', 'first');
        const f = await d.open('o/a');
        await d.put('o/a', 'second, longer');
        const into = Buffer.alloc(64);
        assert.equal(into.subarray(0, await f.read(into, 0)).toString(), 'first');
        await f.close();
        const g = await d.open('o/a');
        await d.move('o/a', 'o/b');
        assert.equal(into.subarray(0, await g.read(into, 0)).toString(), 'second, longer');
        await g.close();
      });
    });

    describe('reader', () => {
      it('streams a multi-MiB file exactly, and an empty one as no bytes', async (d) => {
        const data = randomBytes(5 * MiB + 77);
        await d.put('big', data);
        assert.ok((await drain(await d.reader('big'))).equals(data));
        await d.put('empty', '');
        assert.equal((await drain(await d.reader('empty'))).length, 0);
      });

      it('ranges are inclusive and give exactly their bytes', async (d) => {
        const data = randomBytes(2 * MiB + 5);
        await d.put('r', data);
        const last = data.length - 1;
        for (const [start, end] of [
          [0, 0],
          [5, 9],
          [last, last],
          [0, last],
          [4095, MiB + 4096],
          [MiB, 2 * MiB - 1],
        ] as const) {
          const got = await drain(await d.reader('r', { start, end }));
          assert.equal(got.length, end - start + 1, `${start}-${end}`);
          assert.ok(got.equals(data.subarray(start, end + 1)), `${start}-${end}`);
        }
        // A range past the end stops at the end.
        assert.ok((await drain(await d.reader('r', { start: last - 2, end: last + 100 }))).equals(data.subarray(-3)));
      });

      it('a stream already made keeps the bytes it was made for when the file is replaced', async (d) => {
        await d.put('s', 'old bytes');
        const r = await d.reader('s');
        await d.put('s', 'new');
        assert.equal((await drain(r)).toString(), 'old bytes');
      });
    });

    writerContracts(it, opts.objectStore ?? false);

    describe('list', () => {
      it('gives the direct children, files and directories; [] for a missing directory and for a file', async (d) => {
        for (const p of ['a/b/c', 'a/b/d/e', 'a/f', 'a/b/d/g/h', 'top']) await d.put(p, p);
        assert.deepEqual(await sorted(d.list('a')), ['b', 'f']);
        assert.deepEqual(await sorted(d.list('a/b')), ['c', 'd']);
        assert.deepEqual(await sorted(d.list('a/b/d')), ['e', 'g']);
        assert.deepEqual(await d.list('a/b/d/g'), ['h']);
        assert.deepEqual(await d.list('nope'), []);
        assert.deepEqual(await d.list('a/nope/deeper'), []);
        assert.deepEqual(await d.list('a/f'), []);
        assert.deepEqual(await d.list('top/under'), []);
      });
    });

    describe('move', () => {
      it('renames a file, making the destination parents; the source is gone', async (d) => {
        await d.put('m/from', 'bytes');
        await d.move('m/from', 'n/e/w/to');
        assert.equal(await d.stat('m/from'), undefined);
        assert.equal(await text(d.get('n/e/w/to')), 'bytes');
        assert.ok(!(await d.list('m')).includes('from'));
        assert.deepEqual(await d.list('n/e/w'), ['to']);
      });

      it('a move onto an existing file replaces it', async (d) => {
        await d.put('m/a', 'a');
        await d.put('m/b', 'b, longer');
        await d.move('m/a', 'm/b');
        assert.equal(await text(d.get('m/b')), 'a');
        assert.deepEqual(await d.list('m'), ['b']);
        assert.equal((await d.stat('m/b'))?.size, 1);
      });

      it('a move of a missing file fails with ENOENT and names nothing', async (d) => {
        await assert.rejects(d.move('m/missing', 'm/to'), { code: 'ENOENT' });
        assert.equal(await d.stat('m/to'), undefined);
      });

      it('a move there and back keeps the bytes (garbage collection trashes and restores blobs so)', async (d) => {
        const data = randomBytes(MiB + 1);
        await d.put('blobs/sha256/ab/abcd', data);
        await d.move('blobs/sha256/ab/abcd', '_trash/sha256-abcd');
        assert.equal(await d.stat('blobs/sha256/ab/abcd'), undefined);
        await d.move('_trash/sha256-abcd', 'blobs/sha256/ab/abcd');
        assert.ok((await d.get('blobs/sha256/ab/abcd'))?.equals(data));
        assert.deepEqual(await d.list('_trash'), []);
      });

      itFiles('a move of a directory moves everything beneath it', async (d) => {
        for (const p of ['d/x', 'd/sub/y', 'd/sub/deep/z']) await d.put(p, p);
        await d.put('keep', 'k');
        await d.move('d', 'moved/here');
        assert.equal(await d.stat('d/x'), undefined);
        assert.deepEqual(await d.list('d'), []);
        for (const p of ['d/x', 'd/sub/y', 'd/sub/deep/z']) assert.equal(await text(d.get(`moved/here/${p.slice(2)}`)), p);
        assert.deepEqual(await sorted(d.list('moved/here')), ['sub', 'x']);
        assert.equal(await text(d.get('keep')), 'k');
      });
    });

    describe('delete', () => {
      it('removes a file; deleting it again, or anything missing, is no error', async (d) => {
        await d.put('del/a', 'a');
        await d.put('del/b', 'b');
        await d.delete('del/a');
        assert.equal(await d.stat('del/a'), undefined);
        assert.deepEqual(await d.list('del'), ['b']);
        await d.delete('del/a');
        await d.delete('never/was');
        await d.delete('del/b/beneath-a-file');
        assert.equal(await text(d.get('del/b')), 'b');
      });

      itFiles('removes a whole directory and all beneath it, and nothing beside it', async (d) => {
        for (const p of ['repo/_tags/a', 'repo/_tags/b', 'repo/_uploads/u/data', 'repo/x', 'repo2/_tags/a', 'repox']) await d.put(p, p);
        await d.delete('repo');
        assert.equal(await d.stat('repo'), undefined);
        assert.deepEqual(await d.list('repo'), []);
        assert.deepEqual(await d.list('repo/_tags'), []);
        assert.equal(await d.get('repo/_uploads/u/data'), undefined);
        assert.equal(await text(d.get('repo2/_tags/a')), 'repo2/_tags/a');
        assert.equal(await text(d.get('repox')), 'repox');
      });
    });

    describe('touch and versions', () => {
      it('touch moves the mtime and the version, not the bytes, and gives the stat from before; undefined when the file is gone', async (d) => {
        await d.put('t', 'bytes');
        const before = (await d.stat('t'))!;
        await pause(20);
        const touched = await d.touch('t');
        assert.equal(touched?.size, 5);
        assert.equal(touched.version, before.version);
        const after = (await d.stat('t'))!;
        assert.ok(after.mtimeMs > before.mtimeMs, `${after.mtimeMs} > ${before.mtimeMs}`);
        assert.notEqual(after.version, before.version);
        assert.equal(await text(d.get('t')), 'bytes');
        assert.equal(await d.touch('gone'), undefined);
        assert.equal(await d.touch('t/beneath-a-file'), undefined);
        assert.equal(await d.stat('gone'), undefined);
      });

      it('the version changes with every write: put, a new file, an append, a cancelled append that cut bytes, a touch', async (d) => {
        const seen = new Set<string | undefined>();
        const record = async (what: string): Promise<void> => {
          const v = (await d.stat('v'))?.version;
          if (v === undefined) return; // A driver that cannot tell promises nothing here.
          assert.ok(!seen.has(v), `the version after ${what} is new`);
          seen.add(v);
        };
        await d.put('v', 'one');
        await record('a put');
        await d.put('v', 'two');
        await record('a put of as many bytes');
        await writeFile(d, 'v', Buffer.from('three'));
        await record('a new file');
        await writeFile(d, 'v', Buffer.from('!!'), { appendAt: 5 });
        await record('an append');
        await writeFile(d, 'v', Buffer.from('...'), { appendAt: 2 });
        await record('an append that cut the file');
        const w = await d.writer('v', { appendAt: 1 });
        w.write(Buffer.from('dropped'));
        await w.cancel();
        await record('a cancelled append that cut bytes');
        assert.equal(await text(d.get('v')), 't');
        await d.touch('v');
        await record('a touch');
        await d.move('v', 'w');
        await d.put('v', 'one');
        await record('a put after the file moved away');
        assert.equal(await text(d.get('v')), 'one');
      });

      it('the version stays while nothing is written', async (d) => {
        await d.put('still', 'x');
        const v = (await d.stat('still'))?.version;
        await d.get('still');
        await drain(await d.reader('still'));
        const f = await d.open('still');
        await f.read(Buffer.alloc(4), 0);
        await f.close();
        assert.equal((await d.stat('still'))?.version, v);
      });
    });

    it('directories are key prefixes: put makes the parents, which list shows; get and stat of one find no file', async (d) => {
      await d.put('x/y/z/file', 'f');
      assert.deepEqual(await d.list('x'), ['y']);
      for (const dir of ['x', 'x/y', 'x/y/z']) {
        assert.notEqual((await d.stat(dir))?.isDir, false, dir);
        assert.equal(await d.get(dir), undefined, dir);
      }
    });

    stageContracts(it);

    describe('sweepTemp', () => {
      it('removes abandoned writes once older than maxAgeMs, and those can then not commit', async (d) => {
        assert.equal(await d.sweepTemp(0), 0);
        const s = await d.stage();
        await s.append([Buffer.from('abandoned fill')]);
        const w = await d.writer('sw/file');
        w.write(Buffer.from('abandoned upload'));
        await pause(10);
        assert.equal(await d.sweepTemp(60_000), 0, 'young writes stay');
        const n = await d.sweepTemp(0);
        assert.ok(n >= 2, `swept ${n}`);
        await assert.rejects(s.commit('sw/fill'));
        await assert.rejects(w.commit());
        await s.close();
        assert.deepEqual(await d.list('sw'), []);
        assert.equal(await d.sweepTemp(0), 0);
      });
    });

    describe('paths', () => {
      it('every method refuses unsafe paths before touching anything', async (d) => {
        await d.put('ok', 'ok');
        const s = await d.stage();
        // The root's listing (where FsDriver also shows its `_tmp/`) must not change.
        const before = await sorted(d.list(''));
        await s.append([Buffer.from('x')]);
        for (const bad of UNSAFE) {
          const why = JSON.stringify(bad);
          await assert.rejects(d.stat(bad), REFUSED, why);
          await assert.rejects(d.get(bad), REFUSED, why);
          await assert.rejects(d.put(bad, 'x'), REFUSED, why);
          await assert.rejects(d.open(bad), REFUSED, why);
          await assert.rejects(d.reader(bad), REFUSED, why);
          await assert.rejects(d.writer(bad), REFUSED, why);
          await assert.rejects(d.writer(bad, { appendAt: 0 }), REFUSED, why);
          if (bad !== '') await assert.rejects(d.list(bad), REFUSED, why);
          await assert.rejects(d.move('ok', bad), REFUSED, why);
          await assert.rejects(d.move(bad, 'ok2'), REFUSED, why);
          await assert.rejects(d.delete(bad), REFUSED, why);
          await assert.rejects(d.touch(bad), REFUSED, why);
        }
        await assert.rejects(s.commit('../escaped'), REFUSED);
        await s.close();
        assert.equal(await text(d.get('ok')), 'ok');
        assert.equal(await d.stat('ok2'), undefined);
        assert.deepEqual(await sorted(d.list('')), before);
        assert.equal(await d.sweepTemp(0), 0, 'the refused writes left nothing');
      });

      it('names with dots that stay inside are fine', async (d) => {
        for (const good of ['a.b', '.hidden', 'd/.x/b', 'd/..b', 'd/b..', '...']) {
          await d.put(good, good);
          assert.equal(await text(d.get(good)), good);
        }
        assert.deepEqual(await sorted(d.list('d')), ['..b', '.x', 'b..']);
      });
    });
  });
}
