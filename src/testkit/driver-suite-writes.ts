/**
 * The StorageDriver contract's writes (new files, appends, staged bytes), and what the contract's
 * tests share; driver-suite.ts runs them with the rest, on every driver.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DriverWriter, StorageDriver, WriterOptions } from '../server/driver/types.js';

/** A contract test on a fresh driver (see driverSuite). */
export type It = (title: string, fn: (d: StorageDriver) => Promise<void>) => void;

export const MiB = 1 << 20;


/** Irregular chunk sizes, as a socket delivers them: odd, one byte, page-sized, over 1 MiB. */
export const CHUNKS = [1, 4095, 65536, 7, 300_000, 4096, MiB + 3];

/** Writes `data` in chunks of irregular sizes, minding backpressure. */
export async function writeChunked(w: DriverWriter, data: Buffer): Promise<void> {
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(data.length - off, CHUNKS[i % CHUNKS.length]!);
    if (!w.write(data.subarray(off, off + n))) await new Promise((r) => w.once('drain', r));
    off += n;
  }
}

export async function writeFile(d: StorageDriver, path: string, data: Buffer, opts: WriterOptions = {}): Promise<void> {
  const w = await d.writer(path, opts);
  await writeChunked(w, data);
  await w.commit();
}

export async function drain(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export const sorted = async (names: Promise<string[]>): Promise<string[]> => (await names).sort();
export const text = async (b: Promise<Buffer | undefined>): Promise<string | undefined> => (await b)?.toString();
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise to settle later, with nobody told of a rejection before the code under test listens. */
export function gate(): { promise: Promise<void>; open(): void; fail(err: Error): void } {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    open = res;
    fail = rej;
  });
  promise.catch(() => undefined);
  return { promise, open, fail };
}

