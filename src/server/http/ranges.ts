import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isWharfError, parseRangeHeader, type ByteRange } from '../../spec/index.js';

/**
 * The ranges the request's Range header asks for within `size` bytes; undefined for the whole. A
 * range that cannot be answered throws RANGE_INVALID (416), with the Content-Range (`bytes *` and
 * the size) that RFC 9110 asks of that answer set on `reply`. Shared by /v2 blobs and the UI's downloads.
 */
export function requestedRanges(req: FastifyRequest, reply: FastifyReply, size: number): ByteRange[] | undefined {
  try {
    return parseRangeHeader(req.headers.range, size);
  } catch (err) {
    if (isWharfError(err, 'RANGE_INVALID')) reply.header('content-range', `bytes */${size}`);
    throw err;
  }
}

/**
 * A `multipart/byteranges` body (RFC 9110 §14.6) whose length is known up front, so the response
 * carries a Content-Length and clients can check it. Parts are streamed one at a time.
 */
export function multipartByteranges(
  ranges: ByteRange[],
  size: number,
  contentType: string,
  open: (r: ByteRange) => Promise<Readable>,
): { boundary: string; length: number; body: Readable } {
  const boundary = `wharf-${randomBytes(12).toString('hex')}`;
  const head = (r: ByteRange, i: number): string =>
    `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  let length = Buffer.byteLength(tail);
  ranges.forEach((r, i) => (length += Buffer.byteLength(head(r, i)) + (r.end - r.start + 1)));
  async function* parts(): AsyncGenerator<Buffer> {
    for (const [i, r] of ranges.entries()) {
      yield Buffer.from(head(r, i));
      for await (const chunk of await open(r)) yield chunk as Buffer;
    }
    yield Buffer.from(tail);
  }
  return { boundary, length, body: Readable.from(parts(), { objectMode: false }) };
}
