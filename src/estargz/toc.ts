import { OciError } from '../spec/index.js';

/**
 * The eStargz format (containerd/stargz-snapshotter, docs/estargz.md): a tar.gz whose gzip
 * members start where file payloads start, a `stargz.index.json` tar entry (the TOC) in a member
 * of its own, and a 51-byte gzip footer whose extra field holds the TOC's offset.
 */
export const TOC_TAR_NAME = 'stargz.index.json';
export const FOOTER_SIZE = 51;
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';
export const DEFAULT_CHUNK_SIZE = 4 << 20;

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';

/** One entry of `stargz.index.json`, field names as the spec writes them. */
export interface TocEntry {
  name: string;
  type: TocEntryType;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  /** Offset in the blob of the gzip member holding this chunk's data. */
  offset?: number;
  /** Offset of the chunk inside that member's uncompressed data (several chunks per member). */
  innerOffset?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  /** sha256 of the whole file (reg). */
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

export interface Toc {
  version: number;
  entries: TocEntry[];
}

/** The 51-byte footer: an empty gzip member whose extra field is `SG` + `%016xSTARGZ`. */
export function encodeFooter(tocOffset: number): Buffer {
  const b = Buffer.alloc(FOOTER_SIZE);
  b.set([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff], 0);
  b.writeUInt16LE(26, 10); // XLEN
  b.write('SG', 12, 'ascii');
  b.writeUInt16LE(22, 14);
  b.write(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 16, 'ascii');
  b.set([1, 0, 0, 0xff, 0xff], 38); // a final stored block of length 0
  // CRC32 and ISIZE of nothing: eight zero bytes, already there.
  return b;
}

/** The TOC offset from a footer, or undefined when these bytes are not an eStargz footer. */
export function parseFooter(b: Buffer): number | undefined {
  if (b.length !== FOOTER_SIZE) return undefined;
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3]! & 4) === 0) return undefined;
  if (b.readUInt16LE(10) !== 26 || b.toString('ascii', 12, 14) !== 'SG' || b.readUInt16LE(14) !== 22) return undefined;
  const s = b.toString('ascii', 16, 38);
  if (!/^[0-9a-f]{16}STARGZ$/.test(s)) return undefined;
  const off = parseInt(s.slice(0, 16), 16);
  return Number.isSafeInteger(off) ? off : undefined;
}

/** The legacy stargz footer (CRFS): 47 bytes, the extra field is `%016xSTARGZ` with no subfield header. */
export const LEGACY_FOOTER_SIZE = 47;

/** The TOC offset from a legacy stargz footer, or undefined. */
export function parseLegacyFooter(b: Buffer): number | undefined {
  if (b.length !== LEGACY_FOOTER_SIZE) return undefined;
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3]! & 4) === 0 || b.readUInt16LE(10) !== 22) return undefined;
  const s = b.toString('ascii', 12, 34);
  if (!/^[0-9a-f]{16}STARGZ$/.test(s)) return undefined;
  const off = parseInt(s.slice(0, 16), 16);
  return Number.isSafeInteger(off) ? off : undefined;
}

/** `a/b/` and `./a/b` are both `a/b`, as the reference reader cleans names; the root is ``. */
export function cleanName(name: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return parts.join('/');
}

export function parseToc(json: Buffer): Toc {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new OciError('MANIFEST_INVALID', `the eStargz TOC is not JSON: ${(err as Error).message}`);
  }
  const toc = doc as Partial<Toc>;
  if (typeof toc !== 'object' || toc === null || !Array.isArray(toc.entries)) throw new OciError('MANIFEST_INVALID', 'the eStargz TOC has no entries');
  for (const e of toc.entries) {
    if (typeof e?.name !== 'string' || typeof e.type !== 'string') throw new OciError('MANIFEST_INVALID', 'an eStargz TOC entry has no name or type');
    for (const k of ['size', 'offset', 'innerOffset', 'chunkOffset', 'chunkSize', 'mode'] as const) {
      const v = e[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new OciError('MANIFEST_INVALID', `eStargz TOC entry "${e.name}" has a bad ${k}`);
    }
  }
  return { version: toc.version ?? 1, entries: toc.entries };
}
