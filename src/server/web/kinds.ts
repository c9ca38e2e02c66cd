import type { ArtifactKind, KindInfo } from './types.js';

/**
 * The kind of an artifact, from its media types, artifactType and annotations: what the UI shows
 * instead of a registry's "UNKNOWN" or "/". Table-driven: each rule names the media types (exact,
 * or a prefix ending in `.` or `+`) that mark a kind, and the first rule that matches wins, in the
 * order below (a signature before an image: a cosign signature's config is an image config).
 *
 * Sources of the media types (their own documentation):
 * - image-spec v1.1 and Docker's schema 2 (src/spec/mediatype.ts);
 * - Helm: `application/vnd.cncf.helm.config.v1+json`, `…chart.content.v1.tar+gzip`, `…chart.provenance.v1.prov`;
 * - OpenTofu: artifactType `application/vnd.opentofu.modulepkg` (one `archive/zip` layer),
 *   `application/vnd.opentofu.provider` and `…provider-target` (opentofu.org, "OCI registries");
 * - CNCF ModelPack (model-spec): `application/vnd.cncf.model.*` (and the earlier `application/vnd.cnai.model.*`);
 *   Docker model artifacts: `application/vnd.docker.ai.*`; Ollama `application/vnd.ollama.image.*`; KitOps `application/vnd.kitops.*`;
 * - SBOMs: SPDX `application/spdx+json`, `text/spdx`; CycloneDX `application/vnd.cyclonedx+json|+xml`; Syft `application/vnd.syft+json`;
 * - cosign: `application/vnd.dev.cosign.simplesigning.v1+json` layers, artifactType `application/vnd.dev.cosign.artifact.sig.v1+json`,
 *   sigstore bundles `application/vnd.dev.sigstore.bundle.*`; notation: artifactType `application/vnd.cncf.notary.signature`;
 * - in-toto: `application/vnd.in-toto+json` (predicate type in `in-toto.io/predicate-type`), DSSE `application/vnd.dsse.envelope.v1+json`;
 *   Docker's attestation manifests in an index (`vnd.docker.reference.type: attestation-manifest`);
 * - WASM: `application/vnd.wasm.config.v0+json`/`v1`, layers `application/wasm`, `application/vnd.wasm.content.layer.v1+wasm`,
 *   `application/vnd.module.wasm.content.layer.v1+wasm`, `application/vnd.bytecodealliance.wasm.*`;
 * - STAC/EO data has no registered media type: a type naming `stac`, a `application/geo+json` layer,
 *   or a `stac`-prefixed annotation marks it.
 */

/** A layer as kindOf needs it: its media type and annotations. */
export interface LayerHint {
  mediaType: string;
  annotations?: Record<string, string> | undefined;
}

export const HelmMediaType = {
  Config: 'application/vnd.cncf.helm.config.v1+json',
  Chart: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
  Provenance: 'application/vnd.cncf.helm.chart.provenance.v1.prov',
} as const;

export const SignatureMediaType = {
  CosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  CosignArtifactSig: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  Notation: 'application/vnd.cncf.notary.signature',
  InToto: 'application/vnd.in-toto+json',
  Dsse: 'application/vnd.dsse.envelope.v1+json',
} as const;

const IMAGE_INDEX = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
const IMAGE_CONFIGS = ['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'];
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
/** Annotations that carry an in-toto predicate type (Docker's, cosign's, sigstore bundles'). */
const PREDICATE_KEYS = ['in-toto.io/predicate-type', 'predicateType', 'dev.sigstore.bundle.predicateType'];

const KIND_GROUPS: Record<ArtifactKind, KindInfo['group']> = {
  image: 'other',
  'image-index': 'other',
  'helm-chart': 'other',
  'terraform-module': 'other',
  'ml-model': 'other',
  'sbom-spdx': 'sboms',
  'sbom-cyclonedx': 'sboms',
  'signature-cosign': 'signatures',
  'signature-notation': 'signatures',
  attestation: 'attestations',
  stac: 'other',
  wasm: 'other',
  generic: 'other',
};

const ICONS: Record<ArtifactKind, string> = {
  image: 'image',
  'image-index': 'image-index',
  'helm-chart': 'helm',
  'terraform-module': 'terraform',
  'ml-model': 'model',
  'sbom-spdx': 'sbom',
  'sbom-cyclonedx': 'sbom',
  'signature-cosign': 'signature',
  'signature-notation': 'signature',
  attestation: 'attestation',
  stac: 'stac',
  wasm: 'wasm',
  generic: 'artifact',
};

function info(kind: ArtifactKind, label: string, icon?: string, group?: KindInfo['group']): KindInfo {
  return { kind, label, icon: icon ?? ICONS[kind], group: group === undefined ? KIND_GROUPS[kind] : group };
}

