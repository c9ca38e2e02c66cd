import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Counter } from 'prom-client';
import { isDigest, type Digest } from '../../spec/index.js';
import type { StorageDriver } from '../driver/index.js';
import { listCache, type RegistryStore } from '../store/index.js';
// The layout's one source of truth; the store's index does not export it.
import { paths } from '../store/paths.js';
import { signedInAdmin } from './signed-in.js';
import type { WebDeps } from './deps.js';
import type { CacheStatus, StorageUse } from './types.js';

/** A walk of the store is kept this long: on S3 every directory is a LIST request. */
export const ADMIN_CACHE_MS = 60_000;
/** Bounds of one walk: past them it stops and says `truncated`. */
const MAX_REPOS = 10_000;
const MAX_BLOBS = 250_000;
/** Stats in flight at once during a walk. */
const PARALLEL = 16;

/** A value computed at most once per ADMIN_CACHE_MS; callers meanwhile share the one under way. */
class Kept<T> {
  /** When the kept value was made; Infinity while it is being made (a slow walk is not started twice). */
  private at = 0;
  private value: Promise<T> | undefined;

  constructor(private readonly compute: () => Promise<T>) {}

  get(now = Date.now()): Promise<T> {
    if (!this.value || now - this.at > ADMIN_CACHE_MS) {
      this.at = Infinity;
      const v = this.compute();
      v.then(
        () => {
          if (this.value === v) this.at = Date.now();
        },
        // A failed walk is not kept: the next request tries again.
        () => {
          if (this.value === v) this.value = undefined;
        },
      );
      this.value = v;
    }
    return this.value;
  }
}

async function linked(driver: StorageDriver, dir: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of await driver.list(dir)) for (const hex of await driver.list(`${dir}/${alg}`)) if (isDigest(`${alg}:${hex}`)) out.push(`${alg}:${hex}` as Digest);
  return out;
}

/** Runs `fn` over `items`, PARALLEL at a time. */
async function each<T>(items: T[], fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}

/**
 * Bytes per repository: the blobs (manifests included) it links, each stat'ed once however many
 * repositories link it. Through the driver interface only, so it works on any backend.
 */
export async function storageUse(store: RegistryStore, now = Date.now()): Promise<StorageUse> {
  const driver = store.driver;
  let repos = await store.catalog();
  let truncated = repos.length > MAX_REPOS;
  repos = repos.slice(0, MAX_REPOS);
  const sizes = new Map<string, number>();
  const out: StorageUse['repositories'] = [];
  for (const name of repos) {
    if (sizes.size >= MAX_BLOBS) {
      truncated = true;
      break;
    }
    const digests = [...new Set([...(await linked(driver, paths.blobLinks(name))), ...(await linked(driver, paths.manifestLinks(name)))])];
    const todo = digests.filter((d) => !sizes.has(d)).slice(0, MAX_BLOBS - sizes.size);
    if (todo.length < digests.filter((d) => !sizes.has(d)).length) truncated = true;
    await each(todo, async (d) => {
      // A link whose data is gone (a blob being collected) counts nothing.
      sizes.set(d, (await driver.stat(paths.blobData(d)))?.size ?? 0);
    });
    let size = 0;
    let blobs = 0;
    for (const d of digests) {
      const s = sizes.get(d);
      if (s === undefined) continue;
      size += s;
      blobs++;
    }
    out.push({ name, size, blobs });
  }
  let total = 0;
  for (const s of sizes.values()) total += s;
  out.sort((a, b) => b.size - a.size || a.name.localeCompare(b.name));
  return { total, repositories: out, computed: now, truncated };
}

/** The sum of a counter's values for one namespace label (or all). */
async function sum(c: Counter<'namespace' | 'kind'>, namespace?: string): Promise<number> {
  let n = 0;
  for (const v of (await c.get()).values) if (namespace === undefined || v.labels.namespace === namespace) n += v.value;
  return n;
}

/** An upstream's URL as shown to admins: without credentials someone put in it. */
function shownUrl(u: URL): string {
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  return c.href;
}

/** `GET /api/v1/admin/cache` and `GET /api/v1/admin/storage`: admins only (auth off: loopback only). */
export function installAdmin(app: FastifyInstance, deps: WebDeps): void {
  const storage = new Kept(() => storageUse(deps.store));
  const cached = new Kept(async () => {
    const proxy = deps.proxy;
    if (!proxy) return [];
    return listCache(deps.store, { namespaces: proxy.upstreams.map((u) => u.namespace) });
  });
  const json = (reply: FastifyReply, body: unknown): FastifyReply => reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));

  app.get('/api/v1/admin/storage', async (req, reply) => {
    await signedInAdmin(req, reply, deps);
    return json(reply, await storage.get());
  });

  app.get('/api/v1/admin/cache', async (req, reply) => {
    await signedInAdmin(req, reply, deps);
    const proxy = deps.proxy;
    const now = Date.now();
    if (!proxy) {
      const body: CacheStatus = { upstreams: [], repositories: [], hits: 0, misses: 0, computed: now };
      return json(reply, body);
    }
    const m = proxy.metrics;
    const upstreams: CacheStatus['upstreams'] = [];
    for (const u of proxy.upstreams) {
      const downUntil = u.downUntilTime();
      upstreams.push({
        name: u.namespace,
        url: shownUrl(u.url),
        healthy: downUntil === null,
        downUntil,
        lastError: null,
        namespaces: [u.namespace],
        hits: await sum(m.hits, u.namespace),
        misses: await sum(m.misses, u.namespace),
        errors: await sum(m.errors, u.namespace),
      });
    }
    const [images, use] = await Promise.all([cached.get(), storage.get()]);
    const sizeOf = new Map(use.repositories.map((r) => [r.name, r.size]));
    const repos = new Map<string, CacheStatus['repositories'][number]>();
    for (const i of images) {
      const r = repos.get(i.repository) ?? { name: i.repository, size: sizeOf.get(i.repository) ?? 0, images: 0, lastPulled: null };
      r.images++;
      r.lastPulled = Math.max(r.lastPulled ?? 0, i.lastAccess.getTime()) || null;
      repos.set(i.repository, r);
    }
    if (deps.audit) {
      await deps.audit.catchUp();
      for (const r of repos.values()) {
        const t = deps.audit.db.analytics.lastPulled(r.name);
        if (t !== null) r.lastPulled = Math.max(r.lastPulled ?? 0, t);
      }
    }
    const body: CacheStatus = {
      upstreams,
      repositories: [...repos.values()].sort((a, b) => b.size - a.size || a.name.localeCompare(b.name)),
      hits: await sum(m.hits),
      misses: await sum(m.misses),
      computed: use.computed,
    };
    return json(reply, body);
  });
}
