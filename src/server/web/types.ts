/**
 * The JSON API under /api/v1 that the web UI uses (and nothing else does), as types shared by the
 * server (src/server/web) and the front end (web/, a type-only import). docs/openapi.yaml is its
 * documentation. Repository names go in the query string (`?repo=a/b`), never in the path: a
 * name has slashes of its own, and a query leaves no doubt where it ends.
 *
 * Conventions: times are ms since the epoch; sizes are bytes; a list is a page with `next`, the
 * opaque cursor of the next page (null on the last); errors are the registry's error body
 * (`{ errors: [{ code, message, detail }] }`) with its status.
 */

// The audit log's rows, as the API answers them (a type-only import: types.ts imports nothing else).
import type { AuditRecord as StoredRecord, DownloadEventRow, TopRow } from '../audit/types.js';

/** A page of a list. */
export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last. */
  next: string | null;
}

/** Who is looking: GET /api/v1/session, and the answer to a sign-in. */
export interface SessionInfo {
  /** Null for an anonymous visitor. */
  user: string | null;
  admin: boolean;
  /** Whether the registry has users at all (auth configured); without, there is no sign-in. */
  authEnabled: boolean;
  /** Whether deletes are on (`delete.enabled`); the UI still checks the user's right per repository. */
  deleteEnabled: boolean;
  /** Send as the `x-csrf-token` header on every request that changes something. */
  csrf: string | null;
}

/** POST /api/v1/session: sign in with the registry's own users, or with a registry token. */
export type SignIn = { user: string; password: string } | { token: string };

/** The kind of an artifact, worked out from its media types, artifactType and annotations. */
export type ArtifactKind =
  | 'image'
  | 'image-index'
  | 'helm-chart'
  | 'terraform-module'
  | 'ml-model'
  | 'sbom-spdx'
  | 'sbom-cyclonedx'
  | 'signature-cosign'
  | 'signature-notation'
  | 'attestation'
  | 'stac'
  | 'wasm'
  | 'generic';

/** How the UI shows a kind: never "unknown" or "/". */
export interface KindInfo {
  kind: ArtifactKind;
  /** A readable label: "Helm chart", "Container image", "CycloneDX SBOM". */
  label: string;
  /** The icon's name in the UI's icon set (same as kind unless shared). */
  icon: string;
  /** The group a referrer of this kind is shown under: signatures, SBOMs, attestations, other. */
  group: 'signatures' | 'sboms' | 'attestations' | 'other' | null;
}

/** GET /api/v1/repositories?q=&artifactType=&cursor=&limit= */
export interface RepositorySummary {
  name: string;
  tags: number;
  /** The kinds of what its tags point at, most frequent first. */
  kinds: ArtifactKind[];
  /** Last push (manifest or tag), ms; null when unknown. */
  updated: number | null;
  /** Last pull, from the audit log; null when never or audit is off. */
  lastPulled: number | null;
}

/** GET /api/v1/tags?repo=&q=&cursor=&limit= */
export interface TagSummary {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  /** The manifest's own size plus every blob it names (an index: its children's too). */
  size: number;
  updated: number | null;
}

/** GET /api/v1/search?q=&artifactType=&cursor=&limit=: artifacts by name, tag, annotation or type. */
export interface SearchHit {
  repo: string;
  tag: string | null;
  digest: string;
  kind: KindInfo;
  artifactType: string | null;
  /** The annotation (or field) that matched, for the UI to show why. */
  matched: { field: string; value: string } | null;
}

/** One file of an artifact: a titled layer, or a file inside a tar, tar.gz or eStargz layer. */
export interface FileEntry {
  /** Path inside the artifact: the layer's title, or the path inside its archive. */
  path: string;
  size: number;
  mediaType: string | null;
  /** The layer it is in. */
  layer: string;
  /** Whether it is the layer itself (a titled layer) rather than a file inside one. */
  whole: boolean;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Unix mode bits, where the archive has them. */
  mode: number | null;
  /** GET this to download it (access-checked, audited, Range). */
  download: string;
}

/** A referrer and its own referrers. */
export interface ReferrerNode {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  size: number;
  annotations: Record<string, string>;
  children: ReferrerNode[];
}

/** The pull command for a kind in one tool. */
export interface PullCommand {
  tool: 'wharf' | 'oras' | 'helm' | 'skopeo' | 'podman' | 'docker' | 'cosign' | 'notation';
  command: string;
}

