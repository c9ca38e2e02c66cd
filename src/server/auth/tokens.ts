import { randomUUID, X509Certificate } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { JWK, JWTPayload, JWTVerifyGetKey, CryptoKey, KeyObject } from 'jose';
import { OciError, WharfError } from '../../spec/index.js';

/** jose is loaded on first use: a server without token auth never needs it, and idle RSS is part of the goals. */
const jose = (): Promise<typeof import('jose')> => import('jose');

/** One entry of a token's `access` claim (Docker registry token spec). */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** What a verified token says. */
export interface TokenClaims {
  subject: string | undefined;
  access: AccessEntry[];
  issuer: string;
  expiresAt: number;
}

/** `repository:ml/model:pull,push` → entry; an unparseable scope is undefined. */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope.slice(last + 1).split(',').filter((a) => a !== '');
  if (name === '' || actions.length === 0) return undefined;
  return { type, name, actions };
}

export function formatScope(e: AccessEntry): string {
  return `${e.type}:${e.name}:${e.actions.join(',')}`;
}

type Key = CryptoKey | KeyObject;

async function newJwk(): Promise<JWK> {
  const { generateKeyPair, exportJWK } = await jose();
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256' };
}

/** A secret by name, made by `make` when there is none yet (the database's, for replicas). */
export type SecretSource = (name: string, make: () => Promise<string>) => Promise<string>;

/** The key file under the data directory, made on first start. */
async function fileKey(path: string): Promise<JWK> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as JWK;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const jwk = await newJwk();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // 'wx': two servers starting on one data dir must not overwrite each other's key.
  try {
    const fh = await open(path, 'wx', 0o600);
    await fh.writeFile(JSON.stringify(jwk));
    await fh.sync();
    await fh.close();
    return jwk;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return JSON.parse(await readFile(path, 'utf8')) as JWK;
  }
}

async function loadOrCreateKey(path: string, shared?: SecretSource): Promise<{ priv: Key; pub: Key; kid: string }> {
  const jwk = shared ? (JSON.parse(await shared('token-key', async () => JSON.stringify(await newJwk()))) as JWK) : await fileKey(path);
  const { d: _d, ...pubJwk } = jwk;
  const { importJWK } = await jose();
  return { priv: (await importJWK(jwk, 'ES256')) as Key, pub: (await importJWK(pubJwk, 'ES256')) as Key, kid: jwk.kid ?? 'wharf' };
}

export interface TokenIssuerOptions {
  keyFile: string;
  /** Where replicas share the key (the database): then keyFile is not used. */
  sharedKey?: SecretSource;
  issuer: string;
  service: string;
  /** Seconds an access token lives. */
  expiresIn: number;
  /** Seconds a refresh token lives. */
  refreshExpiresIn: number;
}

/** Signs access and refresh tokens with an ES256 key kept under the data directory. */
export class TokenIssuer {
  private constructor(private readonly opts: TokenIssuerOptions, private readonly key: { priv: Key; pub: Key; kid: string }) {}

  static async open(opts: TokenIssuerOptions): Promise<TokenIssuer> {
    return new TokenIssuer(opts, await loadOrCreateKey(opts.keyFile, opts.sharedKey));
  }

  get service(): string {
    return this.opts.service;
  }

  get expiresIn(): number {
    return this.opts.expiresIn;
  }

  private async sign(payload: JWTPayload, seconds: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const { SignJWT } = await jose();
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES256', kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.service)
      .setIssuedAt(now)
      .setNotBefore(now - 1)
      .setExpirationTime(now + seconds)
      .setJti(randomUUID())
      .sign(this.key.priv);
  }

  issueAccess(subject: string | undefined, access: AccessEntry[]): Promise<string> {
    return this.sign({ sub: subject ?? '', access }, this.opts.expiresIn);
  }

  issueRefresh(subject: string): Promise<string> {
    return this.sign({ sub: subject, use: 'refresh' }, this.opts.refreshExpiresIn);
  }

  /** The subject of a valid refresh token, else undefined. */
  async verifyRefresh(token: string): Promise<string | undefined> {
    try {
      const { jwtVerify } = await jose();
      const { payload } = await jwtVerify(token, this.key.pub, { algorithms: ['ES256'], issuer: this.opts.issuer, audience: this.opts.service });
      return payload.use === 'refresh' && typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  }

  verifier(): TokenVerifier {
    return new TokenVerifier({ issuer: this.opts.issuer, audience: this.opts.service, keys: async () => this.key.pub });
  }
}

export interface TokenVerifierOptions {
  issuer: string;
  audience: string;
  keys: JWTVerifyGetKey | (() => Promise<Key>) | Key[];
}

const ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'];

/** Verifies access tokens: signature (never `alg: none`), issuer, audience, expiry, and no refresh tokens. */
export class TokenVerifier {
  constructor(private readonly opts: TokenVerifierOptions) {}

  async verify(token: string): Promise<TokenClaims> {
    let payload: JWTPayload | undefined;
    let failure: unknown;
    const opts = { algorithms: ALGS, issuer: this.opts.issuer, audience: this.opts.audience };
    // A certificate bundle has no key ids: each of its keys is tried in turn.
    const candidates = Array.isArray(this.opts.keys) ? this.opts.keys : [this.opts.keys];
    const { jwtVerify } = await jose();
    for (const k of candidates) {
      try {
        ({ payload } = await jwtVerify(token, k as JWTVerifyGetKey, opts));
        break;
      } catch (err) {
        failure = err;
      }
    }
    if (payload === undefined) throw new OciError('UNAUTHORIZED', 'invalid or expired token', { cause: failure });
    if (payload.use === 'refresh') throw new OciError('UNAUTHORIZED', 'a refresh token is no access token');
    const raw = Array.isArray(payload.access) ? (payload.access as unknown[]) : [];
    const access = raw.filter((a): a is AccessEntry => {
      const e = a as Partial<AccessEntry>;
      return typeof e?.type === 'string' && typeof e.name === 'string' && Array.isArray(e.actions) && e.actions.every((x) => typeof x === 'string');
    });
    return { subject: payload.sub || undefined, access, issuer: payload.iss ?? '', expiresAt: payload.exp ?? 0 };
  }
}

/** Trust for tokens from another issuer: a JWKS (URL or file) or a PEM certificate bundle. */
export async function externalVerifier(opts: { issuer: string; audience: string; jwks?: string; certs?: string }): Promise<TokenVerifier> {
  const { createLocalJWKSet, createRemoteJWKSet, importX509 } = await jose();
  if (opts.jwks !== undefined) {
    const keys = /^https?:\/\//.test(opts.jwks)
      ? createRemoteJWKSet(new URL(opts.jwks))
      : createLocalJWKSet(JSON.parse(await readFile(opts.jwks, 'utf8')) as { keys: JWK[] });
    return new TokenVerifier({ issuer: opts.issuer, audience: opts.audience, keys });
  }
  if (opts.certs === undefined) throw new WharfError('INVALID_ARGUMENT', 'an external token issuer needs jwks or certs');
  const pem = await readFile(opts.certs, 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new WharfError('INVALID_ARGUMENT', `${opts.certs} holds no PEM certificate`);
  const keys: Key[] = [];
  for (const b of blocks) {
    const cert = new X509Certificate(b);
    const type = cert.publicKey.asymmetricKeyType;
    const alg = type === 'rsa' ? 'RS256' : type === 'ec' ? (cert.publicKey.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ES384' : 'ES256') : 'EdDSA';
    keys.push((await importX509(b, alg, { extractable: false })) as Key);
  }
  return new TokenVerifier({ issuer: opts.issuer, audience: opts.audience, keys });
}
