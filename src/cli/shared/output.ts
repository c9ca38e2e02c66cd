import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';
import { Annotation, isDigest, type Descriptor } from '../../spec/index.js';
import type { ProgressListener } from '../../client/source.js';
import { ExitError } from '../errors.js';

export function shortDigest(d: string): string {
  // A file uploaded as it is hashed has no digest until it is done (its progress key is not one).
  if (!isDigest(d)) return 'sha256:…'.padEnd(19);
  const [alg, hex] = d.split(':');
  return `${alg}:${(hex ?? '').slice(0, 12)}`;
}

export function humanSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function label(d: Descriptor): string {
  return d.annotations?.[Annotation.Title] ?? shortDigest(d.digest);
}

/**
 * Where a command's results and progress go: results to stdout (text, or one JSON document with
 * --format json), progress to stderr: bars on a terminal, plain lines otherwise, nothing in JSON
 * mode so that stdout stays parseable and stderr quiet.
 */
/** Columns for a bar's name (verb and file name). */
const NAME_WIDTH = 20;

export class Output {
  readonly format: 'text' | 'json';
  private readonly tty: boolean;
  readonly debug: boolean;
  private bars?: CliProgress.MultiBar;

  constructor(format: string, allowTty: boolean, debug: boolean) {
    if (format !== 'text' && format !== 'json') throw new ExitError(`--format must be text or json, not "${format}"`, 2);
    this.format = format;
    this.tty = allowTty && Boolean(process.stderr.isTTY) && !debug;
    this.debug = debug;
  }

  get json(): boolean {
    return this.format === 'json';
  }

  /** A line of the text result. */
  line(s: string): void {
    if (!this.json) process.stdout.write(`${s}\n`);
  }

  /** The JSON result (json mode only). */
  result(v: unknown): void {
    if (this.json) process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  }

  /** A progress listener for transfers: verb is e.g. "Uploading". */
  progress(verb: string, doneVerb: string): ProgressListener | undefined {
    if (this.json) return undefined;
    if (!this.tty) {
      return {
        start: (d) => process.stderr.write(`${verb} ${shortDigest(d.digest)} ${label(d)} (${humanSize(d.size)})\n`),
        done: (d) => process.stderr.write(`${doneVerb} ${shortDigest(d.digest)} ${label(d)}\n`),
        skipped: (d) => process.stderr.write(`Exists    ${shortDigest(d.digest)} ${label(d)}\n`),
      };
    }
    // Loaded for a terminal only: scripts and CI never draw bars and need not pay for loading it.
    const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
    const bars = new cliProgress.MultiBar(
      {
        format: ' {name} |{bar}| {percentage}% {done}/{total_h} {speed} ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: false,
        stream: process.stderr,
        autopadding: true,
        etaBuffer: 20,
        // The name, sizes, speed and ETA take about 67 columns: the bar gets what is left, so that
        // nothing is cut off on an 80-column terminal.
        barsize: Math.max(6, Math.min(40, (process.stderr.columns || 80) - 70)),
      },
      cliProgress.Presets.shades_classic,
    );
    this.bars = bars;
    const total = bars.create(0, 0, { name: 'total'.padEnd(NAME_WIDTH), done: '0 B', total_h: '0 B', speed: '' });
    let totalSize = 0;
    let totalDone = 0;
    const started = Date.now();
    const per = new Map<string, { bar: CliProgress.SingleBar; n: number; t0: number }>();
    const payload = (n: number, size: number, t0: number): Record<string, string> => ({
      done: humanSize(n),
      total_h: humanSize(size),
      speed: `${humanSize(Math.round(n / Math.max(0.001, (Date.now() - t0) / 1000)))}/s`,
    });
    return {
      start: (d) => {
        totalSize += d.size;
        total.setTotal(totalSize);
        const bar = bars.create(d.size, 0, { name: `${verb} ${label(d)}`.slice(0, NAME_WIDTH).padEnd(NAME_WIDTH), ...payload(0, d.size, Date.now()) });
        per.set(d.digest, { bar, n: 0, t0: Date.now() });
      },
      bytes: (d, n) => {
        const p = per.get(d.digest);
        if (p) {
          p.n += n;
          p.bar.update(p.n, payload(p.n, d.size, p.t0));
        }
        totalDone += n;
        total.update(totalDone, payload(totalDone, totalSize, started));
      },
      identified: (pending, d) => {
        const p = per.get(pending.digest);
        if (p) per.set(d.digest, p);
        per.delete(pending.digest);
      },
      done: (d) => {
        const p = per.get(d.digest);
        p?.bar.update(d.size, { name: `${doneVerb} ${label(d)}`.slice(0, NAME_WIDTH).padEnd(NAME_WIDTH), ...payload(d.size, d.size, p.t0) });
      },
      skipped: (d) => {
        const bar = bars.create(d.size, d.size, { name: `Exists ${label(d)}`.slice(0, NAME_WIDTH).padEnd(NAME_WIDTH), done: humanSize(d.size), total_h: humanSize(d.size), speed: '' });
        bar.stop();
      },
    };
  }

  stopProgress(): void {
    this.bars?.stop();
    this.bars = undefined;
  }
}
