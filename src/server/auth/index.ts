import { join } from 'node:path';
import { OciError } from '../../spec/index.js';
import type { AuthConfig } from './config.js';
import { FailureLimiter, type SharedFailures } from './ratelimit.js';
import { HtpasswdFile } from './htpasswd.js';
import { ACTIONS, AccessPolicy, type Action } from './rules.js';
import { TokenIssuer, externalVerifier, type AccessEntry, type SecretSource, type TokenVerifier } from './tokens.js';

export { AuthConfigSchema, type AuthConfig, type AuthConfigInput } from './config.js';
export { AccessPolicy, ACTIONS, globToRegExp, type Action, type AccessRule } from './rules.js';
export { HtpasswdFile, readHtpasswd, writeHtpasswd, hashPassword, parseHtpasswd, assertUserName } from './htpasswd.js';
export { TokenIssuer, TokenVerifier, parseScope, formatScope, type AccessEntry, type SecretSource, type TokenClaims } from './tokens.js';
export { FailureLimiter, type SharedFailures } from './ratelimit.js';

/** Who is calling. A token's rights are its claims; a user's are the policy's. */
export type Identity =
  | { kind: 'anonymous' }
  | { kind: 'user'; user: string; via: 'basic' | 'mtls' }
  | { kind: 'token'; user: string | undefined; access: AccessEntry[]; local: boolean };

export interface Credentials {
  authorization?: string | undefined;
  ip: string;
  /** The subject CN of a verified client certificate. */
  peerUser?: string | undefined;
}

export function userOf(id: Identity): string | undefined {
  return id.kind === 'anonymous' ? undefined : id.user;
}

export function defaultHtpasswdPath(dataDir: string): string {
  return join(dataDir, 'auth', 'htpasswd');
}

