/**
 * The few tar records an eStargz layer needs, written by hand: the builder must know exactly
 * where each header and each payload starts, to cut gzip members at payload boundaries, which
 * a streaming tar packer does not tell. POSIX ustar, with a pax extended header for what ustar
 * cannot hold (long or non-ASCII names and link targets, sizes of 8 GiB and more).
 */

export const BLOCK = 512;

export type TarType = 'file' | 'link' | 'symlink' | 'directory';

const TYPEFLAG: Record<TarType, string> = { file: '0', link: '1', symlink: '2', directory: '5' };

export interface TarHeader {
  name: string;
  type: TarType;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  size?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
}

function octal(n: number, width: number): string {
  // width - 1 digits and a NUL, as GNU tar writes them.
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function fits(s: string, max: number): boolean {
  return Buffer.byteLength(s) <= max && /^[\x20-\x7e]*$/.test(s);
}

function rawHeader(name: string, typeflag: string, mode: number, mtime: number, size: number, linkname: string, uid: number, gid: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(mode & 0o7777, 8), 100, 'ascii');
  b.write(octal(uid, 8), 108, 'ascii');
  b.write(octal(gid, 8), 116, 'ascii');
  b.write(octal(size, 12), 124, 'ascii');
  b.write(octal(Math.max(0, Math.min(mtime, 0o77777777777)), 12), 136, 'ascii');
  b.write(typeflag, 156, 'ascii');
  b.write(linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write(octal(0, 8), 329, 'ascii');
  b.write(octal(0, 8), 337, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body);
  let total = len + String(len).length;
  if (String(total).length !== String(len).length) total = len + String(total).length;
  len = total;
  return `${len}${body}`;
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The header blocks of one entry (a pax header first when needed); the payload follows. */
export function encodeHeader(h: TarHeader): Buffer {
  const size = h.type === 'file' ? (h.size ?? 0) : 0;
  const linkname = h.linkname ?? '';
  const pax: string[] = [];
  if (!fits(h.name, 100)) pax.push(paxRecord('path', h.name));
  if (!fits(linkname, 100)) pax.push(paxRecord('linkpath', linkname));
  if (size > 0o77777777777) pax.push(paxRecord('size', String(size)));
  const uid = h.uid ?? 0;
  const gid = h.gid ?? 0;
  const main = rawHeader(
    fits(h.name, 100) ? h.name : asciiPrefix(h.name, 99),
    TYPEFLAG[h.type],
    h.mode,
    h.mtime,
    size > 0o77777777777 ? 0 : size,
    fits(linkname, 100) ? linkname : asciiPrefix(linkname, 99),
    uid,
    gid,
  );
  if (pax.length === 0) return main;
  const body = Buffer.from(pax.join(''), 'utf8');
  const x = rawHeader(asciiPrefix(`PaxHeaders/${h.name.replace(/\/+$/, '').split('/').pop() ?? ''}`, 99), 'x', 0o644, h.mtime, body.length, '', 0, 0);
  return Buffer.concat([x, body, Buffer.alloc(padding(body.length)), main]);
}

function asciiPrefix(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
}

/** Two zero blocks: the end of an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

export interface DecodedHeader {
  name: string;
  size: number;
  typeflag: string;
  /** Bytes of header blocks, pax included: the payload starts here. */
  headerLength: number;
}

function readOctal(b: Buffer, off: number, len: number): number {
  const s = b.toString('ascii', off, off + len).replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** Reads one entry's header (following a pax header) at the start of `b`; enough for the TOC entry. */
export function decodeHeader(b: Buffer): DecodedHeader | undefined {
  let off = 0;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  for (let guard = 0; guard < 4; guard++) {
    if (b.length < off + BLOCK) return undefined;
    const blk = b.subarray(off, off + BLOCK);
    if (blk.every((x) => x === 0)) return undefined;
    const typeflag = String.fromCharCode(blk[156]!);
    const size = readOctal(blk, 124, 12);
    if (typeflag === 'x' || typeflag === 'L') {
      const body = b.subarray(off + BLOCK, off + BLOCK + size);
      if (typeflag === 'L') paxPath = body.toString('utf8').replace(/\0+$/, '');
      else {
        for (const line of body.toString('utf8').split('\n')) {
          const m = /^\d+ ([^=]+)=(.*)$/s.exec(line);
          if (m?.[1] === 'path') paxPath = m[2];
          if (m?.[1] === 'size') paxSize = Number(m[2]);
        }
      }
      off += BLOCK + size + padding(size);
      continue;
    }
    const nameField = blk.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const prefix = blk.toString('ascii', 257, 262) === 'ustar' ? blk.toString('utf8', 345, 500).replace(/\0.*$/s, '') : '';
    const name = paxPath ?? (prefix ? `${prefix}/${nameField}` : nameField);
    return { name, size: paxSize ?? size, typeflag, headerLength: off + BLOCK };
  }
  return undefined;
}
