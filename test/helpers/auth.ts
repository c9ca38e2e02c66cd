import { mkdtemp } from 'node:fs/promises';
import type { Logger } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword, writeHtpasswd } from '../../src/server/auth/index.js';
import { startServer, type RunningServer, type WharfConfigInput } from '../../src/server/index.js';
import { call, type Reply } from '../../src/testkit/http.js';
import { EMPTY_DESCRIPTOR, MediaTypes, descriptorOf, imageManifest } from '../../src/testkit/fixtures.js';

export const USERS: Record<string, string> = { alice: 'alice-pw', bob: 'bob-pw', root: 'root-pw', victim: 'victim-pw' };

/** alice: pull+push on ml/**; bob: pull on ml/**; root: admin on everything; anyone: pull on public/**. */
export const RULES: NonNullable<WharfConfigInput['auth']>['rules'] = [
  { repos: ['ml/**'], groups: ['ml-team'], actions: ['pull', 'push'] },
  { repos: ['ml/**'], users: ['bob'], actions: ['pull'] },
  { repos: ['**'], users: ['root'], actions: ['admin'] },
  { repos: ['public/**'], anonymous: true, actions: ['pull'] },
];

export function basic(user: string, password = USERS[user] ?? ''): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export async function writeUsers(file: string, users: Record<string, string> = USERS): Promise<void> {
  const m = new Map<string, string>();
  for (const [u, p] of Object.entries(users)) m.set(u, await hashPassword(p, 4));
  await writeHtpasswd(file, m);
}

/** A server with USERS and RULES; `auth` and other settings override. */
export async function startAuthServer(config: WharfConfigInput = {}, dataDir?: string, logger?: Logger): Promise<RunningServer & { dataDir: string }> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'wharf-auth-')));
  await writeUsers(join(dir, 'auth', 'htpasswd'));
  const server = await startServer({
    dataDir: dir,
    ...(logger ? { logger } : { logLevel: 'silent' }),
    config: { ...config, auth: { groups: { 'ml-team': ['alice'] }, rules: RULES, ...config.auth } },
  });
  return Object.assign(server, { dataDir: dir });
}

/** Pushes a one-layer artifact; returns the manifest digest and the layer. */
export async function pushArtifact(url: string, repo: string, tag: string, headers: Record<string, string>, layer = Buffer.from(`layer of ${repo}:${tag}`)): Promise<{ digest: string; layer: string }> {
  const d = descriptorOf('application/vnd.example.layer', layer);
  for (const [desc, body] of [[d, layer], [EMPTY_DESCRIPTOR, Buffer.from('{}')]] as const) {
    const r = await call(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${desc.digest}`, { headers: { ...headers, 'content-type': 'application/octet-stream' }, body });
    if (r.status !== 201) throw new Error(`blob push to ${repo}: ${r.status} ${r.body.toString()}`);
  }
  const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [d], artifactType: 'application/vnd.example.model' });
  const r = await call(url, 'PUT', `/v2/${repo}/manifests/${tag}`, { headers: { ...headers, 'content-type': MediaTypes.manifest }, body: m.body });
  if (r.status !== 201) throw new Error(`manifest push to ${repo}: ${r.status} ${r.body.toString()}`);
  return { digest: m.digest, layer: d.digest };
}

export function errorCode(r: Reply): string | undefined {
  try {
    return (JSON.parse(r.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
}
