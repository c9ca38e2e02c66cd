/**
 * Webhooks: push, pull, delete and mount events reach a real local HTTP receiver with the
 * configured headers; filters by action, repository and media type; retries with backoff; the
 * queue in SQLite survives an endpoint that is down and a restart of the registry.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type WharfConfigInput } from '../src/server/index.js';
import type { WebhookEvent, Webhooks } from '../src/server/webhooks/index.js';
import { call } from '../src/testkit/http.js';
import { pushArtifact } from './helpers/auth.js';
import { freePort } from './helpers/distribution.js';
import { spawnServe } from './helpers/cli.js';

interface Receiver {
  url: string;
  events: WebhookEvent[];
  headers: Array<Record<string, string | string[] | undefined>>;
  /** Answer 500 to this many requests first. */
  failures: number;
  close(): Promise<void>;
}

async function receiver(port = 0, failures = 0): Promise<Receiver> {
  const r: Receiver = { url: '', events: [], headers: [], failures, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (r.failures > 0) {
        r.failures--;
        res.writeHead(500).end();
        return;
      }
      r.headers.push(req.headers);
      r.events.push(...(JSON.parse(body) as { events: WebhookEvent[] }).events);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise((resolve) => server.close(() => resolve()));
  return r;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), what);
}

const hook = (name: string, url: string, extra: Record<string, unknown> = {}): NonNullable<WharfConfigInput['webhooks']>[number] =>
  ({ name, url, backoff: 20, maxBackoff: 200, timeout: 2000, ...extra }) as NonNullable<WharfConfigInput['webhooks']>[number];

describe('webhooks', () => {
  test('push, pull, mount and delete events with headers; filters; retries after 500s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-'));
    const all = await receiver(0, 2);
    const some = await receiver();
    const s = await startServer({
      dataDir: dir,
      logLevel: 'silent',
      config: {
        webhooks: [
          hook('all', all.url, { headers: { authorization: 'Bearer hook-secret' } }),
          hook('ml-pushes', some.url, { actions: ['push'], repos: ['ml/**'], mediaTypes: ['application/vnd.oci.image.manifest.v1+json'] }),
        ],
      },
    });
    try {
      const a = await pushArtifact(s.url, 'ml/model', 'v1', {});
      await pushArtifact(s.url, 'other/thing', 'v1', {});
      assert.equal((await call(s.url, 'GET', '/v2/ml/model/manifests/v1')).status, 200);
      assert.equal((await call(s.url, 'POST', `/v2/ml/copy/blobs/uploads/?mount=${a.layer}&from=ml/model`)).status, 201);
      assert.equal((await call(s.url, 'DELETE', `/v2/ml/model/manifests/${a.digest}`)).status, 202);
      await until('all events delivered', () => all.events.some((e) => e.action === 'delete'));
      const kinds = all.events.map((e) => `${e.action} ${e.target.repository} ${e.target.tag ?? e.target.digest?.slice(0, 13)}`);
      assert.ok(kinds.includes('push ml/model v1'), kinds.join('\n'));
      assert.ok(kinds.includes('pull ml/model v1'));
      assert.ok(kinds.includes(`mount ml/copy ${a.layer.slice(0, 13)}`));
      assert.ok(kinds.includes(`delete ml/model ${a.digest.slice(0, 13)}`));
      assert.equal(all.headers[0]!.authorization, 'Bearer hook-secret');
      assert.equal(all.headers[0]!['content-type'], 'application/vnd.docker.distribution.events.v1+json');
      // Order is kept through the retries.
      assert.equal(all.events[0]!.target.repository, 'ml/model');
      await until('the filtered endpoint got its event', () => some.events.length > 0);
      assert.deepEqual(some.events.map((e) => `${e.action} ${e.target.repository} ${e.target.mediaType}`), ['push ml/model application/vnd.oci.image.manifest.v1+json']);
    } finally {
      await s.close();
      await all.close();
      await some.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a download the client stops early is no pull event', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-abort-'));
    const port = await freePort();
    const s = await startServer({ dataDir: dir, logLevel: 'silent', config: { webhooks: [hook('pulls', `http://127.0.0.1:${port}/hook`, { actions: ['pull'] })] } });
    try {
      const big = await pushArtifact(s.url, 'big/blob', 'v1', {}, Buffer.alloc(32 << 20, 1));
      const small = await pushArtifact(s.url, 'big/small', 'v1', {});
      await new Promise<void>((resolve) => {
        const u = new URL(s.url);
        const req = request({ host: u.hostname, port: u.port, path: `/v2/big/blob/blobs/${big.layer}` }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.end();
      });
      assert.equal((await call(s.url, 'GET', `/v2/big/small/blobs/${small.layer}`)).status, 200);
      await new Promise((r) => setTimeout(r, 300));
      const r = await receiver(port);
      try {
        await until('the completed pull arrives', () => r.events.some((e) => e.target.repository === 'big/small'));
        await new Promise((res) => setTimeout(res, 300));
        assert.deepEqual(r.events.map((e) => `${e.action} ${e.target.repository}`), ['pull big/small']);
      } finally {
        await r.close();
      }
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an endpoint that is down and a registry restart lose no event', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-down-'));
    const port = await freePort();
    const config = { webhooks: [hook('later', `http://127.0.0.1:${port}/hook`, { actions: ['push'] })] };
    let s = await startServer({ dataDir: dir, logLevel: 'silent', config });
    try {
      await pushArtifact(s.url, 'down/one', 'v1', {});
      await pushArtifact(s.url, 'down/two', 'v1', {});
      await until('delivery was tried and failed, the events wait', () => {
        const p = (s.hooks.webhooks as Webhooks).pending()[0];
        return p !== undefined && p.waiting === 6 && p.attempts >= 2;
      });
      await s.close();
      const r = await receiver(port);
      s = await startServer({ dataDir: dir, logLevel: 'silent', config });
      await until('queued events delivered after the restart', () => r.events.filter((e) => e.target.tag === 'v1').length === 2);
      assert.deepEqual(r.events.filter((e) => e.target.tag === 'v1').map((e) => e.target.repository), ['down/one', 'down/two']);
      await until('the queue is empty', () => ((s.hooks.webhooks as Webhooks).pending()[0]?.waiting ?? 0) === 0);
      await r.close();
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('kill -9 right after a push loses no event: it was queued before the response ended', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-kill-'));
    const hookPort = await freePort();
    const { child, url } = await spawnServe(dir, `webhooks:\n  - { name: k, url: "http://127.0.0.1:${hookPort}/hook", actions: [push], backoff: 20ms, maxBackoff: 100ms }\n`);
    try {
      await pushArtifact(url, 'killed/repo', 'v1', {});
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const r = await receiver(hookPort);
      const s = await startServer({ dataDir: join(dir, 'data'), logLevel: 'silent', config: { webhooks: [hook('k', `http://127.0.0.1:${hookPort}/hook`, { actions: ['push'] })] } });
      try {
        await until('the tag push event arrives after the restart', () => r.events.some((e) => e.target.repository === 'killed/repo' && e.target.tag === 'v1'));
        assert.equal(r.events.filter((e) => e.target.repository === 'killed/repo').length, 3);
      } finally {
        await s.close();
        await r.close();
      }
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
