import { readFileSync, unlinkSync } from 'node:fs';
import { recordParams, downloadParams, type AuditDb, type DownloadParams, type RecordParams } from './db.js';
import type { AuditRecord, DownloadRow, SharedJournal } from './types.js';

/**
 * The journal's lines, one JSON object each:
 * - a record, with the route `kind` it came from (a record line is final unless corrected);
 * - a correction `{id, outcome: 'aborted', bytes}`: the client left after the record was written;
 * - a manifest's blobs `{manifest, blobs, artifactType}`, written once per digest before the first
 *   record that pulls it, so that blob pulls can be grouped into one artifact download.
 */
export type JournalRecord = AuditRecord & { kind?: string };
export interface ManifestLine {
  manifest: string;
  blobs: Array<[string, string | null]>;
  artifactType: string | null;
}

/** The blobs a puller of this manifest fetches: its layers, and its config unless it is the empty one. */
export function manifestLine(digest: string, body: Buffer): ManifestLine | undefined {
  interface Desc {
    digest?: unknown;
    mediaType?: unknown;
    size?: unknown;
  }
  let m: { artifactType?: unknown; config?: Desc; layers?: Desc[] };
  try {
    m = JSON.parse(body.toString('utf8')) as typeof m;
  } catch {
    return undefined;
  }
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const blobs: Array<[string, string | null]> = [];
  for (const l of Array.isArray(m.layers) ? m.layers : []) if (typeof l?.digest === 'string') blobs.push([l.digest, str(l.mediaType)]);
  if (typeof m.config?.digest === 'string' && m.config.size !== 2) blobs.push([m.config.digest, str(m.config.mediaType)]);
  return { manifest: digest, blobs, artifactType: str(m.artifactType) ?? (m.config ? str(m.config.mediaType) : null) };
}

interface Group {
  row: DownloadRow;
  blobs: Map<string, string | null>;
  done: Set<string>;
}

export interface Retention {
  maxAge?: number | undefined;
  maxRows?: number | undefined;
  now: number;
}

/**
 * Turns journal text into database rows: parses the lines, joins blob pulls to the manifest pull
 * they follow (one "artifact download" row), and commits everything in one transaction. Applying
 * the same text twice changes nothing (records by id, downloads by upsert), so a journal replayed
 * at start after a crash between commit and unlink does no harm.
 */
export class JournalApplier {
  private readonly manifests = new Map<string, ManifestLine>();
  private readonly groups = new Map<string, Group>();

  constructor(
    private readonly db: AuditDb,
    private readonly groupWindow: number,
  ) {}

