import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDuration, parseSize } from '../../spec/index.js';
import { openAdmin, type CachePruneOptions } from '../../server/admin.js';
import { ExitError } from '../errors.js';
import { serverConfigOf } from './server-config.js';
import { humanSize, shortDigest } from '../shared/output.js';
import { str, strs, bool, type Flags } from '../shared/flags.js';

/** `wharf cache ls|load|prune` on the registry's pull-through cache (they are told apart from the client's cache by `--data`/`--config`). */
export function isRegistryCacheAction(action: string, flags: Flags): boolean {
  return action === 'ls' || action === 'load' || str(flags.data) !== undefined || str(flags.config) !== undefined;
}

function durationFlag(flags: Flags, key: string, name: string): number | undefined {
  const v = str(flags[key]);
  if (v === undefined) return undefined;
  const n = parseDuration(v);
  if (n === undefined) throw new ExitError(`${name}: "${v}" is not a duration (e.g. 30m, 12h, 7d)`, 2);
  return n;
}

export async function runRegistryCache(action: string, rest: string[], flags: Flags): Promise<void> {
  const config = await serverConfigOf(flags);
  const data = resolve(config.data);
  if (action !== 'load' && !existsSync(data)) throw new ExitError(`data directory ${data} does not exist; pass --data or --config`, 2);
  const admin = await openAdmin(config);
  const json = str(flags.format) === 'json';
  const out = (text: string, obj: unknown): void => void process.stdout.write(json ? `${JSON.stringify(obj, null, 2)}\n` : `${text}\n`);
  const namespaces = strs(flags.namespace);
  try {
    switch (action) {
      case 'ls': {
        const images = await admin.cacheList(namespaces);
        const rows = images.map((i) => `${i.repository}${i.tags.length ? `:${i.tags.join(',')}` : ''}  ${shortDigest(i.digest)}  ${humanSize(i.size)}  cached ${i.cachedAt.toISOString()}  pulled ${i.lastAccess.toISOString()}`);
        out(rows.length ? rows.join('\n') : 'The cache is empty.', images.map(({ content: _c, ...i }) => ({ ...i, cachedAt: i.cachedAt.toISOString(), lastAccess: i.lastAccess.toISOString() })));
        return;
      }
      case 'load': {
        const sources = [...rest, ...strs(flags.from)];
        if (sources.length === 0) throw new ExitError('wharf cache load needs a source: an image-list file, a docker save tarball, or an OCI layout directory or .tar', 2);
        const repo = str(flags.repo);
        const loaded = await admin.cacheLoad(sources, { log: json ? () => undefined : (line) => process.stdout.write(`${line}\n`), ...(repo !== undefined ? { repo } : {}) });
        if (json) out('', loaded);
        else process.stdout.write(`Loaded ${loaded.length} image(s)\n`);
        return;
      }
      case 'prune': {
        const opts: CachePruneOptions = { namespaces, dryRun: bool(flags.dryRun), log: json ? () => undefined : (line) => process.stdout.write(`${line}\n`) };
        const idle = durationFlag(flags, 'maxIdle', '--max-idle');
        const age = durationFlag(flags, 'maxAge', '--max-age');
        if (idle !== undefined) opts.maxIdle = idle;
        if (age !== undefined) opts.maxAge = age;
        const size = str(flags.maxSize);
        if (size !== undefined) {
          const n = parseSize(size);
          if (n === undefined) throw new ExitError(`--max-size: "${size}" is not a size (e.g. 500M, 10G)`, 2);
          opts.maxSize = n;
        }
        const patterns = strs(flags.pattern);
        if (patterns.length) opts.patterns = patterns;
        if (idle === undefined && age === undefined && opts.maxSize === undefined && !patterns.length) {
          throw new ExitError('wharf cache prune: say what to drop with --max-idle, --max-age, --pattern or --max-size', 2);
        }
        const r = await admin.cachePrune(opts);
        const verb = opts.dryRun ? 'would free' : 'freed';
        out(`${opts.dryRun ? 'would remove' : 'removed'} ${r.images.length} image(s); ${verb} ${r.blobs} blob(s), ${humanSize(r.bytes)}; the cache holds ${humanSize(r.remaining)}`, {
          dryRun: Boolean(opts.dryRun),
          images: r.images.map((i) => ({ repository: i.repository, digest: i.digest, tags: i.tags, size: i.size })),
          blobs: r.blobs,
          bytes: r.bytes,
          remaining: r.remaining,
        });
        return;
      }
      default:
        throw new ExitError(`wharf cache ${action}: unknown action for the registry cache; use ls, load or prune`, 2);
    }
  } finally {
    await admin.close();
  }
}
