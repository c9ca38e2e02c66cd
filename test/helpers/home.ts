/**
 * Loaded by `npm test` (node --import) into the test runner and every test file's process: each
 * gets a home of its own in the temp directory, so that nothing a test runs (the CLI's digest memo
 * and eStargz cache, Docker's config.json, podman's auth.json) reads or writes the user's real
 * ~/.cache, ~/.docker or ~/.config. The directory goes when the process exits.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const home = mkdtempSync(join(tmpdir(), 'wharf-test-home-'));
for (const d of ['.cache', '.config', '.docker']) mkdirSync(join(home, d));
process.env.HOME = home;
process.env.XDG_CACHE_HOME = join(home, '.cache');
process.env.XDG_CONFIG_HOME = join(home, '.config');
// Left set, the user's own variables would send the tests back to the real files. DOCKER_CONFIG
// goes rather than pointing into the home: podman then insists that its config.json exists.
delete process.env.DOCKER_CONFIG;
delete process.env.WHARF_ESTARGZ_CACHE;
delete process.env.WHARF_CACHE;
delete process.env.REGISTRY_AUTH_FILE;

// Tests clean up after themselves in after(); this catches the rest, also after a failure.
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
