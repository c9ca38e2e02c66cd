/**
 * A count of failures shared by every replica (the database's): adds one for `key` in a window of
 * `windowMs` that starts with the key's first failure; gives the count and the ms left of it.
 */
export type SharedFailures = (key: string, windowMs: number) => Promise<{ n: number; leftMs: number }>;

/**
 * Counts failures per key in a fixed window; over the limit, a key is refused until the window
 * ends. With `shared`, each failure is counted in the database and the count that comes back is
 * what this replica goes by: a client that spreads its attempts over N replicas gets at most
 * `max + N - 1` in a window, and the check before an attempt stays in memory.
 */
export class FailureLimiter {
  private readonly hits = new Map<string, { n: number; reset: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly shared?: { count: SharedFailures; kind: string; onError?: (err: unknown) => void },
  ) {}

  /** Milliseconds until `key` may try again, or 0. */
  blockedFor(key: string, now = Date.now()): number {
    const h = this.hits.get(key);
    if (!h || h.reset <= now) return 0;
    return h.n >= this.max ? h.reset - now : 0;
  }

  /** Counts a failure; false when it is past the limit (one that raced the check before it). */
  async fail(key: string, now = Date.now()): Promise<boolean> {
    let h = this.hits.get(key);
    if (!h || h.reset <= now) {
      h = { n: 0, reset: now + this.windowMs };
      this.hits.set(key, h);
    }
    h.n++;
    if (this.shared) {
      try {
        const { n, leftMs } = await this.shared.count(`${this.shared.kind}:${key}`, this.windowMs);
        h.n = Math.max(h.n, n);
        h.reset = Date.now() + leftMs;
      } catch (err) {
        // The database away: this replica's own count still holds the line.
        this.shared.onError?.(err);
      }
    }
    if (this.hits.size > 100_000) for (const [k, v] of this.hits) if (v.reset <= now) this.hits.delete(k);
    return h.n <= this.max;
  }
}
