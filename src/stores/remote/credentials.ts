import { spawn } from 'node:child_process';
import { readFile, writeFile, rename, mkdir, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { OciError, WharfError } from '../../spec/index.js';

/** What a registry host accepts: a username and password, or an OAuth2 refresh token. */
export interface Credential {
  username?: string;
  password?: string;
  /** Docker's `identitytoken`: a refresh token for the bearer-token flow. */
  identityToken?: string;
}

/** Looks up credentials for a registry host (`host[:port]`). */
export type CredentialProvider = (host: string) => Promise<Credential | undefined>;

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/** podman's auth files, in the order containers-auth.json(5) reads them. */
export function podmanAuthPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'containers', 'auth.json'));
  return paths;
}

/**
 * Keys in `auths` may be written `https://host/v1/`, `http://host` or `host`; Docker Hub's
 * legacy key maps to the host the API lives on.
 */
export function normalizeHost(key: string): string {
  let h = key.replace(/^[a-z]+:\/\//i, '');
  h = h.split('/')[0] ?? h;
  return h === 'index.docker.io' ? 'docker.io' : h;
}

async function readJson(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    return doc as DockerConfig;
  } catch (err) {
    throw new WharfError('INVALID_ARGUMENT', `cannot read credentials file ${path}: ${(err as Error).message}; fix or remove it`);
  }
}

function fromEntry(e: AuthEntry): Credential | undefined {
  const c: Credential = {};
  if (e.auth) {
    const raw = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = raw.indexOf(':');
    if (i > 0) {
      c.username = raw.slice(0, i);
      c.password = raw.slice(i + 1);
    }
  }
  if (e.username) c.username = e.username;
  if (e.password) c.password = e.password;
  if (e.identitytoken) c.identityToken = e.identitytoken;
  return c.username || c.identityToken ? c : undefined;
}

function findEntry(auths: Record<string, AuthEntry> | undefined, host: string): AuthEntry | undefined {
  if (!auths) return undefined;
  if (auths[host]) return auths[host];
  for (const [k, v] of Object.entries(auths)) if (normalizeHost(k) === host) return v;
  return undefined;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout. */
export function runCredentialHelper(helper: string, action: 'get' | 'store' | 'erase' | 'list', input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!/^[A-Za-z0-9_.-]+$/.test(helper)) return Promise.reject(new WharfError('INVALID_ARGUMENT', `invalid credential helper name "${helper}"`));
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      const e = err as NodeJS.ErrnoException;
      reject(
        e.code === 'ENOENT'
          ? new WharfError('INVALID_ARGUMENT', `credential helper docker-credential-${helper} is not on PATH; install it or remove it from the Docker config`)
          : err,
      );
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined); // a helper that exits without reading stdin
    child.stdin.end(input);
  });
}

