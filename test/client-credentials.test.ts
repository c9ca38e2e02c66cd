import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, rm, stat, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, normalizeHost } from '../src/stores/remote/index.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'wharf-creds-'));
}

/** A real docker-credential-* executable: a shell script keeping secrets in a file next to it. */
async function installHelper(dir: string, name: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const store = join(dir, `${name}.store`);
  const script = `#!/bin/sh
store='${store}'
case "$1" in
  get) host=$(cat); line=$(grep "^$host " "$store" 2>/dev/null | tail -n1)
       if [ -z "$line" ]; then echo "credentials not found in native keychain"; exit 1; fi
       set -- $line; printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$1" "$2" "$3";;
  store) json=$(cat); h=$(echo "$json" | sed 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/'); u=$(echo "$json" | sed 's/.*"Username":"\\([^"]*\\)".*/\\1/'); s=$(echo "$json" | sed 's/.*"Secret":"\\([^"]*\\)".*/\\1/')
       echo "$h $u $s" >> "$store";;
  erase) host=$(cat); grep -v "^$host " "$store" > "$store.new" 2>/dev/null; mv "$store.new" "$store";;
esac
`;
  const file = join(bin, `docker-credential-${name}`);
  await writeFile(file, script);
  await chmod(file, 0o755);
  return bin;
}

test('normalizeHost understands Docker config keys', () => {
  assert.equal(normalizeHost('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeHost('http://localhost:5000'), 'localhost:5000');
  assert.equal(normalizeHost('reg.example:443'), 'reg.example:443');
});

test('auths: reads, stores (0600, atomically) and erases like docker login', async () => {
  const dir = await tmp();
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify({ auths: { 'https://a.example/v1/': { auth: Buffer.from('u:p:w').toString('base64') } }, other: 1 }));
  const s = new CredentialStore({ configPath });
  assert.deepEqual(await s.get('a.example'), { username: 'u', password: 'p:w' });
  assert.equal(await s.get('b.example'), undefined);
  await s.store('b.example:5000', { username: 'x', password: 'y' });
  assert.deepEqual(await s.get('b.example:5000'), { username: 'x', password: 'y' });
  assert.equal((await stat(configPath)).mode & 0o777, 0o600);
  const doc = JSON.parse(await readFile(configPath, 'utf8'));
  assert.equal(doc.other, 1, 'unrelated settings kept');
  assert.equal(await s.erase('b.example:5000'), true);
  assert.equal(await s.get('b.example:5000'), undefined);
  await s.store('t.example', { identityToken: 'rt' });
  assert.deepEqual(await s.get('t.example'), { identityToken: 'rt' });
  await rm(dir, { recursive: true, force: true });
});

test('credHelpers and credsStore run the real docker-credential-* executables', async () => {
  const dir = await tmp();
  const bin = await installHelper(dir, 'wharftest');
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath}`;
  try {
    const configPath = join(dir, 'config.json');
    await writeFile(configPath, JSON.stringify({ credHelpers: { 'h.example': 'wharftest' } }));
    const s = new CredentialStore({ configPath });
    assert.equal(await s.get('h.example'), undefined);
    await s.store('h.example', { username: 'hu', password: 'hp' });
    assert.deepEqual(await s.get('h.example'), { username: 'hu', password: 'hp' });
    // Secrets stay in the helper, not in config.json.
    assert.doesNotMatch(await readFile(configPath, 'utf8'), /hp/);
    await s.erase('h.example');
    assert.equal(await s.get('h.example'), undefined);

    await writeFile(configPath, JSON.stringify({ credsStore: 'wharftest' }));
    await s.store('d.example', { username: 'du', password: 'dp' });
    assert.deepEqual(await s.get('d.example'), { username: 'du', password: 'dp' });
    assert.deepEqual(JSON.parse(await readFile(configPath, 'utf8')).auths, { 'd.example': {} });

    await writeFile(configPath, JSON.stringify({ credHelpers: { 'm.example': 'missing-helper' } }));
    await assert.rejects(s.get('m.example'), /docker-credential-missing-helper is not on PATH/);
  } finally {
    process.env.PATH = oldPath;
    await rm(dir, { recursive: true, force: true });
  }
});

test("podman's auth.json is read after Docker's config", async () => {
  const dir = await tmp();
  const authFile = join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { 'p.example': { auth: Buffer.from('pu:pp').toString('base64') } } }));
  const s = new CredentialStore({ env: { DOCKER_CONFIG: join(dir, 'docker'), REGISTRY_AUTH_FILE: authFile, HOME: dir } });
  assert.deepEqual(await s.get('p.example'), { username: 'pu', password: 'pp' });
  await rm(dir, { recursive: true, force: true });
});

test('a broken config file is one clear error', async () => {
  const dir = await tmp();
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, '{nope');
  await assert.rejects(new CredentialStore({ configPath }).get('x'), /cannot read credentials file .*fix or remove it/);
  await rm(dir, { recursive: true, force: true });
});
