import { createRequire } from 'node:module';
import type { Agent as AgentType } from 'undici';

/**
 * undici's Agent without the rest of undici. Its index loads fetch, WebSocket, the cache, mocks
 * and more, which nearly doubles the start of every CLI command (0.23 s against 0.14 s to load,
 * measured here); the transport needs only the Agent and the request API, which undici's index
 * adds to every dispatcher in the same way. The version is pinned by the lockfile, and every
 * registry test goes through this.
 */
const require = createRequire(import.meta.url);
const DispatcherBase = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
Object.assign(DispatcherBase.prototype, require('undici/lib/api/index.js') as object);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof AgentType;
