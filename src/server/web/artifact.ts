import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Annotation, MediaType, OciError, isOciError, type Descriptor, type Digest } from '../../spec/index.js';
import { semaphore } from '../../content/index.js';
import { TOC_DIGEST_ANNOTATION } from '../../estargz/index.js';
import type { WebDeps } from './deps.js';
import { ByteLru } from './lru.js';
import { factsFor, platformOf, readChart, readSmallBlob, readmeAndLicense, MAX_CHART, MAX_CONFIG, type ChartContents, type Fact } from './artifact-facts.js';
import { parseManifest, readDigest, readRef, readRepo, resolveName, type ParsedManifest } from './artifact-params.js';
import { handleDownload } from './download.js';
import { HelmMediaType, kindOf } from './kinds.js';
import { ListingCache, listLayer, openLayer, ZSTD_AVAILABLE, type CachedListing, type LayerEntry } from './layers.js';
import { pullCommands, safeHost } from './pull-commands.js';
import { countReferrers, referrerTree, TREE_LIMITS } from './referrers.js';
import type { SqliteDb, SqliteStatement } from '../sqlite.js';
import type { ArtifactDetail, FileEntry, LayerFiles, ReferrerNode } from './types.js';
import { requireAccess, viewerOf, type Viewer } from './viewer.js';

/** Content by digest the page reads again and again: configs, READMEs and LICENSEs, charts' contents. */
interface Caches {
  blobs: ByteLru<Buffer>;
  charts: ByteLru<ChartContents | null>;
}

/** wharf push's annotation of a file's permission bits (octal); src/client/push.ts. */
const MODE_ANNOTATION = 'io.wharf.content.mode';

/** An index's children are each fetched (kind, size, referrer counts) up to this many; the rest are listed as they are. */
const MAX_CHILDREN = 64;

function json(reply: FastifyReply, body: unknown): FastifyReply {
  // What a viewer may see depends on who they are: never cached for another.
  return reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));
}

/** The web API's artifact pages, files, downloads, referrers. */
export function installArtifact(app: FastifyInstance, deps: WebDeps): void {
  const listings = new ListingCache();
  const caches: Caches = {
    blobs: new ByteLru<Buffer>(16 << 20, (b) => b.length),
    charts: new ByteLru<ChartContents | null>(8 << 20, (c) => 2000 + (c?.readme?.text.length ?? 0) * 2 + (c?.license?.text.length ?? 0) * 2 + JSON.stringify(c?.chartYaml ?? null).length * 2),
  };
  // Listings being read, by layer digest (each caller checked the repository holds the layer).
  const inFlight = new Map<string, Promise<CachedListing>>();
  app.get('/api/v1/artifact', async (req, reply) => json(reply, await artifactDetail(deps, req, caches)));
  app.get('/api/v1/files', async (req, reply) => json(reply, await layerFiles(deps, req, listings, inFlight)));
  app.get('/api/v1/download', async (req, reply) => {
    await handleDownload(deps, req, reply);
    return reply;
  });
}

async function access(deps: WebDeps, req: FastifyRequest, repo: string): Promise<{ viewer: Viewer; name: string }> {
  const viewer = await viewerOf(req, deps);
  const name = await resolveName(deps, repo);
  requireAccess(viewer, name, 'pull');
  return { viewer, name };
}

const q = (req: FastifyRequest): Record<string, string | undefined> => req.query as Record<string, string | undefined>;

function downloadUrl(params: Record<string, string>): string {
  return `/api/v1/download?${new URLSearchParams(params)}`;
}

function modeOf(l: Descriptor): number | null {
  const m = l.annotations?.[MODE_ANNOTATION];
  return m !== undefined && /^[0-7]{1,6}$/.test(m) ? parseInt(m, 8) : null;
}

