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

/**
 * Called by `serve` once it listens. V8 marks the heap on helper threads while JavaScript runs,
 * by default; a large push makes a full collection every ~30 MiB (each body chunk is a new
 * buffer, counted as external memory), and on 2 cores those helper threads took 0.9 s of CPU per
 * GiB pushed, against 0.1 s more on the main thread without them (the heap is ~15 MiB): 1 GiB
 * monolithic pushes went from 310-380 MB/s to 415-476 MB/s. Called late for the reason above.
 */
export function markOnMainThread(): void {
  setFlagsFromString('--no-concurrent-marking');
}
