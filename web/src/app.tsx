/** The shell: header with navigation, session and theme toggle, and the routes. */
import type { JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ErrorBoundary, LocationProvider, Route, Router, lazy, useLocation } from 'preact-iso';
import { api, setCsrf, type SessionInfo } from './api.js';
import { useTitle } from './components.js';
import { Icon } from './icons.js';
import { ArtifactPage } from './pages/artifact.js';
import { RepoPage } from './pages/repo.js';
import { ReposPage } from './pages/repos.js';
import { SignInPage } from './pages/signin.js';
import { parseRef } from './format.js';
import { ANONYMOUS, SessionContext, useSession } from './session.js';
import { applyTheme, currentTheme, type Theme } from './theme.js';

// The pages that draw charts load with uPlot, in chunks of their own: the first page stays small.
const AnalyticsPage = lazy(() => import('./pages/analytics.js').then((m) => m.AnalyticsPage));
const AuditPage = lazy(() => import('./pages/admin.js').then((m) => m.AuditPage));
const CachePage = lazy(() => import('./pages/admin.js').then((m) => m.CachePage));
const StoragePage = lazy(() => import('./pages/admin.js').then((m) => m.StoragePage));

/** /r/<repo> is a repository; /r/<repo>:<tag> and /r/<repo>@<digest> are an artifact. */
function RefRoute(props: { rest?: string }): JSX.Element {
  const { path } = useLocation();
  // preact-iso decodes the rest; read it from the path so that an encoded '@' or ':' is kept.
  const rest = decodeURIComponent(path.replace(/^\/r\/?/, '')) || (props.rest ?? '');
  const { repo, ref } = parseRef(rest);
  if (!repo) return <NotFound />;
  return ref ? <ArtifactPage repo={repo} reference={ref} /> : <RepoPage repo={repo} />;
}

function NotFound(): JSX.Element {
  useTitle('Not found');
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No page here. <a href="/">Back to the repositories</a>.
      </p>
    </section>
  );
}

function ThemeToggle(): JSX.Element {
  const [theme, setTheme] = useState<Theme>(currentTheme());
  const next: Theme = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      class="icon-button"
      aria-label={`Switch to the ${next} theme`}
      title={`Switch to the ${next} theme`}
      onClick={() => {
        applyTheme(next);
        setTheme(next);
      }}
    >
      <Icon name={theme === 'dark' ? 'sun' : 'moon'} />
    </button>
  );
}

function UserMenu(): JSX.Element | null {
  const { info, refresh } = useSession();
  const { route } = useLocation();
  if (!info.authEnabled) return null;
  if (!info.user) {
    return (
      <a class="button" href="/sign-in">
        Sign in
      </a>
    );
  }
  const signOut = async (): Promise<void> => {
    try {
      await api.signOut();
    } finally {
      await refresh();
      route('/');
    }
  };
  return (
    <span class="user">
      <Icon name="user" size={16} />
      <span class="user-name" data-testid="user">
        {info.user}
      </span>
      <button type="button" onClick={() => void signOut()}>
        Sign out
      </button>
    </span>
  );
}

function Header(): JSX.Element {
  const { info } = useSession();
  const { path } = useLocation();
  const current = (p: string): 'page' | undefined => (p === '/' ? (path === '/' || path.startsWith('/r/') ? 'page' : undefined) : path.startsWith(p) ? 'page' : undefined);
  const admin = info.admin || !info.authEnabled;
  return (
    <header class="top">
      <a class="brand" href="/">
        <Icon name="logo" size={22} />
        <span>Wharf</span>
      </a>
      <nav aria-label="Main">
        <ul>
          <li>
            <a href="/" aria-current={current('/')}>
              Repositories
            </a>
          </li>
          {info.user || !info.authEnabled ? (
            <li>
              <a href="/analytics" aria-current={current('/analytics')}>
                Analytics
              </a>
            </li>
          ) : null}
          {admin ? (
            <>
              <li>
                <a href="/admin/audit" aria-current={current('/admin/audit')}>
                  Audit log
                </a>
              </li>
              <li>
                <a href="/admin/cache" aria-current={current('/admin/cache')}>
                  Cache
                </a>
              </li>
              <li>
                <a href="/admin/storage" aria-current={current('/admin/storage')}>
                  Storage
                </a>
              </li>
            </>
          ) : null}
        </ul>
      </nav>
      <div class="top-right">
        <ThemeToggle />
        <UserMenu />
      </div>
    </header>
  );
}

/**
 * Moves focus to the page's content after a navigation to another page, so a screen reader starts
 * there. Only the path counts: a search typed into the page changes the query, and must keep focus.
 */
function FocusOnNavigate(): null {
  const { path } = useLocation();
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById('main')?.focus({ preventScroll: false });
  }, [path]);
  return null;
}

function Shell(): JSX.Element {
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Header />
      <FocusOnNavigate />
      <main id="main" tabIndex={-1}>
        <ErrorBoundary>
          <Router>
            <Route path="/" component={ReposPage} />
            <Route path="/r/*" component={RefRoute} />
            <Route path="/analytics" component={AnalyticsPage} />
            <Route path="/admin/audit" component={AuditPage} />
            <Route path="/admin/cache" component={CachePage} />
            <Route path="/admin/storage" component={StoragePage} />
            <Route path="/sign-in" component={SignInPage} />
            <Route default component={NotFound} />
          </Router>
        </ErrorBoundary>
      </main>
    </>
  );
}

export function App(): JSX.Element {
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const refresh = useCallback(async () => {
    try {
      const s = await api.session();
      setCsrf(s.csrf);
      setInfo(s);
    } catch {
      // No session route (an older server) or it failed: browse as an anonymous visitor.
      setCsrf(null);
      setInfo(ANONYMOUS);
    }
  }, []);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  // Pages wait for the session: what they show (delete buttons, admin links) depends on it.
  if (!info) return <p class="muted loading">Loading…</p>;
  return (
    <SessionContext.Provider value={{ info, refresh }}>
      <LocationProvider>
        <Shell />
      </LocationProvider>
    </SessionContext.Provider>
  );
}
