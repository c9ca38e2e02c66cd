/**
 * Record ids: integers that grow in the order requests start, and never repeat across restarts
 * (the base is the start time in ms times 4096, so a run would need over 4 million requests per
 * millisecond of its life to reach the next run's base). As SQLite's rowid they cost no index.
 */
const base = Date.now() * 4096;
let n = 0;

export function nextAuditId(): number {
  return base + n++;
}