export function writerContracts(it: It, objectStore: boolean): void {
  describe('writer', () => {
    for (const size of [0, 1, 4095, 4096, MiB, MiB + 1, 5 * MiB + 333]) {
      it(`a new file of ${size} bytes, written in irregular chunks, is committed exactly`, async (d) => {
        const data = randomBytes(size);
        await writeFile(d, `new/${size}`, data, { size });
        const got = await d.get(`new/${size}`);
        assert.equal(got?.length, size);
        assert.ok(got?.equals(data));
        assert.equal((await d.stat(`new/${size}`))?.size, size);
      });
    }

    for (const size of [0, 3, 9 * MiB + 5]) {
      it(`ifAbsent (${size} bytes, announced and not): written where nothing is; where a file is, commit fails with EEXIST and the file stays`, async (d) => {
        const data = randomBytes(size);
        for (const announced of [true, false]) {
          const path = `once/${size}-${announced}`;
          const opts = announced ? { size, ifAbsent: true } : { ifAbsent: true };
          await writeFile(d, path, data, opts);
          assert.ok((await d.get(path))?.equals(data));
          const other = randomBytes(size);
          await assert.rejects(writeFile(d, path, other, opts), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
          assert.ok((await d.get(path))?.equals(data));
        }
      });
    }

    it('a version that a commit or a touch reports is the one stat() gives next (the registry keeps what it verified by it)', async (d) => {
      for (const size of [10, 3 * MiB]) {
        const w = await d.writer(`versioned/${size}`, { size });
        await writeChunked(w, randomBytes(size));
        await w.commit();
        const st = await d.stat(`versioned/${size}`);
        if (w.version !== undefined) assert.equal(w.version, st?.version);
        const touched = await d.touch(`versioned/${size}`);
        assert.equal(touched?.version, st?.version);
        if (touched?.touched !== undefined) assert.equal(touched.touched, (await d.stat(`versioned/${size}`))?.version);
      }
    });

    it('a new file whose size was not announced, or announced wrong, is committed exactly', async (d) => {
      const data = randomBytes(2 * MiB + 9);
      await writeFile(d, 'unsized', data);
      assert.ok((await d.get('unsized'))?.equals(data));
      if (objectStore) {
        // A store that takes a length up front refuses other lengths, and names nothing.
        const piped = async (path: string, bytes: Buffer, size: number): Promise<void> => {
          const w = await d.writer(path, { size });
          try {
            await pipeline(Readable.from([bytes]), w);
            await w.commit();
          } catch (err) {
            await w.cancel();
            throw err;
          }
        };
        await assert.rejects(piped('undersold', data, 100));
        await assert.rejects(piped('oversold', data.subarray(0, 1000), 8 * MiB));
        assert.deepEqual(await sorted(d.list('')), ['unsized']);
        return;
      }
      await writeFile(d, 'undersold', data, { size: 100 });
      assert.ok((await d.get('undersold'))?.equals(data));
      await writeFile(d, 'oversold', data.subarray(0, 1000), { size: 8 * MiB });
      assert.ok((await d.get('oversold'))?.equals(data.subarray(0, 1000)));
    });

    it('a new file is invisible until commit, then there whole; it replaces a file there only then', async (d) => {
      await d.put('w/old', 'old');
      const data = randomBytes(3 * MiB);
      const fresh = await d.writer('w/new', { size: data.length });
      const over = await d.writer('w/old', { size: data.length });
      await writeChunked(fresh, data);
      await writeChunked(over, data);
      assert.equal(await d.stat('w/new'), undefined);
      assert.deepEqual(await d.list('w'), ['old']);
      assert.equal(await text(d.get('w/old')), 'old');
      await fresh.commit();
      await over.commit();
      assert.ok((await d.get('w/new'))?.equals(data));
      assert.ok((await d.get('w/old'))?.equals(data));
    });

    it('a writer commits after end(), and through pipeline() as the upload path uses it', async (d) => {
      const w = await d.writer('ended');
      w.end(Buffer.from('all of it'));
      await new Promise((r) => w.once('finish', r));
      await w.commit();
      assert.equal(await text(d.get('ended')), 'all of it');
      const { pipeline } = await import('node:stream/promises');
      const { Readable } = await import('node:stream');
      const data = randomBytes(MiB + 17);
      const p = await d.writer('piped', { size: data.length });
      await pipeline(Readable.from([data.subarray(0, 10), data.subarray(10, 70_000), data.subarray(70_000)]), p);
      await p.commit();
      assert.ok((await d.get('piped'))?.equals(data));
    });

    it('a cancelled new file leaves nothing listed, and nothing to sweep', async (d) => {
      const w = await d.writer('c/gone', { size: 2 * MiB });
      await writeChunked(w, randomBytes(2 * MiB));
      await w.cancel();
      assert.equal(await d.stat('c/gone'), undefined);
      assert.deepEqual(await d.list('c'), []);
      assert.equal(await d.sweepTemp(0), 0);
      const empty = await d.writer('c/none');
      await empty.cancel();
      assert.deepEqual(await d.list('c'), []);
    });

    it('appends at unaligned offsets continue the file', async (d) => {
      const parts = [randomBytes(5000), randomBytes(2 * MiB + 123), randomBytes(1), randomBytes(4096), randomBytes(MiB - 3)];
      await d.put('up/a', '');
      let at = 0;
      for (const part of parts) {
        await writeFile(d, 'up/a', part, { appendAt: at, size: part.length });
        at += part.length;
        const got = await d.get('up/a');
        assert.equal(got?.length, at);
        assert.ok(got?.equals(Buffer.concat(parts).subarray(0, at)), `after ${at} bytes`);
      }
    });

    it('an append of no bytes commits the file unchanged', async (d) => {
      await d.put('up/n', 'abc');
      const w = await d.writer('up/n', { appendAt: 3 });
      await w.commit();
      assert.equal(await text(d.get('up/n')), 'abc');
    });

    it('committing an append cuts off what lay past where the write ended', async (d) => {
      await d.put('up/t', 'abcdefgh');
      await writeFile(d, 'up/t', Buffer.from('XY'), { appendAt: 3 });
      assert.equal(await text(d.get('up/t')), 'abcXY');
      const big = randomBytes(MiB + 5);
      await d.put('up/big', randomBytes(3 * MiB));
      const head = (await d.get('up/big'))!.subarray(0, 4097);
      await writeFile(d, 'up/big', big, { appendAt: 4097, size: big.length });
      assert.ok((await d.get('up/big'))?.equals(Buffer.concat([head, big])));
    });

    it('a cancelled append leaves the file as it was', async (d) => {
      for (const [size, append] of [
        [10_000, 3 * MiB],
        [0, 100],
        [4096, MiB],
        [7, 5],
      ] as const) {
        const first = randomBytes(size);
        await d.put('up/b', first);
        const w = await d.writer('up/b', { appendAt: size, size: append + MiB });
        await writeChunked(w, randomBytes(append));
        await w.cancel();
        assert.ok((await d.get('up/b'))?.equals(first), `${size} + ${append}`);
        assert.equal((await d.stat('up/b'))?.size, size);
      }
    });

    it('cancel after commit changes nothing; commit after cancel writes nothing', async (d) => {
      const w = await d.writer('s/a');
      w.write(Buffer.from('kept'));
      await w.commit();
      await w.cancel();
      assert.equal(await text(d.get('s/a')), 'kept');
      await d.put('s/b', 'abc');
      const a = await d.writer('s/b', { appendAt: 3 });
      a.write(Buffer.from('def'));
      await a.commit();
      await a.cancel();
      assert.equal(await text(d.get('s/b')), 'abcdef');
      const c = await d.writer('s/c');
      c.write(Buffer.from('dropped'));
      await c.cancel();
      await c.commit();
      assert.equal(await d.stat('s/c'), undefined);
    });

    it('12 writers at once each commit their own bytes', async (d) => {
      const datas = Array.from({ length: 12 }, (_, i) => randomBytes(MiB + i * 7777));
      await Promise.all(datas.map((data, i) => writeFile(d, `many/${i}`, data, { size: data.length })));
      for (const [i, data] of datas.entries()) assert.ok((await d.get(`many/${i}`))?.equals(data), `file ${i}`);
    });
  });
}

export function stageContracts(it: It): void {
  describe('stage', () => {
    it('staged bytes are readable while they grow, under no name', async (d) => {
      let calls = 0;
      const data = randomBytes(4 * MiB + 4321);
      const s = await d.stage({ size: data.length, onWritten: () => calls++ });
      try {
        let appended = 0;
        let last = 0;
        for (let i = 0; appended < data.length; i++) {
          const n = Math.min(data.length - appended, CHUNKS[i % CHUNKS.length]!);
          // A copy: the driver may keep what it is handed.
          await s.append([Buffer.from(data.subarray(appended, appended + n))]);
          appended += n;
          assert.ok(s.written >= last && s.written <= appended, `written ${s.written} of ${appended}`);
          last = s.written;
          if (s.written > 0 && i % 5 === 0) {
            const into = Buffer.alloc(Math.min(s.written, 70_000));
            const at = s.written - into.length;
            assert.equal(await s.read(into, at), into.length);
            assert.ok(into.equals(data.subarray(at, at + into.length)), `read at ${at}`);
          }
        }
        // The bytes get written while the caller waits for more to arrive.
        const deadline = Date.now() + 5000;
        while (s.written < MiB && Date.now() < deadline) await pause(5);
        assert.ok(s.written >= MiB, `written ${s.written} before commit`);
        assert.ok(calls > 0, 'onWritten was called');
        const head = Buffer.alloc(s.written);
        assert.equal(await s.read(head, 0), head.length);
        assert.ok(head.equals(data.subarray(0, head.length)));
        assert.deepEqual(await d.list('fill'), []);
        await s.commit('fill/blob');
        assert.equal(s.written, data.length);
        assert.ok((await d.get('fill/blob'))?.equals(data));
      } finally {
        await s.close();
      }
    });

    it('commit names the bytes atomically, making parents and replacing a file there; reads go on until close', async (d) => {
      await d.put('b/sha256/ab/x', 'stale');
      const data = randomBytes(MiB + 999);
      const s = await d.stage({ size: data.length });
      await s.append([data.subarray(0, 1000), data.subarray(1000, 5000)]);
      await s.append([]);
      await s.append([data.subarray(5000)]);
      assert.equal(await text(d.get('b/sha256/ab/x')), 'stale');
      await s.commit('b/sha256/ab/x');
      assert.ok((await d.get('b/sha256/ab/x'))?.equals(data));
      assert.equal(s.written, data.length);
      const into = Buffer.alloc(data.length + 10);
      let n = 0;
      while (n < data.length) {
        const got = await s.read(into.subarray(n, n + MiB), n);
        assert.ok(got > 0);
        n += got;
      }
      assert.ok(into.subarray(0, n).equals(data));
      assert.equal(await s.read(Buffer.alloc(8), data.length), 0);
      await s.close();
      const fresh = await d.stage();
      await fresh.append([Buffer.from('new dirs')]);
      await fresh.commit('n/e/w');
      await fresh.close();
      assert.equal(await text(d.get('n/e/w')), 'new dirs');
      assert.equal(await d.sweepTemp(0), 0, 'nothing is left to sweep');
    });

    it('an empty stage commits an empty file', async (d) => {
      const s = await d.stage();
      assert.equal(s.written, 0);
      assert.equal(await s.read(Buffer.alloc(4), 0), 0);
      await s.commit('empty');
      await s.close();
      assert.equal((await d.stat('empty'))?.size, 0);
    });

    it('cancel leaves nothing anywhere, reads go on until close, and a commit after it fails', async (d) => {
      const data = randomBytes(2 * MiB + 1);
      const s = await d.stage({ size: data.length });
      await s.append([data]);
      await s.cancel();
      await s.cancel();
      await assert.rejects(s.commit('c/x'));
      assert.equal(await d.stat('c/x'), undefined);
      assert.deepEqual(await d.list('c'), []);
      const into = Buffer.alloc(4096);
      const n = await s.read(into, 0);
      assert.ok(into.subarray(0, n).equals(data.subarray(0, n)));
      await s.close();
      assert.equal(await d.sweepTemp(0), 0);
    });

    it('a second commit fails and leaves the first', async (d) => {
      const s = await d.stage();
      await s.append([Buffer.from('once')]);
      await s.commit('once');
      await assert.rejects(s.commit('twice'));
      await s.cancel();
      await s.close();
      assert.equal(await text(d.get('once')), 'once');
      assert.equal(await d.stat('twice'), undefined);
    });
  });
}
