/**
 * One artifact: what it is (kind, facts), its files with downloads, README and LICENSE, referrers,
 * pull commands, the manifest and config, and (for those allowed) delete.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, apiUrl, downloadAllUrl, type ArtifactDetail, type FileEntry, type ReferrerNode } from '../api.js';
import { ConfirmDialog, CopyButton, Digest, ErrorBox, JsonView, KindBadge, Loading, Show, When, useAsync, useTitle } from '../components.js';
import { bytes, plural, refPath, repoPath, shortDigest, time } from '../format.js';
import { Icon } from '../icons.js';
import { useSession } from '../session.js';
import { TagHistory } from './repo.js';

/** Names of archives whose files the server lists. */
const ARCHIVE_NAME = /\.(tar|tar\.gz|tgz|tar\.zst|tzst)$/i;
/** Media types that say "archive" even on a titled layer (a pushed directory, a chart, an image layer). */
const ARCHIVE_TYPE = /tar\+gzip|tar\+zstd|\.tar\.gzip|estargz|\.gzip$|\.zstd$|helm\.chart\.content/i;
/** The plain tar media type: ORAS and wharf give it to any file, so for a titled file only its name counts. */
const PLAIN_TAR = /(\.|\+)tar$/i;

/** Whether a layer may hold files to list: by its name when it has one, else by its media type. */
function isArchive(f: { path?: string; mediaType: string | null }): boolean {
  const type = f.mediaType ?? '';
  if (ARCHIVE_TYPE.test(type)) return true;
  if (f.path !== undefined) return ARCHIVE_NAME.test(f.path);
  return PLAIN_TAR.test(type);
}

