import { OciError, assertName, truncate } from '../../spec/index.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string };

const PATTERNS: Array<[RegExp, (m: RegExpExecArray) => Route]> = [
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/blobs\/uploads\/([^/]*)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]! , digest: m[2]! })],
];

/**
 * Routes a raw, undecoded request path under /v2/. Nothing is percent-decoded: no legal name,
 * tag or digest contains '%', so an encoded byte is refused rather than turned into '.' or '/'.
 * Returns undefined for a path that is no endpoint of the spec.
 */
export function routeOf(rawPath: string): Route | undefined {
  if (rawPath === '/v2/' || rawPath === '/v2') return { kind: 'base' };
  if (!rawPath.startsWith('/v2/')) return undefined;
  const rest = rawPath.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };
  for (const [re, make] of PATTERNS) {
    const m = re.exec(rest);
    if (!m) continue;
    const route = make(m);
    if ('name' in route) {
      if (route.name.includes('%')) throw new OciError('NAME_INVALID', `repository name "${truncate(route.name)}" must not be percent-encoded`);
      assertName(route.name);
    }
    return route;
  }
  return undefined;
}