/** Titled layers as files of the artifact (each downloads whole, named by its title). */
function titledFiles(repo: string, digest: string, m: ParsedManifest): FileEntry[] {
  return m.layers
    .filter((l) => l.annotations?.[Annotation.Title])
    .map((l) => ({
      path: l.annotations![Annotation.Title]!,
      size: l.size,
      mediaType: l.mediaType,
      layer: l.digest,
      whole: true,
      type: 'file' as const,
      mode: modeOf(l),
      download: downloadUrl({ repo, ref: digest, layer: l.digest }),
    }));
}

interface AuditStatements {
  push: SqliteStatement;
  v2: SqliteStatement;
  web: SqliteStatement;
}
/** Prepared once per database: preparing costs more than the queries. */
const statements = new WeakMap<SqliteDb, AuditStatements>();

function statementsOf(db: SqliteDb): AuditStatements {
  let st = statements.get(db);
  if (!st) {
    st = {
      push: db.prepare("SELECT user, time FROM requests WHERE digest = ? AND repo = ? AND action = 'push' AND method = 'PUT' AND status < 300 ORDER BY id ASC LIMIT 1"),
      v2: db.prepare('SELECT COUNT(*) AS n, MAX(last_time) AS last FROM downloads WHERE repo = ? AND digest = ?'),
      web: db.prepare("SELECT COUNT(*) AS n, MAX(time) AS last FROM requests WHERE digest IN (SELECT value FROM json_each(?)) AND repo = ? AND file IS NOT NULL AND action = 'pull' AND status < 300"),
    };
    statements.set(db, st);
  }
  return st;
}

/** The audit log's facts of an artifact: who pushed it first and when, downloads, last pull. */
async function auditFacts(deps: WebDeps, name: string, digest: string, layers: string[]): Promise<Pick<ArtifactDetail, 'pushedBy' | 'pushed' | 'downloads' | 'lastPulled'>> {
  const audit = deps.audit;
  if (!audit) return { pushedBy: null, pushed: null, downloads: null, lastPulled: null };
  // Flushed first: the page shows pulls journaled a moment ago, not only those of the last batch.
  await audit.catchUp();
  const st = statementsOf(audit.db.db);
  const push = st.push.get(digest, name);
  // Artifact downloads by /v2 (a manifest pull and its blobs, grouped by the audit log) ...
  const v2 = st.v2.get(name, digest);
  // ... and from the UI: one file, a whole layer, or the whole artifact as a tar.
  const web = st.web.get(JSON.stringify([digest, ...layers].slice(0, 1000)), name);
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null);
  const lastPulled = Math.max(num(v2?.last) ?? -1, num(web?.last) ?? -1);
  return {
    pushedBy: typeof push?.user === 'string' ? push.user : null,
    pushed: num(push?.time),
    downloads: (num(v2?.n) ?? 0) + (num(web?.n) ?? 0),
    lastPulled: lastPulled < 0 ? null : lastPulled,
  };
}

function createdOf(m: ParsedManifest, config: unknown): number | null {
  const a = Date.parse(m.annotations[Annotation.Created] ?? '');
  if (Number.isFinite(a)) return a;
  const c = typeof config === 'object' && config !== null ? (config as { created?: unknown; descriptor?: { createdAt?: unknown } }) : undefined;
  const t = Date.parse(typeof c?.created === 'string' ? c.created : typeof c?.descriptor?.createdAt === 'string' ? c.descriptor.createdAt : '');
  return Number.isFinite(t) ? t : null;
}

