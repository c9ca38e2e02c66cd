/**
 * The wharf CLI among real peers: images skopeo pushed, copied by `wharf cp` from Distribution
 * into wharf serve, as skopeo sees them there; credentials shared with skopeo both ways.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../src/spec/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { missingPeer, REGISTRY_BIN, startDistribution, type Distribution } from './helpers/distribution.js';
import { wharf as runWharf, type RunResult } from './helpers/cli.js';
import { run } from './helpers/exec.js';
import { writeMultiPlatform } from './helpers/layouts.js';

const noDistribution = missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)');
const noSkopeo = missingPeer('skopeo');
const skip = noDistribution ?? noSkopeo;

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

describe('wharf CLI with skopeo, Distribution and wharf serve', { skip, timeout: 300_000 }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let dist: Distribution;
  let server: RunningServer;
  let W: string;
  const wharf = (args: string[]): Promise<RunResult> => runWharf(args, { env });
  const skopeo = (args: string[], input?: string): Promise<string> => run('skopeo', ['--insecure-policy', ...args], { env, input });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-client-peers-'));
    const home = join(dir, 'home');
    env = { HOME: home, DOCKER_CONFIG: join(home, '.docker'), XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, '.config'), REGISTRY_AUTH_FILE: join(home, 'auth.json') };
    await mkdir(env.XDG_RUNTIME_DIR!, { recursive: true });
    dist = await startDistribution({ users: { alice: 'wonderland' } });
    server = await startServer({ dataDir: join(dir, 'data'), port: 0, logLevel: 'silent' });
    W = new URL(server.url).host;
  });
  after(async () => {
    await server?.close();
    await dist?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('credentials: wharf uses what skopeo login stored, skopeo uses what wharf login stored', async () => {
    const { index } = await writeMultiPlatform(join(dir, 'src'));
    await skopeo(['login', '--tls-verify=false', '-u', 'alice', '--password-stdin', dist.host], 'wonderland\n');
    // Only skopeo's auth.json holds the credentials now; wharf finds them there.
    await skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(dir, 'src')}:v1`, `docker://${dist.host}/peers/multi:v1`]);
    assert.equal(ok(await wharf(['resolve', '--plain-http', `${dist.host}/peers/multi:v1`])).stdout.trim(), index.digest);
    await skopeo(['logout', dist.host]);
    assert.notEqual((await wharf(['resolve', '--plain-http', `${dist.host}/peers/multi:v1`])).code, 0);

    ok(await runWharf(['login', '--plain-http', dist.host, '-u', 'alice', '--password-stdin'], { env, input: 'wonderland\n' }));
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${dist.host}/peers/multi:v1`]);
    assert.equal(digestOf(Buffer.from(raw)), index.digest);
  });

  test('wharf cp from Distribution into wharf serve: skopeo sees the same digests; --platform picks one', async () => {
    const { index, manifests } = await writeMultiPlatform(join(dir, 'src'));
    const arm64 = manifests[1]!;
    ok(await runWharf(['login', '--plain-http', dist.host, '-u', 'alice', '--password-stdin'], { env, input: 'wonderland\n' }));
    await skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(dir, 'src')}:v1`, `docker://${dist.host}/peers/cp:v1`]);

    ok(await wharf(['cp', '--plain-http', `${dist.host}/peers/cp:v1`, `${W}/peers/all:v1`]));
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${W}/peers/all:v1`]);
    assert.equal(digestOf(Buffer.from(raw)), index.digest);
    // Every child is there too: skopeo copies the whole index out of wharf serve.
    await skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${W}/peers/all:v1`, `oci:${join(dir, 'out')}:v1`]);

    ok(await wharf(['cp', '--plain-http', '--platform', 'linux/arm64', `${dist.host}/peers/cp:v1`, `${W}/peers/arm:v1`]));
    const one = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${W}/peers/arm:v1`]);
    assert.equal(digestOf(Buffer.from(one)), arm64.digest);
  });
});
