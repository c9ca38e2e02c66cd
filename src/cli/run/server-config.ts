import { ConfigError, parseConfig, readConfigFile, type WharfConfig } from '../../server/admin.js';
import { ExitError } from '../errors.js';

/**
 * The server's config, for a command that works on its storage or its logs beside it (`wharf gc`,
 * `wharf cache`, `wharf audit`): --config (or WHARF_CONFIG), with --data (or WHARF_DATA) over its
 * data directory and WHARF_DATABASE_URL over database.url, as `wharf serve` takes them.
 */
export async function serverConfigOf(flags: Record<string, unknown>): Promise<WharfConfig> {
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const file = str(flags.config) ?? process.env.WHARF_CONFIG;
  try {
    const input = (file ? ((await readConfigFile(file)) as Record<string, unknown> | undefined) : undefined) ?? {};
    const data = str(flags.data) ?? process.env.WHARF_DATA;
    if (data !== undefined) input.data = data;
    const url = process.env.WHARF_DATABASE_URL;
    if (url) input.database = { ...((input.database as Record<string, unknown> | undefined) ?? {}), url };
    return parseConfig(input, file ? `config (${file})` : 'config');
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(err.message, 2);
    throw err;
  }
}
