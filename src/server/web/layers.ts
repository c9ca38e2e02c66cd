import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Extract, Header as TarHeaders } from 'tar-stream';

/** An entry's body as tar-stream hands it out (a streamx Readable). */
type TarSource = Extract extends AsyncIterable<infer S> ? S : never;
import { NotEstargzError, cleanName, openEstargz, type EstargzReader, type RangedBlobSource } from '../../estargz/index.js';
import { verifyReader } from '../../content/index.js';
import { OciError, WharfError, type ByteRange, type Descriptor, type Digest } from '../../spec/index.js';
import type { BlobHandle, RegistryBackend } from '../store/index.js';
import { ByteLru } from './lru.js';
import type { LayerFiles } from './types.js';

/**
 * Reading inside a layer for the web UI: what kind of archive it is (from its first bytes, and an
 * eStargz footer), the entries of a tar, tar.gz or tar.zst as a stream (headers read, bodies
 * skipped unless asked for), and eStargz through its TOC. Every byte comes through the backend's
 * BlobHandle, the same store interface /v2 reads from, so a pull-through cache serves it too.
 */

export type LayerFormat = LayerFiles['format'];

/** One entry of an archive, as listed. */
export interface LayerEntry {
  path: string;
  size: number;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number | null;
}

/** Node 22.15+ decodes zstd itself; Node 20 does not (and no zstd package is a dependency). */
const zstdDecompress = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress;
export const ZSTD_AVAILABLE = typeof zstdDecompress === 'function';

/** A BlobHandle as the eStargz reader's random-access source: each range is one ranged read of the store. */
export class HandleSource implements RangedBlobSource {
  /** Bytes read from the store through this source (tests and logs). */
  bytesRead = 0;

  constructor(private readonly handle: BlobHandle) {}

  async size(): Promise<number> {
    return this.handle.size;
  }

  async read(ranges: ByteRange[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const r of ranges) {
      if (r.start < 0 || r.end >= this.handle.size || r.end < r.start) throw new WharfError('RANGE_INVALID', `range ${r.start}-${r.end} is outside the ${this.handle.size}-byte layer`);
      const buf = Buffer.allocUnsafe(r.end - r.start + 1);
      let at = 0;
      for await (const c of (await this.handle.stream(r)) as AsyncIterable<Buffer>) {
        if (at + c.length > buf.length) throw new OciError('SIZE_INVALID', `the store returned more than bytes ${r.start}-${r.end}`);
        c.copy(buf, at);
        at += c.length;
      }
      if (at !== buf.length) throw new OciError('SIZE_INVALID', `the store returned ${at} of bytes ${r.start}-${r.end}`);
      this.bytesRead += at;
      out.push(buf);
    }
    return out;
  }
}

/** Reads the first `n` bytes (or fewer, of a smaller blob). */
async function head(handle: BlobHandle, n: number): Promise<Buffer> {
  if (handle.size === 0) return Buffer.alloc(0);
  const [b] = await new HandleSource(handle).read([{ start: 0, end: Math.min(n, handle.size) - 1 }]);
  return b!;
}

/** Whether 512 bytes are a tar header: its checksum (the sum of the bytes, the checksum field as spaces) holds. */
export function isTarHeader(b: Buffer): boolean {
  if (b.length < 512) return false;
  if (b.toString('latin1', 257, 262) === 'ustar') return true;
  const field = b.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  return sum === parseInt(field, 8) && b[0] !== 0;
}

/** The format by the first bytes alone (no eStargz footer read): for a file name's extension. */
export async function sniffFormat(handle: BlobHandle): Promise<LayerFormat> {
  const b = await head(handle, 512);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'tar+gzip';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'tar+zstd';
  return isTarHeader(b) ? 'tar' : 'none';
}

export interface OpenedLayer {
  handle: BlobHandle;
  format: LayerFormat;
  /** Set for an eStargz layer: its TOC, read with two ranged reads. */
  estargz?: EstargzReader;
  source?: HandleSource;
  /** Read archives through a digest check (the caller reads them to their end, so the check completes). */
  verify?: Pick<Descriptor, 'digest' | 'size'>;
}

