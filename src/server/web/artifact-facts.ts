import { parse as parseYaml } from 'yaml';
import { readAllVerified } from '../../content/index.js';
import { Annotation, isOciError, type Descriptor } from '../../spec/index.js';
import type { RegistryBackend } from '../store/index.js';
import type { ByteLru } from './lru.js';
import { HelmMediaType } from './kinds.js';
import { entryOf, type OpenedLayer, tarEntries } from './layers.js';
import type { ParsedManifest } from './artifact-params.js';
import type { ArtifactDetail, KindInfo } from './types.js';

/** What the artifact page shows beside the files, per kind, and where its README and LICENSE come from. */

export type Fact = ArtifactDetail['facts'][number];

/** A config is parsed only up to this size; a larger one is shown as null, with a fact that says so. */
export const MAX_CONFIG = 4 << 20;
/** README, LICENSE, Chart.yaml: read only up to this size. */
export const MAX_TEXT = 1 << 20;
/** A chart layer is opened to read Chart.yaml and README only up to this size. */
export const MAX_CHART = 16 << 20;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

function push(facts: Fact[], label: string, value: unknown): void {
  const s = Array.isArray(value) ? value.filter((x) => typeof x === 'string' || typeof x === 'number').join(' ') : str(value);
  if (s !== undefined && s !== '') facts.push({ label, value: s.slice(0, 4096) });
}

/** `os/arch[/variant]`, or null for Docker's attestation manifests (unknown/unknown). */
export function platformOf(p: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined): string | null {
  if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') return null;
  if (p.os === 'unknown' && p.architecture === 'unknown') return null;
  return [p.os, p.architecture, typeof p.variant === 'string' ? p.variant : undefined].filter(Boolean).join('/');
}

/**
 * Reads a small blob whole, verified against its descriptor (once: then from `cache`, by digest);
 * undefined when it is over `limit`. The caller got `d` from a manifest of `name` it may read.
 */
export async function readSmallBlob(backend: RegistryBackend, name: string, d: Descriptor, limit: number, cache?: ByteLru<Buffer>): Promise<Buffer | undefined> {
  if (d.size > limit) return undefined;
  if (d.size === 0) return Buffer.alloc(0);
  const hit = cache?.get(d.digest);
  if (hit) return hit;
  const h = await backend.openBlob(name, d.digest, true);
  const buf = await readAllVerified(await h.stream({ start: 0, end: d.size - 1 }), d, limit);
  cache?.set(d.digest, buf);
  return buf;
}

/** The facts of an image config (OCI or Docker): platform, entrypoint, cmd, env, ports, user, workdir. */
function imageFacts(facts: Fact[], config: unknown): void {
  if (!isObject(config)) return;
  const platform = platformOf(config as { os?: unknown; architecture?: unknown; variant?: unknown });
  if (platform) push(facts, 'Platform', platform);
  const c = isObject(config.config) ? config.config : {};
  push(facts, 'Entrypoint', c.Entrypoint);
  push(facts, 'Command', c.Cmd);
  push(facts, 'Working directory', c.WorkingDir);
  push(facts, 'User', c.User);
  if (isObject(c.ExposedPorts)) push(facts, 'Exposed ports', Object.keys(c.ExposedPorts).join(', '));
  if (Array.isArray(c.Env)) for (const e of c.Env.slice(0, 100)) if (typeof e === 'string') facts.push({ label: 'Environment', value: e.slice(0, 4096) });
  if (isObject(c.Labels)) for (const [k, v] of Object.entries(c.Labels).slice(0, 50)) if (typeof v === 'string') facts.push({ label: `Label ${k}`, value: v.slice(0, 4096) });
}

/** Model facts from a ModelPack config (descriptor, config) or a Docker model config (config). */
function modelFacts(facts: Fact[], config: unknown, annotations: Record<string, string>): void {
  if (isObject(config)) {
    const d = isObject(config.descriptor) ? config.descriptor : {};
    push(facts, 'Name', d.name ?? d.title);
    push(facts, 'Version', d.version);
    push(facts, 'Family', d.family);
    push(facts, 'Vendor', d.vendor);
    push(facts, 'Licenses', Array.isArray(d.licenses) ? d.licenses.join(', ') : d.licenses);
    const c = isObject(config.config) ? config.config : {};
    push(facts, 'Format', c.format);
    push(facts, 'Architecture', c.architecture);
    push(facts, 'Parameters', c.paramSize ?? c.parameters);
    push(facts, 'Precision', c.precision);
    push(facts, 'Quantization', c.quantization);
    push(facts, 'Size', c.size);
    push(facts, 'Context size', c.context_size ?? c.contextSize);
  }
  for (const [k, v] of Object.entries(annotations)) {
    if (/^org\.(cncf|cnai)\.model\./.test(k)) push(facts, k.replace(/^org\.(cncf|cnai)\.model\./, 'Model '), v);
  }
}

