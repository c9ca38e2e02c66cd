import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, readFile, rename, stat, unlink, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WharfError } from '../../spec/index.js';

/** Users and bcrypt hashes, in the order of the file. */
export type HtpasswdEntries = Map<string, string>;

/** bcryptjs is loaded on first use: a server without htpasswd users never needs it. */
const bcrypt = async (): Promise<typeof import('bcryptjs').default> => (await import('bcryptjs')).default;

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
const USER = /^[^:\s]{1,128}$/;

/** Parses an htpasswd file; only bcrypt hashes are accepted (`htpasswd -B`). */
export function parseHtpasswd(text: string, source = 'htpasswd'): HtpasswdEntries {
  const out: HtpasswdEntries = new Map();
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    const c = l.indexOf(':');
    const user = l.slice(0, c);
    const hash = l.slice(c + 1);
    if (c <= 0 || !BCRYPT.test(hash)) {
      throw new WharfError('INVALID_ARGUMENT', `${source} line ${i + 1}: expected user:bcrypt-hash (create it with wharf user add or htpasswd -B)`);
    }
    out.set(user, hash);
  });
  return out;
}

export function formatHtpasswd(entries: HtpasswdEntries): string {
  return [...entries].map(([u, h]) => `${u}:${h}\n`).join('');
}

export function assertUserName(user: string): string {
  if (!USER.test(user)) throw new WharfError('INVALID_ARGUMENT', `invalid user name "${user.slice(0, 40)}": no colon, no whitespace, 1-128 characters`);
  return user;
}

export async function hashPassword(password: string, cost = 10): Promise<string> {
  if (password.length === 0) throw new WharfError('INVALID_ARGUMENT', 'the password must not be empty');
  return (await bcrypt()).hash(password, cost);
}

export async function readHtpasswd(path: string): Promise<HtpasswdEntries> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  return parseHtpasswd(text, path);
}

/** Writes the file atomically (temp file, fsync, rename), mode 0600. */
export async function writeHtpasswd(path: string, entries: HtpasswdEntries): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(formatHtpasswd(entries));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Verifies passwords against an htpasswd file that may change under a running server (re-read
 * when its mtime changes). bcrypt is slow on purpose, so a success is remembered for a short while
 * by a salted digest of user and password, compared in constant time; an unknown user is checked
 * against a dummy hash, so a miss takes as long as a wrong password.
 */
export class HtpasswdFile {
  private entries: HtpasswdEntries = new Map();
  private mtime = -1;
  private checkedAt = 0;
  private readonly salt = randomBytes(16).toString('hex');
  private readonly ok = new Map<string, { proof: Buffer; hash: string; until: number }>();
  private static dummyHash: Promise<string> | undefined;
  /** Made on first use: importing this module costs no bcrypt round. */
  private static dummy(): Promise<string> {
    return (HtpasswdFile.dummyHash ??= bcrypt().then((b) => b.hash('wharf-dummy-password', 10)));
  }

  constructor(readonly path: string, private readonly cacheMs = 60_000) {}

  private async refresh(): Promise<void> {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    const m = await stat(this.path).then((s) => s.mtimeMs, () => 0);
    if (m === this.mtime) return;
    this.entries = await readHtpasswd(this.path);
    this.mtime = m;
    this.ok.clear();
  }

  async users(): Promise<string[]> {
    await this.refresh();
    return [...this.entries.keys()];
  }

  async verify(user: string, password: string): Promise<boolean> {
    await this.refresh();
    const hash = this.entries.get(user);
    const proof = sha(`${this.salt}\0${user}\0${password}`);
    const hit = this.ok.get(user);
    if (hit && hash === hit.hash && hit.until > Date.now() && timingSafeEqual(hit.proof, proof)) return true;
    const good = await (await bcrypt()).compare(password, hash ?? (await HtpasswdFile.dummy()));
    if (good && hash !== undefined) {
      this.ok.set(user, { proof, hash, until: Date.now() + this.cacheMs });
      return true;
    }
    return false;
  }
}
