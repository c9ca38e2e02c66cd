import type { SqliteDb, SqliteValue } from '../sqlite.js';
import type { DownloadEventRow, TopRow } from './types.js';

const DAY = 86_400_000;

type Row = Record<string, unknown>;

/** Which downloads an analytics query reads; times are ms, `to` exclusive. */
export interface DownloadScope {
  from: number;
  to: number;
  repo?: string | undefined;
  /** Only these repositories (a non-admin's); undefined: every one. */
  repos?: readonly string[] | undefined;
  /** The tag (reference) pulled. */
  tag?: string | undefined;
  /** The artifact: a download's manifest digest; a file download's layer digest or recorded reference. */
  digest?: string | undefined;
  /** Only UI file downloads of this path. */
  file?: string | undefined;
  /** Leave UI file downloads out. */
  artifactsOnly?: boolean;
}

export interface SeriesRow {
  bucket: number;
  downloads: number;
  bytes: number;
  users: number;
}

/** The rolled-up days of a top list: artifacts summed and sorted, and who pulled the ones shown. */
interface RolledTop {
  dayFrom: number;
  dayTo: number;
  scope: string;
  sorted: Array<Omit<TopRow, 'users'>>;
  byKey: Map<string, Omit<TopRow, 'users'>>;
  /** Only for artifacts that made a list: at most a few hundred. */
  who: Map<string, Set<string>>;
}

/** Most downloads first, then the latest pull; then by name, so that the order is total. */
function byDownloads(a: Omit<TopRow, 'users'>, b: Omit<TopRow, 'users'>): number {
  return b.downloads - a.downloads || b.lastPulled - a.lastPulled || (a.repo < b.repo ? -1 : a.repo > b.repo ? 1 : a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0);
}

export interface TagMoveRow {
  id: number;
  time: number;
  user: string | null;
  method: string;
  digest: string | null;
  reference: string | null;
}

/** The two sources of downloads as FROM + WHERE: artifact pulls, and UI file downloads. */
function downloadArms(s: DownloadScope, opts: { byTime?: boolean } = {}): Array<{ from: 'downloads' | 'requests'; where: string; args: SqliteValue[] }> {
  const common = (c: string[], args: SqliteValue[]): void => {
    c.push('time >= ?', 'time < ?');
    args.push(s.from, s.to);
    if (s.repo !== undefined) (c.push('repo = ?'), args.push(s.repo));
    // `+repo`: not through a repository index, so that the scan follows time (byTime).
    if (s.repos !== undefined) (c.push(`${opts.byTime ? '+' : ''}repo IN (SELECT value FROM json_each(?))`), args.push(JSON.stringify(s.repos)));
    if (s.tag !== undefined) (c.push('reference = ?'), args.push(s.tag));
  };
  const arms: Array<{ from: 'downloads' | 'requests'; where: string; args: SqliteValue[] }> = [];
  if (s.file === undefined) {
    const c: string[] = [];
    const args: SqliteValue[] = [];
    common(c, args);
    if (s.digest !== undefined) (c.push('digest = ?'), args.push(s.digest));
    arms.push({ from: 'downloads', where: `WHERE ${c.join(' AND ')}`, args });
  }
  if (!s.artifactsOnly) {
    // `file IS NOT NULL` first and literal: it is what lets SQLite pick the partial indexes.
    const c = ['file IS NOT NULL'];
    const args: SqliteValue[] = [];
    common(c, args);
    c.push("method = 'GET'", 'status < 300');
    if (s.digest !== undefined) (c.push('(digest = ? OR reference = ?)'), args.push(s.digest, s.digest));
    if (s.file !== undefined) (c.push('file = ?'), args.push(s.file));
    arms.push({ from: 'requests', where: `WHERE ${c.join(' AND ')}`, args });
  }
  return arms;
}

/**
 * The web UI's analytics (src/server/web/analytics.ts) over the audit database. A "download" is a
 * row of `downloads` (an artifact pull: a manifest GET and its blobs) or a UI file download (a
 * `requests` row with a `file`, answered 2xx); each query reads the two through their own indexes.
 */
export class DownloadAnalytics {
  /** Series buckets wholly inside rolled-up days, by width:offset:bucket (those days no longer change). */
  private readonly seriesMemo = new Map<string, SeriesRow>();
  /** The rolled-up part of recent top lists, by dayFrom:dayTo:scope. */
  private readonly topMemo = new Map<string, RolledTop>();

