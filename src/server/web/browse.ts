import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './deps.js';

/** The web API's repositories, tags, search, deletes. */
export function installBrowse(app: FastifyInstance, deps: WebDeps): void {
  void app;
  void deps;
}
