import { setFlagsFromString } from 'node:v8';

/**
 * Imported first by main.ts, before anything loads undici. undici parses HTTP with WebAssembly,
 * which V8 compiles twice: quickly, then optimised in the background, and a process waits for
 * that second compile at exit (0.3 s on a 2-core machine, longer than a small pull). A one-shot
 * command keeps the quick code, which is plenty for its few requests; the server, which runs
 * for days, keeps the optimising tier.
 */
if (!process.argv.slice(2).includes('serve')) setFlagsFromString('--liftoff-only');
