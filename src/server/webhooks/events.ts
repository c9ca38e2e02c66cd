import type { AuditRecord } from '../audit/index.js';
import { globToRegExp } from '../auth/index.js';
import type { WebhookAction, WebhookConfig } from './config.js';

/** One notification, in the shape of Distribution's event envelope. */
export interface WebhookEvent {
  id: string;
  timestamp: string;
  action: WebhookAction;
  target: { repository: string; digest: string | null; tag: string | null; mediaType: string | null; artifactType: string | null; length: number };
  request: { addr: string; method: string; useragent: string | null };
  actor: { name: string | null };
  source: { addr: string };
}

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

export interface Endpoint {
  cfg: WebhookConfig;
  repos: RegExp[];
  busy: boolean;
}

export function endpointsOf(configs: WebhookConfig[]): Endpoint[] {
  return configs.map((cfg) => ({ cfg, repos: cfg.repos.map(globToRegExp), busy: false }));
}

/** The event a finished request makes, if it makes one: a completed push, pull, delete or mount. */
export function eventOf(rec: AuditRecord, source: string): WebhookEvent | undefined {
  if (rec.outcome !== 'completed' || rec.status >= 300 || rec.repo === null) return undefined;
  const action = rec.action as string;
  if (action !== 'push' && action !== 'pull' && action !== 'delete' && action !== 'mount') return undefined;
  const isTag = rec.reference !== null && !rec.reference.includes(':') && rec.action !== 'mount';
  return {
    id: String(rec.id),
    timestamp: new Date(rec.time).toISOString(),
    action,
    target: { repository: rec.repo, digest: rec.digest, tag: isTag ? rec.reference : null, mediaType: rec.mediaType, artifactType: rec.artifactType, length: rec.bytes },
    request: { addr: rec.ip, method: rec.method, useragent: rec.userAgent },
    actor: { name: rec.user },
    source: { addr: source },
  };
}

/** Whether the endpoint's filters (actions, repositories, media types) take this record's event. */
export function wants(e: Endpoint, rec: AuditRecord): boolean {
  if (!e.cfg.actions.includes(rec.action as WebhookAction)) return false;
  if (e.repos.length > 0 && !e.repos.some((re) => re.test(rec.repo ?? ''))) return false;
  return e.cfg.mediaTypes.length === 0 || (rec.mediaType !== null && e.cfg.mediaTypes.includes(rec.mediaType));
}

/** Waits between attempts double from `backoff` up to `maxBackoff`. */
export function backoff(cfg: WebhookConfig, attempts: number): number {
  return Math.min(cfg.backoff * 2 ** (attempts - 1), cfg.maxBackoff);
}

/** POSTs one envelope of events (JSON texts); the error, or undefined on a 2xx. */
export async function post(cfg: WebhookConfig, payloads: string[]): Promise<string | undefined> {
  try {
    const res = await fetch(cfg.url, {
      method: 'POST',
      headers: { 'content-type': EVENTS_MEDIA_TYPE, ...cfg.headers },
      body: `{"events":[${payloads.join(',')}]}`,
      signal: AbortSignal.timeout(cfg.timeout),
    });
    await res.body?.cancel();
    return res.status < 200 || res.status >= 300 ? `HTTP ${res.status}` : undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

