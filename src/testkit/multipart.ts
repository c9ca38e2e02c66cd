/**
 * A strict parser for `multipart/byteranges` bodies (RFC 9110 §14.6 and RFC 2046 §5.1), enough
 * to check a registry's answer to a multi-range request part by part.
 */

export interface BytePart {
  headers: Record<string, string>;
  /** From the part's `Content-Range: bytes first-last/complete`. */
  first: number;
  last: number;
  complete: number | undefined;
  data: Buffer;
}

/** The `boundary` parameter of a `multipart/byteranges` Content-Type, or undefined. */
export function byteRangesBoundary(contentType: string | null): string | undefined {
  if (!contentType || !/^\s*multipart\/byteranges\s*;/i.test(contentType)) return undefined;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Splits the body into its parts; throws on anything malformed. */
export function parseByteRanges(body: Buffer, boundary: string): BytePart[] {
  const delim = Buffer.from(`--${boundary}`);
  const parts: BytePart[] = [];
  let pos = body.indexOf(delim);
  if (pos < 0) throw new Error('multipart body has no boundary delimiter');
  for (;;) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') return parts; // close delimiter
    // Transport padding, then CRLF.
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body.subarray(pos, pos + 2).toString('latin1') !== '\r\n') throw new Error('boundary line not followed by CRLF');
    pos += 2;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) throw new Error('part has no header terminator');
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headEnd).toString('latin1').split('\r\n')) {
      if (line === '') continue;
      const i = line.indexOf(':');
      if (i <= 0) throw new Error(`malformed part header ${JSON.stringify(line)}`);
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const dataStart = headEnd + 4;
    const cr = headers['content-range'];
    const m = cr ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr) : null;
    if (!m) throw new Error(`part without a valid Content-Range: ${JSON.stringify(cr)}`);
    const first = Number(m[1]);
    const last = Number(m[2]);
    const dataEnd = dataStart + (last - first + 1);
    // The data is exactly the range; then CRLF and the next delimiter.
    const after = body.subarray(dataEnd, dataEnd + 2 + delim.length);
    if (!after.equals(Buffer.concat([Buffer.from('\r\n'), delim]))) {
      throw new Error(`part ${first}-${last} is not followed by CRLF and the boundary`);
    }
    parts.push({ headers, first, last, complete: m[3] === '*' ? undefined : Number(m[3]), data: body.subarray(dataStart, dataEnd) });
    pos = dataEnd + 2;
  }
}
