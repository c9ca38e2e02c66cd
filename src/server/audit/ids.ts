/**
 * Record ids: integers that grow in the order requests start, and never repeat across restarts
 * (the base is the start time in ms times 4096, so a run would need over 4 million requests per
 * millisecond of its life to reach the next run's base). As SQLite's rowid they cost no index.
 *
 * Replicas that share one log (PostgreSQL) run at the same time, so a base per run is not enough:
 * each holds one of ID_SLOTS slots (setAuditIdSlot) and writes it in the low bits. The rest counts
 * from the clock, ms times 128, on the same scale as single-server ids: an id still says roughly
 * when its request started, and a replica takes more than 128 ids per ms only by running ahead.
 */
export const ID_SLOTS = 32;

const base = Date.now() * 4096;
let n = 0;
let slot = -1;
let last = 0;

export function nextAuditId(): number {
  if (slot < 0) return base + n++;
  last = Math.max(last + 1, Date.now() * 128);
  return last * ID_SLOTS + slot;
}

/** Ids from now on carry this replica's slot (0 to ID_SLOTS - 1). */
export function setAuditIdSlot(s: number): void {
  if (!Number.isInteger(s) || s < 0 || s >= ID_SLOTS) throw new RangeError(`audit id slot ${s} is not in 0..${ID_SLOTS - 1}`);
  // Never below an id already handed out, whichever scheme handed it.
  if (slot < 0) last = Math.ceil((base + n) / ID_SLOTS);
  slot = s;
}
