import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerRestore(cli: CAC): void {
  registryFlags(
    cli
      .command('restore <layout> <repo>', 'Copy the tags of an OCI layout (dir or .tar; all, or layout:t1,t2) into a repository')
      .option('--include-referrers', 'Also copy the referrers of each tag')
      .example('wharf restore ./app-backup.tar localhost:5000/app --include-referrers'),
  ).action(async (layout: string, repo: string, opts: Record<string, unknown>) => {
    const { runBackupRestore } = await import('../run/backup.js');
    await runBackupRestore('restore', String(layout), String(repo), opts);
  });
}