/**
 * Opens a layer of `name` and works out its format from its bytes (not its media type, which
 * the caller may not know and an artifact may set to anything): gzip with an eStargz footer,
 * gzip, zstd, tar, or none of these.
 */
export async function openLayer(backend: RegistryBackend, name: string, digest: Digest, tocDigest?: string): Promise<OpenedLayer> {
  const handle = await backend.openBlob(name, digest, true);
  const b = await head(handle, 512);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    const source = new HandleSource(handle);
    try {
      // Small windows: a server streams many files at once (the reader's defaults, 4 x 16 MiB, suit one client).
      const estargz = await openEstargz(source, { layerDigest: digest, window: 4 << 20, ahead: 2, ...(tocDigest ? { tocDigest } : {}) });
      return { handle, format: 'estargz', estargz, source };
    } catch (err) {
      if (!(err instanceof NotEstargzError)) throw err;
      return { handle, format: 'tar+gzip' };
    }
  }
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return { handle, format: 'tar+zstd' };
  if (isTarHeader(b)) return { handle, format: 'tar' };
  return { handle, format: 'none' };
}

const TYPES: Record<string, LayerEntry['type']> = { file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink' };

/** The whole layer as the archive's bytes: decompressed as its format says. */
function archiveStream(layer: OpenedLayer): Readable {
  const plain = Readable.from(streamOf(layer.handle));
  const raw = layer.verify ? verifyReader(plain, layer.verify) : plain;
  const unpack = layer.format === 'tar+gzip' ? zlib.createGunzip() : layer.format === 'tar+zstd' && zstdDecompress ? (zstdDecompress() as unknown as NodeJS.ReadWriteStream) : undefined;
  if (!unpack) return raw;
  const out = raw.pipe(unpack as unknown as NodeJS.WritableStream) as unknown as Readable;
  raw.on('error', (err) => out.destroy(err));
  out.on('close', () => raw.destroy());
  return out;
}

async function* streamOf(handle: BlobHandle): AsyncGenerator<Buffer> {
  if (handle.size === 0) return;
  yield* (await handle.stream({ start: 0, end: handle.size - 1 })) as AsyncIterable<Buffer>;
}

/** An archive entry as the consumer sees it: its header, and its body (read it or resume it). */
export interface TarItem {
  header: TarHeaders;
  body: TarSource;
}

/**
 * The entries of a tar, tar.gz or tar.zst layer, in order; only headers are parsed. The consumer
 * reads or resumes each body before taking the next; breaking out of the loop stops the read of
 * the layer.
 */
export async function* tarEntries(layer: OpenedLayer): AsyncGenerator<TarItem> {
  if (layer.format === 'tar+zstd' && !ZSTD_AVAILABLE) throw new OciError('UNSUPPORTED', 'this server cannot decompress zstd layers (Node 22.15 or newer can)', { status: 415 });
  const tarStream = await import('tar-stream');
  const src = archiveStream(layer);
  // Old (v7) tars have no ustar magic: read them too.
  const extract = tarStream.extract({ allowUnknownFormat: true } as Parameters<typeof tarStream.extract>[0]);
  // Failures surface through the iteration below (pipeline destroys the extractor with them).
  pipeline(src, extract as unknown as Writable).catch(() => undefined);
  try {
    for await (const entry of extract) yield { header: entry.header, body: entry };
  } catch (err) {
    // A layer that is no archive after all, or one cut short.
    if (err instanceof OciError || err instanceof WharfError) throw err;
    throw new OciError('UNSUPPORTED', `the layer is not a readable ${layer.format} archive: ${(err as Error).message}`, { status: 422 });
  } finally {
    extract.destroy();
    src.destroy();
  }
}

/** An entry of a plain (uncompressed) tar, and where its bytes are in the layer. */
export interface PlainEntry extends LayerEntry {
  /** Offset in the layer of the entry's first byte. */
  dataStart: number;
}

/**
 * Reads a blob from an offset on, and can jump ahead: a skip longer than `jump` reopens the read
 * there instead of reading through, so that a big file in an uncompressed tar costs nothing to
 * pass. Reads go in windows that start small (64 KiB) and double while the reading goes on
 * (up to 4 MiB), so that a jump wastes little and a tar of many small files takes few requests.
 */
class SeekReader {
  private it: AsyncIterator<Buffer> | undefined;
  private buf: Buffer = Buffer.alloc(0);
  /** Offset in the blob of buf[0]. */
  pos = 0;
  private window = 64 << 10;

  constructor(
    private readonly handle: BlobHandle,
    private readonly jump = 1 << 20,
  ) {}

  /** Up to `n` bytes from the current position (fewer at the end of the blob). */
  async peek(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      const at = this.pos + this.buf.length;
      if (at >= this.handle.size) break;
      if (!this.it) {
        const end = Math.min(at + Math.max(this.window, n - this.buf.length), this.handle.size) - 1;
        this.it = ((await this.handle.stream({ start: at, end })) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        this.window = Math.min(this.window * 2, 4 << 20);
      }
      const next = await this.it.next();
      if (next.done) {
        this.it = undefined;
        continue;
      }
      this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value]);
    }
    return this.buf.subarray(0, n);
  }

  async skip(n: number): Promise<void> {
    let left = n;
    for (;;) {
      if (left <= this.buf.length) {
        this.buf = this.buf.subarray(left);
        this.pos += left;
        return;
      }
      left -= this.buf.length;
      this.pos += this.buf.length;
      this.buf = Buffer.alloc(0);
      if (left > this.jump || this.pos >= this.handle.size) {
        await this.close();
        this.pos += left;
        this.window = 64 << 10;
        return;
      }
      // A short gap: read through it rather than open the blob again.
      if ((await this.peek(Math.min(left, 64 << 10))).length === 0) {
        this.pos += left;
        return;
      }
    }
  }

  async close(): Promise<void> {
    const it = this.it;
    this.it = undefined;
    await it?.return?.();
  }
}

