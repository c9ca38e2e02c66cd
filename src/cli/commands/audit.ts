import type { Command } from 'cac';
import type { Action, Group } from '../shared/group.js';

const run = (action: string) => async (_args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { runAudit } = await import('../run/audit.js');
  await runAudit(action, flags);
};

/** The filters every audit action takes. */
const filters = (c: Command): Command =>
  c
    .option('--config <file>', 'The server\'s config file (env WHARF_CONFIG); with database.url (or env WHARF_DATABASE_URL) the log of every replica')
    .option('--data <dir>', 'Data directory (env WHARF_DATA, default ./wharf-data)')
    .option('--db <file>', 'The audit database (default <data>/audit/audit.db)')
    .option('--repo <name>', 'Repository, or a glob such as ml/*')
    .option('--user <name>', 'User')
    .option('--digest <digest>', 'Manifest or blob digest')
    .option('--action <action>', 'pull, stat, push, upload, mount, delete, list, other, or denied')
    .option('--since <time>', 'ISO 8601 time, or a duration ago: 7d, 12h')
    .option('--until <time>', 'ISO 8601 time, or a duration ago')
    .option('--limit <n>', 'At most this many rows (default 100)')
    .option('--format <format>', 'table, json or csv (default table)');

const actions: Action[] = [
  {
    usage: 'query',
    description: 'Requests: who did what to which repository, when, from where',
    define: (c) => filters(c).example('wharf audit query --repo ml/model --since 7d').example('wharf audit query --action denied --format csv > denied.csv'),
    run: run('query'),
  },
  {
    usage: 'downloads',
    description: 'Artifact downloads: a manifest and the blobs fetched after it',
    define: (c) => filters(c).example('wharf audit downloads --repo ml/model --since 30d'),
    run: run('downloads'),
  },
  {
    usage: 'stats',
    description: 'Downloads per artifact and per user',
    define: (c) => filters(c).example('wharf audit stats --since 30d'),
    run: run('stats'),
  },
];

export const AUDIT: Group = { name: 'audit', description: 'The registry audit log', actions };
