/** A repository: its tags (kind, size, updated) and where each tag pointed before. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, itemsOf, type TagMove, type TagSummary } from '../api.js';
import { Digest, ErrorBox, KindBadge, Loading, Show, When, useAsync, useDebounced, usePaged, useTitle } from '../components.js';
import { bytes, refPath, shortDigest } from '../format.js';
import { Icon } from '../icons.js';

/** Every move of a tag, newest first: digest, time, user. */
export function TagHistory({ repo, tag }: { repo: string; tag: string }): JSX.Element {
  const a = useAsync((s) => api.tagHistory(repo, tag, s).then((r) => itemsOf<TagMove>(r)), [repo, tag]);
  return (
    <Show a={a} what="Loading the tag's history">
      {(moves) =>
        moves.length === 0 ? (
          <p class="muted">No recorded moves (the audit log is off, or the tag predates it).</p>
        ) : (
          <div class="table-wrap">
          <table class="table history" data-testid="tag-history">
            <caption class="visually-hidden">Moves of the tag {tag}</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Change</th>
                <th scope="col">Digest</th>
                <th scope="col">By</th>
              </tr>
            </thead>
            <tbody>
              {moves.map((m, i) => (
                <tr key={`${m.time}-${i}`}>
                  <td class="nowrap">
                    <When ms={m.time} />
                  </td>
                  <td>{m.action === 'push' ? 'pushed' : 'deleted'}</td>
                  <td>{m.digest ? <a href={refPath(repo, m.digest)}>{shortDigest(m.digest)}</a> : '—'}</td>
                  <td>{m.user ?? <span class="muted">anonymous</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          </div>
        )
      }
    </Show>
  );
}

function TagRow({ repo, t }: { repo: string; t: TagSummary }): JSX.Element {
  const [open, setOpen] = useState(false);
  const id = `history-${t.name}`;
  return (
    <>
      <tr>
        <th scope="row">
          <a href={refPath(repo, t.name)}>{t.name}</a>
        </th>
        <td>
          <KindBadge kind={t.kind} />
        </td>
        <td class="num">{bytes(t.size)}</td>
        <td>
          <When ms={t.updated} />
        </td>
        <td>
          <Digest digest={t.digest} />
        </td>
        <td>
          <button type="button" class="link-button" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
            <Icon name="history" size={16} /> History
          </button>
        </td>
      </tr>
      {open ? (
        <tr id={id} class="sub-row">
          <td colSpan={6}>
            <TagHistory repo={repo} tag={t.name} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function RepoPage({ repo }: { repo: string }): JSX.Element {
  useTitle(repo);
  const [q, setQ] = useState('');
  const dq = useDebounced(q.trim(), 250);
  const tags = usePaged<TagSummary>((cursor, signal) => api.tags({ repo, q: dq, cursor, limit: 100 }, signal), JSON.stringify([repo, dq]));
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Repositories</a> <span aria-hidden="true">/</span> <span aria-current="page">{repo}</span>
      </nav>
      <h1 class="repo-title">{repo}</h1>
      <p>
        <a href={`/analytics?repo=${encodeURIComponent(repo)}`}>
          <Icon name="chart" size={16} /> Downloads of this repository
        </a>
      </p>
      <h2>Tags</h2>
      <div class="field tag-filter">
        <label for="tag-q">Filter tags</label>
        <input id="tag-q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} autoComplete="off" />
      </div>
      {tags.error ? <ErrorBox error={tags.error} /> : null}
      {tags.items.length > 0 ? (
        <div class="table-wrap">
          <table class="table tags" data-testid="tags">
            <caption class="visually-hidden">Tags of {repo}</caption>
            <thead>
              <tr>
                <th scope="col">Tag</th>
                <th scope="col">Kind</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col">Updated</th>
                <th scope="col">Digest</th>
                <th scope="col">
                  <span class="visually-hidden">History</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tags.items.map((t) => (
                <TagRow key={t.name} repo={repo} t={t} />
              ))}
            </tbody>
          </table>
        </div>
      ) : !tags.loading && !tags.error ? (
        <p class="muted">No tags{dq ? ' match' : ''}.</p>
      ) : null}
      {tags.loading ? <Loading what="Loading tags" /> : null}
      {tags.next !== null && !tags.loading ? (
        <button type="button" onClick={tags.more}>
          More tags
        </button>
      ) : null}
    </section>
  );
}
