/**
 * The storage drivers the registry tests run over (`storage.driver` in the server config), and the
 * few things a test needs to do to stored content that the HTTP API cannot: list it, and set the
 * time a file reports (a cached tag's last check, a blob's age for gc's grace period).
 *
 * s3 runs on this process's Ceph RGW cluster (test/helpers/rgw.ts), started by the first
 * `storageConfig('s3', …)` (from a suite's `before`) and stopped after the file's last test; a
 * test file keeps all its servers in one bucket, each under a key prefix made of its data
 * directory, so that a server restarted on the same directory finds what the last one stored.
 */
import { readdir, utimes, mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { after } from 'node:test';
import { stringify } from 'yaml';
import { CopyObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { FsDriver, S3Driver, type FileInfo, type StorageDriver } from '../../src/server/driver/index.js';
import { makeBucket, missingRgw, s3Options, startRgw, type Rgw } from './rgw.js';
import { createDatabase, missingPg, startPg, type Pg } from './pg.js';

export const DRIVERS = ['fs', 'memory', 's3'] as const;
/**
 * s3+pg: several replicas' setup (docs/SCALE-OUT.md), blobs in the bucket and the registry's small
 * files in PostgreSQL (`database.url`, the file's database on this process's cluster).
 */
export type DriverName = (typeof DRIVERS)[number] | 's3+pg';

let rgwMissing: { reason: string | undefined } | undefined;

/**
 * Why a driver's tests cannot run here, for a suite's `skip` option; undefined when they can. For
 * s3: Ceph RGW missing, printed once (under CI=true, missingRgw throws instead: CI must run them).
 */
export function driverSkip(driver: DriverName): string | undefined {
  if (driver === 'fs' || driver === 'memory') return undefined;
  rgwMissing ??= { reason: missingRgw() };
  return rgwMissing.reason ?? (driver === 's3+pg' ? missingPg() : undefined);
}

interface S3Place {
  rgw: Rgw;
  bucket: string;
  /** A client of the cluster, for what tests do to objects behind the driver's back (setMtime). */
  client: S3Client;
}

let s3Place: Promise<S3Place> | undefined;

/** This process's cluster and this test file's bucket, made at the first call. */
function s3(): Promise<S3Place> {
  s3Place ??= (async () => {
    const rgw = await startRgw();
    try {
      const bucket = await makeBucket(rgw, `wharf-${basename(process.argv[1] ?? 'tests').replace(/\.test\.ts$/, '')}`);
      const client = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
      return { rgw, bucket, client };
    } catch (err) {
      await rgw.stop();
      throw err;
    }
  })();
  return s3Place;
}

// Once the file's tests are done, the clusters go (the last user of each stops it).
after(async () => {
  const pgp = pgPlace;
  pgPlace = undefined;
  await (await pgp?.catch(() => undefined))?.pg.stop();
  const place = s3Place;
  s3Place = undefined;
  const p = await place?.catch(() => undefined);
  p?.client.destroy();
  await p?.rgw.stop();
});

export type StorageSection =
  | { driver: 'fs' | 'memory'; fsync: false }
  | { driver: 's3'; fsync: false; s3: ReturnType<typeof s3Options> };

/**
 * The `storage` section of a test server's config: the driver, and no fsync (tests). For s3, the
 * file's bucket under a key prefix made of `dataDir`: the same directory, the same stored content.
 */
export async function storageConfig(driver: DriverName, dataDir: string): Promise<StorageSection> {
  if (driver === 'fs' || driver === 'memory') return { driver, fsync: false };
  const { rgw, bucket } = await s3();
  return { driver: 's3', fsync: false, s3: s3Options(rgw, bucket, s3Prefix(dataDir)) };
}

/** The file's S3 client (for what tests look at behind the server's back); starts the cluster if need be. */
export async function s3Client(): Promise<S3Client> {
  return (await s3()).client;
}

let pgPlace: Promise<{ pg: Pg; url: string }> | undefined;

/** This process's PostgreSQL cluster, as databaseConfig('s3+pg') started it (to halt and resume it). */
export async function pgCluster(): Promise<Pg> {
  if (!pgPlace) await databaseConfig('s3+pg');
  return (await pgPlace!).pg;
}

/** The `database` section of a test server on `driver`: for s3+pg, the file's own database. */
export async function databaseConfig(driver: DriverName): Promise<{ database?: { url: string } }> {
  if (driver !== 's3+pg') return {};
  pgPlace ??= (async () => {
    const pg = await startPg();
    return { pg, url: await createDatabase(pg, basename(process.argv[1] ?? 'tests').replace(/\.test\.ts$/, '')) };
  })();
  return { database: { url: (await pgPlace).url } };
}

/** The key prefix of a data directory's store in the file's bucket: its absolute path. */
function s3Prefix(dataDir: string): string {
  return resolve(dataDir).replace(/^\/+/, '');
}

/**
 * The arguments that point an admin command (`wharf gc`, `wharf cache ls|prune`) at the store of a
 * server on `dataDir`: its data directory, or for s3 a config file with the same storage section
 * (written into the data directory, which holds only the driver's local spool on s3).
 */
export async function adminArgs(driver: DriverName, dataDir: string): Promise<string[]> {
  if (driver === 'fs') return ['--data', dataDir];
  if (driver === 'memory') throw new Error('a memory store is reachable only in its server');
  await mkdir(dataDir, { recursive: true });
  const file = join(dataDir, 'wharf-admin.yaml');
  await writeFile(file, stringify({ data: dataDir, storage: await storageConfig(driver, dataDir) }));
  return ['--config', file];
}

/** Every file under `roots` (paths relative to the driver), with its size, sorted. */
export async function storedFiles(driver: StorageDriver, roots: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const st = await driver.stat(path);
    if (st && !st.isDir) {
      out.push(`${path} ${st.size}`);
      return;
    }
    // A directory, or no file: on an object store a directory is a key prefix, which stat does
    // not see. Listing what is not there finds nothing.
    for (const name of await driver.list(path)) await walk(`${path}/${name}`);
  };
  for (const r of roots) await walk(r);
  return out.sort();
}

/** mtimes set by setMtime on drivers with no utimes, by the version of the file they were set on. */
const overrides = new WeakMap<StorageDriver, Map<string, number>>();

/**
 * Makes a stored file report `when` as its mtime, as utimes(2) does, until the file is next
 * written or touched. On FsDriver it is utimes; on S3Driver the object's mtime metadata is
 * replaced (a copy onto itself, as the driver's touch), so other processes on the bucket (the CLI)
 * see it too. Other drivers (the in-memory one) have no way to set it: their `stat` is wrapped, on
 * that instance only, to report the time for the file's current version. The time follows the
 * file when it is renamed (gc moves blobs aside and back), and is gone once it is written or
 * touched, since that gives it a new version.
 */
export async function setMtime(driver: StorageDriver, path: string, when: Date): Promise<void> {
  if (driver instanceof FsDriver) {
    await utimes(join(driver.root, path), when, when);
    return;
  }
  if (driver instanceof S3Driver) {
    await setS3Mtime(driver, path, when);
    return;
  }
  let map = overrides.get(driver);
  if (!map) {
    const m = new Map<string, number>();
    map = m;
    overrides.set(driver, m);
    const stat = driver.stat.bind(driver);
    driver.stat = async (p: string): Promise<FileInfo | undefined> => {
      const st = await stat(p);
      const mtimeMs = st?.version === undefined ? undefined : m.get(st.version);
      return st && mtimeMs !== undefined ? { ...st, mtimeMs } : st;
    };
  }
  const st = await driver.stat(path);
  if (!st || st.isDir) throw new Error(`setMtime: no file ${path}`);
  if (st.version === undefined) throw new Error(`setMtime: the driver reports no version for ${path}`);
  map.set(st.version, when.getTime());
}

/** The metadata entry in which S3Driver keeps a file's mtime (src/server/driver/s3/driver.ts). */
const S3_MTIME = 'wharf-mtime';

/**
 * Sets the mtime S3Driver reports for `path`: its object copied onto itself with the same metadata
 * but the time. The driver keeps its key prefix to itself; a test reads it (private to callers of
 * the driver, not to its tests).
 */
async function setS3Mtime(driver: S3Driver, path: string, when: Date): Promise<void> {
  const prefix: unknown = Reflect.get(driver, 'prefix');
  if (typeof prefix !== 'string') throw new Error('setMtime: S3Driver no longer has a string `prefix`');
  const { bucket, client } = await s3();
  const Key = `${prefix}${path}`;
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key }));
  await client.send(
    new CopyObjectCommand({
      Bucket: bucket,
      Key,
      CopySource: `${bucket}/${Key.split('/').map(encodeURIComponent).join('/')}`,
      MetadataDirective: 'REPLACE',
      Metadata: { ...head.Metadata, [S3_MTIME]: String(when.getTime()) },
    }),
  );
  // A write beside the driver: what it keeps in memory about the file (a tag) must go.
  driver.forget(path);
}

/** Sets the mtime of every file under `under` (all of the store by default). */
export async function setMtimeAll(driver: StorageDriver, when: Date, under = ''): Promise<void> {
  if (driver instanceof FsDriver) {
    for (const e of await readdir(join(driver.root, under), { withFileTypes: true, recursive: true })) {
      // A running server may remove a file meanwhile (an audit journal it rotated): skip it.
      if (e.isFile()) await utimes(join(e.parentPath, e.name), when, when).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    }
    return;
  }
  // Entries side by side: on an object store each step is a round trip.
  const walk = async (path: string): Promise<void> => {
    await inBatches(await driver.list(path), async (name) => {
      const p = path === '' ? name : `${path}/${name}`;
      const st = await driver.stat(p);
      // No file: a directory on an object store (a key prefix, which stat does not see).
      if (!st || st.isDir) return walk(p);
      await setMtime(driver, p, when).catch(async (err: unknown) => {
        // A running server may remove a file meanwhile (an upload it ended): skip it.
        if ((await driver.stat(p)) !== undefined) throw err;
      });
    });
  };
  await walk(under);
}

/** Runs `fn` on every item, 16 at a time. */
async function inBatches<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 16) await Promise.all(items.slice(i, i + 16).map(fn));
}
