import { isOciError, type Descriptor, type Digest } from '../../spec/index.js';
import type { RegistryBackend } from '../store/index.js';
import { kindOf } from './kinds.js';
import { parseManifest } from './artifact-params.js';
import type { ReferrerNode } from './types.js';

/** How far a referrer tree is walked: a signature of an SBOM of an image is depth 2. */
export interface TreeLimits {
  depth: number;
  /** Nodes in the whole tree at most; what is beyond is left out. */
  max: number;
  /**
   * Also look for cosign's tag-attached signatures (`sha256-<hex>.sig`) of the subject: three
   * manifest lookups, so off where each would go to an upstream (a pull-through cache).
   */
  cosignTags?: boolean;
}

export const TREE_LIMITS: TreeLimits = { depth: 3, max: 200, cosignTags: true };

const GROUP_ORDER: Record<string, number> = { signatures: 0, sboms: 1, attestations: 2, other: 3 };

function nodeOf(d: Descriptor): ReferrerNode {
  const annotations = d.annotations ?? {};
  return {
    digest: d.digest,
    mediaType: d.mediaType,
    artifactType: d.artifactType ?? null,
    kind: kindOf(d.mediaType, d.artifactType ?? null, null, annotations),
    size: d.size,
    annotations,
    children: [],
  };
}

function sortNodes(nodes: ReferrerNode[]): ReferrerNode[] {
  return nodes.sort((a, b) => (GROUP_ORDER[a.kind.group ?? 'other'] ?? 3) - (GROUP_ORDER[b.kind.group ?? 'other'] ?? 3) || a.kind.label.localeCompare(b.kind.label) || a.digest.localeCompare(b.digest));
}

/**
 * cosign's signatures, attestations and SBOMs attached the old way, by tag (`sha256-<hex>.sig`,
 * `.att`, `.sbom`), which the referrers API does not list: their kind comes from their layers.
 */
async function cosignTagged(backend: RegistryBackend, name: string, subject: Digest): Promise<ReferrerNode[]> {
  const out: ReferrerNode[] = [];
  for (const suffix of ['sig', 'att', 'sbom']) {
    const tag = `${subject.replace(':', '-')}.${suffix}`;
    try {
      const m = await backend.getManifest(name, tag);
      const p = parseManifest(m.body);
      const node = nodeOf({ mediaType: m.mediaType, digest: m.digest, size: m.body.length, annotations: { ...p.annotations, 'io.wharf.cosign.tag': tag } });
      node.artifactType = p.artifactType ?? p.config?.mediaType ?? null;
      node.kind = kindOf(m.mediaType, p.artifactType ?? null, p.config?.mediaType ?? null, p.annotations, p.layers);
      out.push(node);
    } catch (err) {
      if (!isOciError(err)) throw err;
    }
  }
  return out;
}

/**
 * The referrers of `subject` as a tree (each referrer's own referrers below it), grouped by kind:
 * signatures, SBOMs, attestations, then the rest. Bounded in depth and in nodes.
 */
export async function referrerTree(backend: RegistryBackend, name: string, subject: Digest, limits: TreeLimits = TREE_LIMITS, budget = { left: limits.max }, depth = 1): Promise<ReferrerNode[]> {
  if (depth > limits.depth || budget.left <= 0) return [];
  let listed: Descriptor[];
  try {
    listed = (await backend.listReferrers(name, subject, { n: Math.min(budget.left, 1000) })).items;
  } catch (err) {
    // A cache whose upstream has no referrers API, a subject gone: no referrers to show.
    if (isOciError(err)) return [];
    throw err;
  }
  const nodes = listed.slice(0, budget.left).map(nodeOf);
  budget.left -= nodes.length;
  if (depth === 1 && limits.cosignTags) {
    const tagged = (await cosignTagged(backend, name, subject)).filter((t) => !nodes.some((n) => n.digest === t.digest)).slice(0, Math.max(0, budget.left));
    budget.left -= tagged.length;
    nodes.push(...tagged);
  }
  for (const n of nodes) n.children = await referrerTree(backend, name, n.digest as Digest, limits, budget, depth + 1);
  return sortNodes(nodes);
}

/** Adds the nodes of a tree to `counts` by group, and to `total`. */
export function countReferrers(nodes: ReferrerNode[], counts: Record<string, number>): Record<string, number> {
  for (const n of nodes) {
    const g = n.kind.group ?? 'other';
    counts[g] = (counts[g] ?? 0) + 1;
    counts.total = (counts.total ?? 0) + 1;
    countReferrers(n.children, counts);
  }
  return counts;
}
