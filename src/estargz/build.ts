import { createWriteStream } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { gzip as gzipCb, type ZlibOptions } from 'node:zlib';
import { createDigester, type Digest, WharfError } from '../spec/index.js';
import { encodeHeader, padding, END_OF_ARCHIVE, type TarHeader } from './tar.js';
import { DEFAULT_CHUNK_SIZE, TOC_TAR_NAME, encodeFooter, type Toc, type TocEntry } from './toc.js';

const gzip = promisify<Buffer, ZlibOptions, Buffer>(gzipCb);

export interface BuildOptions {
  /** Uncompressed bytes per chunk; files larger than this are split (default 4 MiB). */
  chunkSize?: number;
  /** gzip level, 1-9 (default 6). */
  level?: number;
  /** gzip members compressed at once, on libuv's thread pool (default 4). */
  parallel?: number;
  signal?: AbortSignal;
}

export interface BuildResult {
  /** The blob: what the manifest's layer descriptor says. */
  digest: Digest;
  size: number;
  /** sha256 of the uncompressed tar: the config's DiffID. */
  diffId: Digest;
  uncompressedSize: number;
  /** sha256 of `stargz.index.json`: the `containerd.io/snapshot/stargz/toc.digest` annotation. */
  tocDigest: Digest;
  tocOffset: number;
  /** Entries in the TOC, chunks not counted. */
  entries: number;
}

/**
 * Writes gzip members in order while compressing up to `parallel` of them at once; a member's
 * offset in the blob is known once those before it are written, and is handed to `placed`.
 */
class MemberWriter {
  offset = 0;
  uncompressed = 0;
  private readonly blobHash = createDigester();
  private readonly diffHash = createDigester();
  private queue: Array<{ gz: Promise<Buffer>; placed?: (offset: number) => void }> = [];
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private failed: unknown;

  constructor(
    private readonly dest: Writable,
    private readonly level: number,
    private readonly parallel: number,
  ) {
    dest.on('error', (err) => (this.failed ??= err));
  }

  /** Bytes for the current "header" member: tar headers, padding, small records. */
  async add(b: Buffer, flushAt: number): Promise<void> {
    this.pending.push(b);
    this.pendingLen += b.length;
    if (this.pendingLen >= flushAt) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingLen === 0) return;
    const raw = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingLen = 0;
    await this.member(raw);
  }

  /** A member of its own for `raw` (the pending header member goes first). */
  async member(raw: Buffer, placed?: (offset: number) => void): Promise<void> {
    if (this.pendingLen > 0) await this.flush();
    this.diffHash.update(raw);
    this.uncompressed += raw.length;
    const gz = gzip(raw, { level: this.level });
    gz.catch(() => undefined);
    this.queue.push({ gz, placed });
    while (this.queue.length >= this.parallel) await this.drainOne();
  }

  private async drainOne(): Promise<void> {
    const head = this.queue.shift();
    if (!head) return;
    const gz = await head.gz;
    head.placed?.(this.offset);
    await this.writeRaw(gz);
  }

  async writeRaw(b: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    this.blobHash.update(b);
    this.offset += b.length;
    if (!this.dest.write(b)) await once(this.dest, 'drain');
    if (this.failed) throw this.failed;
  }

  async drain(): Promise<void> {
    await this.flush();
    while (this.queue.length > 0) await this.drainOne();
  }

  digests(): { blob: Digest; diff: Digest } {
    return { blob: `sha256:${this.blobHash.digest('hex')}`, diff: `sha256:${this.diffHash.digest('hex')}` };
  }
}

