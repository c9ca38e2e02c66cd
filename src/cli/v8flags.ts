import { setFlagsFromString } from 'node:v8';

let set = false;

/**
 * Called by a one-shot command before its first request. undici parses HTTP with WebAssembly,
 * which V8 compiles twice: quickly, then optimised in the background, and a process waits for
 * that second compile at exit (0.3 s on a 2-core machine, longer than a small pull). A command
 * keeps the quick code, plenty for its few requests; `serve`, which runs for days, never calls
 * this. Called late on purpose: changing a V8 flag makes Node compile every built-in module it
 * loads afterwards without its code cache, which at the very start cost 30 ms.
 */
export function keepBaselineWasm(): void {
  if (set) return;
  set = true;
  setFlagsFromString('--liftoff-only');
}
