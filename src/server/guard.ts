import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Authenticator } from './auth/index.js';
import type { WharfConfig } from './config.js';
import { installAccess } from './http/access.js';
import type { RegistryStore } from './store/index.js';

export interface Guard {
  auth: Authenticator | undefined;
  /** Hooks and routes for createApp. */
  extensions: Array<(app: FastifyInstance) => void>;
  close(): Promise<void>;
}

/** Access control, the audit log and webhooks, wired onto the app as fastify hooks. */
export async function startGuard(config: WharfConfig, deps: { dataDir: string; store: RegistryStore; log: Logger }): Promise<Guard> {
  const extensions: Guard['extensions'] = [];
  const auth = config.auth ? await Authenticator.create(config.auth, deps.dataDir) : undefined;
  if (auth) extensions.push((app) => installAccess(app, { auth, store: deps.store, pageSize: config.pagination.pageSize }));
  return { auth, extensions, close: async () => undefined };
}
