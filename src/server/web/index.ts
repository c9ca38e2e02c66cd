import type { FastifyInstance } from 'fastify';
import { installAnalytics } from './analytics.js';
import { installArtifact } from './artifact.js';
import { installAssets } from './assets.js';
import { installBrowse } from './browse.js';
import type { WebDeps } from './deps.js';
import { installSession } from './session.js';

export type { WebDeps } from './deps.js';
export { signedInAdmin } from './signed-in.js';
export type * from './types.js';

/**
 * The web UI at `/` and its JSON API under /api/v1 (types.ts, docs/openapi.yaml). Every route
 * checks access with the registry's own rules (viewer.ts) and answers errors with the registry's
 * error body.
 */
export function installWeb(app: FastifyInstance, deps: WebDeps): void {
  installSession(app, deps);
  installBrowse(app, deps);
  installArtifact(app, deps);
  installAnalytics(app, deps);
  installAssets(app, deps);
}
