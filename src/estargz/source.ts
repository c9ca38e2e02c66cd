import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { type ByteRange, WharfError } from '../spec/index.js';
import type { OpOptions } from '../content/index.js';

/**
 * Random access to one blob: its size, and the bytes of some inclusive ranges, returned in the
 * order asked. A registry implements it with Range requests (stores/remote), a file with reads.
 * The reader above checks every byte it returns against the TOC's digests, so a source need not.
 */
export interface RangedBlobSource {
  size(opts?: OpOptions): Promise<number>;
  read(ranges: ByteRange[], opts?: OpOptions): Promise<Buffer[]>;
  /** The whole blob in one stream, start to end (the reader verifies it). */
  stream?(opts?: OpOptions): Promise<Readable>;
  /** Frees what the source holds (a temp copy of the blob). */
  close?(): Promise<void>;
}

/** A blob in a local file. */
export class FileBlobSource implements RangedBlobSource {
  constructor(readonly path: string) {}

  async size(): Promise<number> {
    return (await stat(this.path)).size;
  }

  async stream(): Promise<Readable> {
    return createReadStream(this.path, { highWaterMark: 1 << 20 });
  }

  async read(ranges: ByteRange[]): Promise<Buffer[]> {
    const fh = await open(this.path, 'r');
    try {
      const out: Buffer[] = [];
      for (const r of ranges) {
        const b = Buffer.alloc(r.end - r.start + 1);
        let got = 0;
        while (got < b.length) {
          const { bytesRead } = await fh.read(b, got, b.length - got, r.start + got);
          if (bytesRead === 0) throw new WharfError('RANGE_INVALID', `${this.path} ends before byte ${r.start + got}`);
          got += bytesRead;
        }
        out.push(b);
      }
      return out;
    } finally {
      await fh.close();
    }
  }
}

/** A blob in memory (tests, small layers). */
export class BufferBlobSource implements RangedBlobSource {
  constructor(readonly data: Buffer) {}

  async size(): Promise<number> {
    return this.data.length;
  }

  async stream(): Promise<Readable> {
    return Readable.from([this.data]);
  }

  async read(ranges: ByteRange[]): Promise<Buffer[]> {
    return ranges.map((r) => {
      if (r.start < 0 || r.end >= this.data.length || r.end < r.start) throw new WharfError('RANGE_INVALID', `range ${r.start}-${r.end} is outside ${this.data.length} bytes`);
      return this.data.subarray(r.start, r.end + 1);
    });
  }
}

/** Merges ranges that touch or overlap, sorted; `map[i]` is the merged range holding input i. */
export function mergeRanges(ranges: ByteRange[], gap = 0): { merged: ByteRange[]; map: number[] } {
  const order = ranges.map((r, i) => ({ r, i })).sort((a, b) => a.r.start - b.r.start);
  const merged: ByteRange[] = [];
  const map = new Array<number>(ranges.length);
  for (const { r, i } of order) {
    const last = merged[merged.length - 1];
    if (last && r.start <= last.end + 1 + gap) last.end = Math.max(last.end, r.end);
    else merged.push({ start: r.start, end: r.end });
    map[i] = merged.length - 1;
  }
  return { merged, map };
}
