import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WharfError } from '../../spec/index.js';
import type { WebDeps } from './deps.js';

/**
 * The built UI's folder: dist/web/ of the package. This file runs as src/server/web/assets.ts
 * (tsx, tests) or dist/server/web/assets.js (the package); the package's root is three folders
 * up from either.
 */
export const WEB_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dist', 'web');

/**
 * The paths of the UI's pages (web/src/app.tsx routes): each answers index.html and the front end
 * draws the page. Everything else keeps its own handling (/v2, /api, /token, /healthz, /metrics)
 * or the registry's 404 error body.
 */
export const UI_ROUTES = ['/', '/r/*', '/analytics', '/admin/audit', '/admin/cache', '/admin/storage', '/sign-in'];

/**
 * What every UI response carries. No inline script or style: Vite's output has none (no module
 * preload polyfill, no inlined asset), Preact sets styles through the CSSOM, which style-src does
 * not govern, and so does uPlot.
 */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** An asset's name as Vite writes them: no folders, no dot files, nothing to climb out with. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

function acceptsGzip(req: FastifyRequest): boolean {
  const ae = req.headers['accept-encoding'];
  return typeof ae === 'string' && /\bgzip\b(?!;q=0(\.0*)?\b)/.test(ae);
}

/**
 * Streams one file of dist/web/ (its .gz twin to a client that takes gzip), with a validator:
 * a revalidated index.html costs a 304. The file is never read into memory.
 */
async function sendFile(req: FastifyRequest, reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> {
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  let path = file;
  let encoding: string | undefined;
  if (acceptsGzip(req)) {
    const gz = await stat(`${file}.gz`).catch(() => undefined);
    if (gz?.isFile()) {
      path = `${file}.gz`;
      encoding = 'gzip';
    }
  }
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new WharfError('NOT_FOUND', `no such file of the web UI: ${req.url.slice(0, 100)}`);
  const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}${encoding ? '-gz' : ''}"`;
  reply.headers({ ...UI_HEADERS, 'content-type': type, 'cache-control': cache, etag, vary: 'accept-encoding' });
  if (req.headers['if-none-match'] === etag) return reply.code(304).send();
  reply.header('content-length', st.size);
  if (encoding) reply.header('content-encoding', encoding);
  if (req.method === 'HEAD') return reply.send();
  return reply.send(createReadStream(path));
}

const NOT_BUILT = `The Wharf web UI is not built.

This registry serves the UI from dist/web/, which is missing. In a checkout of Wharf, build it
with \`npm run build\` (or \`npm install\`, which builds what is missing). The registry API at
/v2/ and the JSON API at /api/v1/ work without it. Set \`ui.enabled: false\` to turn the UI off.
`;

/** The built UI at `/`, its pages (UI_ROUTES) as index.html, and its hashed files under /assets/. */
export function installAssets(app: FastifyInstance, deps: WebDeps, root = WEB_ROOT): void {
  void deps;
  const index = join(root, 'index.html');
  const assets = join(root, 'assets');

  const page = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const built = await stat(index).catch(() => undefined);
    if (!built?.isFile()) {
      return reply
        .code(503)
        .headers({ ...UI_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
        .send(NOT_BUILT);
    }
    // Revalidated every time: it names the hashed files of the current build.
    return sendFile(req, reply, index, 'no-cache');
  };
  for (const url of UI_ROUTES) app.route({ method: ['GET', 'HEAD'], url, handler: page });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/assets/*',
    handler: async (req, reply) => {
      const name = (req.params as { '*': string })['*'];
      // The name must be one plain file name inside assets/: `..`, slashes (encoded or not) and
      // dot files never reach the file system.
      const file = join(assets, name);
      if (!ASSET_NAME.test(name) || name.includes('..') || !file.startsWith(assets + sep)) {
        throw new WharfError('NOT_FOUND', `no such file of the web UI: ${req.url.slice(0, 100)}`);
      }
      // Vite puts a hash of the content in every name: a file never changes under its name.
      return sendFile(req, reply, file, 'public, max-age=31536000, immutable');
    },
  });
}
