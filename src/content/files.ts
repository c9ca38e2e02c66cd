import { createReadStream, type ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Reads a file in 1 MiB chunks. Node's 64 KiB default makes hashing a large file five times slower
 * (measured: 256 MiB in 1.0 s against 0.2 s), and every blob read from disk is hashed.
 */
export function fileReader(path: string, range?: { start: number; end: number }): ReadStream {
  return createReadStream(path, { highWaterMark: 1 << 20, ...range });
}

/** Writes `bufs` (`n` bytes in all) at `position`, going on where a short writev stopped. */
export async function writevAll(fh: FileHandle, bufs: Buffer[], position: number, n: number): Promise<void> {
  let done = (await fh.writev(bufs, position)).bytesWritten;
  if (done < n) {
    const rest = Buffer.concat(bufs, n);
    while (done < n) done += (await fh.write(rest, done, n - done, position + done)).bytesWritten;
  }
}

/**
 * Writes `src` to a new file at `path` (failing if it exists). Network chunks are small (16-64
 * KiB), and a write per chunk costs a round trip through the thread pool, so chunks are gathered
 * into writes of 1 MiB or more, one in flight while the next gathers. `onBytes` hears of every
 * chunk as it arrives.
 */
export async function writeChunksToFile(src: AsyncIterable<Buffer>, path: string, opts: { mode?: number; onBytes?: (n: number) => void; signal?: AbortSignal; at?: number } = {}): Promise<number> {
  // `at`: the file exists and holds that many bytes already (a resumed download); go on after them.
  const fh = await open(path, opts.at === undefined ? 'wx' : 'r+', opts.mode ?? 0o600);
  let pos = opts.at ?? 0;
  let inFlight: Promise<void> | undefined;
  try {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const c of src) {
      opts.signal?.throwIfAborted();
      opts.onBytes?.(c.length);
      pending.push(c);
      pendingBytes += c.length;
      if (pendingBytes < 1 << 20) continue;
      await inFlight;
      inFlight = writevAll(fh, pending, pos, pendingBytes);
      // Seen before the write settles, so a failed write is not left unobserved.
      inFlight.catch(() => undefined);
      pos += pendingBytes;
      pending = [];
      pendingBytes = 0;
    }
    await inFlight;
    if (pendingBytes > 0) await writevAll(fh, pending, pos, pendingBytes);
    if (opts.at !== undefined) await fh.truncate(pos + pendingBytes);
    return pos + pendingBytes;
  } finally {
    await inFlight?.catch(() => undefined);
    await fh.close();
  }
}