  constructor(private readonly db: SqliteDb) {}


  /**
   * Rolls up the days before `stableBefore` that are not yet (at most `maxDays` per call, oldest
   * first, so that a first call on a large log is bounded): `stableBefore` must be past the last
   * moment a row of those days can still change (the download grouping window). Days the
   * retention pass emptied are dropped from the rollups too.
   */
  rollUp(stableBefore: number, maxDays = 31): void {
    const min = this.db.prepare('SELECT MIN(time) AS t FROM downloads').get()?.t as number | null | undefined;
    if (min === null || min === undefined) {
      if (this.rolledDays() === undefined) return;
      this.seriesMemo.clear();
      this.topMemo.clear();
      this.db.transaction(() => this.db.exec('DELETE FROM rollup_days; DELETE FROM rollup_artifacts; DELETE FROM rollup_users;'));
      return;
    }
    const first = Math.floor(min / DAY);
    const end = Math.floor(stableBefore / DAY);
    const rolled = this.rolledDays();
    const prune = rolled !== undefined && rolled.first < first;
    const start = rolled === undefined || rolled.end < first ? first : rolled.end;
    const stop = Math.min(end, start + maxDays);
    if (!prune && start >= stop) return;
    const arts = this.db.prepare(`INSERT OR REPLACE INTO rollup_artifacts (day, repo, digest, downloads, bytes, last_time, reference)
      SELECT ?, repo, digest, COUNT(*), COALESCE(SUM(bytes), 0), MAX(time), reference FROM downloads WHERE time >= ? AND time < ? GROUP BY repo, digest`);
    const arms = (a: number, b: number): ReturnType<typeof downloadArms> => downloadArms({ from: a, to: b });
    this.db.transaction(() => {
      if (prune) {
        this.seriesMemo.clear();
        this.topMemo.clear();
        for (const t of ['rollup_days', 'rollup_artifacts', 'rollup_users']) this.db.prepare(`DELETE FROM ${t} WHERE day < ?`).run(first);
      }
      for (let d = start; d < stop; d++) {
        arts.run(d, d * DAY, (d + 1) * DAY);
        const parts = arms(d * DAY, (d + 1) * DAY);
        this.db
          .prepare(`INSERT OR REPLACE INTO rollup_users (day, who, downloads, bytes) SELECT ?, who, COUNT(*), COALESCE(SUM(bytes), 0) FROM (${parts.map((a) => `SELECT COALESCE(user, ip) AS who, bytes FROM ${a.from} ${a.where}`).join(' UNION ALL ')}) GROUP BY who`)
          .run(d, ...parts.flatMap((a) => a.args));
        this.db.prepare('INSERT OR REPLACE INTO rollup_days (day) VALUES (?)').run(d);
      }
    });
  }

  /** The rolled-up days, [first, end); undefined when none. */
  private rolledDays(): { first: number; end: number } | undefined {
    const r = this.db.prepare('SELECT MIN(day) AS a, MAX(day) AS b FROM rollup_days').get();
    return typeof r?.a === 'number' && typeof r.b === 'number' ? { first: r.a, end: r.b + 1 } : undefined;
  }

  /**
   * How a query over [from, to) splits: the whole rolled-up days inside it, [dayFrom, dayTo) (in
   * days; empty when there are none), and the edges read from the rows.
   */
  private split(from: number, to: number): { dayFrom: number; dayTo: number; edges: Array<[number, number]> } {
    const r = this.rolledDays();
    const dayFrom = Math.max(Math.ceil(from / DAY), r?.first ?? 0);
    const dayTo = Math.min(Math.floor(to / DAY), r?.end ?? 0);
    if (r === undefined || dayFrom >= dayTo) return { dayFrom: 0, dayTo: 0, edges: [[from, to]] };
    const edges: Array<[number, number]> = [];
    if (from < dayFrom * DAY) edges.push([from, dayFrom * DAY]);
    if (dayTo * DAY < to) edges.push([dayTo * DAY, to]);
    return { dayFrom, dayTo, edges };
  }