/** Chart.yaml (or the Helm config, which holds the same metadata as JSON) as facts. */
function chartFacts(facts: Fact[], chart: unknown): void {
  if (!isObject(chart)) return;
  push(facts, 'Chart', chart.name);
  push(facts, 'Version', chart.version);
  push(facts, 'App version', chart.appVersion);
  push(facts, 'Description', chart.description);
  push(facts, 'Type', chart.type);
  push(facts, 'API version', chart.apiVersion);
  push(facts, 'Kubernetes', chart.kubeVersion);
  push(facts, 'Home', chart.home);
  if (Array.isArray(chart.keywords)) push(facts, 'Keywords', chart.keywords.filter((k) => typeof k === 'string').join(', '));
  if (Array.isArray(chart.dependencies)) push(facts, 'Dependencies', chart.dependencies.map((d) => (isObject(d) ? `${str(d.name) ?? '?'}${d.version ? ` ${str(d.version)}` : ''}` : '')).filter(Boolean).join(', '));
  if (Array.isArray(chart.maintainers)) push(facts, 'Maintainers', chart.maintainers.map((m) => (isObject(m) ? str(m.name) : undefined)).filter(Boolean).join(', '));
}

export interface ChartContents {
  /** The chart's directory in the archive (`mychart`). */
  dir: string;
  chartYaml: unknown;
  values: { path: string; size: number; mode: number | null } | undefined;
  readme: { path: string; text: string } | undefined;
  license: { path: string; text: string } | undefined;
}

/**
 * Reads a chart layer (a tar.gz of `<chart>/...`) for Chart.yaml, values.yaml, README and
 * LICENSE of the top-level chart (subcharts under `charts/` are skipped). The layer is read to
 * its end, so that it is verified against its digest before anything from it is shown.
 */
export async function readChart(layer: OpenedLayer): Promise<ChartContents | undefined> {
  const out: ChartContents = { dir: '', chartYaml: undefined, values: undefined, readme: undefined, license: undefined };
  const take = async (body: AsyncIterable<Buffer>, size: number): Promise<string | undefined> => {
    if (size > MAX_TEXT) return undefined;
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    return Buffer.concat(parts).toString('utf8');
  };
  let n = 0;
  for await (const { header, body } of tarEntries(layer)) {
    const e = entryOf(header);
    const parts = e.path.split('/');
    if (++n > 10_000 || e.type !== 'file' || parts.length !== 2) {
      body.resume();
      continue;
    }
    const [dir, file] = parts as [string, string];
    if (out.dir !== '' && dir !== out.dir) {
      body.resume();
      continue;
    }
    if (file === 'Chart.yaml') {
      const text = await take(body as AsyncIterable<Buffer>, e.size);
      out.dir = dir;
      try {
        out.chartYaml = text === undefined ? undefined : parseYaml(text, { maxAliasCount: 100 });
      } catch {
        out.chartYaml = undefined;
      }
    } else if (file === 'values.yaml') {
      out.values = { path: e.path, size: e.size, mode: e.mode };
      body.resume();
    } else if (/^readme(\.md|\.markdown|\.txt)?$/i.test(file) && !out.readme) {
      const text = await take(body as AsyncIterable<Buffer>, e.size);
      if (text !== undefined) out.readme = { path: e.path, text };
    } else if (/^(licen[cs]e|copying)(\.md|\.txt)?$/i.test(file) && !out.license) {
      const text = await take(body as AsyncIterable<Buffer>, e.size);
      if (text !== undefined) out.license = { path: e.path, text };
    } else body.resume();
  }
  return out.dir === '' && !out.values ? undefined : out;
}

