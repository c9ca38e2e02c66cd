import { join, resolve } from 'node:path';
import { auditFilter, ConfigError, openAuditIndex, recordsToCsv } from '../../server/admin.js';
import { serverConfigOf } from './server-config.js';
import { ExitError } from '../errors.js';

function table(rows: Array<Record<string, unknown>>, cols: string[]): string {
  const cells = rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '-' : String(r[c]))));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (v: string[]): string => v.map((x, i) => x.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

const short = (d: unknown): unknown => (typeof d === 'string' && d.startsWith('sha256:') ? d.slice(0, 19) : d);

export async function runAudit(action: string, opts: Record<string, unknown>): Promise<void> {
  const config = await serverConfigOf(opts);
  const path = opts.db !== undefined ? resolve(String(opts.db)) : resolve(config.audit.path ?? join(config.data, 'audit', 'audit.db'));
  const str = (k: string): string | undefined => (opts[k] === undefined ? undefined : String(opts[k]));
  let f;
  try {
    f = auditFilter({ repo: str('repo'), user: str('user'), digest: str('digest'), action: str('action'), since: str('since'), until: str('until') });
  } catch (err) {
    throw new ExitError((err as Error).message, 2);
  }
  const format = str('format') ?? 'table';
  if (!['table', 'json', 'csv'].includes(format)) throw new ExitError(`--format must be table, json or csv`, 2);
  const limit = opts.limit === undefined ? 100 : Number(opts.limit);
  let index;
  try {
    index = await openAuditIndex(config, path);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(err.message, 2);
    throw err;
  }
  if (!index) throw new ExitError(`no audit database at ${path}; is this the registry's data directory?`);
  const db = index.db;
  try {
    switch (action) {
      case 'query': {
        const rows = db.query(f, { limit });
        if (format === 'json') return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        if (format === 'csv') return void process.stdout.write(recordsToCsv(rows));
        const view = rows.map((r) => ({ ...r, time: new Date(r.time).toISOString(), digest: short(r.digest) }));
        return void process.stdout.write(table(view, ['time', 'user', 'ip', 'action', 'repo', 'reference', 'digest', 'status', 'bytes', 'outcome']));
      }
      case 'downloads': {
        const rows = db.downloads(f, limit);
        if (format === 'json') return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        const view = rows.map((r) => ({ ...r, time: new Date(r.time).toISOString(), digest: short(r.digest), blobs: `${r.blobsDone}/${r.blobsTotal}` }));
        return void process.stdout.write(table(view, ['time', 'user', 'ip', 'repo', 'reference', 'digest', 'artifactType', 'blobs', 'bytes', 'completed']));
      }
      case 'stats': {
        const s = db.stats(f);
        if (format === 'json') return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        process.stdout.write('Downloads per artifact\n');
        process.stdout.write(table(s.perArtifact.map((r) => ({ ...r, digest: short(r.digest) })), ['repo', 'reference', 'digest', 'downloads', 'users', 'completed', 'bytes']));
        process.stdout.write('\nDownloads per user\n');
        return void process.stdout.write(table(s.perUser.map((r) => ({ ...r, user: r.user ?? '(anonymous)' })), ['user', 'downloads', 'bytes']));
      }
      default:
        throw new ExitError(`unknown action "${action}": use query, downloads or stats`, 2);
    }
  } finally {
    await index.close();
  }
}