/** One rule: media types that mark a kind, where they may appear, and the label. */
interface Rule {
  /** Exact types, or prefixes (ending in `.`, `/` or `+`) matching any type that starts with them. */
  types: string[];
  /** Where to look: the artifact's own type (artifactType or config), or its layers too. */
  in: 'type' | 'any';
  make: (ctx: Ctx) => KindInfo;
}

interface Ctx {
  annotations: Record<string, string>;
  layers: LayerHint[];
  /** The predicate type of an in-toto attestation, if an annotation tells it. */
  predicate: string | undefined;
}

function matches(pattern: string, type: string): boolean {
  const t = type.toLowerCase();
  return /[./+]$/.test(pattern) ? t.startsWith(pattern) : t === pattern || t.split(';')[0]!.trim() === pattern;
}

/** What an attestation attests, from its predicate type: SBOMs are shown as SBOMs. */
function attestationKind(predicate: string | undefined, label = 'in-toto attestation'): KindInfo {
  const p = (predicate ?? '').toLowerCase();
  if (p.includes('spdx')) return info('sbom-spdx', 'SPDX SBOM (attestation)', 'sbom', 'sboms');
  if (p.includes('cyclonedx')) return info('sbom-cyclonedx', 'CycloneDX SBOM (attestation)', 'sbom', 'sboms');
  if (p.includes('slsa.dev/provenance')) return info('attestation', 'SLSA provenance');
  if (p.includes('openvex') || p.includes('/vex')) return info('attestation', 'VEX attestation');
  if (p.includes('cosign/vuln') || p.includes('vuln')) return info('attestation', 'Vulnerability scan');
  if (p.includes('sigstore.dev/cosign/sign')) return info('signature-cosign', 'Cosign signature (bundle)');
  return info('attestation', label);
}

const RULES: Rule[] = [
  // Signatures and attestations first: cosign's tag-based signatures carry an image config.
  { types: [SignatureMediaType.Notation], in: 'type', make: () => info('signature-notation', 'Notation signature') },
  {
    types: [SignatureMediaType.CosignSimpleSigning, SignatureMediaType.CosignArtifactSig, 'application/vnd.dev.cosign.'],
    in: 'any',
    make: () => info('signature-cosign', 'Cosign signature'),
  },
  { types: ['application/vnd.dev.sigstore.bundle.'], in: 'any', make: (c) => (c.predicate ? attestationKind(c.predicate, 'Sigstore bundle') : info('signature-cosign', 'Sigstore bundle')) },
  { types: [SignatureMediaType.InToto, 'application/vnd.in-toto.', SignatureMediaType.Dsse], in: 'any', make: (c) => attestationKind(c.predicate) },
  // SBOMs: an artifactType or a layer.
  { types: ['application/spdx+json', 'application/spdx+xml', 'text/spdx', 'text/spdx+json', 'text/spdx+xml', 'application/vnd.spdx+json', 'application/vnd.spdx.'], in: 'any', make: () => info('sbom-spdx', 'SPDX SBOM') },
  { types: ['application/vnd.cyclonedx', 'application/vnd.cyclonedx+', 'application/vnd.cyclonedx.'], in: 'any', make: () => info('sbom-cyclonedx', 'CycloneDX SBOM') },
  { types: ['application/vnd.syft+json'], in: 'any', make: () => info('generic', 'Syft SBOM', 'sbom', 'sboms') },
  // Helm: the config (or artifactType), or a chart layer.
  { types: [HelmMediaType.Config, HelmMediaType.Chart, 'application/vnd.cncf.helm.'], in: 'any', make: () => info('helm-chart', 'Helm chart') },
  // Terraform / OpenTofu.
  { types: ['application/vnd.opentofu.modulepkg'], in: 'type', make: () => info('terraform-module', 'OpenTofu module') },
  { types: ['application/vnd.opentofu.provider', 'application/vnd.opentofu.provider-target'], in: 'type', make: () => info('terraform-module', 'OpenTofu provider') },
  { types: ['application/vnd.terraform.', 'application/vnd.hashicorp.terraform.'], in: 'type', make: () => info('terraform-module', 'Terraform module') },
  // ML models.
  { types: ['application/vnd.cncf.model.', 'application/vnd.cnai.model.'], in: 'any', make: () => info('ml-model', 'AI model (ModelPack)') },
  { types: ['application/vnd.docker.ai.'], in: 'any', make: () => info('ml-model', 'AI model (Docker)') },
  { types: ['application/vnd.ollama.image.'], in: 'any', make: () => info('ml-model', 'AI model (Ollama)') },
  { types: ['application/vnd.kitops.'], in: 'any', make: () => info('ml-model', 'ModelKit (KitOps)') },
  // WebAssembly.
  {
    types: ['application/vnd.wasm.', 'application/wasm', 'application/vnd.module.wasm.', 'application/vnd.bytecodealliance.wasm.', 'application/vnd.wasm+'],
    in: 'any',
    make: () => info('wasm', 'WebAssembly module'),
  },
  { types: ['application/vnd.fermyon.spin.'], in: 'type', make: () => info('wasm', 'Spin application') },
  // STAC / EO data.
  { types: ['application/geo+json', 'application/vnd.stac.', 'application/vnd.stac+'], in: 'any', make: () => info('stac', 'STAC / EO data') },
  // Well-known artifacts of other tools: generic kind, a readable label.
  { types: ['application/vnd.cncf.flux.'], in: 'type', make: () => info('generic', 'Flux artifact') },
  { types: ['application/vnd.sylabs.sif.'], in: 'type', make: () => info('generic', 'Apptainer image (SIF)') },
  { types: ['application/vnd.cncf.openpolicyagent.'], in: 'type', make: () => info('generic', 'OPA policy bundle') },
  { types: ['application/vnd.devcontainers', 'application/vnd.devcontainers.'], in: 'type', make: () => info('generic', 'Dev container feature') },
];

