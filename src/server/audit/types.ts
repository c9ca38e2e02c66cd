/** What a request did, as the audit log names it. */
export type AuditAction = 'pull' | 'stat' | 'push' | 'upload' | 'mount' | 'delete' | 'list' | 'other';

/** One request that read or changed content, denied attempts included. */
export interface AuditRecord {
  /** Grows with the start of the request; unique across restarts (ids.ts). */
  id: number;
  /** Start of the request, ms since the epoch. */
  time: number;
  user: string | null;
  ip: string;
  userAgent: string | null;
  method: string;
  action: AuditAction;
  repo: string | null;
  reference: string | null;
  digest: string | null;
  mediaType: string | null;
  artifactType: string | null;
  status: number;
  bytes: number;
  durationMs: number;
  /** completed: every byte was handed to the client; aborted: the client went away first. */
  outcome: 'completed' | 'aborted';
  /** A download of one file out of a layer (the web UI): its path inside the artifact. */
  file?: string | null;
}

export interface AuditFilter {
  repo?: string;
  user?: string;
  digest?: string;
  action?: string;
  /** ms since the epoch, inclusive. */
  since?: number;
  until?: number;
  /** Only denied attempts (401, 403). */
  denied?: boolean;
}

/** One manifest pull and the blob pulls that followed it. */
export interface DownloadRow {
  /** The id of the manifest pull's record. */
  id: number;
  time: number;
  lastTime: number;
  user: string | null;
  ip: string;
  repo: string;
  reference: string | null;
  digest: string;
  artifactType: string | null;
  blobsTotal: number;
  blobsDone: number;
  bytes: number;
  completed: boolean;
}

/** One download as the audit log lists it (who downloaded); the web API's DownloadEvent is this. */
export interface DownloadEventRow {
  id: number;
  time: number;
  user: string | null;
  ip: string;
  client: string | null;
  repo: string;
  reference: string | null;
  digest: string;
  /** The file, for a download from the UI of one file. */
  file: string | null;
  bytes: number;
  completed: boolean;
}

/** One artifact of a top list; the web API's TopArtifact is this. */
export interface TopRow {
  repo: string;
  reference: string | null;
  digest: string;
  downloads: number;
  users: number;
  bytes: number;
  lastPulled: number;
}

/** The journal in PostgreSQL, as the audit log uses it (src/server/db/journal.ts). */
export interface SharedJournal {
  /** Resolves once the lines are committed. */
  append(lines: string, records: number): Promise<void>;
  /** Up to `limit` batches after `after` (undefined: from the first), in one order for every reader. */
  read(after: string | undefined, limit: number): Promise<Array<{ pos: string; lines: string }>>;
  prune(opts: { maxAge?: number | undefined; maxRows?: number | undefined }): Promise<number>;
}
