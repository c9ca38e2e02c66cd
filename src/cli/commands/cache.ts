import type { CAC } from 'cac';
import { kebabBooleans } from '../shared/flags.js';

/**
 * `wharf cache`: the client's local caches. info, prune and clear act on the eStargz TOC and
 * chunk cache; further actions (ls, load) have room here.
 */
export function registerCache(cli: CAC): void {
  kebabBooleans(
    cli
      .command('cache <action>', 'The local eStargz TOC and chunk cache: info, prune, clear')
      .option('--cache-dir <dir>', 'The cache (default $WHARF_ESTARGZ_CACHE, else ~/.cache/wharf/estargz)')
      .option('--max-age <duration>', 'prune: drop entries unused for this long (e.g. 7d, 12h)')
      .option('--max-size <size>', 'prune: then drop the least recently used down to this size (e.g. 1G)')
      .option('--format <format>', 'Output: text or json')
      .example('wharf cache info')
      .example('wharf cache prune --max-age 7d --max-size 2G'),
  ).action(async (action: string, opts: Record<string, unknown>) => {
    const { runCache } = await import('../run/estargz.js');
    await runCache(String(action), opts);
  });
}
