import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, openAdmin } from '../../server/admin.js';
import { parseDuration } from '../../spec/index.js';
import { ExitError } from '../errors.js';
import { serverConfigOf } from './server-config.js';

export async function runGc(flags: Record<string, unknown>): Promise<void> {
  const dryRun = Boolean(flags.dryRun);
  const grace = flags.grace === undefined ? 3600e3 : parseDuration(String(flags.grace));
  if (grace === undefined) throw new ExitError(`--grace: "${String(flags.grace)}" is not a duration (e.g. 30s, 1h, 7d)`, 2);
  const purgeAfter = flags.uploadsPurgeAfter === undefined ? 24 * 3600e3 : parseDuration(String(flags.uploadsPurgeAfter));
  if (purgeAfter === undefined) throw new ExitError(`--uploads-purge-after: "${String(flags.uploadsPurgeAfter)}" is not a duration (e.g. 30s, 1h, 7d)`, 2);
  const config = await serverConfigOf(flags);
  const data = resolve(config.data);
  // The store of an fs config is the data directory; that of s3 is the bucket the config names.
  if (config.storage.driver === 'fs' && !existsSync(data)) throw new ExitError(`data directory ${data} does not exist; pass --data or --config, or set WHARF_DATA`, 2);
  let admin;
  try {
    admin = await openAdmin(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(err.message, 2);
    throw err;
  }
  let report;
  try {
    report = await admin.gc({
      dryRun,
      graceMs: grace,
      deleteUntagged: Boolean(flags.deleteUntagged),
      uploadsPurgeAfterMs: purgeAfter,
      log: (line: string) => process.stdout.write(`${line}\n`),
    });
  } finally {
    await admin.close();
  }
  const verb = dryRun ? 'would free' : 'freed';
  process.stdout.write(
    `${verb} ${report.blobs} blob(s), ${formatBytes(report.bytes)}; ${report.uploads} abandoned upload(s), ${formatBytes(report.uploadBytes)}; ${report.manifests} untagged manifest(s); kept ${report.kept} blob(s)\n`,
  );
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
