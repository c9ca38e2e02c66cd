import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { OciError, createDigester, parseDigest, WharfError } from '../spec/index.js';
import type { OpOptions } from '../content/index.js';
import { Tree, TreeFS, clampRange, type FileStat, type FileType, type ReadRange } from './fs.js';
import type { RangedBlobSource } from './source.js';
import { cleanName, TOC_TAR_NAME } from './toc.js';

export interface TarGzOpenOptions extends OpOptions {
  /** The layer's digest: the whole blob must hash to it. */
  layerDigest?: string;
  /** Bytes per read from the source (default 8 MiB). */
  window?: number;
  /** Where to keep the unpacked file data (default the OS temp dir). */
  tmpDir?: string;
  /** Stop when the unpacked data would exceed this many bytes. */
  maxUnpacked?: number;
  /** Also write the blob's bytes to this file (for a cache; valid only if the open succeeds). */
  copyTo?: string;
}

const TYPES: Record<string, FileType | undefined> = { file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink', link: 'hardlink', 'character-device': 'char', 'block-device': 'block', fifo: 'fifo' };

/**
 * A plain tar.gz layer as a read-only file system: the blob is read once, start to end, in one
 * stream when the source offers one (checked against its digest), decompressed, and the files' bytes kept in one temp file, from which every
 * later read is served. `close()` removes it.
 */
export async function openTarGz(src: RangedBlobSource, opts: TarGzOpenOptions = {}): Promise<TarGzReader> {
  const size = await src.size(opts);
  const window = opts.window ?? 8 << 20;
  const dir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'wharf-layer-'));
  const dataPath = join(dir, 'data');
  let fh: FileHandle | undefined;
  try {
    fh = await open(dataPath, 'w+', 0o600);
    const hash = opts.layerDigest ? createDigester(parseDigest(opts.layerDigest).algorithm) : undefined;
    const copy = opts.copyTo ? await open(opts.copyTo, 'w', 0o600) : undefined;
    let copied = 0;
    async function* blob(): AsyncGenerator<Buffer> {
      const chunks: AsyncIterable<Buffer> = src.stream
        ? ((await src.stream(opts)) as AsyncIterable<Buffer>)
        : (async function* () {
            for (let at = 0; at < size; at += window) yield (await src.read([{ start: at, end: Math.min(size, at + window) - 1 }], opts))[0]!;
          })();
      let n = 0;
      for await (const b of chunks) {
        n += b.length;
        if (n > size) throw new OciError('SIZE_INVALID', `the layer is longer than its ${size} bytes`);
        hash?.update(b);
        if (copy) {
          await copy.write(b, 0, b.length, copied);
          copied += b.length;
        }
        yield b;
      }
      if (n !== size) throw new OciError('SIZE_INVALID', `the layer is ${n} bytes, expected ${size}`);
    }
    const tree = new Tree();
    const offsets = new Map<string, { offset: number; size: number }>();
    let written = 0;
    const tarStream = await import('tar-stream'); // loaded when used, not at every command's start
    const extract = tarStream.extract();
    const handle = fh;
    const consume = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const name = cleanName(h.name);
        const type = TYPES[h.type ?? 'file'];
        if (!type || name === TOC_TAR_NAME) {
          entry.resume();
          continue;
        }
        const st: FileStat = { path: name, type, size: type === 'file' ? (h.size ?? 0) : 0, mode: (h.mode ?? 0) & 0o7777 };
        if (h.mtime) st.mtime = h.mtime;
        if (h.linkname) st.linkName = type === 'hardlink' ? cleanName(h.linkname) : h.linkname;
        if (type === 'file') {
          const start = written;
          const fileHash = createDigester();
          for await (const c of entry as AsyncIterable<Buffer>) {
            if (opts.maxUnpacked !== undefined && written + c.length > opts.maxUnpacked) throw new OciError('SIZE_INVALID', `the layer unpacks to more than ${opts.maxUnpacked} bytes`);
            fileHash.update(c);
            await handle.write(c, 0, c.length, written);
            written += c.length;
          }
          st.digest = `sha256:${fileHash.digest('hex')}`;
          offsets.set(name, { offset: start, size: written - start });
        } else entry.resume();
        tree.add(st);
      }
    })();
    try {
      await Promise.all([pipeline(Readable.from(blob()), createGunzip({ chunkSize: 1 << 20 }), extract as unknown as Writable), consume]);
    } finally {
      await copy?.close();
    }
    if (hash && opts.layerDigest) {
      const got = `${parseDigest(opts.layerDigest).algorithm}:${hash.digest('hex')}`;
      if (got !== opts.layerDigest) throw new OciError('DIGEST_INVALID', `the layer is ${got}, the manifest says ${opts.layerDigest}: it was altered`);
    }
    await fh.close();
    fh = undefined;
    await src.close?.();
    return new TarGzReader(tree, offsets, dir, dataPath);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export class TarGzReader extends TreeFS {
  readonly kind = 'tar.gz' as const;

  constructor(
    protected readonly tree: Tree,
    private readonly offsets: Map<string, { offset: number; size: number }>,
    private readonly dir: string,
    private readonly dataPath: string,
  ) {
    super();
  }


  createReadStream(path: string, range?: ReadRange): Readable {
    const st = this.tree.resolve(path);
    if (st.type !== 'file') throw new WharfError('INVALID_ARGUMENT', `${path}: not a regular file (${st.type})`);
    const at = this.offsets.get(st.path)!;
    const { start, end } = clampRange(at.size, range, path);
    if (end < start) return Readable.from([]);
    return createReadStream(this.dataPath, { start: at.offset + start, end: at.offset + end });
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
