import { MediaType } from '../../spec/index.js';
import type { ArtifactKind, KindInfo } from './types.js';

/*
 * A minimal version, so that the catalog index has kinds to store: images, indexes, Helm charts and
 * everything else as a generic artifact. The artifact page's part replaces this file with the full
 * table (same signature).
 */

const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
const IMAGE_CONFIGS = new Set<string>([MediaType.ImageConfig, MediaType.DockerConfig]);
const INDEXES = new Set<string>([MediaType.ImageIndex, MediaType.DockerManifestList]);

/** A layer as kindOf needs it: its media type and annotations. */
export interface LayerHint {
  mediaType: string;
  annotations?: Record<string, string> | undefined;
}

const info = (kind: ArtifactKind, label: string, group: KindInfo['group'] = null): KindInfo => ({ kind, label, icon: kind, group });

/** What an artifact is, from its manifest's media type, artifactType, config media type and annotations. */
export function kindOf(mediaType: string, artifactType: string | null, configMediaType: string | null, annotations: Record<string, string>, layers: LayerHint[] = []): KindInfo {
  void annotations;
  void layers;
  const type = artifactType ?? configMediaType ?? null;
  if (type === HELM_CONFIG) return info('helm-chart', 'Helm chart');
  if (INDEXES.has(mediaType) && (artifactType === null || artifactType === undefined)) return info('image-index', 'Multi-platform image');
  if (configMediaType !== null && configMediaType !== undefined && IMAGE_CONFIGS.has(configMediaType) && (artifactType === null || artifactType === undefined)) return info('image', 'Container image');
  return info('generic', 'Artifact', 'other');
}