function FileRow({ f, repo, depth = 0 }: { f: FileEntry; repo: string; depth?: number }): JSX.Element {
  const [open, setOpen] = useState(false);
  const expandable = f.whole && isArchive(f);
  const id = `inside-${f.layer}-${depth}`;
  return (
    <>
      <tr>
        <th scope="row" class={`path depth-${Math.min(depth, 3)}`}>
          <Icon name={f.type === 'dir' ? 'folder' : f.type === 'symlink' ? 'link' : 'file'} size={16} />
          <span class="path-text">{f.path}</span>
        </th>
        <td class="num">{f.type === 'file' ? bytes(f.size) : ''}</td>
        <td class="media">{f.mediaType ?? ''}</td>
        <td class="actions">
          {f.type === 'file' ? (
            <a class="button small" href={f.download} download={f.path.split('/').pop() || 'download'} aria-label={`Download ${f.path}`}>
              <Icon name="download" size={16} /> Download
            </a>
          ) : null}
          {expandable ? (
            <button type="button" class="small" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
              {open ? 'Hide files' : 'Files inside'}
            </button>
          ) : null}
        </td>
      </tr>
      {open ? (
        <tr id={id} class="sub-row">
          <td colSpan={4}>
            <LayerFilesView repo={repo} layer={f.layer} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function FilesTable({ files, repo, caption }: { files: FileEntry[]; repo: string; caption: string }): JSX.Element {
  return (
    <div class="table-wrap">
      <table class="table files" data-testid="files">
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Path</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col" class="media">Media type</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {files.map((f) => (
            <FileRow key={`${f.layer}:${f.path}`} f={f} repo={repo} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The files inside one archive layer, asked for when the visitor opens it. */
function LayerFilesView({ repo, layer }: { repo: string; layer: string }): JSX.Element {
  const a = useAsync((s) => api.files(repo, layer, s), [repo, layer]);
  return (
    <Show a={a} what="Reading the layer's files">
      {(l) => (
        <>
          <p class="muted">
            {plural(l.files.length, 'entry', 'entries')} in a {l.format} layer
            {l.truncated ? ' (the list stops here: the archive has more)' : ''}.
          </p>
          {(l as { note?: string }).note ? <p class="muted">{(l as { note?: string }).note}</p> : null}
          {l.files.length > 0 ? <FilesTable files={l.files} repo={repo} caption={`Files inside layer ${layer}`} /> : null}
        </>
      )}
    </Show>
  );
}

/** Layers of the manifest that are not titled files: an image's filesystem layers, listed by digest. */
function untitledLayers(d: ArtifactDetail): Array<{ digest: string; mediaType: string; size: number }> {
  const m = d.manifest as { layers?: Array<{ digest?: unknown; mediaType?: unknown; size?: unknown }> } | null;
  const named = new Set(d.files.filter((f) => f.whole).map((f) => f.layer));
  return (m?.layers ?? [])
    .filter((l): l is { digest: string; mediaType: string; size: number } => typeof l.digest === 'string' && typeof l.mediaType === 'string' && typeof l.size === 'number')
    .filter((l) => !named.has(l.digest));
}

function LayerRow({ repo, manifest, l }: { repo: string; manifest: string; l: { digest: string; mediaType: string; size: number } }): JSX.Element {
  const [open, setOpen] = useState(false);
  const id = `layer-${l.digest.replace(/\W/g, '')}`;
  return (
    <li class="layer">
      <div class="layer-head">
        <code title={l.digest}>{shortDigest(l.digest)}</code>
        <span class="muted">{l.mediaType}</span>
        <span>{bytes(l.size)}</span>
        <a class="button small" href={apiUrl('download', { repo, ref: manifest, layer: l.digest })} download={l.digest.replace(':', '-')} aria-label={`Download layer ${shortDigest(l.digest)}`}>
          <Icon name="download" size={16} /> Download
        </a>
        {isArchive(l) ? (
          <button type="button" class="small" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
            {open ? 'Hide files' : 'Files inside'}
          </button>
        ) : null}
      </div>
      {open ? (
        <div id={id}>
          <LayerFilesView repo={repo} layer={l.digest} />
        </div>
      ) : null}
    </li>
  );
}

/** README Markdown rendered and sanitized by a chunk loaded for it alone. */
function Readme({ readme }: { readme: { source: string; markdown: string } }): JSX.Element {
  const [html, setHtml] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    let live = true;
    import('../markdown.js').then(
      (m) => live && setHtml(m.renderMarkdown(readme.markdown)),
      (e: unknown) => live && setError(e instanceof Error ? e : new Error(String(e))),
    );
    return () => {
      live = false;
    };
  }, [readme.markdown]);
  return (
    <section aria-labelledby="readme-h" class="panel">
      <h2 id="readme-h">README</h2>
      <p class="muted small">from {readme.source}</p>
      {error ? <ErrorBox error={error} /> : html === null ? <Loading what="Rendering" /> : <article class="markdown" data-testid="readme" dangerouslySetInnerHTML={{ __html: html }} />}
    </section>
  );
}

/** Group, heading, one, many. */
const GROUPS: Array<[string, string, string, string]> = [
  ['signatures', 'Signatures', 'signature', 'signatures'],
  ['sboms', 'SBOMs', 'SBOM', 'SBOMs'],
  ['attestations', 'Attestations', 'attestation', 'attestations'],
  ['other', 'Other', 'other referrer', 'other referrers'],
];

function ReferrerItem({ repo, n }: { repo: string; n: ReferrerNode }): JSX.Element {
  const title = n.annotations['org.opencontainers.image.title'] ?? n.annotations['org.opencontainers.image.description'];
  return (
    <li>
      <div class="referrer">
        <KindBadge kind={n.kind} />
        <a href={refPath(repo, n.digest)}>{shortDigest(n.digest)}</a>
        {title ? <span class="muted">{title}</span> : null}
        <span class="muted">{bytes(n.size)}</span>
        {n.artifactType ? <code class="muted small">{n.artifactType}</code> : null}
      </div>
      {n.children.length > 0 ? (
        <ul class="tree">
          {n.children.map((c) => (
            <ReferrerItem key={c.digest} repo={repo} n={c} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function Referrers({ d }: { d: ArtifactDetail }): JSX.Element {
  const total = Object.values(d.referrerCounts).reduce((a, b) => a + b, 0);
  const grouped = GROUPS.map(([g, label]) => [label, d.referrers.filter((r) => (r.kind.group ?? 'other') === g), d.referrerCounts[g] ?? 0] as const);
  return (
    <section aria-labelledby="ref-h" class="panel" data-testid="referrers">
      <h2 id="ref-h">Referrers</h2>
      {total === 0 && d.referrers.length === 0 ? (
        <p class="muted">No signatures, SBOMs or attestations refer to this artifact.</p>
      ) : (
        <>
          <ul class="counts">
            {GROUPS.map(([g, , one, many]) =>
              (d.referrerCounts[g] ?? 0) > 0 ? (
                <li key={g}>
                  <strong>{d.referrerCounts[g]}</strong> {d.referrerCounts[g] === 1 ? one : many}
                </li>
              ) : null,
            )}
          </ul>
          {grouped.map(([label, nodes, count]) =>
            nodes.length > 0 ? (
              <section key={label} aria-label={label}>
                <h3>
                  {label} <span class="count">{Math.max(count, nodes.length)}</span>
                </h3>
                <ul class="tree">
                  {nodes.map((n) => (
                    <ReferrerItem key={n.digest} repo={d.repo} n={n} />
                  ))}
                </ul>
              </section>
            ) : null,
          )}
        </>
      )}
    </section>
  );
}

function PullCommands({ d }: { d: ArtifactDetail }): JSX.Element | null {
  if (d.pull.length === 0) return null;
  return (
    <section aria-labelledby="pull-h" class="panel">
      <h2 id="pull-h">Pull</h2>
      <ul class="commands">
        {d.pull.map((p) => (
          <li key={p.tool}>
            <span class="tool">{p.tool}</span>
            <code class="command">{p.command}</code>
            <CopyButton text={p.command} label={`Copy the ${p.tool} command`} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function Facts({ d }: { d: ArtifactDetail }): JSX.Element {
  const rows: Array<[string, JSX.Element | string]> = [
    ['Type', d.kind.label],
    ['Digest', <Digest digest={d.digest} />],
    ['Size', bytes(d.size)],
    ['Media type', <code>{d.mediaType}</code>],
  ];
  // The server's facts may name the artifact type already.
  if (d.artifactType && !d.facts.some((f) => f.value === d.artifactType)) rows.push(['Artifact type', <code>{d.artifactType}</code>]);
  rows.push(['Created', d.created !== null ? time(d.created) : '—']);
  rows.push(['Pushed', d.pushed !== null ? `${time(d.pushed)}${d.pushedBy ? ` by ${d.pushedBy}` : ''}` : d.pushedBy ? `by ${d.pushedBy}` : '—']);
  if (d.downloads !== null) rows.push(['Downloads', <span data-testid="downloads">{d.downloads.toLocaleString()}</span>]);
  if (d.lastPulled !== null) rows.push(['Last pulled', <When ms={d.lastPulled} />]);
  for (const f of d.facts) rows.push([f.label, f.value]);
  return (
    <dl class="facts" data-testid="facts">
      {rows.map(([k, v], i) => (
        <div key={`${k}-${i}`} class="fact">
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function Annotations({ a }: { a: Record<string, string> }): JSX.Element | null {
  const entries = Object.entries(a);
  if (entries.length === 0) return null;
  return (
    <section aria-labelledby="ann-h" class="panel">
      <h2 id="ann-h">Annotations</h2>
      <div class="table-wrap">
        <table class="table annotations" data-testid="annotations">
          <caption class="visually-hidden">Annotations</caption>
          <tbody>
            {entries.map(([k, v]) => (
              <tr key={k}>
                <th scope="row">
                  <code>{k}</code>
                </th>
                <td class="value">{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Children({ d }: { d: ArtifactDetail }): JSX.Element | null {
  if (d.children.length === 0) return null;
  return (
    <section aria-labelledby="children-h" class="panel">
      <h2 id="children-h">Platforms and children</h2>
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Platform</th>
              <th scope="col">Kind</th>
              <th scope="col">Digest</th>
              <th scope="col" class="num">
                Size
              </th>
            </tr>
          </thead>
          <tbody>
            {d.children.map((c) => (
              <tr key={c.digest}>
                <td>{c.platform ?? '—'}</td>
                <td>
                  <KindBadge kind={c.kind} />
                </td>
                <td>
                  <a href={refPath(d.repo, c.digest)}>{shortDigest(c.digest)}</a>
                </td>
                <td class="num">{bytes(c.size)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function DeleteButton({ d, reference }: { d: ArtifactDetail; reference: string }): JSX.Element {
  const [open, setOpen] = useState(false);
  const { route } = useLocation();
  const isTag = d.tag !== null && !reference.includes(':');
  const what = isTag ? `the tag ${d.tag}` : `the artifact ${shortDigest(d.digest)}`;
  return (
    <>
      <button type="button" class="danger" onClick={() => setOpen(true)}>
        <Icon name="trash" size={16} /> {isTag ? 'Delete tag' : 'Delete artifact'}
      </button>
      <ConfirmDialog
        open={open}
        title={isTag ? 'Delete this tag?' : 'Delete this artifact?'}
        confirm={isTag ? 'Delete tag' : 'Delete artifact'}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await (isTag ? api.deleteTag(d.repo, d.tag!) : api.deleteArtifact(d.repo, d.digest));
          route(repoPath(d.repo));
        }}
      >
        <p>
          This deletes {what} from <strong>{d.repo}</strong>.{' '}
          {isTag ? 'The artifact stays, under its digest and any other tag.' : 'Every tag that points at it goes too.'} It cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

export function ArtifactPage({ repo, reference }: { repo: string; reference: string }): JSX.Element {
  const name = `${repo}${reference.includes(':') ? '@' : ':'}${reference}`;
  useTitle(name);
  const a = useAsync((s) => api.artifact(repo, reference, s), [repo, reference]);
  const { info } = useSession();
  return (
    <section class="artifact">
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Repositories</a> <span aria-hidden="true">/</span> <a href={repoPath(repo)}>{repo}</a> <span aria-hidden="true">/</span>{' '}
        <span aria-current="page">{reference.includes(':') ? shortDigest(reference) : reference}</span>
      </nav>
      <Show a={a} what="Loading the artifact">
        {(d) => {
          const layers = untitledLayers(d);
          const canDelete = d.can.delete && info.deleteEnabled;
          return (
            <>
              <header class="artifact-head">
                <KindBadge kind={d.kind} size="large" />
                <h1>
                  <span class="repo-part">{d.repo}</span>
                  <span class="ref-part">{d.tag ? `:${d.tag}` : `@${shortDigest(d.digest)}`}</span>
                </h1>
                <div class="head-actions">
                  {d.files.length > 0 || layers.length > 0 ? (
                    <a class="button" href={downloadAllUrl(d.repo, d.tag ?? d.digest)} download={`${d.repo.split('/').pop()}-${d.tag ?? d.digest.slice(7, 19)}.tar`}>
                      <Icon name="download" size={16} /> Download all
                    </a>
                  ) : null}
                  {canDelete ? <DeleteButton d={d} reference={reference} /> : null}
                </div>
              </header>
              <div class="grid">
                <div class="col-main">
                  <Facts d={d} />
                  <section aria-labelledby="files-h" class="panel">
                    <h2 id="files-h">Files</h2>
                    {d.files.length > 0 ? <FilesTable files={d.files} repo={d.repo} caption="Files of the artifact" /> : <p class="muted">No titled files.</p>}
                    {layers.length > 0 ? (
                      <>
                        <h3>Layers</h3>
                        <ul class="layers">
                          {layers.map((l) => (
                            <LayerRow key={l.digest} repo={d.repo} manifest={d.digest} l={l} />
                          ))}
                        </ul>
                      </>
                    ) : null}
                  </section>
                  <Children d={d} />
                  {d.readme ? <Readme readme={d.readme} /> : null}
                  {d.license ? (
                    <section aria-labelledby="license-h" class="panel">
                      <h2 id="license-h">License</h2>
                      <p class="muted small">from {d.license.source}</p>
                      <pre class="license" tabIndex={0} data-testid="license">
                        {d.license.text}
                      </pre>
                    </section>
                  ) : null}
                  <Annotations a={d.annotations} />
                  <section aria-labelledby="raw-h" class="panel">
                    <h2 id="raw-h">Manifest and config</h2>
                    <details>
                      <summary>Manifest</summary>
                      <JsonView value={d.manifest} label="manifest" />
                    </details>
                    {d.config !== null ? (
                      <details>
                        <summary>Config</summary>
                        <JsonView value={d.config} label="config" />
                      </details>
                    ) : null}
                  </section>
                </div>
                <div class="col-side">
                  <PullCommands d={d} />
                  <Referrers d={d} />
                  {d.tag ? (
                    <section aria-labelledby="hist-h" class="panel">
                      <h2 id="hist-h">Tag history</h2>
                      <TagHistory repo={d.repo} tag={d.tag} />
                    </section>
                  ) : null}
                  <p>
                    <a href={`/analytics?repo=${encodeURIComponent(d.repo)}&digest=${encodeURIComponent(d.digest)}`}>
                      <Icon name="chart" size={16} /> Downloads of this artifact
                    </a>
                  </p>
                </div>
              </div>
            </>
          );
        }}
      </Show>
    </section>
  );
}
