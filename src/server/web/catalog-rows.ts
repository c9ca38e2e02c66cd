import type { SqliteRow } from '../sqlite.js';
import type { ArtifactKind, KindInfo } from './types.js';

/*
 * What the web UI's catalog index (catalog.ts) stores and hands out: the shapes of its answers,
 * its tables, and how a row becomes an answer.
 */

/** What the index holds of one manifest. */
export interface IndexedManifest {
  repo: string;
  digest: string;
  mediaType: string;
  /** The manifest's artifactType, or for an artifact without one its config's media type (image-spec); null for images and indexes. */
  artifactType: string | null;
  configMediaType: string | null;
  kind: ArtifactKind;
  /** kindOf's answer when it was indexed (from the manifest and its layers). */
  kindInfo: KindInfo;
  /** The manifest plus every blob it names (an index: its children's too). */
  size: number;
  subject: string | null;
  /** An index's manifests: they are marked as children, which search shows only when tagged. */
  children: string[];
  annotations: Record<string, string>;
  /** When it was pushed, ms; null when unknown (found by a rebuild). */
  updated: number | null;
}

/** What a tag and a search hit show of their manifest (read from its row by `describedOf`). */
export type Described = Pick<IndexedManifest, 'repo' | 'digest' | 'mediaType' | 'artifactType' | 'configMediaType' | 'kindInfo' | 'annotations'>;

export interface IndexedTag extends Described, Pick<IndexedManifest, 'kind' | 'size' | 'updated'> {
  tag: string;
}

export interface IndexedRepo {
  name: string;
  tags: number;
  kinds: ArtifactKind[];
  updated: number | null;
}

export interface IndexedHit extends Described {
  /** The manifest's row id: search results come newest first, and the cursor is the last id. */
  id: number;
  /** Its tags in this repository, most recently moved first. */
  tags: string[];
}

export interface Paged<T, C> {
  items: T[];
  /** The cursor of the next page, null on the last. */
  next: C | null;
}

/** Who may see a repository: the routes pass the viewer's pull right. */
export type Visible = (repo: string) => boolean;

/** The index's tables (catalog.ts creates them on open). */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY, tags INTEGER NOT NULL DEFAULT 0, kinds TEXT NOT NULL DEFAULT '', updated INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
  id INTEGER PRIMARY KEY,
  repo TEXT NOT NULL, digest TEXT NOT NULL,
  media_type TEXT NOT NULL, artifact_type TEXT, config_type TEXT, kind TEXT NOT NULL, kind_info TEXT NOT NULL DEFAULT '{}', size INTEGER NOT NULL,
  subject TEXT, child INTEGER NOT NULL DEFAULT 0, tags INTEGER NOT NULL DEFAULT 0,
  annotations TEXT NOT NULL DEFAULT '{}', updated INTEGER, text TEXT NOT NULL DEFAULT '',
  UNIQUE (repo, digest)
);
CREATE INDEX IF NOT EXISTS manifests_type ON manifests(artifact_type, id);
CREATE TABLE IF NOT EXISTS tags (repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated INTEGER, PRIMARY KEY (repo, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_digest ON tags(repo, digest);
CREATE TABLE IF NOT EXISTS repo_types (artifact_type TEXT NOT NULL, repo TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (artifact_type, repo)) WITHOUT ROWID;
`;

/** The trigram index over manifests.text, kept by triggers (an external-content FTS5 table). */
export const FTS = `
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(text, content='manifests', content_rowid='id', tokenize='trigram');
CREATE TRIGGER IF NOT EXISTS manifests_ai AFTER INSERT ON manifests BEGIN INSERT INTO search(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS manifests_ad AFTER DELETE ON manifests BEGIN INSERT INTO search(search, rowid, text) VALUES ('delete', old.id, old.text); END;
CREATE TRIGGER IF NOT EXISTS manifests_au AFTER UPDATE OF text ON manifests BEGIN
  INSERT INTO search(search, rowid, text) VALUES ('delete', old.id, old.text);
  INSERT INTO search(rowid, text) VALUES (new.id, new.text);
END;
`;


/** A JSON object column, or {} for anything else. */
export const json = (s: unknown): Record<string, string> => {
  try {
    const v = JSON.parse(String(s)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
};
export const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
export const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null);

/** The columns of a manifests row (or a tags row joined to one) that tags, hits and manifests all show. */
export function describedOf(r: SqliteRow): Described {
  return {
    repo: String(r.repo),
    digest: String(r.digest),
    mediaType: String(r.media_type),
    artifactType: str(r.artifact_type),
    configMediaType: str(r.config_type),
    kindInfo: kindInfoOf(r),
    annotations: json(r.annotations),
  };
}

export function toTag(r: SqliteRow): IndexedTag {
  return {
    ...describedOf(r),
    tag: String(r.tag),
    kind: String(r.kind) as ArtifactKind,
    size: num(r.size) ?? 0,
    updated: num(r.updated),
  };
}

export function kindInfoOf(r: SqliteRow): KindInfo {
  const k = json(r.kind_info) as unknown as Partial<KindInfo>;
  if (typeof k.kind === 'string' && typeof k.label === 'string') return k as KindInfo;
  const kind = String(r.kind) as ArtifactKind;
  return { kind, label: 'Artifact', icon: kind, group: null };
}