/** Everything per kind the page shows as facts: from the config, the annotations and the layers. */
export function factsFor(kind: KindInfo, m: ParsedManifest, config: unknown, chart: ChartContents | undefined): Fact[] {
  const facts: Fact[] = [];
  const a = m.annotations;
  switch (kind.kind) {
    case 'image':
      imageFacts(facts, config);
      break;
    case 'helm-chart':
      chartFacts(facts, chart?.chartYaml ?? config);
      if (m.layers.some((l) => l.mediaType === HelmMediaType.Provenance)) facts.push({ label: 'Provenance', value: 'signed (.prov file)' });
      break;
    case 'ml-model':
      modelFacts(facts, config, a);
      break;
    case 'wasm':
      if (isObject(config)) {
        push(facts, 'Platform', platformOf(config as { os?: unknown; architecture?: unknown }) ?? undefined);
        if (isObject(config.component)) {
          const c = config.component;
          if (Array.isArray(c.exports)) push(facts, 'Exports', c.exports.filter((x) => typeof x === 'string').join(', '));
          if (Array.isArray(c.imports)) push(facts, 'Imports', c.imports.filter((x) => typeof x === 'string').join(', '));
        }
      }
      break;
    default:
      break;
  }
  const predicate = a['in-toto.io/predicate-type'] ?? a.predicateType ?? a['dev.sigstore.bundle.predicateType'] ?? m.layers.map((l) => l.annotations?.['in-toto.io/predicate-type'] ?? l.annotations?.predicateType).find(Boolean);
  if (predicate) push(facts, 'Predicate type', predicate);
  if (m.subject) push(facts, 'Subject', m.subject.digest);
  if (m.artifactType) push(facts, 'Artifact type', m.artifactType);
  if (m.config && m.config.mediaType !== 'application/vnd.oci.empty.v1+json') push(facts, 'Config type', m.config.mediaType);
  if (!m.manifests) push(facts, 'Layers', String(m.layers.length));
  push(facts, 'Source', a['org.opencontainers.image.source']);
  push(facts, 'Revision', a['org.opencontainers.image.revision']);
  push(facts, 'Version', kind.kind === 'helm-chart' ? undefined : a['org.opencontainers.image.version']);
  push(facts, 'Vendor', a['org.opencontainers.image.vendor']);
  push(facts, 'Licenses', a['org.opencontainers.image.licenses']);
  return facts;
}

const README = /^readme(\.(md|markdown|txt|rst))?$/i;
const LICENSE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;

/** The base name of a layer's title (a title may be a path). */
function titleBase(l: Descriptor): string | undefined {
  const t = l.annotations?.[Annotation.Title];
  return t === undefined ? undefined : t.split('/').pop();
}

/**
 * README and LICENSE: a titled layer named README* / LICENSE* (or a Docker model's license
 * layer), else the chart's own, else the description / licenses annotations.
 */
export async function readmeAndLicense(
  backend: RegistryBackend,
  name: string,
  m: ParsedManifest,
  chart: ChartContents | undefined,
  cache?: ByteLru<Buffer>,
): Promise<{ readme: ArtifactDetail['readme']; license: ArtifactDetail['license'] }> {
  const text = async (l: Descriptor): Promise<string | undefined> => {
    try {
      return (await readSmallBlob(backend, name, l, MAX_TEXT, cache))?.toString('utf8');
    } catch (err) {
      if (isOciError(err)) return undefined;
      throw err;
    }
  };
  let readme: ArtifactDetail['readme'] = null;
  let license: ArtifactDetail['license'] = null;
  const rl = m.layers.find((l) => README.test(titleBase(l) ?? ''));
  if (rl) {
    const t = await text(rl);
    if (t !== undefined) readme = { source: `file:${rl.annotations![Annotation.Title]}`, markdown: t };
  }
  const ll = m.layers.find((l) => LICENSE.test(titleBase(l) ?? '')) ?? m.layers.find((l) => l.mediaType === 'application/vnd.docker.ai.license');
  if (ll) {
    const t = await text(ll);
    if (t !== undefined) license = { source: `file:${ll.annotations?.[Annotation.Title] ?? ll.digest}`, text: t };
  }
  if (!readme && chart?.readme) readme = { source: `chart:${chart.readme.path}`, markdown: chart.readme.text };
  if (!license && chart?.license) license = { source: `chart:${chart.license.path}`, text: chart.license.text };
  const desc = m.annotations['org.opencontainers.image.description'];
  if (!readme && desc) readme = { source: 'annotation:org.opencontainers.image.description', markdown: desc };
  const lic = m.annotations['org.opencontainers.image.licenses'];
  if (!license && lic) license = { source: 'annotation:org.opencontainers.image.licenses', text: lic };
  return { readme, license };
}
