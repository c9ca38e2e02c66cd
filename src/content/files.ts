import { createReadStream, type ReadStream } from 'node:fs';

/**
 * Reads a file in 1 MiB chunks. Node's 64 KiB default makes hashing a large file five times slower
 * (measured: 256 MiB in 1.0 s against 0.2 s), and every blob read from disk is hashed.
 */
export function fileReader(path: string, range?: { start: number; end: number }): ReadStream {
  return createReadStream(path, { highWaterMark: 1 << 20, ...range });
}
