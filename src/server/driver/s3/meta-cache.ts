import type { FileInfo } from '../types.js';

/** What the store said about a key: its stat, and its bytes when small. Null: not there. */
interface Entry {
  at: number;
  stat?: FileInfo | null;
  data?: Buffer | null;
}

/** Files up to this size have their bytes kept (tags, links, referrer descriptors). */
export const SMALL_FILE = 4096;

/**
 * Answers of the store to HeadObject and to GETs of small files, kept for `ttlMs` so that a
 * manifest read twice costs no round trip (docs/STORAGE.md, "What is kept in memory"). Every write
 * this process makes to a key drops it at once, and an answer that was under way when a write to
 * any key began is not kept (it may predate the write), so this process reads its own writes;
 * another process writing the same bucket (`wharf gc`, a second server) is seen within `ttlMs`.
 * Bounded by `max` entries, oldest first.
 */
export class MetaCache {
  private readonly map = new Map<string, Entry>();
  /** Counts writes: an answer is kept only if none began while it was asked for. */
  private writes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly max = 50_000,
  ) {}

  /** A token to hand back to set(): the answer is dropped if a write came in between. */
  begin(): number {
    return this.writes;
  }

  private fresh(key: string): Entry | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (Date.now() - e.at > this.ttlMs) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  stat(key: string): FileInfo | null | undefined {
    return this.fresh(key)?.stat;
  }

  data(key: string): Buffer | null | undefined {
    return this.fresh(key)?.data;
  }

  set(key: string, token: number, value: { stat?: FileInfo | null; data?: Buffer | null }): void {
    if (this.ttlMs <= 0 || token !== this.writes) return;
    const e = this.fresh(key) ?? { at: Date.now() };
    if (value.stat !== undefined) e.stat = value.stat;
    if (value.data !== undefined) e.data = value.data;
    this.map.delete(key);
    this.map.set(key, e);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  /** A write to `key` begins: nothing known about it holds any longer. */
  drop(key: string): void {
    this.writes++;
    this.map.delete(key);
  }
}
