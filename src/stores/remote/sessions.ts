import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

/** An upload session the registry acknowledged bytes of: where to ask, and how far it had got. */
export interface SavedSession {
  /** The upload URL (the last `Location` the registry gave). */
  location: string;
  /** Bytes the registry acknowledged. */
  offset: number;
  /** When it was last saved (ms); old entries are dropped. */
  at: number;
}

/** Remembers upload sessions across processes, so that an interrupted push resumes. */
export interface UploadSessions {
  get(key: string): Promise<SavedSession | undefined>;
  save(key: string, session: Omit<SavedSession, 'at'>): Promise<void>;
  drop(key: string): Promise<void>;
}

/** Registries purge idle sessions (Wharf and Distribution after 24 h by default): older ones are useless. */
const MAX_AGE_MS = 7 * 24 * 3600e3;
const MAX_ENTRIES = 1000;

/**
 * Upload sessions in one small JSON file (`$XDG_CACHE_HOME/wharf/uploads.json`, else
 * `~/.cache/wharf/uploads.json`), keyed by registry, repository and content. Every change reads
 * the file, applies itself and replaces the file whole (temp file, rename), so that concurrent
 * pushes lose at most each other's latest offset, which the registry's `Range` gives back anyway;
 * an unreadable file counts as empty.
 */
export class UploadSessionFile implements UploadSessions {
  /** Changes of this process, one after another. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string = UploadSessionFile.defaultPath()) {}

  static defaultPath(env: NodeJS.ProcessEnv = process.env): string {
    const xdg = env.XDG_CACHE_HOME;
    return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'wharf', 'uploads.json');
  }

  async get(key: string): Promise<SavedSession | undefined> {
    await this.queue;
    return (await this.read())[key];
  }

  save(key: string, s: Omit<SavedSession, 'at'>): Promise<void> {
    return this.change((all) => void (all[key] = { location: s.location, offset: s.offset, at: Date.now() }));
  }

  drop(key: string): Promise<void> {
    return this.change((all) => void delete all[key]);
  }

  private change(apply: (all: Record<string, SavedSession>) => void): Promise<void> {
    const next = this.queue.then(async () => {
      const all = await this.read();
      apply(all);
      const now = Date.now();
      const kept = Object.entries(all)
        .filter(([, s]) => now - s.at < MAX_AGE_MS)
        .sort((a, b) => b[1].at - a[1].at)
        .slice(0, MAX_ENTRIES);
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${randomUUID()}.tmp`;
      try {
        await writeFile(tmp, JSON.stringify(Object.fromEntries(kept)), { mode: 0o600 });
        await rename(tmp, this.path);
      } finally {
        await rm(tmp, { force: true });
      }
    });
    // One failed write must not stop the ones after it; the caller still hears of it.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<Record<string, SavedSession>> {
    try {
      const doc = JSON.parse(await readFile(this.path, 'utf8')) as unknown;
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return {};
      const out: Record<string, SavedSession> = Object.create(null) as Record<string, SavedSession>;
      for (const [k, v] of Object.entries(doc as Record<string, Partial<SavedSession>>)) {
        if (typeof v?.location === 'string' && Number.isSafeInteger(v.offset) && v.offset! >= 0 && typeof v.at === 'number') out[k] = v as SavedSession;
      }
      return out;
    } catch {
      return {};
    }
  }
}
