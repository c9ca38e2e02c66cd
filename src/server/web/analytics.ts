import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './deps.js';

/** The web API's downloads over time, top artifacts, who downloaded, tag history, admin pages. */
export function installAnalytics(app: FastifyInstance, deps: WebDeps): void {
  void app;
  void deps;
}