function modtime(sec: number): string | undefined {
  return sec > 0 ? new Date(sec * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

/**
 * Writes the directory `dir` as one eStargz layer to `dest` (ended when done), streaming: at
 * most `parallel` chunks are held in memory. Entries are named relative to `dir` and sorted, so
 * the same tree gives the same bytes; every permission bit, mtimes (seconds), symlinks, hard
 * links, empty directories and dotfiles are kept, owners are written as 0/0. Sockets, fifos and
 * devices are left out. The result is a valid tar.gz whose last entry is `stargz.index.json`.
 */
export async function buildEstargz(dir: string, dest: Writable, opts: BuildOptions = {}): Promise<BuildResult> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new WharfError('INVALID_ARGUMENT', `chunk size must be a positive number of bytes, not ${chunkSize}`);
  const level = opts.level ?? 6;
  const w = new MemberWriter(dest, level, Math.max(1, opts.parallel ?? 4));
  const flushAt = Math.min(chunkSize, 1 << 20);
  const toc: Toc = { version: 1, entries: [] };
  const inodes = new Map<string, string>();
  const root = await lstat(dir).catch(() => undefined);
  if (!root?.isDirectory()) throw new WharfError('INVALID_ARGUMENT', `${dir} is not a directory`);

  const writeFile = async (abs: string, name: string, size: number, entry: TocEntry): Promise<void> => {
    const fh = await open(abs, 'r');
    try {
      const fileHash = createDigester();
      let done = 0;
      let first = true;
      while (done < size) {
        opts.signal?.throwIfAborted();
        const n = Math.min(chunkSize, size - done);
        const buf = Buffer.allocUnsafe(n);
        let got = 0;
        while (got < n) {
          const { bytesRead } = await fh.read(buf, got, n - got, done + got);
          if (bytesRead === 0) throw new WharfError('INVALID_ARGUMENT', `${abs} shrank while it was being packed`);
          got += bytesRead;
        }
        fileHash.update(buf);
        const e: TocEntry = first ? entry : { name, type: 'chunk' };
        if (!first || n < size) e.chunkSize = n;
        e.chunkOffset = done;
        e.chunkDigest = `sha256:${createDigester().update(buf).digest('hex')}`;
        // Chunk entries keep `offset` in the TOC; written after the member is placed.
        if (!first) toc.entries.push(e);
        await w.member(buf, (off) => (e.offset = off));
        done += n;
        first = false;
      }
      entry.digest = `sha256:${fileHash.digest('hex')}`;
      if (size < chunkSize) delete entry.chunkSize;
      if (entry.chunkOffset === 0) delete entry.chunkOffset;
    } finally {
      await fh.close();
    }
    await w.add(Buffer.alloc(padding(size)), flushAt);
  };

  const walk = async (abs: string, name: string): Promise<void> => {
    opts.signal?.throwIfAborted();
    const st = await lstat(abs);
    const mtime = Math.floor(st.mtimeMs / 1000);
    const mode = st.mode & 0o7777;
    const base: TocEntry = { name, type: 'dir', mode };
    const mt = modtime(mtime);
    if (mt) base.modtime = mt;
    const header: TarHeader = { name, type: 'directory', mode, mtime };
    if (st.isDirectory()) {
      if (name !== '') {
        header.name = `${name}/`;
        toc.entries.push({ ...base, name: `${name}/` });
        await w.add(encodeHeader(header), flushAt);
      }
      for (const child of (await readdir(abs)).sort()) {
        if (name === '' && child === TOC_TAR_NAME) throw new WharfError('INVALID_ARGUMENT', `${join(dir, child)}: the name ${TOC_TAR_NAME} is reserved for the eStargz index`);
        await walk(join(abs, child), name === '' ? child : `${name}/${child}`);
      }
    } else if (st.isSymbolicLink()) {
      const target = await readlink(abs);
      toc.entries.push({ ...base, type: 'symlink', linkName: target });
      await w.add(encodeHeader({ ...header, type: 'symlink', linkname: target }), flushAt);
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const firstName = st.nlink > 1 ? inodes.get(key) : undefined;
      if (firstName !== undefined) {
        toc.entries.push({ ...base, type: 'hardlink', linkName: firstName });
        await w.add(encodeHeader({ ...header, type: 'link', linkname: firstName }), flushAt);
        return;
      }
      if (st.nlink > 1) inodes.set(key, name);
      const entry: TocEntry = { ...base, type: 'reg', size: st.size };
      toc.entries.push(entry);
      await w.add(encodeHeader({ ...header, type: 'file', size: st.size }), flushAt);
      if (st.size > 0) await writeFile(abs, name, st.size, entry);
    }
    // Sockets, fifos and devices have no place in an artifact.
  };
  await walk(dir, '');
  await w.drain();

  const tocOffset = w.offset;
  const json = Buffer.from(JSON.stringify(toc));
  const tocDigest: Digest = `sha256:${createDigester().update(json).digest('hex')}`;
  const tocTar = Buffer.concat([encodeHeader({ name: TOC_TAR_NAME, type: 'file', mode: 0o644, mtime: 0, size: json.length }), json, Buffer.alloc(padding(json.length)), END_OF_ARCHIVE]);
  await w.member(tocTar);
  await w.drain();
  await w.writeRaw(encodeFooter(tocOffset));
  dest.end();
  await once(dest, 'finish');
  const { blob, diff } = w.digests();
  return { digest: blob, size: w.offset, diffId: diff, uncompressedSize: w.uncompressed, tocDigest, tocOffset, entries: toc.entries.filter((e) => e.type !== 'chunk').length };
}

/** `buildEstargz` into a file. */
export async function buildEstargzFile(dir: string, out: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const file = createWriteStream(out, { flags: 'wx' });
  try {
    return await buildEstargz(dir, file, opts);
  } catch (err) {
    file.destroy();
    throw err;
  }
}
