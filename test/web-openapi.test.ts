import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startServer } from '../src/server/index.js';

/**
 * docs/openapi.yaml against the code: every $ref resolves, every type the API returns has a
 * schema, and the document's operations are exactly the /api/v1 routes a real server registers,
 * so that neither can change without the other.
 */

const root = new URL('..', import.meta.url);
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

type Doc = Record<string, unknown> & { openapi: string; paths: Record<string, Record<string, unknown>>; components: Record<string, Record<string, unknown>> };

async function loadDoc(): Promise<Doc> {
  return parse(await readFile(new URL('docs/openapi.yaml', root), 'utf8')) as Doc;
}

/** Every `$ref` value in a document, with where it was found. */
function refsOf(node: unknown, at = '#', out: Array<{ ref: string; at: string }> = []): Array<{ ref: string; at: string }> {
  if (Array.isArray(node)) node.forEach((v, i) => refsOf(v, `${at}/${i}`, out));
  else if (typeof node === 'object' && node !== null) {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push({ ref: v, at });
      else refsOf(v, `${at}/${k}`, out);
    }
  }
  return out;
}

/** A local JSON pointer (RFC 6901) into the document; undefined when it names nothing. */
function resolve(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** "METHOD /path" of every operation in the document. */
function documented(doc: Doc): Set<string> {
  const out = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) for (const m of METHODS) if (item[m] !== undefined) out.add(`${m.toUpperCase()} ${path}`);
  return out;
}

/**
 * The routes of fastify's printRoutes({ commonPrefix: false }) tree: each line is a node, indented
 * four columns per level, holding its part of the path and its methods in parentheses; a node's
 * path is its ancestors' parts and its own, joined.
 */
function parseRouteTree(tree: string): Array<{ path: string; methods: string[] }> {
  const stack: string[] = [];
  const out: Array<{ path: string; methods: string[] }> = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    if (m[3]) out.push({ path: stack.join(''), methods: m[3].split(',').map((s) => s.trim()) });
  }
  return out;
}

test('docs/openapi.yaml is OpenAPI 3.1 and every $ref resolves', async () => {
  const doc = await loadDoc();
  assert.match(doc.openapi, /^3\.1\./);
  const refs = refsOf(doc);
  assert.ok(refs.length > 50, `only ${refs.length} $refs: the document did not parse as expected`);
  const broken = refs.filter((r) => resolve(doc, r.ref) === undefined).map((r) => `${r.ref} (at ${r.at})`);
  assert.deepEqual(broken, [], 'every $ref names something in the document');
  // Every path is under /api/v1 and every operation says what it answers.
  for (const [path, item] of Object.entries(doc.paths)) {
    assert.ok(path.startsWith('/api/v1/'), path);
    for (const m of METHODS) {
      const op = item[m] as { responses?: Record<string, unknown> } | undefined;
      if (op) assert.ok(op.responses && Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)), `${m} ${path} has a 2xx response`);
    }
  }
});

test('every type of the API (src/server/web/types.ts) has a schema, and changes send x-csrf-token', async () => {
  const doc = await loadDoc();
  const types = await readFile(new URL('src/server/web/types.ts', root), 'utf8');
  // Page<T> is generic: the document has one page schema per item type instead.
  const names = [...types.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1]!).filter((n) => n !== 'Page');
  assert.ok(names.length >= 15, `found ${names.length} types`);
  const schemas = doc.components.schemas as Record<string, unknown>;
  assert.deepEqual(names.filter((n) => !(n in schemas)), [], 'types without a schema in components.schemas');
  for (const s of ['Error', 'RepositoryPage', 'TagPage', 'SearchPage', 'DownloadEventPage', 'AuditRecord', 'AuditDownload', 'AuditStats']) assert.ok(s in schemas, s);
  const schemes = doc.components.securitySchemes as Record<string, { type: string; in?: string; name?: string; scheme?: string }>;
  assert.equal(schemes.basic?.scheme, 'basic');
  assert.equal(schemes.bearer?.scheme, 'bearer');
  assert.deepEqual([schemes.session?.type, schemes.session?.in, schemes.session?.name], ['apiKey', 'cookie', 'wharf_session']);
  for (const [path, item] of Object.entries(doc.paths)) {
    const op = item.delete as { parameters?: Array<{ $ref?: string; name?: string; in?: string }> } | undefined;
    if (!op) continue;
    const params = (op.parameters ?? []).map((p) => (p.$ref ? (resolve(doc, p.$ref) as { name: string; in: string }) : p));
    assert.ok(params.some((p) => p.name === 'x-csrf-token' && p.in === 'header'), `DELETE ${path} documents x-csrf-token`);
  }
});

test('the documented operations are exactly the /api/v1 routes of a running server', async (t) => {
  const doc = await loadDoc();
  const dir = await mkdtemp(join(tmpdir(), 'wharf-openapi-'));
  // The defaults: the UI and the audit log on, so every /api/v1 route is there.
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(async () => {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  const routes = parseRouteTree(s.app.printRoutes({ commonPrefix: false }));
  const registered = new Set<string>();
  for (const r of routes) {
    if (!r.path.startsWith('/api/v1/')) continue;
    for (const m of r.methods) if (m !== 'HEAD' && m !== 'OPTIONS') registered.add(`${m} ${r.path}`);
  }
  // The tree was read: routes the server is known to have are in it.
  for (const known of ['GET /api/v1/session', 'DELETE /api/v1/tags', 'GET /api/v1/audit/stats']) assert.ok(registered.has(known), `${known} in ${[...registered].join(', ')}`);

  const docs = documented(doc);
  assert.deepEqual([...registered].filter((r) => !docs.has(r)).sort(), [], 'routes of the server missing from docs/openapi.yaml');
  assert.deepEqual([...docs].filter((d) => !registered.has(d)).sort(), [], 'operations in docs/openapi.yaml the server does not have');
  // And from fastify's own router, not only its printout.
  for (const d of docs) {
    const [method, url] = d.split(' ') as [string, string];
    assert.ok(s.app.hasRoute({ method: method as 'GET', url }), `${d} is a route`);
  }
});
