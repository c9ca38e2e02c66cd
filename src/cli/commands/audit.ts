import type { CAC } from 'cac';

export function registerAudit(cli: CAC): void {
  cli
    .command('audit <action>', 'The registry audit log: query (requests), downloads (artifact downloads), stats')
    .option('--data <dir>', 'Data directory (env WHARF_DATA, default ./wharf-data)')
    .option('--db <file>', 'The audit database (default <data>/audit/audit.db)')
    .option('--repo <name>', 'Repository, or a glob such as ml/*')
    .option('--user <name>', 'User')
    .option('--digest <digest>', 'Manifest or blob digest')
    .option('--action <action>', 'pull, stat, push, upload, mount, delete, list, other, or denied')
    .option('--since <time>', 'ISO 8601 time, or a duration ago: 7d, 12h')
    .option('--until <time>', 'ISO 8601 time, or a duration ago')
    .option('--limit <n>', 'At most this many rows (default 100)')
    .option('--format <format>', 'table, json or csv (default table)')
    .example('wharf audit query --repo ml/model --since 7d')
    .example('wharf audit query --action denied --format csv > denied.csv')
    .example('wharf audit stats --since 30d')
    .action(async (action: string, opts: Record<string, unknown>) => {
      const { runAudit } = await import('../audit.js');
      await runAudit(String(action), opts);
    });
}
