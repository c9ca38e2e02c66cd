/**
 * The /api/v1 client: every request the UI makes goes through here, typed by the contract the
 * server shares (src/server/web/types.ts, a type-only import: nothing of the server is bundled).
 */
import type {
  ArtifactDetail,
  AuditRecord,
  CacheStatus,
  DownloadSeries,
  LayerFiles,
  Page,
  RepositorySummary,
  SearchHit,
  SessionInfo,
  StorageUse,
  TagMove,
  TagSummary,
  TopArtifact,
  DownloadEvent,
} from '../../src/server/web/types.js';

export type * from '../../src/server/web/types.js';

/** An error answer of the API: the registry's error body, with its status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | null = null;

/** The token the session handed out; sent as x-csrf-token on every request that changes something. */
export function setCsrf(token: string | null): void {
  csrf = token;
}

type Query = Record<string, string | number | null | undefined>;

/** An API path with its query; empty values are left out. */
export function apiUrl(path: string, q: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return `/api/v1/${path}${s ? `?${s}` : ''}`;
}

async function request<T>(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  // Marks the call as the UI's own: a 401 then carries no Basic challenge, which would have the
  // browser open its password dialog in front of the page's sign-in form.
  const headers: Record<string, string> = { accept: 'application/json', 'x-requested-with': 'wharf-ui' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (signal) init.signal = signal;
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) {
    let code = 'UNKNOWN';
    let message = `${res.status} ${res.statusText}`;
    try {
      const e = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
      if (e?.code) code = e.code;
      if (e?.message) message = e.message;
    } catch {
      // Not the registry's body (a proxy in between): the status says enough.
    }
    throw new ApiError(res.status, code, message);
  }
  return (text ? JSON.parse(text) : null) as T;
}

/** A list answer as an array, whether the route pages it ({items}) or not. */
export function itemsOf<T>(x: T[] | Page<T> | { items?: T[] } | null | undefined): T[] {
  if (!x) return [];
  if (Array.isArray(x)) return x;
  return x.items ?? [];
}

const get = <T>(path: string, q?: Query, signal?: AbortSignal): Promise<T> => request<T>('GET', apiUrl(path, q), undefined, signal);

export const api = {
  session: (signal?: AbortSignal) => get<SessionInfo>('session', {}, signal),
  signIn: (user: string, password: string) => request<SessionInfo>('POST', apiUrl('session'), { user, password }),
  signInWithToken: (token: string) => request<SessionInfo>('POST', apiUrl('session'), { token }),
  signOut: () => request<unknown>('DELETE', apiUrl('session')),
  repositories: (q: Query, signal?: AbortSignal) => get<Page<RepositorySummary>>('repositories', q, signal),
  search: (q: Query, signal?: AbortSignal) => get<Page<SearchHit>>('search', q, signal),
  tags: (q: Query, signal?: AbortSignal) => get<Page<TagSummary>>('tags', q, signal),
  artifact: (repo: string, ref: string, signal?: AbortSignal) => get<ArtifactDetail>('artifact', { repo, ref }, signal),
  files: (repo: string, layer: string, signal?: AbortSignal) => get<LayerFiles>('files', { repo, layer }, signal),
  tagHistory: (repo: string, tag: string, signal?: AbortSignal) => get<TagMove[] | Page<TagMove>>('tag-history', { repo, tag }, signal),
  downloads: (q: Query, signal?: AbortSignal) => get<DownloadSeries>('analytics/downloads', q, signal),
  top: (q: Query, signal?: AbortSignal) => get<TopArtifact[] | Page<TopArtifact>>('analytics/top', q, signal),
  who: (q: Query, signal?: AbortSignal) => get<Page<DownloadEvent>>('analytics/who', q, signal),
  cache: (signal?: AbortSignal) => get<CacheStatus>('admin/cache', {}, signal),
  storage: (signal?: AbortSignal) => get<StorageUse>('admin/storage', {}, signal),
  audit: (q: Query, signal?: AbortSignal) => get<{ records: AuditRecord[] }>('audit', q, signal),
  /** Deletes a tag; the artifact stays under its digest. */
  deleteTag: (repo: string, tag: string) => request<unknown>('DELETE', apiUrl('tags', { repo, tag })),
  /** Deletes a manifest, and with it every tag that points at it. */
  deleteArtifact: (repo: string, digest: string) => request<unknown>('DELETE', apiUrl('artifact', { repo, digest })),
};

/** The link that downloads a whole artifact: every file, as one tar. */
export function downloadAllUrl(repo: string, ref: string): string {
  return apiUrl('download', { repo, ref, archive: 'tar' });
}
