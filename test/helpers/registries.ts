import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startDistribution, missingPeer, REGISTRY_BIN } from './distribution.js';

/** A registry a client test can run against: `host` is `127.0.0.1:<port>`, plain HTTP. */
export interface TestRegistry {
  name: string;
  host: string;
  url: string;
  /** Whether it implements the referrers API (else the client falls back to the tag schema). */
  referrersApi: boolean;
  stop(): Promise<void>;
}

export interface RegistryKind {
  name: string;
  /** Why it cannot run here, or undefined. */
  skip: string | undefined;
  start(): Promise<TestRegistry>;
}

const serverEntry = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'server', 'index.ts');

function serverMissing(): string | undefined {
  if (existsSync(serverEntry)) return undefined;
  const reason = 'the Wharf registry server (src/server/index.ts) is not there yet';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`# skip: ${reason}`);
  return reason;
}

export const DISTRIBUTION: RegistryKind = {
  name: 'Distribution',
  skip: missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)'),
  async start() {
    const d = await startDistribution();
    return { name: 'Distribution', host: d.host, url: d.url, referrersApi: false, stop: d.stop };
  },
};

export const WHARF_SERVER: RegistryKind = {
  name: 'wharf serve',
  skip: serverMissing(),
  async start() {
    // Imported lazily, by path: the client's tests must not pull the server into its import graph.
    const mod = (await import(serverEntry)) as {
      startServer(o: { dataDir: string; port: number; logLevel: string; deleteEnabled?: boolean }): Promise<{ url: string; close(): Promise<void> }>;
    };
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-server-data-'));
    const s = await mod.startServer({ dataDir, port: 0, logLevel: 'silent', deleteEnabled: true });
    const u = new URL(s.url);
    return {
      name: 'wharf serve',
      host: u.host,
      url: s.url,
      referrersApi: true,
      stop: async () => {
        await s.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
};
