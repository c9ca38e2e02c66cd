import type { CAC } from 'cac';

export function registerGc(cli: CAC): void {
  cli
    .command('gc', 'Garbage-collect unreferenced blobs in a data directory or the configured storage (safe while serving)')
    .option('--data <dir>', 'Data directory (env WHARF_DATA)')
    .option('--config <file>', 'The wharf serve config: its data and storage (an S3 bucket, say; env WHARF_CONFIG)')
    .option('--dry-run', 'Print what would be freed, free nothing')
    .option('--delete-untagged', 'Also delete manifests that no tag or index reaches')
    .option('--grace <duration>', 'Keep anything used more recently than this (default 1h), for pushes in progress')
    .option('--uploads-purge-after <duration>', 'Remove upload sessions idle this long (default 24h, as uploads.purgeAfter)')
    .example('wharf gc --data ./wharf-data --dry-run')
    .example('wharf gc --delete-untagged')
    .example('wharf gc --config /etc/wharf.yaml --dry-run')
    .action(async (opts: Record<string, unknown>) => {
      const { runGc } = await import('../run/gc.js');
      await runGc(opts);
    });
}
