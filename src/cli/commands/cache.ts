import type { Command } from 'cac';
import { kebabBooleans } from '../shared/flags.js';
import type { Action, Group } from '../shared/group.js';

/**
 * `wharf cache`: the client's local eStargz TOC and chunk cache (info, prune, clear), and the
 * registry's pull-through cache (ls, load, and prune with --data or --config; docs/PROXY.md).
 */
const run = (action: string) => async (args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { isRegistryCacheAction, runRegistryCache } = await import('../run/registry-cache.js');
  if (isRegistryCacheAction(action, flags)) return runRegistryCache(action, args, flags);
  const { runCache } = await import('../run/estargz.js');
  await runCache(action, flags);
};

const local = (c: Command): Command =>
  c.option('--cache-dir <dir>', 'The cache (default $WHARF_ESTARGZ_CACHE, else ~/.cache/wharf/estargz)').option('--format <format>', 'Output: text or json');
const registry = (c: Command): Command =>
  c
    .option('--data <dir>', 'The data directory of wharf serve (env WHARF_DATA)')
    .option('--config <file>', 'The wharf serve config (upstreams, data; env WHARF_CONFIG)')
    .option('--namespace <ns>', 'Only these upstream namespaces (repeatable)')
    .option('--format <format>', 'Output: text or json');

const actions: Action[] = [
  {
    usage: 'info',
    description: 'The local eStargz cache: where it is, what it holds',
    define: (c) => local(c).example('wharf cache info'),
    run: run('info'),
  },
  {
    usage: 'prune',
    description: 'Shrink the local eStargz cache; with --data or --config, the registry pull-through cache',
    define: (c) =>
      kebabBooleans(
        local(registry(c))
          .option('--max-age <duration>', 'Drop entries unused for this long (e.g. 7d, 12h); registry cache: images cached longer ago')
          .option('--max-size <size>', 'Then drop the least recently used down to this size (e.g. 1G)')
          .option('--max-idle <duration>', 'Registry cache: drop images not pulled for this long')
          .option('--pattern <glob>', 'Registry cache: drop images whose repo, repo:tag or repo@digest matches (repeatable)')
          .option('--dry-run', 'Registry cache: print what would go, remove nothing'),
      )
        .example('wharf cache prune --max-age 7d --max-size 2G')
        .example('wharf cache prune --data /srv/wharf --max-idle 30d --max-size 50G --dry-run'),
    run: run('prune'),
  },
  {
    usage: 'clear',
    description: 'Empty the local eStargz cache',
    define: (c) => local(c).example('wharf cache clear'),
    run: run('clear'),
  },
  {
    usage: 'ls',
    description: "The registry's pull-through cache: each cached image, its size, when it was last pulled",
    define: (c) => registry(c).example('wharf cache ls --data /srv/wharf'),
    run: run('ls'),
  },
  {
    usage: 'load [...sources]',
    description: "Fill the registry's pull-through cache ahead of time: image lists, docker save tarballs, OCI layouts",
    define: (c) =>
      registry(c)
        .option('--repo <ns/repo>', 'The cached repository for images that carry no name')
        .example('wharf cache load --config wharf.yaml images.txt saved.tar ./layout'),
    run: run('load'),
  },
];

export const CACHE: Group = { name: 'cache', description: 'Caches: the local eStargz cache, the registry pull-through cache', actions };
