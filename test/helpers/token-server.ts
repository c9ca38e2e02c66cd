import { createServer, type Server } from 'node:http';
import { createSign, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Every token request: the scopes asked for and whether credentials came with it. */
  requests: Array<{ scopes: string[]; user?: string; method: string }>;
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * A small but real token service of distribution's token protocol: checks basic credentials,
 * grants the requested scopes and signs an RS256 JWT whose x5c chain Distribution trusts through
 * its rootcertbundle. `expiresIn` lets a test force refreshes.
 */
export async function startTokenServer(users: Record<string, string>, opts: { expiresIn?: number; refreshTokens?: Record<string, string> } = {}): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-token-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=wharf-test-token'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  const key = await readFile(keyFile, 'utf8');
  const certDer = Buffer.from((await readFile(certFile, 'utf8')).replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const service = 'wharf-test-registry';
  const issuer = 'wharf-test-issuer';
  const requests: TokenServer['requests'] = [];

  const sign = (sub: string, scopes: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop() ?? '';
      return { type, name: rest.join(':'), actions: actions.split(',').filter(Boolean) };
    });
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub, aud: service, exp: now + (opts.expiresIn ?? 300), nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    return `${input}.${b64url(sig)}`;
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      let scopes = u.searchParams.getAll('scope');
      let user: string | undefined;
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        const rt = form.get('refresh_token') ?? '';
        user = opts.refreshTokens?.[rt];
        requests.push({ scopes, user, method: 'POST' });
        if (!user) {
          res.writeHead(401).end();
          return;
        }
      } else {
        const auth = req.headers.authorization;
        if (auth?.startsWith('Basic ')) {
          const [u0, p0] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
          if (!u0 || users[u0] !== p0) {
            requests.push({ scopes, user: u0, method: 'GET' });
            res.writeHead(401).end();
            return;
          }
          user = u0;
        }
        requests.push({ scopes, user, method: 'GET' });
        // Anonymous callers get a token without access, as Docker Hub does for private repos.
        if (!user) scopes = [];
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: sign(user ?? '', scopes), expires_in: opts.expiresIn ?? 300, issued_at: new Date().toISOString() }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