  /** Returns how many records the text held. */
  apply(text: string, prune?: Retention, position?: string): number {
    const records = new Map<number, JournalRecord>();
    const corrections: Array<{ id: number; bytes: number }> = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let v: Partial<JournalRecord & ManifestLine>;
      try {
        v = JSON.parse(line) as typeof v;
      } catch {
        // A line torn by a crash was never complete: its response had not ended.
        continue;
      }
      if (typeof v.manifest === 'string' && Array.isArray(v.blobs)) {
        this.manifests.set(v.manifest, v as ManifestLine);
        if (this.manifests.size > 10_000) this.manifests.delete(this.manifests.keys().next().value!);
      } else if (typeof v.id === 'number' && typeof v.time === 'number' && typeof v.method === 'string') {
        records.set(v.id, v as JournalRecord);
      } else if (typeof v.id === 'number' && v.outcome === 'aborted') {
        const r = records.get(v.id);
        if (r) {
          r.outcome = 'aborted';
          r.bytes = typeof v.bytes === 'number' ? v.bytes : r.bytes;
        } else corrections.push({ id: v.id, bytes: typeof v.bytes === 'number' ? v.bytes : 0 });
      }
    }
    const touched = new Map<number, DownloadRow>();
    const rows: RecordParams[] = [];
    for (const r of records.values()) rows.push(recordParams(this.group(r, touched)));
    const downloads: DownloadParams[] = [...touched.values()].map(downloadParams);
    this.db.commit(rows, downloads, corrections, prune, position);
    return records.size;
  }

  private group(rec: JournalRecord, touched: Map<number, DownloadRow>): AuditRecord & { downloadId?: number | null } {
    const { kind, ...out } = rec as JournalRecord & { downloadId?: number | null };
    if (rec.action !== 'pull' || rec.repo === null || rec.status >= 300 || !rec.digest) return out;
    const key = `${rec.user ?? ''}|${rec.ip}|${rec.repo}`;
    if (kind === 'manifest') {
      const m = this.manifests.get(rec.digest);
      if (!m) return out;
      const g: Group = {
        row: {
          id: rec.id,
          time: rec.time,
          lastTime: rec.time,
          user: rec.user,
          ip: rec.ip,
          repo: rec.repo,
          reference: rec.reference,
          digest: rec.digest,
          artifactType: m.artifactType,
          blobsTotal: m.blobs.length,
          blobsDone: 0,
          bytes: rec.bytes,
          completed: m.blobs.length === 0,
        },
        blobs: new Map(m.blobs),
        done: new Set(),
      };
      this.groups.delete(key);
      this.groups.set(key, g);
      if (this.groups.size > 10_000) this.groups.delete(this.groups.keys().next().value!);
      touched.set(g.row.id, g.row);
      out.downloadId = g.row.id;
      out.artifactType = g.row.artifactType;
      return out;
    }
    if (kind === 'blob') {
      const g = this.groups.get(key);
      if (!g || !g.blobs.has(rec.digest) || rec.time - g.row.lastTime > this.groupWindow) return out;
      out.downloadId = g.row.id;
      out.mediaType = g.blobs.get(rec.digest) ?? rec.mediaType;
      out.artifactType = g.row.artifactType;
      g.row.bytes += rec.bytes;
      g.row.lastTime = rec.time;
      if (rec.outcome === 'completed') g.done.add(rec.digest);
      g.row.blobsDone = g.done.size;
      g.row.completed = g.row.blobsTotal === 0 || g.row.blobsDone >= g.row.blobsTotal;
      touched.set(g.row.id, { ...g.row });
    }
    return out;
  }
}

/** One batch for the database: a closed journal segment, lines that never reached one, retention. */
export interface Batch {
  segment?: string | undefined;
  lines: string;
  prune?: Retention | undefined;
}

/** Applies a batch and then deletes its segment (a crash in between replays it, harmlessly, at start); returns its records. */
export function applyBatch(applier: JournalApplier, b: Batch): number {
  const text = (b.segment !== undefined ? readFileSync(b.segment, 'utf8') : '') + b.lines;
  const n = applier.apply(text, b.prune);
  if (b.segment === undefined) return n;
  try {
    unlinkSync(b.segment);
  } catch {
    // A segment left behind is replayed (idempotently) at the next start.
  }
  return n;
}

/** Batches read from the shared journal per query: each read is one SQLite transaction, kept short for the event loop. */
const READ_ROWS = 32;

/**
 * Reads what the shared journal holds after the database's position into the database, in
 * the journal's order; the position moves with each commit. `stop` ends it early (a close).
 */
export async function readShared(applier: JournalApplier, db: AuditDb, shared: SharedJournal, opts: { prune?: Retention | undefined; stop?: () => boolean } = {}): Promise<void> {
  let prune = opts.prune;
  let after = db.position();
  // Until a read comes back empty: a read may stop short of READ_ROWS (the journal bounds it by bytes too).
  for (;;) {
    const rows = await shared.read(after, READ_ROWS);
    if (opts.stop?.()) return;
    if (rows.length === 0 && !prune) return;
    after = rows.length ? rows[rows.length - 1]!.pos : after;
    applier.apply(rows.map((r) => r.lines).join(''), prune, after);
    prune = undefined;
    if (rows.length === 0) return;
  }
}
