import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './deps.js';

/** The web API's artifact pages, files, downloads, referrers. */
export function installArtifact(app: FastifyInstance, deps: WebDeps): void {
  void app;
  void deps;
}
