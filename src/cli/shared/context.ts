import { readFile } from 'node:fs/promises';
import { parseSize, WharfError } from '../../spec/index.js';
import { CredentialStore, Transport, UploadSessionFile, staticCredentials, type CredentialProvider, type RegistryOptions, type ReferrersMode } from '../../stores/remote/index.js';
// The module itself, not client/index.js: every command opens targets, few pull, copy or build eStargz.
import { openTarget, type OpenedTarget } from '../../client/targets.js';
import { ContentCache } from '../../content/index.js';
import { ExitError } from '../errors.js';
import { str, strs, bool, type Flags } from './flags.js';
import { Output } from './output.js';
import { keepBaselineWasm } from '../v8flags.js';

/** Parses `64M` (binary), `5MiB`, `10MB` (decimal), `1048576` for a flag. */
export function parseSizeFlag(v: string): number {
  const n = parseSize(v);
  if (n === undefined) throw new ExitError(`invalid size "${v}"; use bytes or a suffix such as 5M or 5MiB`, 2);
  return n;
}

function headerMap(values: string[]): Record<string, string> {
  return Object.fromEntries(
    values.map((h) => {
      const i = h.indexOf(':');
      if (i <= 0) throw new ExitError(`invalid header "${h}"; write it as "Name: value"`, 2);
      return [h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim()];
    }),
  );
}

/**
 * What a command needs from the global flags: one transport (pool, tokens) for every target it
 * opens, credentials, the output format and progress.
 */
export class Context {
  readonly flags: Flags;
  readonly out: Output;
  readonly credentials: CredentialStore;
  private transport?: Transport;
  private readonly opened: OpenedTarget[] = [];
  /** Registry warnings already shown: a stale cache says so on every request. */
  private readonly warned = new Set<string>();

  private readonly stop = new AbortController();
  /** Whether the command took `signal`: only then does an interruption wait for it to stop. */
  private stoppable = false;

  /** Aborted by Ctrl-C (SIGINT) or SIGTERM: transfers stop through it (see interrupt()). */
  get signal(): AbortSignal {
    this.stoppable = true;
    return this.stop.signal;
  }

  get interrupted(): Error | undefined {
    return this.stop.signal.aborted ? (this.stop.signal.reason as Error) : undefined;
  }

  constructor(flags: Flags) {
    this.flags = flags;
    const format = str(flags.format) ?? 'text';
    this.out = new Output(format, flags.tty !== false, bool(flags.debug));
    this.credentials = new CredentialStore(str(flags.registryConfig) ? { configPath: str(flags.registryConfig)! } : {});
  }

  get concurrency(): number | undefined {
    const c = str(this.flags.concurrency);
    if (c === undefined) return undefined;
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new ExitError(`--concurrency must be a positive integer, not "${c}"`, 2);
    return n;
  }

  private provider(): CredentialProvider {
    const u = str(this.flags.username);
    const p = str(this.flags.password);
    const stored = this.credentials.provider;
    if (u !== undefined || p !== undefined) {
      // `-p` alone is a token (identity token), as in ORAS.
      return staticCredentials(u !== undefined ? { username: u, password: p ?? '' } : { identityToken: p! }, stored);
    }
    return stored;
  }

  async registryOptions(): Promise<RegistryOptions> {
    keepBaselineWasm();
    const read = async (flag: string): Promise<Buffer | undefined> => {
      const f = str(this.flags[flag]);
      if (!f) return undefined;
      return readFile(f).catch((err: NodeJS.ErrnoException) => {
        throw new ExitError(`cannot read ${f}: ${err.code ?? err.message}`, 2);
      });
    };
    const opts: RegistryOptions = {
      plainHttp: bool(this.flags.plainHttp),
      insecure: bool(this.flags.insecure),
      headers: headerMap(strs(this.flags.header)),
      credentials: this.provider(),
      debug: bool(this.flags.debug) ? (l) => process.stderr.write(`debug: ${l}\n`) : undefined,
      onWarning: (host, text) => {
        if (this.warned.has(text)) return;
        this.warned.add(text);
        process.stderr.write(`wharf: warning from ${host}: ${text}\n`);
      },
    };
    const ca = await read('caFile');
    const cert = await read('certFile');
    const key = await read('keyFile');
    if (ca) opts.ca = ca;
    if (cert) opts.cert = cert;
    if (key) opts.key = key;
    if ((cert && !key) || (key && !cert)) throw new ExitError('--cert-file and --key-file go together', 2);
    const cacheDir = process.env.WHARF_CACHE;
    if (cacheDir) opts.cache = new ContentCache(cacheDir);
    const chunk = str(this.flags.chunkSize);
    if (chunk) opts.chunkSize = parseSizeFlag(chunk);
    // Chunked uploads remember their sessions, so that a push interrupted and run again resumes.
    opts.sessions = new UploadSessionFile();
    const ds = str(this.flags.distributionSpec);
    if (ds) {
      const modes: Record<string, ReferrersMode> = { 'v1.1-referrers-api': 'api', 'v1.1-referrers-tag': 'tag' };
      const m = modes[ds];
      if (!m) throw new ExitError(`--distribution-spec must be v1.1-referrers-api or v1.1-referrers-tag, not "${ds}"`, 2);
      opts.referrers = m;
    }
    return opts;
  }

  /** Opens a target named on the command line; closed by `close()`. */
  async open(input: string, opts: { ociLayout?: boolean; create?: boolean } = {}): Promise<OpenedTarget> {
    const ro = await this.registryOptions();
    this.transport ??= new Transport(ro);
    const t = await openTarget(input, { ...ro, transport: this.transport, ociLayout: opts.ociLayout, create: opts.create });
    this.opened.push(t);
    return t;
  }

  /** A target with a reference is required for most commands. */
  static needReference(t: OpenedTarget, input: string): string {
    if (!t.reference) throw new ExitError(`"${input}" names no tag or digest; add :tag or @sha256:...`, 2);
    return t.reference;
  }

  async close(failed: boolean): Promise<void> {
    this.out.stopProgress();
    for (const t of this.opened) await t.close({ discard: failed }).catch(() => undefined);
    await this.transport?.close();
  }

  /**
   * Ctrl-C or SIGTERM: the terminal is given back at once (progress bars hide the cursor and turn
   * line wrap off), then the command stops through `signal`, so that its way out removes temporary
   * files and an interrupted chunked upload keeps its session for the next run. A command that
   * took no signal, a second signal, or a way out that takes more than a few seconds exits at once.
   */
  interrupt(sig: NodeJS.Signals): void {
    this.out.stopProgress();
    if (!this.stoppable || this.stop.signal.aborted) process.exit(130);
    this.stop.abort(new ExitError(`interrupted by ${sig}; run the same command again to resume`, 130));
    setTimeout(() => process.exit(130), 5000).unref();
  }
}

/** Runs a command body with a context that is always closed, layout tars discarded on failure. */
export async function withContext(flags: Flags, fn: (ctx: Context) => Promise<void>): Promise<void> {
  const ctx = new Context(flags);
  const onSignal = (sig: NodeJS.Signals): void => ctx.interrupt(sig);
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  let failed = true;
  try {
    await fn(ctx);
    failed = false;
  } catch (err) {
    // Whatever broke off when the signal came, the interruption is what happened.
    throw ctx.interrupted ?? err;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await ctx.close(failed);
  }
}

export function assertFound<T>(v: T | undefined, message: string): T {
  if (v === undefined) throw new WharfError('NOT_FOUND', message);
  return v;
}
