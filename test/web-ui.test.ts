/**
 * The web UI in a real browser (Debian's Chromium through playwright-core) against a real server
 * with users and access rules: sign in, find what `wharf push` stored, download files and compare
 * their sha256, see the kinds of a Helm chart, an SBOM and a signature, see downloads and tag
 * history move, see nothing of a private repository, and run nothing from hostile content.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RunningServer } from '../src/server/index.js';
import { call } from '../src/testkit/http.js';
import { descriptorOf, type Descriptor } from '../src/testkit/fixtures.js';
import { USERS, basic, startAuthServer } from './helpers/auth.js';
import { cspViolations, ensureUiBuilt, launchBrowser, missingBrowser, watchedPage, type Watch } from './helpers/browser.js';
import { wharf } from './helpers/cli.js';
import { HOSTILE, pushManifest, seedUiFixtures, untar } from './helpers/ui-fixtures.js';

const skip = missingBrowser();
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('web UI in Chromium', { skip }, () => {
  let server: RunningServer & { dataDir: string };
  let url = '';
  let browser: Browser;
  let work = '';
  const alice = basic('alice');
  let files: Record<string, Buffer> = {};
  let model: Descriptor;
  before(async () => {
    ensureUiBuilt();
    server = await startAuthServer();
    url = server.url;
    work = await mkdtemp(join(tmpdir(), 'wharf-web-ui-'));
    ({ files, model } = await seedUiFixtures(url, work));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Each user's cookies after their first sign-in through the form: later visits start signed in. */
  const signedIn = new Map<string, NonNullable<NonNullable<Parameters<typeof watchedPage>[1]>['storageState']>>();

  /** A fresh visitor (own cookies), watched; signed in as `user` when given. */
  async function visit(user?: string, opts: Parameters<typeof watchedPage>[1] = {}): Promise<{ page: Page; watch: Watch; close: () => Promise<void> }> {
    const state = user ? signedIn.get(user) : undefined;
    const { context, page, watch } = await watchedPage(browser, { ...opts, ...(state ? { storageState: state } : {}) });
    page.setDefaultTimeout(15_000);
    if (user && !state) {
      await page.goto(`${url}/sign-in`);
      await page.getByLabel('User name').fill(user);
      await page.getByLabel('Password', { exact: true }).fill(USERS[user]!);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByTestId('user').filter({ hasText: user }).waitFor();
      signedIn.set(user, await context.storageState());
    }
    return { page, watch, close: () => context.close() };
  }

  async function assertClean(page: Page, watch: Watch): Promise<void> {
    assert.deepEqual(watch.dialogs, [], 'no dialog opened');
    assert.deepEqual(watch.pageErrors, [], 'no page error');
    assert.deepEqual([...watch.csp, ...(await cspViolations(page))], [], 'no CSP violation');
    assert.equal(await watch.pwned(), undefined, 'no hostile script ran');
  }

  it('serves the UI with its headers, pages as index.html, and keeps /v2 and unknown paths as they were', async () => {
    const home = await call(url, 'GET', '/');
    assert.equal(home.status, 200);
    assert.match(home.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(home.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.equal(home.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(home.headers.get('x-frame-options'), 'DENY');
    assert.equal(home.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(home.headers.get('cache-control'), 'no-cache');
    const html = home.body.toString();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /<style|style=/, 'no inline style');
    const deep = await call(url, 'GET', '/r/ml/model:v1');
    assert.equal(deep.status, 200);
    assert.equal(deep.body.toString(), html);
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const asset = await call(url, 'GET', js, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('content-encoding'), 'gzip');
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    assert.match(asset.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const again = await call(url, 'GET', js, { headers: { 'if-none-match': asset.headers.get('etag')!, 'accept-encoding': 'gzip' } });
    assert.equal(again.status, 304);
    for (const p of ['/assets/..%2F..%2Fpackage.json', '/assets/.hidden', '/assets/nope.js', '/nowhere', '/r']) {
      const r = await call(url, 'GET', p);
      assert.equal(r.status, 404, p);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/, p);
    }
    assert.equal((await call(url, 'GET', '/v2/', { headers: alice })).status, 200);
    assert.equal((await call(url, 'GET', '/healthz')).status, 200);
  });

  it('draws the shell: landmarks, a skip link, the theme toggle, and fits a phone', async () => {
    const { page, watch, close } = await visit(undefined, { viewport: { width: 375, height: 740 } });
    await page.goto(url);
    await page.getByRole('heading', { level: 1 }).waitFor();
    assert.equal(await page.getByRole('banner').count(), 1);
    assert.equal(await page.getByRole('main').count(), 1);
    assert.ok((await page.getByRole('navigation', { name: 'Main' }).count()) === 1);
    // The first Tab reaches the skip link, and it moves focus to the content.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    // Typing a search puts it in the URL, and keeps the focus in the box.
    await page.getByLabel('Search').pressSequentially('mod');
    await page.waitForURL(/\?q=mod/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'q');
    const toggle = page.getByRole('button', { name: /Switch to the (dark|light) theme/ });
    const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await toggle.click();
    const theme = await page.evaluate(() => document.documentElement.dataset.theme);
    assert.ok(theme === 'dark' || theme === 'light');
    assert.notEqual(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), before);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `no sideways scrolling on a phone (${overflow}px)`);
    await assertClean(page, watch);
    await close();
  });

  it('signs in with a registry user and out again', async () => {
    signedIn.delete('alice');
    const { page, watch, close } = await visit('alice');
    signedIn.delete('alice');
    assert.equal(await page.getByTestId('user').textContent(), 'alice');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    // A wrong password is said so, in the form.
    await page.goto(`${url}/sign-in`);
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password', { exact: true }).fill('wrong');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').waitFor();
    await assertClean(page, watch);
    await close();
  });

  it('signs in with a registry token, and sees what the token may pull', async () => {
    const got = await call(url, 'GET', '/token?service=wharf&scope=repository:ml/model:pull', { headers: alice });
    const token = (JSON.parse(got.body.toString()) as { token: string }).token;
    const { page, watch, close } = await visit();
    await page.goto(`${url}/sign-in`);
    await page.getByRole('button', { name: 'Sign in with a registry token instead' }).click();
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByTestId('user').filter({ hasText: 'alice' }).waitFor();
    await page.goto(`${url}/r/ml/model:v1`);
    await page.getByRole('heading', { name: /ml\/model/ }).first().waitFor();
    await assertClean(page, watch);
    await close();
  });

  it('finds what wharf push stored, and downloads one file and the whole artifact with the same sha256', async () => {
    const { page, watch, close } = await visit('alice');
    await page.goto(url);
    await page.getByLabel('Search').fill('model');
    await page.getByTestId('repos').getByRole('link', { name: 'ml/model', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'ml/model' }).waitFor();
    await page.getByTestId('tags').getByRole('link', { name: 'v1', exact: true }).click();
    const filesTable = page.getByTestId('files');
    await filesTable.getByText('model.bin').waitFor();
    await filesTable.getByText('README.md').waitFor();
    // The README is rendered (a heading), from the artifact's own file.
    await page.getByTestId('readme').getByRole('heading', { name: 'The model' }).waitFor();

    const [one] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download model.bin' }).click()]);
    assert.equal(one.suggestedFilename(), 'model.bin');
    assert.equal(sha256(await readFile((await one.path())!)), sha256(files['model.bin']!));

    const [all] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download all' }).click()]);
    const inside = await untar(await readFile((await all.path())!));
    for (const [name, body] of Object.entries(files)) assert.equal(sha256(inside.get(name) ?? Buffer.alloc(0)), sha256(body), `${name} in the whole artifact's tar`);
    await assertClean(page, watch);
    await close();
  });

  it('labels a Helm chart, an SBOM and a signature by their kinds', async () => {
    const { page, watch, close } = await visit('alice');
    await page.goto(`${url}/r/ml/charts/web:1.0.0`);
    await page.locator('.artifact-head [data-kind="helm-chart"]').getByText('Helm chart').waitFor();
    await page.goto(`${url}/r/ml/model:v1`);
    const refs = page.getByTestId('referrers');
    await refs.locator('[data-kind="sbom-spdx"]').getByText(/SPDX/).waitFor();
    await refs.locator('[data-kind="signature-cosign"]').getByText(/[Ss]ignature/).waitFor();
    await refs.getByRole('heading', { name: /Signatures/ }).waitFor();
    await refs.getByRole('heading', { name: /SBOMs/ }).waitFor();
    // The signature's own page names its kind too.
    await refs.locator('li', { has: page.locator('[data-kind="signature-cosign"]') }).getByRole('link').first().click();
    await page.locator('.artifact-head [data-kind="signature-cosign"]').waitFor();
    // The artifact page fits a phone: long digests, media types and commands wrap or scroll inside.
    await page.setViewportSize({ width: 375, height: 740 });
    await page.goto(`${url}/r/ml/model:v1`);
    await page.getByTestId('readme').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `no sideways scrolling of the artifact page on a phone (${overflow}px)`);
    await assertClean(page, watch);
    await close();
  });

  it('counts a wharf pull and shows a re-tag in the tag history', async () => {
    const { page, watch, close } = await visit('alice');
    await page.goto(`${url}/r/ml/model:v1`);
    const count = async (): Promise<number> => Number((await page.getByTestId('downloads').textContent())?.replace(/\D/g, ''));
    const was = await count();
    const host = url.replace(/^https?:\/\//, '');
    const out = join(work, 'pulled');
    const pull = await wharf(['pull', '--plain-http', '-u', 'alice', '-p', USERS.alice!, `${host}/ml/model:v1`, '-o', out]);
    assert.equal(pull.code, 0, pull.stderr);
    await page.reload();
    await page.getByTestId('downloads').waitFor();
    assert.equal(await count(), was + 1, 'one more download after a wharf pull');

    // Re-tag v1 to another artifact: the history shows both pushes, newest first.
    const other = Buffer.from('a second model');
    const moved = await pushManifest(url, 'ml/model', 'v1', alice, { artifactType: 'application/vnd.example.model.v1', layers: [{ d: descriptorOf('application/octet-stream', other, { annotations: { 'org.opencontainers.image.title': 'model2.bin' } }), body: other }] });
    await page.goto(`${url}/r/ml/model:v1`);
    const history = page.getByTestId('tag-history');
    await history.locator('tbody tr').nth(1).waitFor();
    const rows = await history.locator('tbody tr').allTextContents();
    assert.ok(rows.length >= 2, rows.join(' | '));
    assert.match(rows[0]!, new RegExp(moved.digest.slice(7, 19)));
    assert.match(rows[1]!, new RegExp(model.digest.slice(7, 19)));
    assert.match(rows[0]!, /alice/);
    await assertClean(page, watch);
    await close();
  });

  it('shows an anonymous visitor and a user without rights nothing of a private repository', async () => {
    for (const user of [undefined, 'bob']) {
      const { page, watch, close } = await visit(user);
      await page.goto(url);
      await page.getByRole('heading', { level: 1, name: 'Repositories' }).waitFor();
      await page.locator('.loading').waitFor({ state: 'detached' });
      assert.equal(await page.getByText('secret/thing').count(), 0, `${user ?? 'anonymous'} sees no secret/thing in the list`);
      await page.getByLabel('Search').fill('secret');
      await page.locator('.loading').first().waitFor({ state: 'detached' });
      assert.equal(await page.getByText('secret/thing').count(), 0, `${user ?? 'anonymous'} finds no secret/thing`);
      await page.goto(`${url}/r/secret/thing:v1`);
      await page.getByRole('alert').getByText('Not found').waitFor();
      assert.equal(await page.getByTestId('files').count(), 0);
      // The API says the same as the page, to the same visitor (the page's own cookies).
      const api = await page.evaluate(async () => {
        const r = await fetch('/api/v1/artifact?repo=secret/thing&ref=v1');
        return { status: r.status, body: await r.text() };
      });
      assert.equal(api.status, 404);
      assert.match(api.body, /NAME_UNKNOWN/);
      const dl = await page.evaluate(async () => (await fetch('/api/v1/download?repo=secret/thing&ref=v1&archive=tar')).status);
      assert.equal(dl, 404);
      // The admin pages say who they are for, and ask the API nothing.
      const asked: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/api/v1/audit')) asked.push(r.url());
      });
      await page.goto(`${url}/admin/audit`);
      await page.getByRole('heading', { level: 1, name: 'For admins' }).waitFor();
      assert.deepEqual(asked, []);
      await assertClean(page, watch);
      await close();
    }
  });

  it('runs nothing from hostile annotations, file names, README links and SVG', async () => {
    const { page, watch, close } = await visit('alice');
    await page.goto(`${url}/r/ml/hostile:v1`);
    await page.getByTestId('files').waitFor();
    // The hostile strings are shown as text, as they are.
    await page.getByTestId('annotations').getByText(HOSTILE).first().waitFor();
    await page.getByTestId('files').getByText('<img src=x onerror=alert(1)>.txt').waitFor();
    const readme = page.getByTestId('readme');
    await readme.waitFor();
    assert.equal(await readme.locator('script, svg, img, style, [onerror], [onload], [style]').count(), 0);
    const link = readme.getByText('click me');
    assert.equal(await link.getAttribute('href'), null, 'the javascript: link has no href');
    await link.click();
    // The SVG file opened directly: served as a download, never rendered in the UI's origin.
    const svgLink = await page.getByRole('link', { name: 'Download logo.svg' }).getAttribute('href');
    const svg = await call(url, 'GET', svgLink!, { headers: alice });
    assert.equal(svg.status, 200);
    assert.match(svg.headers.get('content-disposition') ?? '', /attachment/);
    await page.waitForTimeout(200);
    await assertClean(page, watch);
    await close();
  });

  it('draws the analytics and the admin pages: a chart, top artifacts, who downloaded, storage, cache', async () => {
    const { page, watch, close } = await visit('root');
    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.getByRole('heading', { level: 1, name: 'Analytics' }).waitFor();
    // uPlot draws into a canvas; its styles come through the CSSOM, which the CSP allows.
    await page.locator('.chart canvas').waitFor();
    await page.getByTestId('top').getByText('ml/model').first().waitFor();
    await page.getByTestId('who').getByText('alice').first().waitFor();
    const csv = await page.getByRole('link', { name: 'Export as CSV' }).getAttribute('href');
    const exported = await call(url, 'GET', csv!, { headers: basic('root') });
    assert.equal(exported.status, 200);
    assert.match(exported.headers.get('content-type') ?? '', /text\/csv/);
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByTestId('storage').getByText('secret/thing').waitFor();
    await page.getByRole('link', { name: 'Cache' }).click();
    await page.getByRole('heading', { level: 1, name: 'Pull-through cache' }).waitFor();
    await page.getByText(/not a pull-through cache|Hit rate/).first().waitFor();
    await assertClean(page, watch);
    await close();
  });

  it('shows the audit log to an admin, filtered', async () => {
    const { page, watch, close } = await visit('root');
    await page.goto(url);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByTestId('audit').getByText('ml/model').first().waitFor();
    await page.getByLabel('User').fill('nobody-at-all');
    await page.getByText('No records match.').waitFor();
    await assertClean(page, watch);
    await close();
  });

  it('deletes a tag after a confirmation, with the CSRF token', async () => {
    await pushManifest(url, 'ml/model', 'doomed', alice, { layers: [{ d: descriptorOf('text/plain', Buffer.from('doomed'), { annotations: { 'org.opencontainers.image.title': 'doomed.txt' } }), body: Buffer.from('doomed') }] });
    const { page, watch, close } = await visit('root');
    await page.goto(`${url}/r/ml/model:doomed`);
    await page.getByRole('button', { name: 'Delete tag' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this tag?' });
    await dialog.waitFor();
    // Escape cancels: nothing is deleted.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await call(url, 'HEAD', '/v2/ml/model/manifests/doomed', { headers: alice })).status, 200);
    await page.getByRole('button', { name: 'Delete tag' }).click();
    await dialog.getByRole('button', { name: 'Delete tag' }).click();
    await page.getByRole('heading', { level: 1, name: 'ml/model' }).waitFor();
    assert.equal((await call(url, 'HEAD', '/v2/ml/model/manifests/doomed', { headers: alice })).status, 404);
    // Without the token, the same request is refused.
    const refused = await page.evaluate(async () => (await fetch('/api/v1/tags?repo=ml/model&tag=v1', { method: 'DELETE' })).status);
    assert.equal(refused, 403);
    await assertClean(page, watch);
    await close();
  });
});

describe('web UI served without a build, or turned off', async () => {
  it('answers / with how to build when dist/web is missing, and nothing at all with ui.enabled: false', async () => {
    const { installAssets, UI_HEADERS } = await import('../src/server/web/assets.js');
    const Fastify = (await import('fastify')).default;
    const app = Fastify();
    installAssets(app, {} as never, join(tmpdir(), 'wharf-no-such-build'));
    const r = await app.inject({ method: 'GET', url: '/' });
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /npm run build/);
    assert.equal(r.headers['content-security-policy'], UI_HEADERS['content-security-policy']);
    await app.close();

    const off = await startAuthServer({ ui: { enabled: false } });
    try {
      for (const p of ['/', '/r/ml/model:v1', '/api/v1/session']) assert.equal((await call(off.url, 'GET', p)).status, 404, p);
    } finally {
      await off.close();
    }
  });
});
