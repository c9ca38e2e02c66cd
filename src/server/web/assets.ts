import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './deps.js';

/** The web API's the built UI at /, with its Content-Security-Policy. */
export function installAssets(app: FastifyInstance, deps: WebDeps): void {
  void app;
  void deps;
}
