import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Body bytes between two minor collections. */
const EVERY = 8 << 20;
let since = 0;
let collector: Collector | null | undefined;

type Collector = (opts?: { type: 'minor' }) => void;

/**
 * Counts request body bytes that were consumed, and every 8 MiB has V8 collect its young
 * generation. Each chunk of a request body is a buffer of its own, allocated outside the
 * JavaScript heap (with malloc), and freed only when a collection finds it dead; V8 starts one
 * only after tens of MiB of such memory, and that memory then stays in the malloc heap as RSS.
 * A minor collection (0.6-0.7 ms with our ~15 MiB heap) frees the chunks while they are young.
 * Measured, six 256 MiB pushes and three chunked ones: peak RSS 150-163 MiB, 116-127 with this;
 * and the full collections that external memory started stop (36 per GiB pushed, whose marking
 * threads took 0.9 s of CPU on a 2-core machine).
 */
export function bodyBytesConsumed(bytes: number): void {
  since += bytes;
  if (since < EVERY) return;
  since = 0;
  collector ??= exposedGc();
  collector?.({ type: 'minor' });
}

/** How often the idle check runs, in ms. */
const IDLE_CHECK = 5_000;
/** Requests since the last full collection that make one worth it when the server goes quiet. */
const WORTH = 500;
/** At most this many requests in one check's window is quiet: a Prometheus scrape, a health check. */
const QUIET = 5;
let ended = 0;
let atLastCheck = 0;
let atLastGc = 0;
let idleTimer: NodeJS.Timeout | undefined;

/**
 * Counts a finished request; once a load stops, the heap is collected whole, once. V8 collects
 * when JavaScript allocates, so a server that goes quiet after a load keeps what the load left:
 * measured, 90 s of small pushes left 136 MiB of heap used and 210 MiB reserved, unchanged 60 s
 * after the last request. A full collection frees that garbage and the buffers it holds, and V8
 * gives the emptied pages back: 10 s after 60 s of small pushes, heap used 90 → 29 MiB, reserved
 * 127 → 69, RSS 202 → 144 (without it, V8's own memory reducer came between 30 and 60 s, or not
 * at all). It runs 5-10 s after the load, and not for a scrape now and then.
 */
export function requestEnded(): void {
  ended++;
  if (idleTimer) return;
  idleTimer = setInterval(() => {
    const window = ended - atLastCheck;
    atLastCheck = ended;
    if (window > QUIET || ended - atLastGc < WORTH) return;
    atLastGc = ended;
    collector ??= exposedGc();
    // gc() without options: on Node 20, gc({ type: 'major' }) right after a burst of allocation
    // left heap used at 115-118 MiB of 121-129, where gc() took it to 3 (measured, 3 runs each).
    collector?.();
  }, IDLE_CHECK);
  // It must not keep a stopping server alive.
  idleTimer.unref();
}

/** How far V8 lets the heap grow past what its last full collection kept, in percent. */
const HEAP_GROWING_PERCENT = 50;

/**
 * Has V8 start a full collection once the heap is 1.5x what the last one kept. Its own factor
 * grows to 4x on a busy process (the collector is fast next to the allocation rate), and a server
 * answering many small requests allocates fast: 60-90 s of 32 clients pushing small artifacts
 * took the heap to 127-212 MiB reserved with 47-90 MiB in use, much of it garbage. With 1.5x:
 * 76-90 MiB reserved, RSS flat at 161-167 MiB from 20 to 60 s (58,000 pushes); 1.25x cost more
 * full collections for no less memory worth having (the server bench's pull and range GETs were
 * behind the baseline in two runs out of two). Left alone if the command line or
 * NODE_OPTIONS chose a factor. Called by `wharf serve` once it listens: a V8 flag set earlier
 * costs Node the code cache of the built-in modules it loads afterwards.
 */
export function tightenHeapGrowth(): void {
  const chosen = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('heap-growing-percent'));
  if (!chosen) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** The young generation's most, both semi-spaces (V8's default on 64-bit: 32 MiB). */
export const YOUNG_MAX = Number(process.env.WHARF_YOUNG_MAX_MIB ?? 8) << 20;
/** V8's pages: a semi-space's capacity is a whole number of them. */
const PAGE = 256 << 10;
let youngObserver: PerformanceObserver | undefined;
let fit: (() => void) | undefined;

/**
 * Keeps V8's young generation (two semi-spaces) at or under `max` bytes. V8 doubles a semi-space,
 * up to 16 MiB, while much survives a scavenge, which a server answering thousands of small
 * requests a second sees (each in flight holds its request, its reply, its S3 call); those pages
 * stay resident. Measured on the s3 bench's small pushes and manifest loads: peak RSS 160-167
 * MiB at 32 MiB, 138-139 at 8. The cap is `--max-semi-space-size=<max/2 in MiB>`, but set at run
 * time, where that flag no longer applies (V8 reads it when the heap is made): after each
 * collection the growth factor, which V8 reads at each growth, is 2 while two doublings still fit
 * under the cap and 1 after. Two, because this runs on the event loop, after the collection, and
 * V8 may collect (and grow) again before it does: one poll phase runs many callbacks. So it holds
 * however the server is started (the bin, `npm start`, a process manager), on Node 20 to 24, from
 * where it is set: V8 gives pages back only when the process allocates slowly. Left alone if the
 * command line or NODE_OPTIONS sized the young generation; WHARF_YOUNG_MAX_MIB=0 turns it off.
 */
export function capYoungGeneration(max = YOUNG_MAX): void {
  const chosen = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => /semi-space|young-generation/.test(a));
  if (chosen || youngObserver || max <= 0) return;
  fit = (): void => {
    const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    if (!s) return;
    // The capacity of one semi-space, which V8 multiplies by the factor: not space_size, which
    // counts the second semi-space only while it is committed.
    const semi = Math.ceil((s.space_used_size + s.space_available_size) / PAGE) * PAGE;
    // Set at every collection (2 µs), not only when it changes: see reassertYoungCap.
    setFlagsFromString(`--semi-space-growth-factor=${semi * 4 <= max / 2 ? 2 : 1}`);
  };
  fit();
  youngObserver = new PerformanceObserver(() => fit?.());
  youngObserver.observe({ entryTypes: ['gc'] });
}

/**
 * Sets the cap's growth factor again. Starting a worker thread undoes it: V8 makes the worker's
 * heap with the process-wide flags and raises this one to at least 2 (measured: after the digest
 * thread started, new space grew to 32 MiB within 11 s of pushes, and RSS to 186 MiB, not 144;
 * a flag such as --allow-natives-syntax set the same way stays). Each worker's 'online' calls this.
 */
export function reassertYoungCap(): void {
  fit?.();
}

/** V8's gc(), made available without the --expose-gc flag on the command line; null if refused. */
function exposedGc(): Collector | null {
  try {
    // Set late on purpose: a flag set at start would cost Node the code cache of built-in modules.
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collector) : null;
  } catch {
    return null;
  }
}
