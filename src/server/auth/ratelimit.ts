/** Counts failures per key in a fixed window; over the limit, a key is refused until the window ends. */
export class FailureLimiter {
  private readonly hits = new Map<string, { n: number; reset: number }>();

  constructor(private readonly max: number, private readonly windowMs: number) {}

  /** Milliseconds until `key` may try again, or 0. */
  blockedFor(key: string, now = Date.now()): number {
    const h = this.hits.get(key);
    if (!h || h.reset <= now) return 0;
    return h.n >= this.max ? h.reset - now : 0;
  }

  /** Counts a failure; false when it is past the limit (one that raced the check before it). */
  fail(key: string, now = Date.now()): boolean {
    let h = this.hits.get(key);
    if (!h || h.reset <= now) {
      h = { n: 0, reset: now + this.windowMs };
      this.hits.set(key, h);
    }
    h.n++;
    if (this.hits.size > 100_000) for (const [k, v] of this.hits) if (v.reset <= now) this.hits.delete(k);
    return h.n <= this.max;
  }
}