async function artifactDetail(deps: WebDeps, req: FastifyRequest, caches: Caches): Promise<ArtifactDetail> {
  const repo = readRepo(q(req));
  const ref = readRef(q(req));
  const { viewer, name } = await access(deps, req, repo);
  const backend = deps.backend;
  const stored = await backend.getManifest(name, ref);
  const m = parseManifest(stored.body);
  const digest = stored.digest;
  const extraFacts: Fact[] = [];

  let config: unknown = null;
  if (m.config && !m.manifests && m.config.mediaType !== MediaType.EmptyJSON && m.config.size > 2) {
    if (m.config.size > MAX_CONFIG) extraFacts.push({ label: 'Config', value: `${m.config.size} bytes: over the ${MAX_CONFIG >> 20} MiB the page reads` });
    else {
      try {
        const buf = await readSmallBlob(backend, name, m.config, MAX_CONFIG, caches.blobs);
        config = buf ? JSON.parse(buf.toString('utf8')) : null;
      } catch (err) {
        if (!(err instanceof SyntaxError) && !isOciError(err)) throw err;
        extraFacts.push({ label: 'Config', value: err instanceof SyntaxError ? 'not JSON' : `unreadable: ${(err as Error).message.slice(0, 200)}` });
        config = null;
      }
    }
  }
  const kind = kindOf(stored.mediaType, m.artifactType ?? null, m.config?.mediaType ?? null, m.annotations, m.layers);

  // A chart's Chart.yaml, values.yaml and README come from its chart layer.
  let chart: ChartContents | undefined;
  const chartLayer = kind.kind === 'helm-chart' ? m.layers.find((l) => l.mediaType === HelmMediaType.Chart || l.mediaType === 'application/tar+gzip') : undefined;
  const cachedChart = chartLayer ? caches.charts.get(chartLayer.digest) : undefined;
  if (cachedChart !== undefined) chart = cachedChart ?? undefined;
  else if (chartLayer && chartLayer.size <= MAX_CHART) {
    try {
      chart = await readChart({ handle: await backend.openBlob(name, chartLayer.digest, true), format: 'tar+gzip', verify: chartLayer });
      caches.charts.set(chartLayer.digest, chart ?? null);
    } catch (err) {
      if (!isOciError(err)) throw err;
      extraFacts.push({ label: 'Chart', value: `unreadable: ${err.message.slice(0, 200)}` });
    }
  }

  const files = titledFiles(repo, digest, m);
  if (chart?.values && chartLayer) {
    files.push({ path: chart.values.path, size: chart.values.size, mediaType: 'application/yaml', layer: chartLayer.digest, whole: false, type: 'file', mode: chart.values.mode, download: downloadUrl({ repo, layer: chartLayer.digest, path: chart.values.path }) });
  }

  // An index: its children, with platform, kind and size.
  const children: ArtifactDetail['children'] = [];
  const childReferrers: ReferrerNode[][] = [];
  let size = stored.body.length;
  // Children are read a few at a time: an index of twenty platforms is twenty manifests.
  const limit = semaphore(8);
  if (m.manifests) {
    const read = await Promise.all(
      m.manifests.map((c, i) =>
        limit(async () => {
          let kind = kindOf(c.mediaType, c.artifactType ?? null, null, c.annotations ?? {});
          let childSize = c.size;
          let counts: ReferrerNode[] = [];
          if (i < MAX_CHILDREN) {
            try {
              const cm = await backend.getManifest(name, c.digest);
              const p = parseManifest(cm.body);
              kind = kindOf(cm.mediaType, p.artifactType ?? c.artifactType ?? null, p.config?.mediaType ?? null, { ...p.annotations, ...c.annotations }, p.layers);
              childSize = cm.body.length + (p.config?.size ?? 0) + p.layers.reduce((n, l) => n + l.size, 0) + (p.manifests ?? []).reduce((n, x) => n + x.size, 0);
            } catch (err) {
              if (!isOciError(err)) throw err;
            }
            // Per-platform signatures and SBOMs (Docker's and cosign's) hang off an index's children.
            counts = await referrerTree(backend, name, c.digest, { depth: 2, max: 50 });
          }
          return { child: { digest: c.digest, mediaType: c.mediaType, platform: platformOf(c.platform), kind, size: childSize }, counts };
        }),
      ),
    );
    for (const r of read) {
      size += r.child.size;
      children.push(r.child);
      childReferrers.push(r.counts);
    }
  } else {
    size += (m.config?.size ?? 0) + m.layers.reduce((n, l) => n + l.size, 0);
  }

  const { readme, license } = await readmeAndLicense(backend, name, m, chart, caches.blobs);

  const referrers = await referrerTree(backend, name, digest as Digest, { ...TREE_LIMITS, cosignTags: backend.namespaceOf(name) === undefined });
  const referrerCounts = countReferrers(referrers, {});
  for (const nodes of childReferrers) countReferrers(nodes, referrerCounts);

  const facts = [...factsFor(kind, m, config, chart), ...extraFacts];
  if (m.manifests) facts.push({ label: 'Manifests', value: String(m.manifests.length) });

  const host = safeHost(req.headers.host) ?? deps.config.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const pull = pullCommands(kind, {
    host,
    repo,
    tag: ref.includes(':') ? null : ref,
    digest,
    plainHttp: req.protocol === 'http',
    signed: { cosign: referrers.some((n) => n.kind.kind === 'signature-cosign'), notation: referrers.some((n) => n.kind.kind === 'signature-notation') },
  });

  return {
    repo,
    tag: ref.includes(':') ? null : ref,
    digest,
    mediaType: stored.mediaType,
    artifactType: m.artifactType ?? null,
    kind,
    size,
    created: createdOf(m, config),
    ...(await auditFacts(deps, name, digest, m.layers.map((l) => l.digest))),
    annotations: m.annotations,
    manifest: m.raw,
    config,
    facts,
    children,
    files,
    readme,
    license,
    referrers,
    referrerCounts,
    pull,
    can: { delete: deps.config.delete.enabled && viewer.can(name, 'delete') },
  };
}