/** Words of a media type that say nothing to a reader. */
const NOISE = new Set(['application', 'vnd', 'unknown', 'config', 'manifest', 'json', 'yaml', 'xml', 'v0', 'v1', 'v2', 'v3', 'oci', 'artifact', 'io', 'com', 'org', 'dev', 'cncf', 'x']);

/**
 * A readable label from a media type nobody registered: `application/vnd.acme.rocket.config.v1+json`
 * reads "Acme rocket". Never empty, never "/", never "unknown".
 */
export function labelFromType(type: string | null | undefined): string {
  if (!type) return 'Artifact';
  const words = type
    .toLowerCase()
    .split(/[/.+\-_;= ]+/)
    .map((w) => w.replace(/[^a-z0-9]/g, ''))
    .filter((w) => w !== '' && !NOISE.has(w) && !/^v\d+(\.\d+)*$/.test(w) && !/^\d+$/.test(w));
  const seen = new Set<string>();
  const kept = words.filter((w) => !seen.has(w) && (seen.add(w), true)).slice(0, 4);
  if (kept.length === 0) return 'Artifact';
  const text = kept.join(' ');
  return `${text[0]!.toUpperCase()}${text.slice(1)}`.slice(0, 60);
}

/**
 * The kind of an artifact. `mediaType` is the manifest's; `artifactType` its artifactType (or
 * what the referrers API says); `configMediaType` its config's, when known; `layers` its layers,
 * when known (a referrer listed by the referrers API comes without).
 */
export function kindOf(mediaType: string, artifactType: string | null, configMediaType: string | null, annotations: Record<string, string>, layers: LayerHint[] = []): KindInfo {
  const ann = annotations ?? {};
  let predicate: string | undefined;
  for (const src of [ann, ...layers.map((l) => l.annotations ?? {})]) {
    for (const k of PREDICATE_KEYS) if (predicate === undefined && typeof src[k] === 'string' && src[k] !== '') predicate = src[k];
  }
  const ctx: Ctx = { annotations: ann, layers, predicate };
  // Docker's buildx puts attestations in an index, as manifests for platform unknown/unknown.
  if (ann['vnd.docker.reference.type'] === 'attestation-manifest') return attestationKind(predicate, 'Build attestation');

  const config = configMediaType && configMediaType !== EMPTY_CONFIG ? configMediaType : null;
  // The artifact's own type: its artifactType, else a config that is not an image's.
  const own = [artifactType, config && !IMAGE_CONFIGS.includes(config) ? config : null].filter((t): t is string => !!t);
  const all = [...own, ...layers.map((l) => l.mediaType)];
  for (const rule of RULES) {
    const pool = rule.in === 'type' ? own : all;
    if (rule.types.some((p) => pool.some((t) => matches(p, t)))) return rule.make(ctx);
  }
  if (Object.keys(ann).some((k) => /^(org\.)?stac[.:]/i.test(k))) return info('stac', 'STAC / EO data');

  if (IMAGE_INDEX.includes(mediaType)) {
    return artifactType ? info('image-index', `Index of ${labelFromType(artifactType).toLowerCase()}`, 'image-index') : info('image-index', 'Multi-platform image');
  }
  if (own.length === 0 && config !== null && IMAGE_CONFIGS.includes(config)) {
    return info('image', mediaType === 'application/vnd.docker.distribution.manifest.v2+json' ? 'Container image (Docker)' : 'Container image');
  }
  if (own.length === 0 && configMediaType === null && !artifactType && (mediaType === 'application/vnd.docker.distribution.manifest.v2+json' || mediaType === 'application/vnd.oci.image.manifest.v1+json') && layers.length === 0) {
    // A referrer or tag listed without its config: a plain manifest, most likely an image.
    return info('image', 'Container image');
  }
  return info('generic', labelFromType(own[0] ?? null));
}
