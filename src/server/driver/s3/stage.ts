import { randomUUID } from 'node:crypto';
import type { FsDriver } from '../fs.js';
import type { StageOptions, Staged } from '../types.js';
import type { Abandonable } from './files.js';
import { MAX_PUT, MultipartPut, StreamedPut, type Bucket, type Output } from './outputs.js';
import { INTERNAL } from './session.js';

/** What a fill's staging needs of the S3 driver. */
export interface StageDeps {
  b: Bucket;
  /** The local directory readers of a fill read from while it grows. */
  spool: FsDriver;
  /** Writes not yet committed or cancelled, which the driver's sweepTemp ends when abandoned. */
  writes: Set<Abandonable>;
  key(path: string): string;
  copyKey(from: string, to: string, size: number, metadata?: Record<string, string>): Promise<unknown>;
  deleteKey(key: string): Promise<void>;
}

/**
 * Bytes of a pull-through fill on their way in (StorageDriver.stage): each append goes to the
 * local spool, for the readers that follow the fill, and to a temporary object; commit() copies
 * that object to its name inside the store and removes it.
 */
export async function stageObject(d: StageDeps, opts: StageOptions = {}): Promise<Staged> {
  const local = await d.spool.stage(opts);
  const temp = `${d.b.prefix}${INTERNAL}/stage/${randomUUID()}`;
  const out: Output = opts.size !== undefined && opts.size > 0 && opts.size <= MAX_PUT ? new StreamedPut(d.b, temp, opts.size) : new MultipartPut(d.b, temp, opts.size);
  let state: 'open' | 'committed' | 'cancelled' | 'swept' = 'open';
  let failed: unknown;
  const entry: Abandonable = {
    started: Date.now(),
    async sweep() {
      if (state !== 'open') return;
      state = 'swept';
      d.writes.delete(entry);
      await out.abort();
    },
  };
  d.writes.add(entry);
  const staged: Staged = {
    get written() {
      return local.written;
    },
    async append(bufs) {
      if (failed) throw failed;
      // The same bytes go to the local spool (for readers) and to the store.
      const toStore = (async () => {
        for (const b of bufs) await out.write(Buffer.from(b));
      })().catch((err: unknown) => {
        failed ??= err;
      });
      await Promise.all([local.append(bufs), toStore]);
      if (failed) throw failed;
    },
    read: (into, position) => local.read(into, position),
    async commit(path) {
      const dst = d.key(path);
      if (state !== 'open') throw new Error(`staged bytes were already ${state}`);
      if (failed) throw failed;
      state = 'committed';
      d.writes.delete(entry);
      try {
        await out.end();
        await out.commit();
        await d.copyKey(temp, dst, out.bytes, d.b.stamp());
      } catch (err) {
        await out.abort();
        throw err;
      } finally {
        await d.deleteKey(temp).catch(() => undefined);
      }
      // The spool stays until close(): readers that follow the fill still read it, and its last
      // appends may not be written yet (a cancel now would drop them, and those readers with them).
    },
    async cancel() {
      if (state !== 'open') return;
      state = 'cancelled';
      d.writes.delete(entry);
      await out.abort();
      await local.cancel();
    },
    async close() {
      // Closed without a commit: nothing is to be named.
      await staged.cancel();
      await local.cancel();
      await local.close();
    },
  };
  return staged;
}
