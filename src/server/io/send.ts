import type { ServerResponse } from 'node:http';
import { createDigester, parseDigest, type Digest } from '../../spec/index.js';
import { CHUNK } from './aligned.js';
import { drained, giveBuffer, readPooled } from './pool.js';

/** Chunks read ahead of the one being sent: the disk and the socket each have one to work on. */
const AHEAD = 2;
/**
 * A range at least this long is read in whole pages from page offsets (see sendFileRange). 1 MiB,
 * as for whole reads: below it a range is a few pages, which the page cache serves as well.
 */
export const LARGE_RANGE = CHUNK;
/** Direct I/O wants file offsets and lengths in whole blocks; 4 KiB covers every common device. */
const PAGE = 4096;

/** Positional reads of stored bytes (a driver's FileReader). */
export interface PositionalReader {
  read(into: Uint8Array, position: number): Promise<number>;
}

/** The digest a whole read must match; `verified` is called once it did. */
export interface ReadCheck {
  digest: Digest;
  verified(): void;
}

/**
 * Writes bytes [start, end] of a file to `res`, reading the next chunks while one is written. With
 * a check, the bytes are hashed on the way and the last chunk goes out only if the digest matches:
 * otherwise this throws, and the caller cuts the response short, so a client never takes damaged
 * content for whole. Returns early when the response is gone.
 *
 * A large range (LARGE_RANGE or more) is read in whole pages at page offsets: from `start` rounded
 * down to a page, the head bytes before `start` skipped when sent, the last read rounded up to a
 * page (the bytes past `end` are not sent). Every read is then one a driver can make with
 * O_DIRECT straight into the pooled page-aligned buffers, as for a whole blob; a range from
 * `start` itself would put every read off the page grid and send it through the page cache.
 */
export async function sendFileRange(res: ServerResponse, file: PositionalReader, start: number, end: number, check?: ReadCheck): Promise<void> {
  const hash = check ? createDigester(parseDigest(check.digest).algorithm) : undefined;
  const paged = end - start + 1 >= LARGE_RANGE;
  // Reads in flight, in file order, each of a whole chunk (or the rest of the range).
  const ahead: Array<Promise<{ buf: Buffer; n: number }>> = [];
  let asked = paged ? start - (start % PAGE) : start;
  const readAhead = (): void => {
    for (; ahead.length < AHEAD && asked <= end; asked += CHUNK) {
      const at = asked;
      const rest = end - at + 1;
      ahead.push(readPooled((into) => file.read(into, at), Math.min(CHUNK, paged ? Math.ceil(rest / PAGE) * PAGE : rest)));
    }
  };
  try {
    // Where the next read starts in the file, and the first byte of it that goes out.
    let at = asked;
    let pos = start;
    readAhead();
    for (let next = ahead.shift(); next; next = ahead.shift()) {
      const got = await next;
      const buf = got.buf;
      const from = at;
      at += CHUNK;
      // The bytes of this read that belong to the range: past the head, up to `end`.
      const skip = pos - from;
      const n = Math.min(got.n, end - from + 1);
      // Every read but the last asked for a whole chunk: a shorter one means the file is short.
      if (n <= skip || (n < CHUNK && from + n <= end)) {
        giveBuffer(buf);
        throw new Error(`the file ended after ${from + Math.max(got.n, 0)} bytes, short of ${end + 1}`);
      }
      const chunk = buf.subarray(skip, n);
      pos += n - skip;
      if (hash) {
        hash.update(chunk);
        if (pos > end && `${parseDigest(check!.digest).algorithm}:${hash.digest('hex')}` !== check!.digest) {
          giveBuffer(buf);
          throw new Error(`stored content of ${check!.digest} does not match its digest: the response is cut short`);
        }
      }
      if (res.destroyed) {
        giveBuffer(buf);
        return;
      }
      readAhead();
      if (!res.write(chunk, () => giveBuffer(buf))) await drained(res);
    }
    if (check && pos > end) check.verified();
  } finally {
    for (const next of ahead.splice(0)) {
      void next.then(
        (r) => giveBuffer(r.buf),
        () => undefined,
      );
    }
  }
}
