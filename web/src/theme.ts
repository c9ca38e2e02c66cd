/**
 * Light and dark: the system's preference unless the visitor picked one with the toggle, which
 * is remembered in localStorage. The CSS reads <html data-theme>; no inline script sets it early
 * (the CSP forbids one), so a visitor who picked against the system may see one frame of it.
 */
export type Theme = 'light' | 'dark';

const KEY = 'wharf-theme';

export function systemTheme(): Theme {
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function savedTheme(): Theme | null {
  try {
    const t = localStorage.getItem(KEY);
    return t === 'light' || t === 'dark' ? t : null;
  } catch {
    return null;
  }
}

export function applyTheme(t: Theme | null): void {
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  try {
    if (t) localStorage.setItem(KEY, t);
    else localStorage.removeItem(KEY);
  } catch {
    // Storage off (private mode): the choice lasts for this page only.
  }
}

export function currentTheme(): Theme {
  return savedTheme() ?? systemTheme();
}
