import type { CAC } from 'cac';
import { kebabBooleans } from '../shared/flags.js';

/**
 * `wharf cache`: the client's local eStargz TOC and chunk cache (info, prune, clear), and the
 * registry's pull-through cache (ls, load, and prune with --data or --config; docs/PROXY.md).
 */
export function registerCache(cli: CAC): void {
  kebabBooleans(
    cli
      .command('cache <action> [...sources]', 'Caches: the local eStargz cache (info, prune, clear); the registry pull-through cache (ls, load, prune --data)')
      .option('--cache-dir <dir>', 'The cache (default $WHARF_ESTARGZ_CACHE, else ~/.cache/wharf/estargz)')
      .option('--max-age <duration>', 'prune: drop entries unused for this long (e.g. 7d, 12h); registry cache: images cached longer ago')
      .option('--max-size <size>', 'prune: then drop the least recently used down to this size (e.g. 1G)')
      .option('--format <format>', 'Output: text or json')
      .option('--data <dir>', 'Registry cache: the data directory of wharf serve (env WHARF_DATA)')
      .option('--config <file>', 'Registry cache: the wharf serve config (upstreams, data; env WHARF_CONFIG)')
      .option('--max-idle <duration>', 'Registry cache prune: drop images not pulled for this long')
      .option('--pattern <glob>', 'Registry cache prune: drop images whose repo, repo:tag or repo@digest matches (repeatable)')
      .option('--namespace <ns>', 'Registry cache: only these upstream namespaces (repeatable)')
      .option('--repo <ns/repo>', 'Registry cache load: the cached repository for images that carry no name')
      .option('--dry-run', 'Registry cache prune: print what would go, remove nothing')
      .example('wharf cache info')
      .example('wharf cache prune --max-age 7d --max-size 2G')
      .example('wharf cache ls --data /srv/wharf')
      .example('wharf cache load --config wharf.yaml images.txt saved.tar ./layout')
      .example('wharf cache prune --data /srv/wharf --max-idle 30d --max-size 50G --dry-run'),
  ).action(async (action: string, sources: string[], opts: Record<string, unknown>) => {
    const { isRegistryCacheAction, runRegistryCache } = await import('../run/proxy-cache.js');
    if (isRegistryCacheAction(String(action), opts)) return runRegistryCache(String(action), sources ?? [], opts);
    const { runCache } = await import('../run/estargz.js');
    await runCache(String(action), opts);
  });
}