function tarNumber(b: Buffer, off: number, len: number): number {
  // GNU base-256 for sizes over 8 GiB: the high bit of the first byte set.
  if (b[off]! & 0x80) {
    let n = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + b[off + i]!;
    return n;
  }
  const t = b.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim();
  return t === '' ? 0 : parseInt(t, 8);
}

const PLAIN_TYPES: Record<string, LayerEntry['type']> = { '0': 'file', '\0': 'file', '7': 'file', '5': 'dir', '2': 'symlink' };
/** pax and GNU long-name headers are read into memory: at most this big. */
const MAX_META = 1 << 20;

/**
 * The entries of an uncompressed tar layer, read header by header with the store's ranged reads:
 * the bytes of a large file are jumped over, not read. pax (`x`, `g`) and GNU long names (`L`,
 * `K`) are understood.
 */
export async function* plainTarEntries(handle: BlobHandle): AsyncGenerator<PlainEntry> {
  const r = new SeekReader(handle);
  const pad = (n: number): number => (512 - (n % 512)) % 512;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  let longName: string | undefined;
  try {
    for (;;) {
      const blk = Buffer.from(await r.peek(512));
      if (blk.length < 512 || blk.every((x) => x === 0)) return;
      if (!isTarHeader(blk)) throw new OciError('UNSUPPORTED', `the layer is not a readable tar archive: no tar header at byte ${r.pos}`, { status: 422 });
      const type = String.fromCharCode(blk[156]!);
      const size = tarNumber(blk, 124, 12);
      await r.skip(512);
      if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
        if (size > MAX_META) throw new OciError('UNSUPPORTED', `a ${size}-byte tar extended header at byte ${r.pos}: over the limit`, { status: 422 });
        const body = Buffer.from(await r.peek(size));
        await r.skip(size + pad(size));
        if (type === 'L') longName = body.toString('utf8').replace(/\0+$/, '');
        else if (type === 'x') {
          for (const line of body.toString('utf8').split('\n')) {
            const m = /^\d+ ([^=]+)=(.*)$/s.exec(line);
            if (m?.[1] === 'path') paxPath = m[2];
            if (m?.[1] === 'size' && /^\d+$/.test(m[2]!)) paxSize = Number(m[2]);
          }
        }
        continue;
      }
      const field = blk.toString('utf8', 0, 100).replace(/\0.*$/s, '');
      const prefix = blk.toString('latin1', 257, 262) === 'ustar' ? blk.toString('utf8', 345, 500).replace(/\0.*$/s, '') : '';
      const name = paxPath ?? longName ?? (prefix ? `${prefix}/${field}` : field);
      const entrySize = paxSize ?? size;
      paxPath = paxSize = longName = undefined;
      const mode = tarNumber(blk, 100, 8);
      const kind = PLAIN_TYPES[type] ?? 'other';
      // Links and directories carry no data whatever their size field says (as tar readers do).
      const data = kind === 'file' || kind === 'other' ? entrySize : 0;
      yield { path: cleanName(name), size: kind === 'file' ? entrySize : 0, type: kind, mode: Number.isFinite(mode) ? mode : null, dataStart: r.pos };
      await r.skip(data + pad(data));
    }
  } finally {
    await r.close();
  }
}

