// The UI's Vite config: scripts/build.mjs builds with it (npm install, npm start, npm run build),
// and `npx vite --config web/vite.config.mjs` serves it for development against a wharf on :5000.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** @type {import('vite').UserConfig} */
export default {
  root: here,
  base: '/',
  // A path the build must not read: Vite would copy a public/ folder verbatim, and there is none.
  publicDir: false,
  logLevel: 'warn',
  // Preact's automatic JSX runtime, through Vite's own transform: no Babel preset needed.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: join(here, '..', 'dist', 'web'),
    emptyOutDir: true,
    target: 'es2022',
    // The CSP allows no inline script: no polyfill snippet, no asset inlined into the HTML.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // The build prints its own sizes (scripts/build.mjs); the gzip report would cost time twice.
    reportCompressedSize: false,
    chunkSizeWarningLimit: 200,
  },
  server: {
    proxy: Object.fromEntries(['/api', '/v2', '/token'].map((p) => [p, { target: process.env.WHARF_URL ?? 'http://127.0.0.1:5000' }])),
  },
};
