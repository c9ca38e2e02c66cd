/** The front page: repositories, and artifacts matching a search, filtered by kind or artifactType. */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, type ArtifactKind, type RepositorySummary, type SearchHit } from '../api.js';
import { ErrorBox, KindBadge, Loading, When, useDebounced, usePaged, useTitle } from '../components.js';
import { plural, refPath, repoPath, shortDigest } from '../format.js';
import { Icon } from '../icons.js';

/** The kinds a visitor can filter by, with the labels the server gives them. */
export const KINDS: Array<[ArtifactKind, string]> = [
  ['image', 'Container image'],
  ['image-index', 'Multi-platform image'],
  ['helm-chart', 'Helm chart'],
  ['terraform-module', 'Terraform module'],
  ['ml-model', 'ML model'],
  ['sbom-spdx', 'SPDX SBOM'],
  ['sbom-cyclonedx', 'CycloneDX SBOM'],
  ['signature-cosign', 'Cosign signature'],
  ['signature-notation', 'Notation signature'],
  ['attestation', 'In-toto attestation'],
  ['stac', 'STAC / EO data'],
  ['wasm', 'WebAssembly module'],
  ['generic', 'Generic artifact'],
];
const LABEL = new Map(KINDS);

const PAGE = 50;

function RepoRow({ r }: { r: RepositorySummary }): JSX.Element {
  return (
    <li class="card repo-card">
      <a class="repo-name" href={repoPath(r.name)}>
        {r.name}
      </a>
      <div class="kinds">
        {r.kinds.slice(0, 4).map((k) => (
          <KindBadge key={k} kind={{ kind: k, label: LABEL.get(k) ?? k, icon: k, group: null }} />
        ))}
      </div>
      <div class="meta muted">
        <span>{plural(r.tags, 'tag')}</span>
        <span>
          updated <When ms={r.updated} />
        </span>
        {r.lastPulled !== null ? (
          <span>
            pulled <When ms={r.lastPulled} />
          </span>
        ) : null}
      </div>
    </li>
  );
}

function HitRow({ h }: { h: SearchHit }): JSX.Element {
  const ref = h.tag ?? h.digest;
  return (
    <li class="card hit">
      <KindBadge kind={h.kind} />
      <a href={refPath(h.repo, ref)}>
        {h.repo}
        {h.tag ? `:${h.tag}` : `@${shortDigest(h.digest)}`}
      </a>
      {h.matched ? (
        <span class="muted matched">
          {h.matched.field}: <mark>{h.matched.value}</mark>
        </span>
      ) : null}
    </li>
  );
}

export function ReposPage(): JSX.Element {
  const { query, route, path } = useLocation();
  const [q, setQ] = useState(query.q ?? '');
  const [kind, setKind] = useState(query.kind ?? '');
  const [type, setType] = useState(query.type ?? '');
  const dq = useDebounced(q.trim(), 250);
  const dtype = useDebounced(type.trim(), 250);
  useTitle('Repositories');

  // The filters live in the URL too: a search can be shared, and Back returns to it.
  useEffect(() => {
    const p = new URLSearchParams();
    if (dq) p.set('q', dq);
    if (kind) p.set('kind', kind);
    if (dtype) p.set('type', dtype);
    const s = p.toString();
    const want = `${path}${s ? `?${s}` : ''}`;
    if (want !== location.pathname + location.search) route(want, true);
  }, [dq, kind, dtype]);

  const key = JSON.stringify([dq, kind, dtype]);
  const repos = usePaged<RepositorySummary>((cursor, signal) => api.repositories({ q: dq, artifactType: dtype, kind, cursor, limit: PAGE }, signal), key);
  const searching = dq !== '' || dtype !== '' || kind !== '';
  const hits = usePaged<SearchHit>(
    (cursor, signal) => (searching ? api.search({ q: dq, artifactType: dtype, kind, cursor, limit: PAGE }, signal) : Promise.resolve({ items: [], next: null })),
    key,
  );
  // The server may not filter by kind: what it sends is filtered here as well.
  const shownRepos = kind ? repos.items.filter((r) => r.kinds.includes(kind as ArtifactKind)) : repos.items;
  const shownHits = kind ? hits.items.filter((h) => h.kind.kind === kind) : hits.items;

  return (
    <section>
      <h1>Repositories</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <div class="field grow">
          <label for="q">Search</label>
          <div class="search-box">
            <Icon name="search" size={16} />
            <input id="q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="Name, tag, annotation…" autoComplete="off" />
          </div>
        </div>
        <div class="field">
          <label for="kind">Kind</label>
          <select id="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="">Any kind</option>
            {KINDS.map(([k, l]) => (
              <option key={k} value={k}>
                {l}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="type">artifactType</label>
          <input id="type" type="text" value={type} onInput={(e) => setType(e.currentTarget.value)} placeholder="application/vnd…" autoComplete="off" />
        </div>
      </form>

      {searching ? (
        <section aria-labelledby="hits-h">
          <h2 id="hits-h">Artifacts</h2>
          {hits.error ? <ErrorBox error={hits.error} /> : null}
          {shownHits.length > 0 ? (
            <ul class="list hits" data-testid="hits">
              {shownHits.map((h) => (
                <HitRow key={`${h.repo}@${h.digest}:${h.tag ?? ''}`} h={h} />
              ))}
            </ul>
          ) : !hits.loading && !hits.error ? (
            <p class="muted">No artifact matches.</p>
          ) : null}
          {hits.loading ? <Loading what="Searching" /> : null}
          {hits.next !== null && !hits.loading ? (
            <button type="button" onClick={hits.more}>
              More artifacts
            </button>
          ) : null}
        </section>
      ) : null}

      <section aria-labelledby="repos-h">
        <h2 id="repos-h" class={searching ? '' : 'visually-hidden'}>
          {searching ? 'Repositories' : 'All repositories'}
        </h2>
        {repos.error ? <ErrorBox error={repos.error} /> : null}
        {shownRepos.length > 0 ? (
          <ul class="list repos" data-testid="repos">
            {shownRepos.map((r) => (
              <RepoRow key={r.name} r={r} />
            ))}
          </ul>
        ) : !repos.loading && !repos.error ? (
          <p class="muted">{searching ? 'No repository matches.' : 'No repositories yet. Push one with `wharf push`.'}</p>
        ) : null}
        {repos.loading ? <Loading what="Loading repositories" /> : null}
        {repos.next !== null && !repos.loading ? (
          <button type="button" onClick={repos.more}>
            More repositories
          </button>
        ) : null}
      </section>
    </section>
  );
}

