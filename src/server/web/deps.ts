import type { Logger } from 'pino';
import type { AuditLog } from '../audit/index.js';
import type { Authenticator } from '../auth/index.js';
import type { WharfConfig } from '../config.js';
import type { RequestSink } from '../http/audit.js';
import type { PullThroughHandle } from '../proxy/index.js';
import type { RegistryBackend, RegistryStore } from '../store/index.js';

/** What the web UI's API reads and writes: the same parts /v2 is served from. */
export interface WebDeps {
  config: WharfConfig;
  /** What /v2 serves: the store, or the pull-through cache over it. Reads go through it. */
  backend: RegistryBackend;
  store: RegistryStore;
  auth: Authenticator | undefined;
  /** The audit log, when on: analytics, tag history, "pushed by". */
  audit: AuditLog | undefined;
  /** Where a finished download from the UI is recorded, as a /v2 pull is (audit log, webhooks). */
  sinks: RequestSink[];
  proxy: PullThroughHandle | undefined;
  log: Logger;
}
