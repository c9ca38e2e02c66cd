/**
 * Screenshots of the web UI's main pages into docs/ui/*.png, from the fixtures of its browser
 * tests (test/helpers/ui-fixtures.ts) on a throwaway server, through Debian's Chromium. Run by
 * hand after a change to the UI:
 *
 *   node --import tsx --import ./test/helpers/home.ts scripts/screenshots.ts [outdir]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { USERS, startAuthServer } from '../test/helpers/auth.js';
import { CHROMIUM, cspViolations, ensureUiBuilt, launchBrowser, watchedPage } from '../test/helpers/browser.js';
import { wharf } from '../test/helpers/cli.js';
import { seedUiFixtures } from '../test/helpers/ui-fixtures.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'docs', 'ui'));

async function main(): Promise<void> {
  ensureUiBuilt();
  await mkdir(out, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'wharf-shots-'));
  const server = await startAuthServer();
  const browser = await launchBrowser();
  try {
    await seedUiFixtures(server.url, work);
    // A few pulls, so that the analytics have something to draw.
    const host = server.url.replace(/^https?:\/\//, '');
    for (const user of ['alice', 'bob', 'alice']) {
      const r = await wharf(['pull', '--plain-http', '-u', user, '-p', USERS[user]!, `${host}/ml/model:v1`, '-o', join(work, `pull-${user}`)]);
      if (r.code !== 0) throw new Error(`wharf pull: ${r.stderr}`);
    }

    const shoot = async (page: Page, path: string, name: string, ready: (p: Page) => Promise<unknown>): Promise<void> => {
      await page.goto(`${server.url}${path}`);
      await ready(page).catch((err: unknown) => process.stdout.write(`${name}: not ready (${err instanceof Error ? err.message.split('\n')[0] : String(err)})\n`));
      // Lazy chunks and the chart settle (bounded: a request the server holds must not stall the run).
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => undefined);
      await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
      const csp = await cspViolations(page);
      process.stdout.write(`${name}.png${csp.length > 0 ? ` (CSP violations: ${csp.join('; ')})` : ''}\n`);
    };

    const signIn = async (page: Page): Promise<void> => {
      await page.goto(`${server.url}/sign-in`);
      await page.getByLabel('User name').fill('root');
      await page.getByLabel('Password', { exact: true }).fill(USERS.root!);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByTestId('user').waitFor();
    };
    for (const scheme of ['light', 'dark'] as const) {
      const { context, page } = await watchedPage(browser, { colorScheme: scheme, viewport: { width: 1280, height: 800 } });
      await signIn(page);
      const h1 = (p: Page) => p.getByRole('heading', { level: 1 }).first().waitFor();
      if (scheme === 'light') {
        await shoot(page, '/', 'repositories', (p) => p.getByTestId('repos').waitFor());
        await shoot(page, '/?q=model', 'search', (p) => p.getByTestId('hits').waitFor());
        await shoot(page, '/r/ml/model', 'repository', (p) => p.getByTestId('tags').waitFor());
        await shoot(page, '/r/ml/model:v1', 'artifact', (p) => p.getByTestId('readme').waitFor());
        await shoot(page, '/r/ml/charts/web:1.0.0', 'helm-chart', (p) => p.getByTestId('facts').waitFor());
        await shoot(page, '/analytics', 'analytics', (p) => p.locator('.chart canvas').waitFor());
        await shoot(page, '/admin/audit', 'audit', h1);
        await shoot(page, '/admin/storage', 'storage', h1);
      } else {
        await shoot(page, '/r/ml/model:v1', 'artifact-dark', (p) => p.getByTestId('readme').waitFor());
      }
      await context.close();
    }
    const { context, page } = await watchedPage(browser, { viewport: { width: 390, height: 844 } });
    await shoot(page, '/sign-in', 'sign-in-phone', (p) => p.getByLabel('User name').waitFor());
    await signIn(page);
    await shoot(page, '/r/ml/model:v1', 'artifact-phone', (p) => p.getByTestId('readme').waitFor());
    await context.close();
  } finally {
    await browser.close();
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`screenshots: ${err instanceof Error ? err.message : String(err)} (browser: ${CHROMIUM})\n`);
  process.exitCode = 1;
});
