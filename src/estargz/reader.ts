import { Readable } from 'node:stream';
import { createGunzip, crc32, inflateRaw, type ZlibOptions } from 'node:zlib';
import { OciError, createDigester, type ByteRange, WharfError } from '../spec/index.js';
import type { OpOptions } from '../content/index.js';
import type { EstargzCache } from './toc-cache.js';
import { Tree, TreeFS, clampRange, type FileStat, type FileType, type ReadRange } from './fs.js';
import { mergeRanges, type RangedBlobSource } from './source.js';
import { decodeHeader } from './tar.js';
import { FOOTER_SIZE, LEGACY_FOOTER_SIZE, TOC_TAR_NAME, cleanName, parseFooter, parseLegacyFooter, parseToc, type Toc, type TocEntry } from './toc.js';

/** Thrown by `openEstargz` when the blob has no eStargz footer: read it as a plain tar.gz. */
export class NotEstargzError extends OciError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
    this.name = 'NotEstargzError';
  }
}

export interface EstargzOpenOptions extends OpOptions {
  /** The `containerd.io/snapshot/stargz/toc.digest` annotation: the TOC must hash to it. */
  tocDigest?: string;
  /** The layer's digest: the key of its TOC in the cache, and named in messages. */
  layerDigest?: string;
  cache?: EstargzCache;
  /** Compressed bytes fetched per request at most when streaming a file (default 16 MiB). */
  window?: number;
  /** Windows in flight while streaming a file (default 4): about 4 x 16 MiB compressed plus their chunks. */
  ahead?: number;
  /** Said once when something cannot be verified (no toc.digest annotation). */
  onWarning?: (message: string) => void;
}

/** Limits on what a TOC may expand to, so that a hostile layer cannot exhaust memory. */
const MAX_TOC_COMPRESSED = 256 << 20;
const MAX_TOC_JSON = 512 << 20;
const MAX_CHUNK = 1 << 30;

interface Chunk {
  /** Compressed range holding the chunk's member: [start, end). */
  start: number;
  end: number;
  innerOffset: number;
  /** Where the chunk sits in its file. */
  fileOffset: number;
  size: number;
  digest?: string;
}

interface FileData {
  chunks: Chunk[];
  /** The whole file's digest, for files stored in one chunk without a chunk digest. */
  digest?: string;
  size: number;
}

const TYPES: Record<string, FileType> = { dir: 'dir', reg: 'file', symlink: 'symlink', hardlink: 'hardlink', char: 'char', block: 'block', fifo: 'fifo' };

/** Decompresses a gzip member (and whatever members follow) until `need` bytes are out. */
async function inflate(gz: Buffer, need: number): Promise<Buffer> {
  // Output buffers of up to 1 MiB instead of zlib's 16 KiB: 2-3x the throughput on 4 MiB chunks.
  const z = createGunzip({ chunkSize: Math.min(Math.max(need, 16 << 10), 1 << 20) });
  const parts: Buffer[] = [];
  let n = 0;
  z.end(gz);
  try {
    for await (const c of z as AsyncIterable<Buffer>) {
      parts.push(c);
      n += c.length;
      if (n >= need) break;
    }
  } finally {
    z.destroy();
  }
  return Buffer.concat(parts);
}

/** The length of a gzip member's header (RFC 1952), its optional header CRC checked. */
function gzipHeaderLength(b: Buffer): number {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8) throw new Error('not a gzip member');
  const flg = b[3]!;
  let at = 10;
  if (flg & 4) {
    if (b.length < at + 2) throw new Error('truncated gzip header');
    at += 2 + b.readUInt16LE(at);
  }
  for (const bit of [8, 16]) {
    if (flg & bit) {
      const z = b.indexOf(0, at);
      if (z < 0) throw new Error('truncated gzip header');
      at = z + 1;
    }
  }
  if (flg & 2) {
    if (b.length < at + 2 || (crc32(b.subarray(0, at)) & 0xffff) !== b.readUInt16LE(at)) throw new Error('gzip header CRC mismatch');
    at += 2;
  }
  if (at > b.length) throw new Error('truncated gzip header');
  return at;
}