async function helperGet(helper: string, host: string): Promise<Credential | undefined> {
  const r = await runCredentialHelper(helper, 'get', host);
  if (r.code !== 0) {
    // The protocol's "not found" answer; anything else is a real failure.
    if (/credentials not found/i.test(r.stdout + r.stderr)) return undefined;
    throw new OciError('UNAUTHORIZED', `docker-credential-${helper} get ${host} failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
  }
  const doc = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
  if (!doc.Secret) return undefined;
  // The protocol's convention: a username of `<token>` marks the secret as an identity token.
  if (doc.Username === '<token>') return { identityToken: doc.Secret };
  return { username: doc.Username ?? '', password: doc.Secret };
}

export interface CredentialStoreOptions {
  /** Docker config.json to read and write (`--registry-config`); default as Docker. */
  configPath?: string;
  /** Also read podman's auth.json files (default true unless configPath is given). */
  podman?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * Docker's credential store, read and written the way Docker does: per-host `credHelpers`, then
 * `credsStore`, then plain `auths`; podman's auth.json is consulted after Docker's config.
 */
export class CredentialStore {
  readonly configPath: string;
  private readonly podmanPaths: string[];

  constructor(opts: CredentialStoreOptions = {}) {
    const env = opts.env ?? process.env;
    this.configPath = opts.configPath ?? defaultDockerConfigPath(env);
    this.podmanPaths = opts.podman ?? opts.configPath === undefined ? podmanAuthPaths(env) : [];
  }

  /** The provider the registry client takes. */
  get provider(): CredentialProvider {
    return (host) => this.get(host);
  }

  async get(host: string): Promise<Credential | undefined> {
    const cfg = await readJson(this.configPath);
    if (cfg) {
      const helper = cfg.credHelpers?.[host];
      if (helper) return helperGet(helper, host);
      if (cfg.credsStore) {
        const c = await helperGet(cfg.credsStore, host);
        if (c) return c;
      }
      const e = findEntry(cfg.auths, host);
      if (e) {
        const c = fromEntry(e);
        if (c) return c;
      }
    }
    for (const p of this.podmanPaths) {
      const e = findEntry((await readJson(p))?.auths, host);
      const c = e && fromEntry(e);
      if (c) return c;
    }
    return undefined;
  }

  /** Stores credentials as `docker login` would: in the host's helper, the default store, or `auths`. */
  /**
   * Keeps credentials as Docker does. Returns where they went: `helper` (a credential helper) or
   * `file` (unencrypted, base64 in config.json: the caller should say so).
   */
  async store(host: string, cred: Credential): Promise<{ storedIn: 'helper' | 'file'; helper?: string }> {
    const cfg = (await readJson(this.configPath)) ?? {};
    const helper = cfg.credHelpers?.[host] ?? cfg.credsStore;
    if (helper) {
      const payload = cred.identityToken
        ? { ServerURL: host, Username: '<token>', Secret: cred.identityToken }
        : { ServerURL: host, Username: cred.username ?? '', Secret: cred.password ?? '' };
      const r = await runCredentialHelper(helper, 'store', JSON.stringify(payload));
      if (r.code !== 0) throw new OciError('INTERNAL', `docker-credential-${helper} store failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
      // Docker keeps an empty entry in auths so that it knows the host is logged in.
      if (!cfg.credHelpers?.[host]) {
        cfg.auths = { ...cfg.auths, [host]: {} };
        await this.write(cfg);
      }
      return { storedIn: 'helper', helper };
    }
    const entry: AuthEntry = {};
    if (cred.username !== undefined) entry.auth = Buffer.from(`${cred.username}:${cred.password ?? ''}`).toString('base64');
    if (cred.identityToken) entry.identitytoken = cred.identityToken;
    cfg.auths = { ...cfg.auths, [host]: entry };
    await this.write(cfg);
    return { storedIn: 'file' };
  }

  /** Removes stored credentials; false when there were none. */
  async erase(host: string): Promise<boolean> {
    const cfg = await readJson(this.configPath);
    if (!cfg) return false;
    let found = false;
    const helper = cfg.credHelpers?.[host] ?? cfg.credsStore;
    if (helper) {
      const r = await runCredentialHelper(helper, 'erase', host);
      if (r.code === 0) found = true;
    }
    if (cfg.auths) {
      for (const k of Object.keys(cfg.auths)) {
        if (normalizeHost(k) === host) {
          delete cfg.auths[k];
          found = true;
        }
      }
      await this.write(cfg);
    }
    return found;
  }

  /** Temp file then rename, mode 0600: a crash never leaves a half-written config with secrets. */
  private async write(cfg: DockerConfig): Promise<void> {
    await mkdir(dirname(this.configPath), { recursive: true, mode: 0o700 });
    const tmp = `${this.configPath}.${process.pid}.${Date.now()}.tmp`;
    try {
      await writeFile(tmp, `${JSON.stringify(cfg, null, '\t')}\n`, { mode: 0o600 });
      await rename(tmp, this.configPath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}

/** A provider that always answers with the same credentials (`-u`/`-p` on the command line). */
export function staticCredentials(cred: Credential, fallback?: CredentialProvider, hostOnly?: string): CredentialProvider {
  return async (host) => (hostOnly === undefined || host === hostOnly ? cred : fallback?.(host));
}
