/**
 * The storage drivers the registry tests run over (`storage.driver` in the server config), and the
 * few things a test needs to do to stored content that the HTTP API cannot: list it, and set the
 * time a file reports (a cached tag's last check, a blob's age for gc's grace period).
 */
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { FsDriver, type FileInfo, type StorageDriver } from '../../src/server/driver/index.js';

export const DRIVERS = ['fs', 'memory'] as const;
export type DriverName = (typeof DRIVERS)[number];

/** The `storage` section of a test server's config: the driver, and no fsync (tests). */
export function storageConfig(driver: DriverName): { driver: DriverName; fsync: false } {
  return { driver, fsync: false };
}

/** Every file under `roots` (paths relative to the driver), with its size, sorted. */
export async function storedFiles(driver: StorageDriver, roots: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const st = await driver.stat(path);
    if (!st) return;
    if (!st.isDir) {
      out.push(`${path} ${st.size}`);
      return;
    }
    for (const name of await driver.list(path)) await walk(`${path}/${name}`);
  };
  for (const r of roots) await walk(r);
  return out.sort();
}

/** mtimes set by setMtime on drivers with no utimes, by the version of the file they were set on. */
const overrides = new WeakMap<StorageDriver, Map<string, number>>();

/**
 * Makes a stored file report `when` as its mtime, as utimes(2) does, until the file is next
 * written or touched. On FsDriver it is utimes. Other drivers (the in-memory one) have no way to
 * set it: their `stat` is wrapped, on that instance only, to report the time for the file's
 * current version. The time follows the file when it is renamed (gc moves blobs aside and back),
 * and is gone once it is written or touched, since that gives it a new version.
 */
export async function setMtime(driver: StorageDriver, path: string, when: Date): Promise<void> {
  if (driver instanceof FsDriver) {
    await utimes(join(driver.root, path), when, when);
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

/** Sets the mtime of every file under `under` (all of the store by default). */
export async function setMtimeAll(driver: StorageDriver, when: Date, under = ''): Promise<void> {
  if (driver instanceof FsDriver) {
    for (const e of await readdir(join(driver.root, under), { withFileTypes: true, recursive: true })) {
      // A running server may remove a file meanwhile (an audit journal it rotated): skip it.
      if (e.isFile()) await utimes(join(e.parentPath, e.name), when, when).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    }
    return;
  }
  const files: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for (const name of await driver.list(path)) {
      const p = path === '' ? name : `${path}/${name}`;
      const st = await driver.stat(p);
      if (st?.isDir) await walk(p);
      else if (st) files.push(p);
    }
  };
  await walk(under);
  for (const f of files) await setMtime(driver, f, when).catch(() => undefined);
}