  /**
   * Downloads bucketed by `(time - offset) / width`, oldest bucket first; empty buckets are absent.
   * Over every repository with whole-day buckets, a bucket wholly inside the rolled-up days is read
   * from the rollup once and then remembered (those days no longer change); the buckets at the
   * edges of the range are read each time.
   */
  downloadSeries(s: DownloadScope, bucket: { width: number; offset: number }, opts: { rollup?: boolean } = {}): SeriesRow[] {
    const global = s.repo === undefined && s.repos === undefined && s.tag === undefined && s.digest === undefined && s.file === undefined;
    const r = this.rolledDays();
    if (!(opts.rollup ?? true) || !global || bucket.width % DAY !== 0 || bucket.offset % DAY !== 0 || r === undefined) return this.seriesOf(s, bucket, s.from, s.to, false);
    const { width, offset } = bucket;
    // Interior buckets: whole, inside [from, to) and inside the rolled-up days.
    const lo = Math.max(s.from, r.first * DAY);
    const hi = Math.min(s.to, r.end * DAY);
    const b0 = Math.ceil((lo - offset) / width);
    const b1 = Math.floor((hi - offset) / width);
    if (b0 >= b1) return this.seriesOf(s, bucket, s.from, s.to, true);
    const key = (b: number): string => `${width}:${offset}:${b}`;
    const missing: number[] = [];
    for (let b = b0; b < b1; b++) if (!this.seriesMemo.has(key(b))) missing.push(b);
    if (missing.length > 0) {
      const m0 = missing[0]!;
      const m1 = missing[missing.length - 1]! + 1;
      const got = new Map(
        (
          this.db
            .prepare(`SELECT (day * ${DAY} - CAST(? AS INTEGER)) / CAST(? AS INTEGER) AS bucket, SUM(downloads) AS downloads, SUM(bytes) AS bytes, COUNT(DISTINCT who) AS users FROM rollup_users WHERE day >= ? AND day < ? GROUP BY bucket`)
            .all(offset, width, (m0 * width + offset) / DAY, (m1 * width + offset) / DAY) as unknown as SeriesRow[]
        ).map((x) => [x.bucket, x]),
      );
      if (this.seriesMemo.size + missing.length > 20_000) this.seriesMemo.clear();
      for (const b of missing) this.seriesMemo.set(key(b), got.get(b) ?? { bucket: b, downloads: 0, bytes: 0, users: 0 });
    }
    const out: SeriesRow[] = this.seriesOf(s, bucket, s.from, b0 * width + offset, true);
    for (let b = b0; b < b1; b++) {
      const x = this.seriesMemo.get(key(b))!;
      if (x.downloads > 0) out.push(x);
    }
    out.push(...this.seriesOf(s, bucket, b1 * width + offset, s.to, true));
    return out;
  }

  /** The series over [from, to) by one query: whole rolled-up days from rollup_users (when `rollup`), the rest from the rows. */
  private seriesOf(s: DownloadScope, bucket: { width: number; offset: number }, from: number, to: number, rollup: boolean): SeriesRow[] {
    if (from >= to) return [];
    const sp = rollup ? this.split(from, to) : { dayFrom: 0, dayTo: 0, edges: [[from, to]] as Array<[number, number]> };
    const selects: string[] = [];
    const args: SqliteValue[] = [];
    if (sp.dayTo > sp.dayFrom) {
      selects.push(`SELECT day * ${DAY} AS time, who, downloads AS n, bytes FROM rollup_users WHERE day >= ? AND day < ?`);
      args.push(sp.dayFrom, sp.dayTo);
    }
    for (const [a, b] of sp.edges) {
      for (const arm of downloadArms({ ...s, from: a, to: b })) {
        selects.push(`SELECT time, COALESCE(user, ip) AS who, 1 AS n, bytes FROM ${arm.from} ${arm.where}`);
        args.push(...arm.args);
      }
    }
    return this.db
      .prepare(`SELECT (time - CAST(? AS INTEGER)) / CAST(? AS INTEGER) AS bucket, SUM(n) AS downloads, COALESCE(SUM(bytes), 0) AS bytes, COUNT(DISTINCT who) AS users FROM (${selects.join(' UNION ALL ')}) GROUP BY bucket ORDER BY bucket`)
      .all(bucket.offset, bucket.width, ...args) as unknown as SeriesRow[];
  }

