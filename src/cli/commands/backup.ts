import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerBackup(cli: CAC): void {
  registryFlags(
    cli
      .command('backup <repo> <layout>', 'Copy a repository (all tags, or repo:t1,t2) into an OCI layout dir or .tar')
      .option('--include-referrers', 'Also copy the referrers of each tag')
      .example('wharf backup localhost:5000/app ./app-backup.tar --include-referrers'),
  ).action(async (repo: string, layout: string, opts: Record<string, unknown>) => {
    const { runBackupRestore } = await import('../run/backup.js');
    await runBackupRestore('backup', String(repo), String(layout), opts);
  });
}