/** GET /api/v1/artifact?repo=&ref= (ref: a tag or a digest) */
export interface ArtifactDetail {
  repo: string;
  /** The tag asked for, if it was one. */
  tag: string | null;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  size: number;
  /** From the org.opencontainers.image.created annotation or the config; null when neither says. */
  created: number | null;
  /** From the audit log: the user of the push that wrote it, and when. */
  pushedBy: string | null;
  pushed: number | null;
  annotations: Record<string, string>;
  /** The manifest and config as they are stored (the UI formats them). */
  manifest: unknown;
  config: unknown | null;
  /** Per kind, what the page shows beside the files: an image's entrypoint/env/platforms, a chart's Chart.yaml. */
  facts: Array<{ label: string; value: string }>;
  /** An index's children: platform and digest. */
  children: Array<{ digest: string; mediaType: string; platform: string | null; kind: KindInfo; size: number }>;
  /** Titled layers (whole); files inside archives come from /api/v1/files. */
  files: FileEntry[];
  /** Rendered to sanitized HTML on the client; the raw Markdown and where it came from. */
  readme: { source: string; markdown: string } | null;
  license: { source: string; text: string } | null;
  referrers: ReferrerNode[];
  /** Referrer counts by group, rolled up from an index's children. */
  referrerCounts: Record<string, number>;
  pull: PullCommand[];
  /** What the viewer may do here. */
  can: { delete: boolean };
  /** Downloads so far (audit), null when audit is off. */
  downloads: number | null;
  lastPulled: number | null;
}

/** GET /api/v1/files?repo=&layer=: the files inside one archive layer (eStargz through its TOC only). */
export interface LayerFiles {
  layer: string;
  format: 'tar' | 'tar+gzip' | 'estargz' | 'tar+zstd' | 'none';
  files: FileEntry[];
  /** Set when the listing stopped early (an archive with more entries than the server lists). */
  truncated: boolean;
  /** Why a layer shows no files although it is an archive (a zstd layer on a Node without zstd). */
  note?: string;
}

/** GET /api/v1/tag-history?repo=&tag=: every move of a tag, newest first. */
export interface TagMove {
  time: number;
  digest: string | null;
  user: string | null;
  action: 'push' | 'delete';
}

/** GET /api/v1/analytics/downloads?repo=&tag=&digest=&file=&from=&to=&interval= */
export interface DownloadSeries {
  /** Bucket width, ms. */
  interval: number;
  points: Array<{ t: number; downloads: number; bytes: number; users: number }>;
}

/** GET /api/v1/analytics/top?from=&to=&limit= */
export type TopArtifact = TopRow;

/** GET /api/v1/audit: one record of the audit log, with the artifact download it belongs to. */
export type AuditRecord = StoredRecord & { downloadId: number | null };

/** GET /api/v1/analytics/who?repo=&digest=&from=&to=&cursor=&format=csv: the audit log's row, without its id. */
export interface DownloadEvent extends Omit<DownloadEventRow, 'id'> {
  /** The user's groups in the auth config (`auth.groups`); absent when the config has none. */
  groups?: string[];
}

/** GET /api/v1/admin/cache (admins) */
export interface CacheStatus {
  /**
   * `healthy` is false while the upstream is marked down (maxFails failures in a row, for
   * failTimeout; `downUntil` says until when). The counters are this process's, since its start.
   */
  upstreams: Array<{ name: string; url: string; healthy: boolean; downUntil: number | null; lastError: string | null; namespaces: string[]; hits: number; misses: number; errors: number }>;
  /** Cached repositories: bytes of the blobs each links (as StorageUse), last pull (audit, else the cache's own access time). */
  repositories: Array<{ name: string; size: number; images: number; lastPulled: number | null }>;
  hits: number;
  misses: number;
  /** When the listing was made (it is kept for a minute), ms. */
  computed: number;
}

/** GET /api/v1/admin/storage (admins): bytes per repository (blobs it links; shared blobs count in each). */
export interface StorageUse {
  /** Bytes of the distinct blobs (manifests included) that some repository links: shared ones count once here. */
  total: number;
  /** Largest first. */
  repositories: Array<{ name: string; size: number; blobs: number }>;
  /** When the walk was made (it is kept for a minute), ms. */
  computed: number;
  /** Set when the walk stopped at its bound (repositories or blobs); the figures are then lower bounds. */
  truncated: boolean;
}
