import type { ServerResponse } from 'node:http';
import { createDigester, parseDigest, type Digest } from '../../spec/index.js';
import { CHUNK } from './aligned.js';
import { drained, giveBuffer, readPooled } from './pool.js';

/** Chunks read ahead of the one being sent: the disk and the socket each have one to work on. */
const AHEAD = 2;

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
 */
export async function sendFileRange(res: ServerResponse, file: PositionalReader, start: number, end: number, check?: ReadCheck): Promise<void> {
  const hash = check ? createDigester(parseDigest(check.digest).algorithm) : undefined;
  // Reads in flight, in file order, each of a whole chunk (or the rest of the range).
  const ahead: Array<Promise<{ buf: Buffer; n: number }>> = [];
  let asked = start;
  const readAhead = (): void => {
    for (; ahead.length < AHEAD && asked <= end; asked += CHUNK) {
      const at = asked;
      ahead.push(readPooled((into) => file.read(into, at), Math.min(CHUNK, end - at + 1)));
    }
  };
  try {
    let pos = start;
    readAhead();
    for (let next = ahead.shift(); next; next = ahead.shift()) {
      const { buf, n } = await next;
      // Every read but the last asked for a whole chunk: a shorter one means the file is short.
      if (n <= 0 || (n < CHUNK && pos + n <= end)) {
        giveBuffer(buf);
        throw new Error(`the file ended after ${pos + Math.max(n, 0)} bytes, short of ${end + 1}`);
      }
      const chunk = buf.subarray(0, n);
      pos += n;
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
