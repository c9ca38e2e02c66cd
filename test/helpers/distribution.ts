import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REGISTRY_BIN = process.env.WHARF_DISTRIBUTION_BIN ?? '/usr/bin/docker-registry';

/**
 * Why a test that needs a peer binary cannot run, or undefined when it can. On CI a missing
 * peer is a failure, not a skip: CI must exercise every real peer.
 */
export function missingPeer(bin: string, name = bin): string | undefined {
  const found = bin.includes('/') ? existsSync(bin) : spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  if (found) return undefined;
  const reason = `${name} is not installed (${bin})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`# skip: ${reason}`);
  return reason;
}

/**
 * One htpasswd line with a bcrypt hash, as `htpasswd -Bbn user password` prints it, made with
 * bcryptjs so that no apache2-utils is needed (Distribution and Wharf read `$2b$` hashes alike).
 * Cost 4, the least bcrypt allows: tests need valid hashes, not slow ones.
 */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  return `${user}:${await bcrypt.hash(password, 4)}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface DistributionOptions {
  /** `user:pass` pairs for htpasswd basic auth. */
  users?: Record<string, string>;
  /** Token auth: the realm the registry sends clients to, and the cert that signs tokens. */
  token?: { realm: string; service: string; issuer: string; certFile: string };
  /** Proxy mode: a pull-through cache of this upstream URL. */
  proxy?: { remoteurl: string };
  /**
   * Storage in an S3 bucket (the `s3` driver, path-style on an http endpoint) instead of the data
   * directory, with blob GETs served through the registry (`redirect: disable: true`) unless
   * `redirect` is set. The registry runs without the AWS_* variables of this environment: its SDK
   * reads AWS_CA_BUNDLE and panics at start on it (docs/BENCHMARKS.md, s3).
   */
  s3?: { endpoint: string; region: string; bucket: string; accessKeyId: string; secretAccessKey: string; redirect?: boolean };
}

/** The `storage:` lines of a config: the data directory, or an S3 bucket. */
function storageLines(dataDir: string, s3: DistributionOptions['s3']): string[] {
  if (!s3) return ['storage:', '  filesystem:', `    rootdirectory: ${dataDir}`];
  return [
    'storage:',
    '  s3:',
    `    accesskey: ${s3.accessKeyId}`,
    `    secretkey: ${s3.secretAccessKey}`,
    `    region: ${s3.region}`,
    `    regionendpoint: ${s3.endpoint}`,
    `    bucket: ${s3.bucket}`,
    // 2.8 sends path-style requests whenever regionendpoint is set; v3 reads forcepathstyle.
    '    forcepathstyle: true',
    `    secure: ${s3.endpoint.startsWith('https:')}`,
    '    v4auth: true',
    '  redirect:',
    `    disable: ${!s3.redirect}`,
  ];
}

/** This process's environment without AWS_* variables (see DistributionOptions.s3). */
function withoutAws(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
}

export interface Distribution {
  /** `127.0.0.1:<port>` */
  host: string;
  url: string;
  dataDir: string;
  pid?: number;
  stop(): Promise<void>;
}

/** Starts Debian's docker-registry on a free port with a temp config and data directory. */
export async function startDistribution(opts: DistributionOptions = {}): Promise<Distribution> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-distribution-'));
  // Every way out but success removes the directory: a failed start leaves nothing in /tmp.
  try {
    return await startIn(dir, opts);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function startIn(dir: string, opts: DistributionOptions): Promise<Distribution> {
  const dataDir = join(dir, 'data');
  let auth = '';
  if (opts.users) {
    const lines = await Promise.all(Object.entries(opts.users).map(([u, p]) => htpasswdLine(u, p)));
    await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    auth = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (opts.token) {
    const t = opts.token;
    auth = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.certFile}\n`;
  }
  let lastErr: unknown;
  // A free port can be taken between our probe and the registry's bind; try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      ...storageLines(dataDir, opts.s3),
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: wharf-test-secret',
      auth,
      opts.proxy ? `proxy:\n  remoteurl: ${opts.proxy.remoteurl}\n` : '',
    ].join('\n');
    const cfgFile = join(dir, 'config.yml');
    await writeFile(cfgFile, config);
    const child = spawn(REGISTRY_BIN, ['serve', cfgFile], { stdio: ['ignore', 'ignore', 'pipe'], ...(opts.s3 ? { env: withoutAws() } : {}) });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url, child);
      return {
        host: `127.0.0.1:${port}`,
        url,
        dataDir,
        pid: child.pid,
        stop: async () => {
          await stopChild(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastErr = new Error(`docker-registry did not start: ${(err as Error).message}\n${stderr}`);
      await stopChild(child);
    }
  }
  throw lastErr;
}

/** Waits until a registry child process answers `GET /v2/` (200, or 401 behind auth). */
export async function waitReady(url: string, child: ChildProcess, output: () => string = () => '', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${output()}`);
    try {
      const r = await fetch(`${url}/v2/`);
      await r.body?.cancel();
      if (r.status === 200 || r.status === 401) return;
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  throw new Error(`timed out: ${output()}`);
}

/** SIGTERM, then SIGKILL if the child has not exited after a few seconds. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}
