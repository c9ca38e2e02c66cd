/**
 * A map bounded by the bytes its values hold (as `weigh` counts them), least recently used out
 * first. For content named by its digest (configs, READMEs, charts, listings): a value never goes
 * stale, it only ages out.
 */
export class ByteLru<V> {
  private readonly map = new Map<string, { value: V; bytes: number }>();
  private bytes = 0;

  constructor(
    readonly maxBytes: number,
    private readonly weigh: (v: V) => number,
  ) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  set(key: string, value: V): void {
    const bytes = this.weigh(value) + 100;
    // One value may take a quarter of the budget at most: a huge one would empty the cache.
    if (bytes > this.maxBytes / 4) return;
    const old = this.map.get(key);
    if (old) {
      this.bytes -= old.bytes;
      this.map.delete(key);
    }
    this.map.set(key, { value, bytes });
    this.bytes += bytes;
    while (this.bytes > this.maxBytes) {
      const [k, v] = this.map.entries().next().value as [string, { bytes: number }];
      this.map.delete(k);
      this.bytes -= v.bytes;
    }
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.map.size, bytes: this.bytes };
  }
}