const q = (s: string): string => s.replace(/["\\]/g, '');

/** What several replicas share for auth (the database's): the token signing key and the failed-login counts. */
export interface SharedAuthState {
  secrets: SecretSource;
  failures: SharedFailures;
  /** A shared count that failed (the database away); the replica's own count goes on. */
  onError?: (err: unknown) => void;
}

/** Authentication (htpasswd, tokens, client certificates) and authorization (the policy). */
export class Authenticator {
  readonly htpasswd: HtpasswdFile;
  readonly policy: AccessPolicy;
  private readonly perClient: FailureLimiter;
  private readonly perUser: FailureLimiter;
  private readonly verified = new Map<string, { id: Identity; until: number }>();

  private constructor(
    readonly config: AuthConfig,
    dataDir: string,
    readonly issuer: TokenIssuer,
    private readonly verifiers: TokenVerifier[],
    shared?: SharedAuthState,
  ) {
    this.htpasswd = new HtpasswdFile(config.htpasswd ?? defaultHtpasswdPath(dataDir));
    this.policy = new AccessPolicy(config.rules, config.groups);
    const counted = (kind: string) => (shared ? { count: shared.failures, kind, ...(shared.onError ? { onError: shared.onError } : {}) } : undefined);
    this.perClient = new FailureLimiter(config.rateLimit.perClient, config.rateLimit.window, counted('client'));
    this.perUser = new FailureLimiter(config.rateLimit.perUser, config.rateLimit.window, counted('user'));
  }

  /** `shared`: where replicas share the token signing key and the failed-login counts (the database), instead of this process. */
  static async create(config: AuthConfig, dataDir: string, shared?: SharedAuthState): Promise<Authenticator> {
    const issuer = await TokenIssuer.open({
      keyFile: join(dataDir, 'auth', 'token-key.jwk'),
      ...(shared ? { sharedKey: shared.secrets } : {}),
      issuer: config.issuer,
      service: config.service,
      expiresIn: config.tokenExpiresIn,
      refreshExpiresIn: config.refreshExpiresIn,
    });
    const verifiers = [issuer.verifier()];
    const ext = config.external;
    if (ext) {
      const o: Parameters<typeof externalVerifier>[0] = { issuer: ext.issuer, audience: ext.audience ?? config.service };
      if (ext.jwks !== undefined) o.jwks = ext.jwks;
      if (ext.certs !== undefined) o.certs = ext.certs;
      verifiers.push(await externalVerifier(o));
    }
    return new Authenticator(config, dataDir, issuer, verifiers, shared);
  }

  /**
   * Checks a password, rate-limited per client IP and per user name: past the limit the answer is
   * 429 without running bcrypt, so a flood of wrong passwords costs the server next to nothing.
   */
  async login(user: string, password: string, ip: string): Promise<boolean> {
    this.assertNotBlocked(user, ip);
    if (await this.htpasswd.verify(user, password)) return true;
    // Attempts that passed the check together while bcrypt ran are counted now: those past the
    // limit are answered as if they had come after it.
    const [withinClient, withinUser] = await Promise.all([this.perClient.fail(ip), this.perUser.fail(user)]);
    if (!withinClient || !withinUser) this.assertNotBlocked(user, ip);
    return false;
  }

  private assertNotBlocked(user: string, ip: string): void {
    const wait = Math.max(this.perClient.blockedFor(ip), this.perUser.blockedFor(user));
    if (wait > 0) throw new OciError('TOOMANYREQUESTS', 'too many failed logins; try again later', { detail: { retryAfter: Math.ceil(wait / 1000) } });
  }

  /** Who sent the request. Bad credentials are a 401, never a silent fall back to anonymous. */
  async identify(c: Credentials): Promise<Identity> {
    const h = c.authorization;
    if (h === undefined || h === '') {
      if (c.peerUser !== undefined && this.config.mtlsUser) return { kind: 'user', user: c.peerUser, via: 'mtls' };
      return { kind: 'anonymous' };
    }
    const sp = h.indexOf(' ');
    const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase();
    const value = sp < 0 ? '' : h.slice(sp + 1).trim();
    if (scheme === 'basic') {
      const raw = Buffer.from(value, 'base64').toString('utf8');
      const i = raw.indexOf(':');
      if (i <= 0) throw new OciError('UNAUTHORIZED', 'malformed basic credentials');
      const user = raw.slice(0, i);
      if (!(await this.login(user, raw.slice(i + 1), c.ip))) throw new OciError('UNAUTHORIZED', 'invalid username or password');
      return { kind: 'user', user, via: 'basic' };
    }
    if (scheme === 'bearer') {
      // A verified token is remembered until it expires: a signature check per request costs more
      // than the rest of a manifest GET.
      const hit = this.verified.get(value);
      if (hit && hit.until > Date.now()) return hit.id;
      let last: unknown;
      for (const [i, v] of this.verifiers.entries()) {
        try {
          const claims = await v.verify(value);
          const id: Identity = { kind: 'token', user: claims.subject, access: claims.access, local: i === 0 };
          if (this.verified.size >= 10_000) this.verified.clear();
          this.verified.set(value, { id, until: claims.expiresAt * 1000 });
          return id;
        } catch (err) {
          last = err;
        }
      }
      throw last instanceof OciError ? last : new OciError('UNAUTHORIZED', 'invalid token');
    }
    throw new OciError('UNAUTHORIZED', `unsupported authorization scheme ${scheme.slice(0, 20)}`);
  }

  /** Whether `id` may do `action` on repository `repo`. */
  can(id: Identity, repo: string, action: Action): boolean {
    if (id.kind === 'token') {
      return id.access.some((a) => a.type === 'repository' && a.name === repo && (a.actions.includes(action) || a.actions.includes('*')));
    }
    return this.policy.allowed(userOf(id), repo, action);
  }

  isAdmin(id: Identity): boolean {
    if (id.kind === 'token') return id.access.some((a) => a.type === 'registry' && a.name === 'admin' && a.actions.includes('*')) || (id.local && this.policy.isAdmin(id.user));
    return this.policy.isAdmin(userOf(id));
  }

  /** The part of the requested scopes that `user` holds: what a token for them may carry. */
  grant(user: string | undefined, requested: AccessEntry[]): AccessEntry[] {
    const out: AccessEntry[] = [];
    for (const r of requested) {
      if (r.type === 'repository') {
        const wanted = r.actions.includes('*') ? [...ACTIONS] : r.actions.filter((a): a is Action => (ACTIONS as readonly string[]).includes(a));
        const got = this.policy.granted(user, r.name, wanted);
        const actions = r.actions.includes('*') && got.includes('admin') ? ['*'] : got.filter((a) => a !== 'admin');
        if (actions.length > 0) out.push({ type: 'repository', name: r.name, actions });
      } else if (r.type === 'registry' && r.name === 'catalog' && user !== undefined) {
        out.push({ type: 'registry', name: 'catalog', actions: ['*'] });
      }
    }
    return out;
  }

  /** The `WWW-Authenticate` value of a 401. */
  challenge(realm: string, scope?: string, error?: string): string {
    if (this.config.challenge === 'basic') return `Basic realm="${q(this.config.service)}"`;
    let v = `Bearer realm="${q(this.config.realm ?? realm)}",service="${q(this.config.service)}"`;
    if (scope !== undefined) v += `,scope="${q(scope)}"`;
    if (error !== undefined) v += `,error="${error}"`;
    return v;
  }
}

/** pino `redact` paths: credentials never reach a log line, whatever an error or hook logs. */
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers["proxy-authorization"]',
  'authorization', 'password', 'token', 'refresh_token', 'access_token', '*.authorization', '*.password', '*.token',
];
