import { WharfError } from './errors.js';

/** An inclusive byte range, as HTTP writes it. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses an RFC 9110 `Range: bytes=...` header against a resource of `size` bytes.
 * Returns undefined when the header is absent or not a bytes range (the caller then serves the
 * whole body, as RFC 9110 lets a server ignore a Range it does not understand). Throws
 * RANGE_INVALID when no range is satisfiable, or when the header is syntactically broken.
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange[] | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return undefined;
  const ranges: ByteRange[] = [];
  for (const part of m[1]!.split(',')) {
    const spec = part.trim();
    if (spec === '') continue;
    const r = /^(\d*)-(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) throw new WharfError('RANGE_INVALID', `malformed range "${spec}"`, { detail: { size } });
    if (r[1] === '') {
      // suffix range: the last N bytes
      const n = Number(r[2]);
      if (n === 0) continue;
      ranges.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    const end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
    if (r[2] !== '' && Number(r[2]) < start) throw new WharfError('RANGE_INVALID', `reversed range "${spec}"`, { detail: { size } });
    if (start >= size) continue;
    ranges.push({ start, end });
  }
  if (ranges.length === 0) throw new WharfError('RANGE_INVALID', `range "${header}" is not satisfiable for ${size} bytes`, { detail: { size } });
  if (ranges.length > 100) throw new WharfError('RANGE_INVALID', 'too many ranges', { detail: { size } });
  return ranges;
}

/**
 * Parses an upload chunk's `Content-Range: <start>-<end>` (distribution-spec writes it without the
 * `bytes ` unit; we accept both).
 */
export function parseContentRange(header: string): ByteRange {
  const m = /^\s*(?:bytes\s+)?(\d+)-(\d+)(?:\/(?:\d+|\*))?\s*$/i.exec(header);
  if (!m) throw new WharfError('RANGE_INVALID', `malformed Content-Range "${header}"`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new WharfError('RANGE_INVALID', `reversed Content-Range "${header}"`);
  return { start, end };
}
