/** The operations pages for admins: the audit log with filters, the pull-through cache, storage. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, apiUrl, type AuditRecord } from '../api.js';
import { AsyncPage, ForAdmins, PagedTable, RefLink, RepoCell, TableHead, TableOf, useDebounced, usePaged, useTitle } from '../components.js';
import { bytes, repoPath, time } from '../format.js';

const ACTIONS = ['pull', 'stat', 'push', 'upload', 'mount', 'delete', 'list', 'other'];

/** A datetime-local value as ms, or undefined when empty. */
function ms(v: string): number | undefined {
  const t = v ? new Date(v).getTime() : NaN;
  return Number.isFinite(t) ? t : undefined;
}

function AuditPageInner(): JSX.Element {
  useTitle('Audit log');
  const [repo, setRepo] = useState('');
  const [user, setUser] = useState('');
  const [action, setAction] = useState('');
  const [digest, setDigest] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  // Debounced as a string: an object would be new on every render, and never settle.
  const key = useDebounced(JSON.stringify({ repo: repo.trim(), user: user.trim(), action, digest: digest.trim(), since: ms(since), until: ms(until) }), 300);
  const f = JSON.parse(key) as Record<string, string | number | undefined>;
  // /api/v1/audit pages with `before` (the last id seen), newest first.
  const rows = usePaged<AuditRecord>(async (cursor, s) => {
    const limit = 100;
    const r = await api.audit({ ...f, limit, before: cursor }, s);
    const last = r.records[r.records.length - 1];
    return { items: r.records, next: r.records.length === limit && last ? String(last.id) : null };
  }, key);
  return (
    <section>
      <h1>Audit log</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter the audit log">
        <div class="field">
          <label for="f-repo">Repository</label>
          <input id="f-repo" value={repo} onInput={(e) => setRepo(e.currentTarget.value)} autoComplete="off" />
        </div>
        <div class="field">
          <label for="f-user">User</label>
          <input id="f-user" value={user} onInput={(e) => setUser(e.currentTarget.value)} autoComplete="off" />
        </div>
        <div class="field">
          <label for="f-action">Action</label>
          <select id="f-action" value={action} onChange={(e) => setAction(e.currentTarget.value)}>
            <option value="">Any</option>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-digest">Digest</label>
          <input id="f-digest" value={digest} onInput={(e) => setDigest(e.currentTarget.value)} autoComplete="off" />
        </div>
        <div class="field">
          <label for="f-since">Since</label>
          <input id="f-since" type="datetime-local" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="f-until">Until</label>
          <input id="f-until" type="datetime-local" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
        </div>
      </form>
      <p>
        <a class="button small" href={apiUrl('audit', { ...f, format: 'csv', limit: 10000 })} download="wharf-audit.csv">
          Export as CSV
        </a>
      </p>
      <PagedTable paged={rows} empty="No records match." what="Loading the audit log" more="Older records">
        {(items) => (
          <table class="table audit" data-testid="audit">
            <caption class="visually-hidden">Audit records, newest first</caption>
            <TableHead cols={['When', 'User', 'IP', 'Action', 'What', { num: 'Status' }, { num: 'Bytes' }]} />
            <tbody>
              {items.map((r) => (
                <tr key={r.id} class={r.status >= 400 ? 'failed' : ''}>
                  <td>{time(r.time)}</td>
                  <td>{r.user ?? <span class="muted">anonymous</span>}</td>
                  <td>{r.ip}</td>
                  <td>
                    {r.method} {r.action}
                  </td>
                  <td>
                    {r.repo ? (
                      r.reference || r.digest ? (
                        <RefLink repo={r.repo} reference={r.reference} digest={(r.reference ?? r.digest)!} withRepo />
                      ) : (
                        <a href={repoPath(r.repo)}>{r.repo}</a>
                      )
                    ) : (
                      '—'
                    )}
                    {r.file ? <div class="muted small">{r.file}</div> : null}
                  </td>
                  <td class="num">{r.status}</td>
                  <td class="num">{bytes(r.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </PagedTable>
    </section>
  );
}

function CachePageInner(): JSX.Element {
  return (
    <AsyncPage title="Pull-through cache" load={(s) => api.cache(s)} what="Loading the cache's status">
      {(c) => {
        const asked = c.hits + c.misses;
        return (
          <>
            <dl class="facts">
              <div class="fact">
                <dt>Hit rate</dt>
                <dd>{asked > 0 ? `${Math.round((c.hits / asked) * 1000) / 10} %` : '—'}</dd>
              </div>
              <div class="fact">
                <dt>Hits</dt>
                <dd>{c.hits.toLocaleString()}</dd>
              </div>
              <div class="fact">
                <dt>Misses</dt>
                <dd>{c.misses.toLocaleString()}</dd>
              </div>
            </dl>
            <h2>Upstreams</h2>
            <TableOf items={c.upstreams} empty="No upstream: this registry is not a pull-through cache.">
              <table class="table">
                <TableHead cols={['Name', 'URL', 'Health', 'Namespaces']} />
                <tbody>
                  {c.upstreams.map((u) => (
                    <tr key={u.name}>
                      <th scope="row">{u.name}</th>
                      <td>
                        <code>{u.url}</code>
                      </td>
                      <td>
                        <span class={u.healthy ? 'ok' : 'bad'}>{u.healthy ? 'healthy' : 'failing'}</span>
                        {u.lastError ? <div class="muted small">{u.lastError}</div> : null}
                      </td>
                      <td>{u.namespaces.join(', ') || '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableOf>
            <h2>Cached repositories</h2>
            <TableOf items={c.repositories} empty="Nothing cached yet.">
              <table class="table">
                <TableHead cols={['Repository', { num: 'Size' }, 'Last pulled']} />
                <tbody>
                  {c.repositories.map((r) => (
                    <tr key={r.name}>
                      <RepoCell name={r.name} />
                      <td class="num">{bytes(r.size)}</td>
                      <td>{time(r.lastPulled)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableOf>
          </>
        );
      }}
    </AsyncPage>
  );
}

function StoragePageInner(): JSX.Element {
  return (
    <AsyncPage title="Storage" load={(s) => api.storage(s)} what="Measuring storage">
      {(u) => {
        const top = Math.max(1, ...u.repositories.map((r) => r.size));
        return (
          <>
            <p>
              <strong>{bytes(u.total)}</strong> in all. A blob that several repositories link counts in each of them.
            </p>
            <TableOf items={u.repositories} empty="No repositories.">
              <table class="table" data-testid="storage">
                <TableHead cols={['Repository', { num: 'Size' }, { num: 'Blobs' }, { hidden: 'Share' }]} />
                <tbody>
                  {u.repositories.map((r) => (
                    <tr key={r.name}>
                      <RepoCell name={r.name} />
                      <td class="num">{bytes(r.size)}</td>
                      <td class="num">{r.blobs}</td>
                      <td class="bar-cell">
                        <meter min={0} max={top} value={r.size} aria-label={`${r.name}: ${bytes(r.size)}`} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableOf>
          </>
        );
      }}
    </AsyncPage>
  );
}

export function AuditPage(): JSX.Element {
  return (
    <ForAdmins>
      <AuditPageInner />
    </ForAdmins>
  );
}

export function CachePage(): JSX.Element {
  return (
    <ForAdmins>
      <CachePageInner />
    </ForAdmins>
  );
}

export function StoragePage(): JSX.Element {
  return (
    <ForAdmins>
      <StoragePageInner />
    </ForAdmins>
  );
}
