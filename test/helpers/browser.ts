/**
 * A real browser for the web UI's tests: playwright-core driving Debian's Chromium (never a
 * browser Playwright downloads), headless, each launch with a fresh profile. Every page is watched
 * for what must never happen on a Wharf page: a dialog (alert/confirm/prompt), a page error, a
 * Content-Security-Policy violation, a console error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { skipOrFail } from './cluster.js';

export const CHROMIUM = process.env.WHARF_CHROMIUM ?? '/usr/bin/chromium';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Why the browser tests cannot run here, or undefined when they can. Without Chromium they skip
 * on a laptop and fail under CI=true (.ci/run installs it).
 */
export function missingBrowser(): string | undefined {
  return skipOrFail(existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
}

/** Builds dist/web/ when it is missing or older than web/ (the check alone takes milliseconds). */
export function ensureUiBuilt(): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--web'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('the web UI did not build (node scripts/build.mjs --web)');
}

export async function launchBrowser(): Promise<Browser> {
  // launch() gives every run a new temporary profile (user data dir) and removes it on close.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** What a page did that it must not. */
export interface Watch {
  dialogs: string[];
  pageErrors: string[];
  csp: string[];
  consoleErrors: string[];
  /** Set by a hostile payload if it ever runs: `window.__pwned`. */
  pwned(): Promise<unknown>;
}

/**
 * A context (its own cookies) and a page in it, watched. `securitypolicyviolation` events are
 * gathered by an init script, which the browser runs outside the page's CSP.
 */
export async function watchedPage(
  browser: Browser,
  opts: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark'; storageState?: Awaited<ReturnType<BrowserContext['storageState']>> } = {},
): Promise<{ context: BrowserContext; page: Page; watch: Watch }> {
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: opts.viewport ?? { width: 1280, height: 900 },
    colorScheme: opts.colorScheme ?? 'light',
    ...(opts.storageState ? { storageState: opts.storageState } : {}),
  });
  await context.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  const watch: Watch = {
    dialogs: [],
    pageErrors: [],
    csp: [],
    consoleErrors: [],
    pwned: () => page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned),
  };
  page.on('dialog', (d) => {
    watch.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (e) => watch.pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/Content Security Policy/i.test(text)) watch.csp.push(text);
    // A failed API call the page shows as an error (a 401, a 404) is logged by the browser too.
    else if (!/Failed to load resource/.test(text)) watch.consoleErrors.push(text);
  });
  return { context, page, watch };
}

/** The CSP violations the page itself saw (beside those the console reported). */
export async function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
}
