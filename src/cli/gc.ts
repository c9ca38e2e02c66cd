import { resolve } from 'node:path';
import { FsDriver } from '../server/driver/index.js';
import { collectGarbage } from '../server/store/gc.js';

export async function runGc(flags: Record<string, unknown>): Promise<void> {
  const data = resolve((flags.data as string | undefined) ?? process.env.WHARF_DATA ?? './wharf-data');
  const dryRun = Boolean(flags.dryRun);
  const report = await collectGarbage(new FsDriver(data), {
    dryRun,
    deleteUntagged: Boolean(flags.deleteUntagged),
    log: (line: string) => process.stdout.write(`${line}\n`),
  });
  const verb = dryRun ? 'would free' : 'freed';
  process.stdout.write(
    `${verb} ${report.blobs} blob(s), ${formatBytes(report.bytes)}; ${report.manifests} untagged manifest(s); kept ${report.kept} blob(s)\n`,
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
