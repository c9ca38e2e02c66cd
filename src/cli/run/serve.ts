import { pino } from 'pino';
import { REDACT_PATHS, parseConfig, readConfigFile, ConfigError, setPath, startFromConfig, tightenHeapGrowth, type WharfConfig } from '../../server/index.js';
import { ExitError } from '../errors.js';

/** Flags beat environment variables, which beat the config file, which beats the defaults. */
export async function loadServeConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<WharfConfig> {
  const file = (flags.config as string | undefined) ?? env.WHARF_CONFIG;
  const input = (file ? await readConfigFile(file) : {}) ?? {};
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(`config file ${file}: must hold a mapping of keys`);
  const cfg = input as Record<string, unknown>;
  const set = (key: string, value: unknown): void => {
    if (value !== undefined && value !== '') setPath(cfg, key, value);
  };
  set('data', env.WHARF_DATA);
  set('listen', env.WHARF_LISTEN);
  set('log.level', env.WHARF_LOG_LEVEL);
  set('data', flags.data);
  set('listen', flags.listen);
  set('log.level', flags.logLevel);
  set('storage.driver', flags.storage ?? env.WHARF_STORAGE);
  set('storage.s3.bucket', (flags['s3-bucket'] ?? flags.s3Bucket) ?? env.WHARF_S3_BUCKET);
  set('storage.s3.endpoint', (flags['s3-endpoint'] ?? flags.s3Endpoint) ?? env.WHARF_S3_ENDPOINT);
  set('storage.s3.region', (flags['s3-region'] ?? flags.s3Region) ?? env.WHARF_S3_REGION);
  set('storage.s3.prefix', (flags['s3-prefix'] ?? flags.s3Prefix) ?? env.WHARF_S3_PREFIX);
  // Keys from the environment only: a flag would show them in `ps`.
  set('storage.s3.credentials.accessKeyId', env.WHARF_S3_ACCESS_KEY_ID);
  set('storage.s3.credentials.secretAccessKey', env.WHARF_S3_SECRET_ACCESS_KEY);
  // From the environment or the file only: the URL holds a password.
  set('database.url', env.WHARF_DATABASE_URL);
  set('tls.cert', flags.tlsCert ?? env.WHARF_TLS_CERT);
  set('tls.key', flags.tlsKey ?? env.WHARF_TLS_KEY);
  set('tls.clientCa', flags.tlsClientCa ?? env.WHARF_TLS_CLIENT_CA);
  if (flags.delete !== undefined) {
    const v = String(flags.delete);
    if (!['on', 'off', 'true', 'false'].includes(v)) throw new ConfigError(`--delete: expected on or off, got "${v}"`);
    set('delete.enabled', v === 'on' || v === 'true');
  }
  if (flags.offline === true) set('proxy.offline', true);
  const preload = flags.preload === undefined ? [] : (Array.isArray(flags.preload) ? flags.preload : [flags.preload]).map(String);
  if (preload.length) {
    const proxy = (typeof cfg.proxy === 'object' && cfg.proxy !== null ? cfg.proxy : {}) as Record<string, unknown>;
    setPath(cfg, 'proxy.preload', [...(Array.isArray(proxy.preload) ? proxy.preload : []), ...preload]);
  }
  return parseConfig(cfg, file ? `config (${file}, flags, environment)` : 'config (flags, environment)');
}

export async function runServe(flags: Record<string, unknown>): Promise<void> {
  let config: WharfConfig;
  try {
    config = await loadServeConfig(flags);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(err.message, 2);
    throw err;
  }
  const logger = pino({ level: config.log.level, redact: REDACT_PATHS });
  let server;
  try {
    server = await startFromConfig(config, logger);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ExitError(`cannot listen on ${config.listen}: the address is in use; choose another with --listen`);
    if (code === 'EACCES') throw new ExitError(`cannot listen on ${config.listen} or write ${config.data}: permission denied`);
    if (err instanceof ConfigError) throw new ExitError(err.message);
    throw err;
  }
  tightenHeapGrowth();
  logger.info({ url: server.url, data: config.data }, `wharf registry listening on ${server.url}, data in ${config.data}`);
  let closing = false;
  const stop = (signal: string): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    server.close().then(
      () => logger.info('stopped'),
      (err: unknown) => logger.error({ err }, 'shutdown failed'),
    );
  };
  process.on('SIGHUP', () => {
    server.reloadTls().then(
      () => logger.info('reloaded the TLS certificate'),
      (err: unknown) => logger.error({ err }, 'TLS reload failed; the old certificate stays in use'),
    );
  });
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