function fileEntry(repo: string, layer: string, ref: string | undefined, e: LayerEntry): FileEntry {
  return { path: e.path, size: e.size, mediaType: null, layer, whole: false, type: e.type, mode: e.mode, download: e.type === 'file' ? downloadUrl({ repo, ...(ref ? { ref } : {}), layer, path: e.path }) : '' };
}

/**
 * `?repo=&layer=`, and optionally `ref`: the manifest that names the layer. With it, an eStargz
 * TOC is checked against the layer's toc.digest annotation, and the download links carry it too.
 */
async function layerFiles(deps: WebDeps, req: FastifyRequest, cache: ListingCache, listingsInFlight: Map<string, Promise<CachedListing>>): Promise<LayerFiles> {
  const repo = readRepo(q(req));
  const layer = readDigest(q(req), 'layer');
  const ref = q(req).ref !== undefined ? readRef(q(req)) : undefined;
  const { name } = await access(deps, req, repo);
  let tocDigest: string | undefined;
  if (ref !== undefined) {
    const stored = await deps.backend.getManifest(name, ref);
    const desc = parseManifest(stored.body).layers.find((l) => l.digest === layer);
    if (!desc) throw new OciError('BLOB_UNKNOWN', `layer ${layer} is not in the manifest ${stored.digest}`, { detail: { digest: layer } });
    tocDigest = desc.annotations?.[TOC_DIGEST_ANNOTATION];
  }
  // The repository must hold the layer: a listing cached for another repository is not shown otherwise.
  await deps.backend.openBlob(name, layer, false);
  const key = `${layer}|${tocDigest ?? ''}`;
  let listing = cache.get(key);
  if (!listing) {
    // One read of a layer for every viewer asking for it at once: a tar.gz is read whole to be listed.
    let p = listingsInFlight.get(key);
    if (!p) {
      p = (async () => {
        const opened = await openLayer(deps.backend, name, layer, tocDigest);
        const { entries, truncated } = await listLayer(opened);
        const l: CachedListing = { format: opened.format, entries, truncated };
        cache.set(key, l);
        return l;
      })().finally(() => listingsInFlight.delete(key));
      listingsInFlight.set(key, p);
    }
    listing = await p;
  }
  const out: LayerFiles = { layer, format: listing.format, files: listing.entries.map((e) => fileEntry(repo, layer, ref, e)), truncated: listing.truncated };
  if (listing.format === 'tar+zstd' && !ZSTD_AVAILABLE) out.note = 'zstd layers cannot be listed by this server (its Node has no zstd decoder; Node 22.15 or newer has)';
  return out;
}