function inflateRawInfo(b: Buffer, opts: ZlibOptions): Promise<{ buffer: Buffer; consumed: number }> {
  return new Promise((resolve, reject) => {
    inflateRaw(b, { ...opts, info: true } as ZlibOptions, (err, res) => {
      if (err) reject(err);
      else {
        const r = res as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
        resolve({ buffer: r.buffer, consumed: r.engine.bytesWritten });
      }
    });
  });
}

/**
 * Decompresses the gzip member at the start of `gz` and checks its trailer (CRC-32 and size), so
 * that an altered trailer is caught too, not only altered data. A member that would expand far
 * past `need` (several chunks in one member) is read as a stream up to `need` bytes instead.
 */
async function inflateMember(gz: Buffer, need: number): Promise<Buffer> {
  const h = gzipHeaderLength(gz);
  let out: { buffer: Buffer; consumed: number };
  try {
    out = await inflateRawInfo(gz.subarray(h), { chunkSize: Math.min(Math.max(need, 16 << 10), 1 << 20), maxOutputLength: need + (16 << 20) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return inflate(gz, need);
    throw err;
  }
  const t = h + out.consumed;
  if (gz.length < t + 8) throw new Error('gzip member without its trailer');
  if (gz.readUInt32LE(t) !== crc32(out.buffer) >>> 0) throw new Error('gzip CRC-32 mismatch');
  if (gz.readUInt32LE(t + 4) !== out.buffer.length % 2 ** 32) throw new Error('gzip size mismatch');
  return out.buffer;
}

function sha256(b: Buffer): string {
  return `sha256:${createDigester().update(b).digest('hex')}`;
}

/**
 * Reads the footer and the TOC of an eStargz blob (verifying the TOC against `tocDigest`),
 * then serves files by fetching only the chunks that hold them: chunks next to each other go in
 * one range, several ranges in one request, and every chunk is checked against its
 * `chunkDigest` before a byte of it is returned.
 */
export async function openEstargz(src: RangedBlobSource, opts: EstargzOpenOptions = {}): Promise<EstargzReader> {
  const cached = opts.layerDigest ? await opts.cache?.getToc(opts.layerDigest, opts.tocDigest) : undefined;
  let tocOffset: number;
  let blobSize: number;
  let json: Buffer;
  if (cached) {
    ({ tocOffset, blobSize, json } = cached);
  } else {
    blobSize = await src.size(opts);
    if (blobSize < LEGACY_FOOTER_SIZE) throw new NotEstargzError(`the layer is ${blobSize} bytes, too small to be eStargz`);
    const tailLen = Math.min(FOOTER_SIZE, blobSize);
    const [tail] = await src.read([{ start: blobSize - tailLen, end: blobSize - 1 }], opts);
    // eStargz's 51-byte footer, else the 47-byte one of legacy stargz (the same TOC).
    let footerSize = FOOTER_SIZE;
    let off = tailLen === FOOTER_SIZE ? parseFooter(tail!) : undefined;
    if (off === undefined) {
      footerSize = LEGACY_FOOTER_SIZE;
      off = parseLegacyFooter(tail!.subarray(tail!.length - LEGACY_FOOTER_SIZE));
    }
    if (off === undefined) throw new NotEstargzError('the layer has no eStargz footer');
    if (off >= blobSize - footerSize) throw new OciError('MANIFEST_INVALID', `the eStargz footer points the TOC at byte ${off} of a ${blobSize}-byte layer`);
    if (blobSize - footerSize - off > MAX_TOC_COMPRESSED) throw new OciError('MANIFEST_INVALID', `the eStargz TOC is ${blobSize - footerSize - off} bytes compressed, over the limit`);
    tocOffset = off;
    const [gz] = await src.read([{ start: off, end: blobSize - footerSize - 1 }], opts);
    let tar: Buffer;
    try {
      tar = await inflate(gz!, MAX_TOC_JSON + 4096);
    } catch (err) {
      throw new OciError('DIGEST_INVALID', `the eStargz TOC of ${opts.layerDigest ?? 'the layer'} does not decompress: ${(err as Error).message}`);
    }
    const h = decodeHeader(tar);
    if (!h || cleanName(h.name) !== TOC_TAR_NAME) throw new OciError('MANIFEST_INVALID', `the eStargz TOC member holds "${h?.name ?? '(nothing)'}", not ${TOC_TAR_NAME}`);
    if (h.size > MAX_TOC_JSON || tar.length < h.headerLength + h.size) throw new OciError('MANIFEST_INVALID', 'the eStargz TOC is truncated or too large');
    json = tar.subarray(h.headerLength, h.headerLength + h.size);
  }
  const got = sha256(json);
  if (opts.tocDigest && got !== opts.tocDigest) {
    throw new OciError('DIGEST_INVALID', `the eStargz TOC of ${opts.layerDigest ?? 'the layer'} is ${got}, but the manifest's ${'containerd.io/snapshot/stargz/toc.digest'} annotation says ${opts.tocDigest}: the layer was altered`);
  }
  if (!opts.tocDigest) opts.onWarning?.(`${opts.layerDigest ? `layer ${opts.layerDigest}` : 'the layer'} has no toc.digest annotation; its TOC cannot be verified (chunks are still checked against it)`);
  const toc = parseToc(json);
  if (!cached && opts.layerDigest) await opts.cache?.putToc(opts.layerDigest, { tocOffset, blobSize, json });
  return new EstargzReader(src, toc, tocOffset, got, opts);
}

export class EstargzReader extends TreeFS {
  readonly kind = 'estargz' as const;
  readonly tocDigest: string;
  readonly tocOffset: number;
  protected readonly tree = new Tree();
  private readonly data = new Map<string, FileData>();
  private readonly window: number;
  private readonly ahead: number;
  private readonly memo = new Map<string, Buffer>();

  constructor(
    private readonly src: RangedBlobSource,
    readonly toc: Toc,
    tocOffset: number,
    tocDigest: string,
    private readonly opts: EstargzOpenOptions,
  ) {
    super();
    this.tocOffset = tocOffset;
    this.tocDigest = tocDigest;
    this.window = opts.window ?? 16 << 20;
    this.ahead = Math.max(1, opts.ahead ?? 4);
    // A chunk's member ends where the next member starts: the next data offset, or the TOC.
    const starts = [...new Set(toc.entries.filter((e) => (e.type === 'reg' || e.type === 'chunk') && e.offset).map((e) => e.offset!))].sort((a, b) => a - b);
    starts.push(tocOffset);
    const nextStart = (off: number): number => {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (starts[mid]! > off) hi = mid;
        else lo = mid + 1;
      }
      return starts[lo]! > off ? starts[lo]! : tocOffset;
    };
    let last: { name: string; file: FileData; reg: TocEntry } | undefined;
    for (const e of toc.entries) {
      if (e.type === 'chunk') {
        if (!last) throw new OciError('MANIFEST_INVALID', 'the eStargz TOC has a chunk before any file');
        const fileOffset = e.chunkOffset ?? 0;
        const size = e.chunkSize || (last.reg.size ?? 0) - fileOffset;
        last.file.chunks.push({ start: e.offset ?? 0, end: nextStart(e.offset ?? 0), innerOffset: e.innerOffset ?? 0, fileOffset, size, digest: e.chunkDigest });
        continue;
      }
      const name = cleanName(e.name);
      if (name === TOC_TAR_NAME) continue;
      const type = TYPES[e.type];
      if (!type) throw new OciError('MANIFEST_INVALID', `eStargz TOC entry "${e.name}" has unknown type "${e.type}"`);
      const st: FileStat = { path: name, type, size: e.size ?? 0, mode: (e.mode ?? 0) & 0o7777 };
      if (e.modtime) {
        const t = new Date(e.modtime);
        if (!Number.isNaN(t.getTime())) st.mtime = t;
      }
      if (e.linkName !== undefined) st.linkName = type === 'hardlink' ? cleanName(e.linkName) : e.linkName;
      if (e.digest) st.digest = e.digest;
      this.tree.add(st);
      if (type === 'file') {
        const size = e.size ?? 0;
        const file: FileData = { chunks: [], digest: e.digest, size };
        if (size > 0) {
          const chunkSize = e.chunkSize || size;
          file.chunks.push({ start: e.offset ?? 0, end: nextStart(e.offset ?? 0), innerOffset: e.innerOffset ?? 0, fileOffset: 0, size: chunkSize, digest: e.chunkDigest });
        }
        this.data.set(name, file);
        last = { name, file, reg: e };
      }
    }
    for (const [name, f] of this.data) {
      let at = 0;
      for (const c of f.chunks) {
        // A chunk is held whole in memory to be verified before it is returned.
        if (c.size > MAX_CHUNK) throw new OciError('MANIFEST_INVALID', `the eStargz TOC has a ${c.size}-byte chunk in "${name}", over the ${MAX_CHUNK}-byte limit`);
        if (c.fileOffset !== at || c.start >= tocOffset || c.start <= 0 && f.size > 0) throw new OciError('MANIFEST_INVALID', `the eStargz TOC's chunks of "${name}" do not tile the file`);
        at += c.size;
      }
      if (at !== f.size) throw new OciError('MANIFEST_INVALID', `the eStargz TOC's chunks of "${name}" add up to ${at} bytes, not ${f.size}`);
    }
  }


  /** The chunks a byte range of a file needs. */
  private plan(path: string, range?: ReadRange): { file: FileData; chunks: Chunk[]; start: number; end: number; name: string } {
    const st = this.tree.resolve(path);
    if (st.type !== 'file') throw new WharfError('INVALID_ARGUMENT', `${path}: not a regular file (${st.type})`);
    const file = this.data.get(st.path)!;
    const { start, end } = clampRange(file.size, range, path);
    const chunks = file.chunks.filter((c) => c.fileOffset <= end && c.fileOffset + c.size > start);
    return { file, chunks, start, end, name: st.path };
  }

  /** Fetches, decompresses and verifies chunks; several ranges in one read. */
  private async fetchChunks(items: Array<{ name: string; file: FileData; c: Chunk }>): Promise<Buffer[]> {
    const cache = this.opts.cache;
    const out = new Array<Buffer | undefined>(items.length);
    items.forEach(({ c }, i) => {
      const key = `${c.start}:${c.innerOffset}`;
      const hit = this.memo.get(key);
      if (hit) {
        this.memo.delete(key);
        out[i] = hit;
      }
    });
    if (cache) {
      await Promise.all(items.map(async ({ c }, i) => (out[i] ??= c.digest ? await cache.getChunk(c.digest) : undefined)));
    }
    const missing = items.map((it, i) => ({ ...it, i })).filter(({ i }) => !out[i]);
    if (missing.length > 0) {
      const { merged, map } = mergeRanges(missing.map(({ c }) => ({ start: c.start, end: c.end - 1 })));
      const bufs = await this.src.read(merged, this.opts);
      await Promise.all(
        missing.map(async ({ c, i, name, file }, k) => {
          const m = merged[map[k]!]!;
          const gz = bufs[map[k]!]!.subarray(c.start - m.start, c.end - m.start);
          let raw: Buffer;
          try {
            raw = await inflateMember(gz, c.innerOffset + c.size);
          } catch (err) {
            throw new OciError('DIGEST_INVALID', `chunk at bytes ${c.start}-${c.end - 1} of ${this.opts.layerDigest ?? 'the layer'} (holding "${name}") is corrupt: ${(err as Error).message}; the layer was altered`);
          }
          const data = raw.subarray(c.innerOffset, c.innerOffset + c.size);
          if (data.length !== c.size) throw new OciError('DIGEST_INVALID', `chunk at bytes ${c.start}-${c.end - 1} of ${this.opts.layerDigest ?? 'the layer'} (holding "${name}") is ${data.length} bytes, the TOC says ${c.size}`);
          const want = c.digest ?? (file.chunks.length === 1 ? file.digest : undefined);
          if (!want) throw new OciError('DIGEST_INVALID', `"${name}" has no chunk digest in the TOC; refusing to return unverified bytes`);
          const got = sha256(data);
          if (got !== want) {
            throw new OciError('DIGEST_INVALID', `chunk at bytes ${c.start}-${c.end - 1} of ${this.opts.layerDigest ?? 'the layer'} (holding "${name}" from byte ${c.fileOffset}) is ${got}, the TOC says ${want}: the layer was altered`);
          }
          if (cache && c.digest) await cache.putChunk(c.digest, data);
          out[i] = data;
        }),
      );
    }
    return out as Buffer[];
  }

  /**
   * Fetches the chunks of several files in one multi-range request and keeps them until they
   * are read (once): for extracting many small files without a request each.
   */
  async prefetch(paths: string[]): Promise<void> {
    const items: Array<{ name: string; file: FileData; c: Chunk }> = [];
    for (const p of paths) {
      const { file, chunks, name } = this.plan(p);
      for (const c of chunks) if (!this.memo.has(`${c.start}:${c.innerOffset}`)) items.push({ name, file, c });
    }
    if (items.length === 0) return;
    const bufs = await this.fetchChunks(items);
    items.forEach(({ c }, i) => this.memo.set(`${c.start}:${c.innerOffset}`, bufs[i]!));
  }

  /** Groups chunks into windows of at most `window` compressed bytes (one request each). */
  private windows(chunks: Chunk[]): Chunk[][] {
    const out: Chunk[][] = [];
    let cur: Chunk[] = [];
    let n = 0;
    for (const c of chunks) {
      const len = c.end - c.start;
      if (cur.length > 0 && n + len > this.window) {
        out.push(cur);
        cur = [];
        n = 0;
      }
      cur.push(c);
      n += len;
    }
    if (cur.length > 0) out.push(cur);
    return out;
  }

  createReadStream(path: string, range?: ReadRange): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      const { file, chunks, start, end, name } = self.plan(path, range);
      if (end < start) return;
      const wins = self.windows(chunks);
      const fetch = (cs: Chunk[]): Promise<Buffer[]> => self.fetchChunks(cs.map((c) => ({ name, file, c })));
      // Up to `ahead` windows are fetched and decompressed while the current one is consumed.
      const inflight: Array<Promise<Buffer[]>> = [];
      let issued = 0;
      const fill = (): void => {
        while (issued < wins.length && inflight.length < self.ahead) {
          const p = fetch(wins[issued++]!);
          p.catch(() => undefined);
          inflight.push(p);
        }
      };
      for (let w = 0; w < wins.length; w++) {
        fill();
        const bufs: Buffer[] = await inflight.shift()!;
        fill();
        for (const [i, c] of wins[w]!.entries()) {
          const from = Math.max(start, c.fileOffset) - c.fileOffset;
          const to = Math.min(end + 1, c.fileOffset + c.size) - c.fileOffset;
          if (to > from) yield bufs[i]!.subarray(from, to);
        }
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** Compressed ranges a read would fetch (for tests and `--dry-run`-like reporting). */
  rangesFor(path: string, range?: ReadRange): ByteRange[] {
    const { chunks } = this.plan(path, range);
    return mergeRanges(chunks.map((c) => ({ start: c.start, end: c.end - 1 }))).merged;
  }

  async close(): Promise<void> {
    await this.src.close?.();
  }
}
