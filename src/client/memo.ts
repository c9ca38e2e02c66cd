import { randomUUID } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isDigest, type Digest } from '../spec/index.js';

/** Files remembered; the least recently used are dropped first (about 250 bytes each). */
export const DIGEST_MEMO_MAX_ENTRIES = 2000;

/**
 * A file whose ctime is this close to the moment it was hashed may have changed again within the
 * same timestamp tick, unseen (git's "racy clean" problem): its entry says the file was pushed,
 * but its digest is checked again before it is trusted.
 */
const DIGEST_MEMO_RACY_MS = 2000;

export interface DigestMemoOptions {
  /** How long before its hashing a file must have last changed for its digest to be trusted (default 2 s). */
  racyMs?: number;
}

interface Entry {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  digest: Digest;
  /** The ctime was too close to the hashing to rule out an unseen change. */
  racy: boolean;
  /** When the entry was last written or used (ms), for dropping the oldest. */
  used: number;
}

export interface MemoHit {
  digest: Digest;
  /** False when the entry is racy: the file is known, but must be hashed before its digest is used. */
  trusted: boolean;
}

/**
 * The digests of files pushed before, keyed by absolute path and everything `stat` says changes
 * with the content (device, inode, size, mtime and ctime in nanoseconds), so that pushing the same
 * unchanged files again needs no hashing: their blobs are checked with a HEAD and skipped.
 * One small JSON file (by default `$XDG_CACHE_HOME/wharf/digests.json`, else
 * `~/.cache/wharf/digests.json`), replaced whole (temp file, then rename) so that concurrent
 * writers never leave a torn file; an unreadable file counts as empty.
 */
export class DigestMemo {
  readonly path: string;
  private readonly entries: Map<string, Entry>;
  private readonly racyMs: number;
  private changed = false;

  private constructor(path: string, entries: Map<string, Entry>, opts: DigestMemoOptions) {
    this.path = path;
    this.entries = entries;
    this.racyMs = opts.racyMs ?? DIGEST_MEMO_RACY_MS;
  }

  /** `$XDG_CACHE_HOME/wharf/digests.json`, or `~/.cache/wharf/digests.json`. */
  static defaultPath(env: NodeJS.ProcessEnv = process.env): string {
    const xdg = env.XDG_CACHE_HOME;
    return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'wharf', 'digests.json');
  }

  static async open(path: string = DigestMemo.defaultPath(), opts: DigestMemoOptions = {}): Promise<DigestMemo> {
    return new DigestMemo(path, await readEntries(path), opts);
  }

  /** What is known of the file at `path` whose stat is `st`; undefined when anything changed. */
  lookup(path: string, st: BigIntStats): MemoHit | undefined {
    const e = this.entries.get(resolve(path));
    if (!e || e.dev !== String(st.dev) || e.ino !== String(st.ino) || e.size !== String(st.size) || e.mtimeNs !== String(st.mtimeNs) || e.ctimeNs !== String(st.ctimeNs)) return undefined;
    e.used = Date.now();
    this.changed = true;
    return { digest: e.digest, trusted: !e.racy };
  }

  /**
   * Records the digest of the file at `path`, whose stat `st` was taken before it was read,
   * starting at `hashedAtMs`, and found unchanged after.
   */
  record(path: string, st: BigIntStats, digest: Digest, hashedAtMs: number): void {
    const racy = st.ctimeNs >= BigInt(Math.floor(hashedAtMs - this.racyMs)) * 1_000_000n;
    const e: Entry = { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), digest, racy, used: Date.now() };
    this.entries.set(resolve(path), e);
    this.changed = true;
  }

  /**
   * Writes the memo back, merged with what another process may have written meanwhile (the newer
   * entry of a path wins). Best effort: a memo that cannot be written is only a slower next push.
   */
  async save(): Promise<void> {
    if (!this.changed) return;
    const merged = await readEntries(this.path);
    for (const [k, e] of this.entries) {
      const other = merged.get(k);
      if (!other || other.used <= e.used) merged.set(k, e);
    }
    const keep = [...merged.entries()].sort((a, b) => b[1].used - a[1].used).slice(0, DIGEST_MEMO_MAX_ENTRIES);
    const tmp = join(dirname(this.path), `.digests-${randomUUID()}.tmp`);
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(tmp, JSON.stringify({ version: 1, files: Object.fromEntries(keep) }), { mode: 0o600 });
      await rename(tmp, this.path);
      this.changed = false;
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

async function readEntries(path: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return out;
  }
  const files = (doc as { version?: unknown; files?: unknown } | null)?.files;
  if ((doc as { version?: unknown }).version !== 1 || typeof files !== 'object' || files === null) return out;
  for (const [k, v] of Object.entries(files as Record<string, unknown>)) {
    if (isEntry(v) && isAbsolute(k)) out.set(k, v);
  }
  return out;
}

function isEntry(v: unknown): v is Entry {
  const e = v as Partial<Entry> | null;
  const num = (x: unknown): boolean => typeof x === 'string' && /^-?\d+$/.test(x);
  return (
    typeof e === 'object' &&
    e !== null &&
    num(e.dev) &&
    num(e.ino) &&
    num(e.size) &&
    num(e.mtimeNs) &&
    num(e.ctimeNs) &&
    typeof e.digest === 'string' &&
    isDigest(e.digest) &&
    typeof e.racy === 'boolean' &&
    typeof e.used === 'number'
  );
}
