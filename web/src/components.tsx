/** Small parts every page uses: loading and errors, kind badges, copy buttons, the confirm dialog. */
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type KindInfo } from './api.js';
import { ago, refPath, repoPath, shortDigest, time } from './format.js';
import { Icon } from './icons.js';
import { useSession } from './session.js';

export interface Async<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload(): void;
}

/**
 * Runs `load` when `deps` change; the previous request is aborted, so a slow answer to an old
 * query never overwrites a newer one.
 */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    load(ac.signal).then(
      (data) => {
        if (!ac.signal.aborted) setState({ data, loading: false });
      },
      (error: unknown) => {
        if (!ac.signal.aborted) setState({ error: error instanceof Error ? error : new Error(String(error)), loading: false });
      },
    );
    return () => ac.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** The value after it has stopped changing for `ms`: a search box asks once the typing pauses. */
export function useDebounced<T>(value: T, ms = 250): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function Loading({ what = 'Loading' }: { what?: string }): JSX.Element {
  return (
    <p class="muted loading" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

export function ErrorBox({ error }: { error: Error }): JSX.Element {
  const notFound = error instanceof ApiError && (error.status === 404 || error.code === 'NAME_UNKNOWN' || error.code === 'MANIFEST_UNKNOWN');
  const signIn = error instanceof ApiError && (error.status === 401 || error.status === 403);
  return (
    <div class="error" role="alert">
      <strong>{notFound ? 'Not found' : signIn ? 'Not allowed' : 'Something went wrong'}</strong>
      <p>{error.message}</p>
      {signIn ? (
        <p>
          <a href={`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`}>Sign in</a> with an account that may see this.
        </p>
      ) : null}
    </div>
  );
}

/** Loading, an error, or the content once the data is there. */
export function Show<T>({ a, children, what }: { a: Async<T>; children: (data: T) => ComponentChildren; what?: string }): JSX.Element {
  if (a.error) return <ErrorBox error={a.error} />;
  if (a.data === undefined) return <Loading {...(what ? { what } : {})} />;
  return <>{children(a.data)}</>;
}

export function KindBadge({ kind, size }: { kind: KindInfo; size?: 'large' }): JSX.Element {
  return (
    <span class={`kind kind-${kind.kind}${size ? ` kind-${size}` : ''}`} data-kind={kind.kind}>
      <Icon name={kind.icon || kind.kind} fallback={kind.kind} size={size ? 24 : 16} />
      <span class="kind-label">{kind.label}</span>
    </span>
  );
}

export function When({ ms }: { ms: number | null | undefined }): JSX.Element {
  if (ms === null || ms === undefined) return <span class="muted">—</span>;
  return (
    <time dateTime={new Date(ms).toISOString()} title={time(ms)}>
      {ago(ms)}
    </time>
  );
}

/** A button that copies `text`, and says so to screen readers. */
export function CopyButton({ text, label }: { text: string; label: string }): JSX.Element {
  const [done, setDone] = useState(false);
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard (plain http on another host): select the text for the user to copy instead.
      const el = document.createElement('textarea');
      el.value = text;
      el.setAttribute('readonly', '');
      el.className = 'offscreen';
      document.body.append(el);
      el.select();
      document.execCommand('copy');
      el.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return (
    <button type="button" class="icon-button" onClick={() => void copy()} aria-label={label} title={label}>
      <Icon name={done ? 'check' : 'copy'} size={16} />
      <span class="visually-hidden" aria-live="polite">
        {done ? 'Copied' : ''}
      </span>
    </button>
  );
}

export function Digest({ digest }: { digest: string }): JSX.Element {
  return (
    <span class="digest">
      <code title={digest}>{shortDigest(digest)}</code>
      <CopyButton text={digest} label="Copy digest" />
    </span>
  );
}

/**
 * A modal confirmation (the native <dialog>: focus moves in, Escape cancels, focus returns).
 * `onConfirm` may fail: its message is shown in the dialog.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      setError(null);
      d.showModal();
    } else if (!props.open && d.open) d.close();
  }, [props.open]);
  const go = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await props.onConfirm();
      props.onClose();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="dialog-title" onClose={props.onClose}>
      <h2 id="dialog-title">{props.title}</h2>
      <div>{props.children}</div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <div class="dialog-actions">
        <button type="button" onClick={props.onClose} disabled={busy}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => void go()} disabled={busy}>
          {busy ? 'Working…' : props.confirm}
        </button>
      </div>
    </dialog>
  );
}

/** Pretty-printed JSON, escaped by Preact like any other text. */
export function JsonView({ value, label }: { value: unknown; label: string }): JSX.Element {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return (
    <div class="json">
      <div class="json-head">
        <span>{label}</span>
        <CopyButton text={text} label={`Copy ${label}`} />
      </div>
      <pre tabIndex={0} aria-label={label}>
        <code>{text}</code>
      </pre>
    </div>
  );
}

export interface Paged<T> {
  items: T[];
  /** The cursor of the next page; null at the end. */
  next: string | null;
  error: Error | undefined;
  loading: boolean;
  more(): void;
}

/** A list read page by page with "Load more"; a new query starts over. */
export function usePaged<T>(load: (cursor: string | null, signal: AbortSignal) => Promise<{ items: T[]; next: string | null }>, key: string): Paged<T> {
  const [items, setItems] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const [loading, setLoading] = useState(true);
  const [cursor, setCursor] = useState<string | null>(null);
  const [ask, setAsk] = useState(0);
  useEffect(() => {
    setItems([]);
    setNext(null);
    setCursor(null);
    setAsk((a) => a + 1);
  }, [key]);
  useEffect(() => {
    if (ask === 0) return;
    const ac = new AbortController();
    setLoading(true);
    setError(undefined);
    load(cursor, ac.signal).then(
      (p) => {
        if (ac.signal.aborted) return;
        setItems((old) => (cursor === null ? p.items : [...old, ...p.items]));
        setNext(p.next);
        setLoading(false);
      },
      (e: unknown) => {
        if (ac.signal.aborted) return;
        setError(e instanceof Error ? e : new Error(String(e)));
        setLoading(false);
      },
    );
    return () => ac.abort();
  }, [ask]);
  const more = (): void => {
    if (next === null) return;
    setCursor(next);
    setAsk((a) => a + 1);
  };
  return { items, next, error, loading, more };
}

/**
 * A paged list as a table: its error, the table once there are rows (else `empty`), the loading
 * line, and the button that asks for the next page.
 */
export function PagedTable<T>(props: { paged: Paged<T>; empty: string; what: string; more: string; children: (items: T[]) => ComponentChildren }): JSX.Element {
  const { items, next, error, loading, more } = props.paged;
  return (
    <>
      {error ? <ErrorBox error={error} /> : null}
      {items.length > 0 ? <div class="table-wrap">{props.children(items)}</div> : !loading && !error ? <p class="muted">{props.empty}</p> : null}
      {loading ? <Loading what={props.what} /> : null}
      {next !== null && !loading ? (
        <button type="button" onClick={more}>
          {props.more}
        </button>
      ) : null}
    </>
  );
}

/** A page that shows one answer of the API: its title, then `children` of the answer once it has come. */
export function AsyncPage<T>(props: { title: string; load: (signal: AbortSignal) => Promise<T>; what: string; children: (data: T) => ComponentChildren }): JSX.Element {
  useTitle(props.title);
  const a = useAsync(props.load, []);
  return (
    <section>
      <h1>{props.title}</h1>
      <Show a={a} what={props.what}>
        {props.children}
      </Show>
    </section>
  );
}

/** A table of `items` (in a scrolling wrapper), or the `empty` line when there are none. */
export function TableOf({ items, empty, children }: { items: readonly unknown[]; empty: string; children: ComponentChildren }): JSX.Element {
  if (items.length === 0) return <p class="muted">{empty}</p>;
  return <div class="table-wrap">{children}</div>;
}

/** The first cell of a repository's row: its name, linked to its page. */
export function RepoCell({ name }: { name: string }): JSX.Element {
  return (
    <th scope="row">
      <a href={repoPath(name)}>{name}</a>
    </th>
  );
}

/** A table column: its heading; `{ num }` for a right-aligned numeric one; `{ hidden }` for one named to screen readers only. */
export type Column = string | { num: string } | { hidden: string };

/** A table's header row, one `<th scope="col">` a column. */
export function TableHead({ cols }: { cols: Column[] }): JSX.Element {
  return (
    <thead>
      <tr>
        {cols.map((c) =>
          typeof c === 'string' ? (
            <th key={c} scope="col">
              {c}
            </th>
          ) : 'num' in c ? (
            <th key={c.num} scope="col" class="num">
              {c.num}
            </th>
          ) : (
            <th key={c.hidden} scope="col">
              <span class="visually-hidden">{c.hidden}</span>
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}

/**
 * A link to what was pulled or pushed: by its tag when `reference` is one, else by `digest`.
 * `withRepo` puts the repository's name before the `:tag` or `@digest`.
 */
export function RefLink({ repo, reference, digest, withRepo }: { repo: string; reference: string | null | undefined; digest: string; withRepo?: boolean }): JSX.Element {
  const tag = reference && !reference.includes(':') ? reference : null;
  return (
    <a href={refPath(repo, tag ?? digest)}>
      {withRepo ? repo : null}
      {tag !== null ? `:${tag}` : `@${shortDigest(digest)}`}
    </a>
  );
}

/**
 * The page for admins only: anyone else sees <AdminsOnly /> without the page asking the API.
 * With auth off the API decides (it answers local visitors only).
 */
export function ForAdmins({ children }: { children: ComponentChildren }): JSX.Element {
  const { info } = useSession();
  if (info.authEnabled && !info.admin) return <AdminsOnly />;
  return <>{children}</>;
}

/** What a page for admins shows anyone else, without asking the API (whose 401 could make the browser prompt). */
export function AdminsOnly(): JSX.Element {
  useTitle('For admins');
  return (
    <section>
      <h1>For admins</h1>
      <p>
        This page is for the registry's admins. <a href={`/sign-in?next=${encodeURIComponent(location.pathname)}`}>Sign in</a> as one to see it.
      </p>
    </section>
  );
}

/** Sets the document title for the page shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Wharf` : 'Wharf';
  }, [title]);
}
