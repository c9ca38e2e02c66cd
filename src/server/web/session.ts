import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './deps.js';

/** The web API's sign-in (POST/DELETE/GET /api/v1/session), the signed session cookie, CSRF. */
export function installSession(app: FastifyInstance, deps: WebDeps): void {
  void app;
  void deps;
}