export function entryOf(h: TarHeaders): LayerEntry {
  return { path: cleanName(h.name), size: h.size ?? 0, type: TYPES[h.type ?? 'file'] ?? 'other', mode: h.mode ?? null };
}

/** What a listing holds at most; the rest is cut (`truncated`). */
export const MAX_ENTRIES = 20_000;

/** Lists an opened layer: eStargz from its TOC, archives by reading their headers. */
export async function listLayer(layer: OpenedLayer, max = MAX_ENTRIES): Promise<{ entries: LayerEntry[]; truncated: boolean }> {
  if (layer.estargz) {
    const all = layer.estargz.list();
    const entries = all.slice(0, max).map((s): LayerEntry => ({ path: s.path, size: s.type === 'file' ? s.size : 0, type: s.type === 'file' || s.type === 'dir' || s.type === 'symlink' ? s.type : 'other', mode: s.mode }));
    return { entries, truncated: all.length > max };
  }
  if (layer.format === 'none' || (layer.format === 'tar+zstd' && !ZSTD_AVAILABLE)) return { entries: [], truncated: false };
  if (layer.format === 'tar') {
    const entries: LayerEntry[] = [];
    for await (const e of plainTarEntries(layer.handle)) {
      if (e.path === '') continue;
      if (entries.length >= max) return { entries, truncated: true };
      entries.push({ path: e.path, size: e.size, type: e.type, mode: e.mode });
    }
    return { entries, truncated: false };
  }
  const entries: LayerEntry[] = [];
  let truncated = false;
  for await (const { header, body } of tarEntries(layer)) {
    body.resume();
    const e = entryOf(header);
    if (e.path === '') continue;
    if (entries.length >= max) {
      truncated = true;
      break;
    }
    entries.push(e);
  }
  return { entries, truncated };
}

/**
 * A path asked for: relative, `/`-separated, no `..`, no control characters. A path that climbs
 * out of the archive is refused outright rather than cleaned into another one.
 */
export function checkPath(path: string): string {
  if (path.length === 0 || path.length > 4096) throw new OciError('UNSUPPORTED', 'path must be 1 to 4096 characters', { status: 400, detail: { path: path.slice(0, 100) } });
  if (/[\u0000-\u001f\u007f]/.test(path)) throw new OciError('UNSUPPORTED', 'path has control characters', { status: 400 });
  if (path.split(/[/\\]/).includes('..')) throw new OciError('UNSUPPORTED', 'path may not climb out of the layer (..)', { status: 400, detail: { path: path.slice(0, 100) } });
  const clean = cleanName(path);
  if (clean === '') throw new OciError('UNSUPPORTED', 'path names the root of the layer, not a file', { status: 400 });
  return clean;
}

/**
 * Listings by layer digest (a digest names the same bytes in every repository: the caller checks
 * the repository holds the layer before it asks), 32 MiB by default.
 */
export class ListingCache extends ByteLru<CachedListing> {
  constructor(maxBytes = 32 << 20) {
    super(maxBytes, (v) => v.entries.reduce((n, e) => n + 80 + e.path.length * 2, 0));
  }
}

export interface CachedListing {
  format: LayerFormat;
  entries: LayerEntry[];
  truncated: boolean;
}