  /**
   * Artifacts by downloads over [from, to), most first; `reference` is the one of the latest pull.
   * Artifact pulls only: a UI file download names a layer, not an artifact. The whole rolled-up
   * days of the range are summed once per span of days (and scope) and remembered, sorted; each call adds the edges of its range from the rows. Distinct users are
   * counted for the chosen artifacts only, each through its own index range.
   */
  topArtifacts(s: Pick<DownloadScope, 'from' | 'to' | 'repos'>, limit: number, opts: { rollup?: boolean } = {}): TopRow[] {
    const useRollup = opts.rollup ?? true;
    const sp = useRollup ? this.split(s.from, s.to) : { dayFrom: 0, dayTo: 0, edges: [[s.from, s.to]] as Array<[number, number]> };
    const grouped = (where: string, args: SqliteValue[]): Array<Omit<TopRow, 'users'>> =>
      // With MAX() the only min/max aggregate, SQLite takes the bare `reference` from the row of that maximum.
      this.db.prepare(`SELECT repo, reference, digest, COUNT(*) AS downloads, COALESCE(SUM(bytes), 0) AS bytes, MAX(time) AS lastPulled FROM downloads ${where} GROUP BY repo, digest`).all(...args) as unknown as Array<Omit<TopRow, 'users'>>;
    const edges = new Map<string, Omit<TopRow, 'users'>>();
    for (const [a, b] of sp.edges) {
      const arm = downloadArms({ ...s, from: a, to: b, artifactsOnly: true })[0]!;
      for (const x of grouped(arm.where, arm.args)) {
        const k = `${x.repo}\0${x.digest}`;
        const e = edges.get(k);
        if (!e) edges.set(k, x);
        else edges.set(k, { ...(x.lastPulled > e.lastPulled ? x : e), downloads: e.downloads + x.downloads, bytes: e.bytes + x.bytes, lastPulled: Math.max(e.lastPulled, x.lastPulled) });
      }
    }
    let candidates: Array<Omit<TopRow, 'users'>> = [...edges.values()];
    const rolled = sp.dayTo > sp.dayFrom ? this.rolledTop(sp.dayFrom, sp.dayTo, s.repos) : undefined;
    if (rolled) {
      // Only the first `limit` artifacts without edge pulls can make it, and those with.
      let others = 0;
      for (const x of rolled.sorted) {
        if (others >= limit) break;
        if (!edges.has(`${x.repo}\0${x.digest}`)) (candidates.push(x), others++);
      }
      candidates = candidates.map((e) => {
        const r = rolled.byKey.get(`${e.repo}\0${e.digest}`);
        if (!r || r === e) return e;
        return { ...(r.lastPulled > e.lastPulled ? r : e), downloads: r.downloads + e.downloads, bytes: r.bytes + e.bytes, lastPulled: Math.max(r.lastPulled, e.lastPulled) };
      });
    }
    const top = candidates.sort(byDownloads).slice(0, limit);
    const count = this.db.prepare('SELECT COUNT(DISTINCT COALESCE(user, ip)) AS n FROM downloads WHERE repo = ? AND digest = ? AND time >= ? AND time < ?');
    const who = this.db.prepare('SELECT DISTINCT COALESCE(user, ip) AS who FROM downloads WHERE repo = ? AND digest = ? AND time >= ? AND time < ?');
    const whoIn = (t: Omit<TopRow, 'users'>, a: number, b: number): string[] => (who.all(t.repo, t.digest, a, b) as Array<{ who: string }>).map((r) => r.who);
    const users = (t: Omit<TopRow, 'users'>): number => {
      if (!rolled) return count.get(t.repo, t.digest, s.from, s.to)!.n as number;
      // Who pulled it on the rolled-up days is remembered with them; the edges are read each time.
      const k = `${t.repo}\0${t.digest}`;
      let set = rolled.who.get(k);
      if (!set) {
        if (rolled.who.size >= 1000) rolled.who.clear();
        rolled.who.set(k, (set = new Set(whoIn(t, sp.dayFrom * DAY, sp.dayTo * DAY))));
      }
      if (!edges.has(k)) return set.size;
      const all = new Set(set);
      for (const [a, b] of sp.edges) for (const w of whoIn(t, a, b)) all.add(w);
      return all.size;
    };
    return top.map((t) => ({ repo: t.repo, reference: t.reference, digest: t.digest, downloads: t.downloads, users: users(t), bytes: t.bytes, lastPulled: t.lastPulled }));
  }

