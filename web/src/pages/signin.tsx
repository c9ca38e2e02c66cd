/** Sign in with the registry's own users or a registry token (POST /api/v1/session sets the session cookie). */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api } from '../api.js';
import { useTitle } from '../components.js';
import { useSession } from '../session.js';

export function SignInPage(): JSX.Element {
  useTitle('Sign in');
  const { info, refresh } = useSession();
  const { route, query } = useLocation();
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [withToken, setWithToken] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Only a path of this site: a crafted ?next= must not send the visitor elsewhere.
  const next = query.next && /^\/(?!\/)/.test(query.next) ? query.next : '/';

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await (withToken ? api.signInWithToken(token.trim()) : api.signIn(user, password));
      await refresh();
      route(next);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  if (!info.authEnabled) {
    return (
      <section class="narrow">
        <h1>Sign in</h1>
        <p>This registry has no users: everyone may see everything it serves.</p>
      </section>
    );
  }
  return (
    <section class="narrow">
      <h1>Sign in</h1>
      {info.user ? <p>You are signed in as {info.user}.</p> : null}
      <form class="signin" onSubmit={(e) => void submit(e)} method="post" action="/api/v1/session">
        {withToken ? (
          <div class="field">
            <label for="token">Token</label>
            <input id="token" name="token" type="password" autoComplete="off" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
          </div>
        ) : (
          <>
            <div class="field">
              <label for="user">User name</label>
              <input id="user" name="user" autoComplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="password">Password</label>
              <input id="password" name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
            </div>
          </>
        )}
        <button type="button" class="link-button" onClick={() => setWithToken(!withToken)}>
          {withToken ? 'Sign in with a user name and password' : 'Sign in with a registry token instead'}
        </button>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </section>
  );
}
