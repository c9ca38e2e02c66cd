import type { ServerResponse } from 'node:http';
import { CHUNK, alignedBuffer } from './aligned.js';

/**
 * Buffers that finished sends hand to the next ones. A fresh buffer per chunk would make V8 run a
 * full collection every few tens of MiB sent (external memory pressure): measured, a third of the
 * CPU time of a pull. They are page-aligned, so a direct read fills them without a copy.
 */
const pool: Buffer[] = [];
const POOL_MAX = 8;
/** A read this small (a range, a small blob) gets a buffer of its own size, not a pooled MiB. */
const SMALL_READ = 64 << 10;

export function giveBuffer(b: Buffer): void {
  if (b.length === CHUNK && pool.length < POOL_MAX) pool.push(b);
}

/** Reads at most `max` bytes into a pooled buffer (or, for a small read, one of its own); a pooled buffer goes back if the read fails. */
export async function readPooled(read: (into: Buffer) => Promise<number>, max: number): Promise<{ buf: Buffer; n: number }> {
  const buf = max <= SMALL_READ ? Buffer.allocUnsafe(max) : (pool.pop() ?? alignedBuffer());
  try {
    return { buf, n: await read(max < buf.length ? buf.subarray(0, max) : buf) };
  } catch (err) {
    giveBuffer(buf);
    throw err;
  }
}

/** Resolves when the response can take more, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
