import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, type WharfConfig } from './config.js';
import type { Logger } from 'pino';
import { openDatabase, type Database } from './db/index.js';
import { FsDriver, MemoryDriver, PgDriver, S3Driver, SplitDriver, type S3DriverOptions, type StorageDriver } from './driver/index.js';
import { bodyBytesConsumed } from './io/young-gc.js';
import { isManifestRef, RegistryStore, type RegistryStoreOptions } from './store/index.js';

/**
 * The registry store of a config: on its data directory (`storage.driver: fs`, the default), in
 * memory (`memory`: nothing survives the process; for tests and throwaway registries), or in an
 * S3 bucket (`s3`), which must answer before the registry starts. With `database.url`, the
 * registry's small files are in that database (`db`, or one opened here): never without it, or
 * the store would see no tags nor links, and gc would take every blob for garbage.
 */
export async function openStore(config: WharfConfig, db?: Database, log?: Pick<Logger, 'warn'>): Promise<RegistryStore> {
  let driver: StorageDriver;
  if (config.storage.driver === 'memory') driver = new MemoryDriver();
  else if (config.storage.driver === 's3') driver = await openS3(config);
  else {
    const dataDir = resolve(config.data);
    await mkdir(dataDir, { recursive: true });
    driver = new FsDriver(dataDir, { fsync: config.storage.fsync, directIO: config.storage.directIO });
  }
  const opts: RegistryStoreOptions = {
    deleteEnabled: config.delete.enabled,
    replicated: config.database.url !== undefined,
    maxManifestSize: config.manifests.maxSize,
    verifyReads: config.storage.verifyReads,
    reverifyAfter: config.storage.reverifyAfter,
    automaticMount: config.uploads.automaticMount,
  };
  if (config.uploads.maxBlobSize !== undefined) opts.maxBlobSize = config.uploads.maxBlobSize;
  if (config.database.url !== undefined) {
    // A caller that has the database (the server) keeps it; one that has not (an admin command) gets one that the store's close() ends.
    let pgDriver: PgDriver;
    if (db) {
      const onError = (err: unknown): void => log?.warn({ err }, 'database: the connection that hears changes failed; tags and links are read from the database until it is back');
      pgDriver = new PgDriver(db.pool, undefined, { url: db.url, onError });
    }
    else {
      let own: Database;
      try {
        own = (await connectDatabase(config))!;
      } catch (err) {
        await driver.close?.();
        throw err;
      }
      pgDriver = new PgDriver(own.pool, () => own.close());
    }
    driver = new SplitDriver(pgDriver, driver);
  }
  return new RegistryStore(driver, opts);
}


/** The database of `database.url`; one that does not answer stops the start, named. */
export async function connectDatabase(config: WharfConfig, log?: Logger): Promise<Database | undefined> {
  const url = config.database.url;
  if (url === undefined) return undefined;
  try {
    return await openDatabase({ url, maxConnections: config.database.maxConnections, ...(log ? { log } : {}) });
  } catch (err) {
    const where = new URL(url);
    throw new ConfigError(`database.url: cannot use PostgreSQL at ${where.host}${where.pathname}: ${(err as Error).message}`);
  }
}

/** The S3 driver of `storage.s3`, once its bucket answered; a ConfigError names what is wrong. */
async function openS3(config: WharfConfig): Promise<S3Driver> {
  const c = config.storage.s3!;
  const opts: S3DriverOptions = {
    bucket: c.bucket,
    region: c.region,
    forcePathStyle: c.forcePathStyle ?? c.endpoint !== undefined,
    timeoutMs: c.timeout,
    cacheTtlMs: c.cacheTtl,
    cacheable: isManifestRef,
    onBytesRead: bodyBytesConsumed,
    spoolDir: join(resolve(config.data), '_spool'),
  };
  if (c.endpoint) opts.endpoint = c.endpoint;
  if (c.prefix) opts.prefix = c.prefix;
  if (c.credentials) opts.credentials = c.credentials;
  if (c.redirect.enabled) opts.redirect = { expiryMs: c.redirect.expiry, ...(c.redirect.publicEndpoint ? { publicEndpoint: c.redirect.publicEndpoint } : {}) };
  if (c.ca) {
    try {
      opts.ca = await readFile(c.ca, 'utf8');
    } catch (err) {
      throw new ConfigError(`storage.s3.ca: cannot read ${c.ca}: ${(err as Error).message}`);
    }
  }
  await mkdir(opts.spoolDir, { recursive: true });
  const driver = new S3Driver(opts);
  try {
    await driver.check();
  } catch (err) {
    driver.destroy();
    throw new ConfigError(`storage.s3: bucket "${c.bucket}" at ${c.endpoint ?? `AWS S3 (${c.region})`} cannot be used: ${describeS3Error(err)}`);
  }
  return driver;
}

/** An S3 failure in words: HeadBucket answers with a status only, so the status says which. */
function describeS3Error(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status === 404) return 'no such bucket (NoSuchBucket)';
  if (status === 403) return 'access denied (403 Forbidden): check the credentials and the bucket policy';
  if (status === 301 || status === 400) return `the store refused the request (${status} ${e.name ?? ''}): check region and addressing (forcePathStyle)`;
  if (status !== undefined) return `${status} ${e.name ?? ''} ${e.message ?? ''}`.trim();
  return `the store cannot be reached: ${e.code ?? e.name ?? ''} ${e.message ?? String(err)}`.trim();
}