  /**
   * The artifacts of the rolled-up days [dayFrom, dayTo) (of `repos` only, a non-admin's), summed
   * and sorted; the last few spans and scopes asked are remembered.
   */
  private rolledTop(dayFrom: number, dayTo: number, repos?: readonly string[]): RolledTop {
    const scope = repos === undefined ? '' : JSON.stringify(repos);
    const key = `${dayFrom}:${dayTo}:${scope}`;
    const hit = this.topMemo.get(key);
    if (hit) {
      // Most recently used last: the oldest goes first.
      this.topMemo.delete(key);
      this.topMemo.set(key, hit);
      return hit;
    }
    const inScope = repos === undefined ? '' : ' AND repo IN (SELECT value FROM json_each(?))';
    const bind = (a: number, b: number): SqliteValue[] => (repos === undefined ? [a, b] : [a, b, scope]);
    // A span a few days from one remembered (today's 30 days after yesterday's): moved by the days
    // between, not summed again; summing 90 days of a large log costs a second.
    for (const [k, v] of this.topMemo) {
      if (v.scope !== scope || Math.abs(v.dayFrom - dayFrom) + Math.abs(v.dayTo - dayTo) > 14 || v.dayFrom >= dayTo || dayFrom >= v.dayTo) continue;
      this.topMemo.delete(k);
      const day = this.db.prepare(`SELECT repo, reference, digest, downloads, bytes, last_time AS lastPulled FROM rollup_artifacts WHERE day >= ? AND day < ?${inScope}`);
      const stale = new Set<string>();
      const apply = (a: number, b: number, sign: 1 | -1): void => {
        if (a >= b) return;
        for (const r of day.all(...bind(a, b)) as unknown as Array<Omit<TopRow, 'users'>>) {
          const rk = `${r.repo}\0${r.digest}`;
          const e = v.byKey.get(rk);
          if (sign === 1) {
            if (!e) v.byKey.set(rk, { ...r });
            else {
              e.downloads += r.downloads;
              e.bytes += r.bytes;
              if (r.lastPulled > e.lastPulled) (e.lastPulled = r.lastPulled), (e.reference = r.reference);
            }
          } else if (e) {
            e.downloads -= r.downloads;
            e.bytes -= r.bytes;
            if (e.downloads <= 0) v.byKey.delete(rk);
            // Its last pull may have been on a day that left the span: found again below.
            else if (e.lastPulled <= r.lastPulled) stale.add(rk);
          }
        }
      };
      apply(dayFrom, Math.min(v.dayFrom, dayTo), 1);
      apply(Math.max(v.dayTo, dayFrom), dayTo, 1);
      apply(v.dayFrom, Math.min(dayFrom, v.dayTo), -1);
      apply(Math.max(dayTo, v.dayFrom), v.dayTo, -1);
      const last = this.db.prepare('SELECT last_time AS t, reference FROM rollup_artifacts WHERE repo = ? AND digest = ? AND day >= ? AND day < ? ORDER BY last_time DESC LIMIT 1');
      for (const rk of stale) {
        const e = v.byKey.get(rk);
        const r = e && last.get(e.repo, e.digest, dayFrom, dayTo);
        if (e && r) (e.lastPulled = r.t as number), (e.reference = r.reference as string | null);
      }
      v.dayFrom = dayFrom;
      v.dayTo = dayTo;
      v.sorted = [...v.byKey.values()].sort(byDownloads);
      v.who.clear();
      this.topMemo.set(key, v);
      return v;
    }
    const rows = this.db
      .prepare(`SELECT repo, reference, digest, SUM(downloads) AS downloads, SUM(bytes) AS bytes, MAX(last_time) AS lastPulled FROM rollup_artifacts WHERE day >= ? AND day < ?${inScope} GROUP BY repo, digest`)
      .all(...bind(dayFrom, dayTo)) as unknown as Array<Omit<TopRow, 'users'>>;
    const v: RolledTop = { dayFrom, dayTo, scope, sorted: rows.sort(byDownloads), byKey: new Map(rows.map((x) => [`${x.repo}\0${x.digest}`, x])), who: new Map() };
    // A handful of spans and scopes (the 7, 30 and 90 days of today, of a few owners); a huge one is not kept.
    if (this.topMemo.size >= 16) this.topMemo.delete(this.topMemo.keys().next().value!);
    if (rows.length <= 200_000) this.topMemo.set(key, v);
    return v;
  }


