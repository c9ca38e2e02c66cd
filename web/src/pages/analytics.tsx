/** Downloads over time, top artifacts, who downloaded what (with a CSV export), from the audit log. */
import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, apiUrl, itemsOf, type DownloadEvent, type DownloadSeries } from '../api.js';
import { PagedTable, RefLink, Show, TableHead, TableOf, useAsync, useDebounced, usePaged, useTitle, type Column } from '../components.js';
import { bytes, repoPath, shortDigest, time } from '../format.js';
import { TimeChart } from '../chart.js';

/** Key, label, span, bucket width and its name for the API's `interval`. */
const RANGES: Array<[string, string, number, number, string]> = [
  ['24h', 'Last 24 hours', 86400e3, 3600e3, 'hour'],
  ['7d', 'Last 7 days', 7 * 86400e3, 86400e3, 'day'],
  ['30d', 'Last 30 days', 30 * 86400e3, 86400e3, 'day'],
  ['90d', 'Last 90 days', 90 * 86400e3, 7 * 86400e3, 'week'],
];

/** What both tables count, after their first column. */
const COUNTS: Column[] = [{ num: 'Downloads' }, { num: 'Users' }, { num: 'Bytes' }];

function Chart({ s }: { s: DownloadSeries }): JSX.Element {
  const times = useMemo(() => s.points.map((p) => p.t), [s]);
  const series = useMemo(
    () => [
      { label: 'Downloads', values: s.points.map((p) => p.downloads) },
      { label: 'Users', values: s.points.map((p) => p.users) },
    ],
    [s],
  );
  const total = s.points.reduce((a, p) => a + p.downloads, 0);
  return (
    <>
      <p>
        <strong data-testid="total-downloads">{total.toLocaleString()}</strong> downloads, {bytes(s.points.reduce((a, p) => a + p.bytes, 0))}
      </p>
      {s.points.length > 0 ? <TimeChart times={times} series={series} label={`Downloads over time: ${total} in all`} /> : null}
      <details>
        <summary>The numbers as a table</summary>
        <table class="table">
          <TableHead cols={['From', ...COUNTS]} />
          <tbody>
            {s.points.map((p) => (
              <tr key={p.t}>
                <td>{time(p.t)}</td>
                <td class="num">{p.downloads}</td>
                <td class="num">{p.users}</td>
                <td class="num">{bytes(p.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </>
  );
}

function WhoRow({ e }: { e: DownloadEvent }): JSX.Element {
  return (
    <tr>
      <td>{time(e.time)}</td>
      <td>{e.user ?? <span class="muted">anonymous</span>}</td>
      <td>{e.ip}</td>
      <td>
        <RefLink repo={e.repo} reference={e.reference} digest={e.digest} withRepo />
        {e.file ? <div class="muted small">{e.file}</div> : null}
      </td>
      <td class="num">{bytes(e.bytes)}</td>
      <td>{e.completed ? 'completed' : 'aborted'}</td>
      <td class="client">{e.client ?? '—'}</td>
    </tr>
  );
}

export function AnalyticsPage(): JSX.Element {
  useTitle('Analytics');
  const { query } = useLocation();
  const [repo, setRepo] = useState(query.repo ?? '');
  const [range, setRange] = useState(query.range ?? '30d');
  const digest = query.digest ?? '';
  const tag = query.tag ?? '';
  const drepo = useDebounced(repo.trim(), 300);
  const r = RANGES.find((x) => x[0] === range) ?? RANGES[2]!;
  // Rounded to the bucket, so that the queries of one visit agree (and are not re-made each render).
  const to = Math.ceil(Date.now() / r[3]) * r[3];
  const from = to - r[2];
  const filter = { repo: drepo, digest, tag, from, to };

  const series = useAsync((s) => api.downloads({ ...filter, interval: r[4] }, s), [drepo, digest, tag, from, to]);
  const top = useAsync((s) => api.top({ from, to, repo: drepo, limit: 10 }, s).then((x) => itemsOf(x)), [drepo, from, to]);
  const who = usePaged<DownloadEvent>((cursor, s) => api.who({ ...filter, cursor, limit: 50 }, s), JSON.stringify(filter));

  return (
    <section>
      <h1>Analytics</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field grow">
          <label for="a-repo">Repository</label>
          <input id="a-repo" type="search" value={repo} onInput={(e) => setRepo(e.currentTarget.value)} placeholder="All repositories" autoComplete="off" />
        </div>
        <div class="field">
          <label for="a-range">Period</label>
          <select id="a-range" value={range} onChange={(e) => setRange(e.currentTarget.value)}>
            {RANGES.map(([k, l]) => (
              <option key={k} value={k}>
                {l}
              </option>
            ))}
          </select>
        </div>
      </form>
      {digest ? (
        <p class="muted">
          Only the artifact <code>{shortDigest(digest)}</code>. <a href={`/analytics?repo=${encodeURIComponent(drepo)}`}>Show the whole repository</a>
        </p>
      ) : null}

      <section aria-labelledby="dl-h" class="panel">
        <h2 id="dl-h">Downloads over time</h2>
        <Show a={series} what="Loading downloads">
          {(s) => <Chart s={s} />}
        </Show>
      </section>

      <section aria-labelledby="top-h" class="panel">
        <h2 id="top-h">Top artifacts</h2>
        <Show a={top} what="Loading top artifacts">
          {(items) => (
            <TableOf items={items} empty="No downloads in this period.">
              <table class="table" data-testid="top">
                <TableHead cols={['Artifact', ...COUNTS, 'Last pulled']} />
                <tbody>
                  {items.map((t) => (
                    <tr key={`${t.repo}@${t.digest}`}>
                      <td>
                        <a href={repoPath(t.repo)}>{t.repo}</a>
                        {' '}
                        <RefLink repo={t.repo} reference={t.reference} digest={t.digest} />
                      </td>
                      <td class="num">{t.downloads}</td>
                      <td class="num">{t.users}</td>
                      <td class="num">{bytes(t.bytes)}</td>
                      <td>{time(t.lastPulled)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableOf>
          )}
        </Show>
      </section>

      <section aria-labelledby="who-h" class="panel">
        <h2 id="who-h">Who downloaded</h2>
        <p>
          <a class="button small" href={apiUrl('analytics/who', { ...filter, format: 'csv' })} download="wharf-downloads.csv">
            Export as CSV
          </a>
        </p>
        <PagedTable paged={who} empty="Nobody downloaded anything in this period." what="Loading downloads" more="More">
          {(items) => (
            <table class="table" data-testid="who">
              <TableHead cols={['When', 'User', 'IP', 'What', { num: 'Bytes' }, 'Outcome', 'Client']} />
              <tbody>
                {items.map((e, i) => (
                  <WhoRow key={`${e.time}-${i}`} e={e} />
                ))}
              </tbody>
            </table>
          )}
        </PagedTable>
      </section>
    </section>
  );
}
