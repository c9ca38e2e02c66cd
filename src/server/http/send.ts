import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { createDigester, parseDigest } from '../../spec/index.js';
import { alignedBuffer, type FileReader } from '../driver/index.js';
import type { BlobCheck } from '../store/index.js';

const CHUNK = 1 << 20;
/** Chunks read ahead of the one being sent: the disk and the socket each have one to work on. */
const AHEAD = 2;
/**
 * Buffers that finished sends hand to the next ones. A fresh buffer per chunk would make V8 run a
 * full collection every few tens of MiB sent (external memory pressure): measured, a third of the
 * CPU time of a pull. They are page-aligned, so a direct read fills them without a copy.
 */
const pool: Buffer[] = [];
const POOL_MAX = 8;
const takeBuffer = (): Buffer => pool.pop() ?? alignedBuffer();
/** A read this small (a range, a small blob) gets a buffer of its own size, not a pooled MiB. */
const SMALL_READ = 64 << 10;
export const giveBuffer = (b: Buffer): void => {
  if (b.length === CHUNK && pool.length < POOL_MAX) pool.push(b);
};

/** Reads at most `max` bytes into a pooled buffer (or, for a small read, one of its own); a pooled buffer goes back if the read fails. */
export async function readPooled(read: (into: Buffer) => Promise<number>, max: number): Promise<{ buf: Buffer; n: number }> {
  const buf = max <= SMALL_READ ? Buffer.allocUnsafe(max) : takeBuffer();
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

/**
 * Takes the response over from fastify (status and headers as set on the reply) and lets `body`
 * write it; the response ends when `body` resolves and is cut short when it throws.
 */
export async function sendBody(reply: FastifyReply, body: (res: ServerResponse) => Promise<void>): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    await body(res);
    if (!res.destroyed) res.end();
  } catch (err) {
    reply.log.error({ err }, 'sending a response body failed');
    res.destroy(err as Error);
  }
}

/**
 * Sends bytes [start, end] of a file as the reply's body (with the status and headers set on the
 * reply), reading the next chunks while one is written. With a check, the bytes are hashed
 * on the way and the last chunk goes out only if the digest matches: otherwise the response is cut
 * short, so a client never takes damaged content for whole. The file is closed in every case.
 */
export async function sendFile(reply: FastifyReply, file: FileReader, start: number, end: number, check?: BlobCheck): Promise<void> {
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
    await sendBody(reply, async (res) => {
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
    });
  } finally {
    for (const next of ahead.splice(0)) {
      void next.then(
        (r) => giveBuffer(r.buf),
        () => undefined,
      );
    }
    await file.close().catch(() => undefined);
  }
}