  /** Download events, newest first (time, then id), after the `before` position of the previous page. */
  downloadEvents(s: DownloadScope, page: { before?: { time: number; id: number } | undefined; limit: number }): DownloadEventRow[] {
    // A set of repositories (a non-admin's): a few are read one by one through (repo, time), newest
    // first, and merged; many through the time index, skipping rows of others, never sorted whole.
    if (s.repos !== undefined && s.repo === undefined && s.repos.length <= 64) {
      return s.repos.flatMap((repo) => this.downloadEvents({ ...s, repos: undefined, repo }, page)).sort((a, b) => b.time - a.time || b.id - a.id).slice(0, page.limit);
    }
    const out: DownloadEventRow[] = [];
    for (const a of downloadArms(s, { byTime: s.repos !== undefined })) {
      const c = page.before ? `${a.where} AND (time, id) < (?, ?)` : a.where;
      const args = page.before ? [...a.args, page.before.time, page.before.id] : a.args;
      // The user agent of an artifact download is its manifest GET's (same id).
      const cols =
        a.from === 'downloads'
          ? 'id, time, user, ip, (SELECT user_agent FROM requests r WHERE r.id = downloads.id) AS client, repo, reference, digest, NULL AS file, bytes, completed'
          : "id, time, user, ip, user_agent AS client, repo, reference, digest, file, bytes, outcome = 'completed' AS completed";
      const rows = this.db.prepare(`SELECT ${cols} FROM ${a.from} ${c} ORDER BY time DESC, id DESC LIMIT ?`).all(...args, page.limit) as Row[];
      for (const r of rows) out.push({ id: r.id as number, time: r.time as number, user: r.user as string | null, ip: r.ip as string, client: r.client as string | null, repo: r.repo as string, reference: r.reference as string | null, digest: r.digest as string, file: r.file as string | null, bytes: r.bytes as number, completed: r.completed === 1 });
    }
    return out.sort((a, b) => b.time - a.time || b.id - a.id).slice(0, page.limit);
  }

  /** When `repo` (or one artifact of it) was last pulled; null when never (or pruned). */
  lastPulled(repo: string, digest?: string): number | null {
    const r = digest === undefined ? this.db.prepare('SELECT MAX(time) AS t FROM downloads WHERE repo = ?').get(repo) : this.db.prepare('SELECT MAX(time) AS t FROM downloads WHERE repo = ? AND digest = ?').get(repo, digest);
    return (r?.t as number | null | undefined) ?? null;
  }

  /** How many times an artifact was pulled (what the log still holds). */
  downloadCount(repo: string, digest: string): number {
    return this.db.prepare('SELECT COUNT(*) AS n FROM downloads WHERE repo = ? AND digest = ?').get(repo, digest)!.n as number;
  }

  /** Repositories with downloads, in name order, up to `limit`: one index seek each, not a scan. */
  downloadedRepos(limit: number): string[] {
    const out = new Set<string>();
    for (const sql of ['SELECT repo FROM downloads WHERE repo > ? ORDER BY repo LIMIT 1', 'SELECT repo FROM requests WHERE file IS NOT NULL AND repo > ? ORDER BY repo LIMIT 1']) {
      const next = this.db.prepare(sql);
      let last = '';
      for (let i = 0; i < limit; i++) {
        const r = next.get(last);
        if (!r || typeof r.repo !== 'string') break;
        last = r.repo;
        out.add(last);
      }
    }
    return [...out].sort().slice(0, limit);
  }

  /**
   * The successful manifest PUTs and DELETEs of `repo` by the reference `tag`, newest first, and
   * the DELETEs by digest in the same span (deleting a manifest by digest removes its tags).
   */
  tagMoves(repo: string, tag: string, limit: number): { byTag: TagMoveRow[]; byDigest: TagMoveRow[] } {
    const cols = 'id, time, user, method, digest, reference';
    const byTag = this.db
      .prepare(`SELECT ${cols} FROM requests WHERE repo = ? AND reference = ? AND method IN ('PUT', 'DELETE') AND status < 300 ORDER BY time DESC, id DESC LIMIT ?`)
      .all(repo, tag, limit) as unknown as TagMoveRow[];
    if (byTag.length === 0) return { byTag, byDigest: [] };
    const since = byTag[byTag.length - 1]!.time;
    // Digests start with an algorithm ("sha256:"): a range of the moves index, not a scan of the
    // repository by time (which the planner would otherwise pick).
    const byDigest = this.db
      .prepare(`SELECT ${cols} FROM requests INDEXED BY requests_moves WHERE repo = ? AND reference > 'sha' AND reference < 'shb' AND method IN ('PUT', 'DELETE') AND method = 'DELETE' AND status < 300 AND time >= ? ORDER BY time DESC, id DESC LIMIT ?`)
      .all(repo, since, limit) as unknown as TagMoveRow[];
    return { byTag, byDigest };
  }
}
