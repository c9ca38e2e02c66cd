import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { WharfConfig } from './config.js';
import { FsDriver, MemoryDriver, type StorageDriver } from './driver/index.js';
import { RegistryStore, type RegistryStoreOptions } from './store/index.js';

/**
 * The registry store of a config: on its data directory (`storage.driver: fs`, the default), or
 * in memory (`memory`: nothing survives the process; for tests and throwaway registries).
 */
export async function openStore(config: WharfConfig): Promise<RegistryStore> {
  let driver: StorageDriver;
  if (config.storage.driver === 'memory') driver = new MemoryDriver();
  else {
    const dataDir = resolve(config.data);
    await mkdir(dataDir, { recursive: true });
    driver = new FsDriver(dataDir, { fsync: config.storage.fsync, directIO: config.storage.directIO });
  }
  const opts: RegistryStoreOptions = {
    deleteEnabled: config.delete.enabled,
    maxManifestSize: config.manifests.maxSize,
    verifyReads: config.storage.verifyReads,
    reverifyAfter: config.storage.reverifyAfter,
    automaticMount: config.uploads.automaticMount,
  };
  if (config.uploads.maxBlobSize !== undefined) opts.maxBlobSize = config.uploads.maxBlobSize;
  return new RegistryStore(driver, opts);
}

