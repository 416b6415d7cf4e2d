/**
 * Long computations on the calling thread, cut into slices with the event
 * loop let run between them (timers and I/O: a node's HTTP API answers while
 * a job's columns are permuted or indexed). For work that is cheaper to do
 * here than to ship to a worker — memory-bound permutations and copies,
 * hash-table probes over buffers the caller keeps — the pool (engine/pool)
 * takes the rest. A slice of {@link SLICE_ITEMS} items costs a few to a few
 * tens of milliseconds.
 */

/** Items per slice for per-element work over columns. */
export const SLICE_ITEMS = 65_536;

/** Resolves after one turn of the event loop (setImmediate: pending I/O and timers run first). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Calls `fn(from, to)` over [0, n) in slices of `slice` items, yielding to the event loop between them. */
export async function forEachSlice(n: number, slice: number, fn: (from: number, to: number) => void): Promise<void> {
  for (let from = 0; from < n; from += slice) {
    if (from > 0) await yieldToEventLoop();
    fn(from, Math.min(n, from + slice));
  }
}

/** Yields to the event loop once `budgetMs` has passed since the last yield: for loops whose items vary in cost (e.g. encoding messages). */
export class TimeSlicer {
  readonly #budgetMs: number;
  #since = performance.now();

  constructor(budgetMs = 20) {
    this.#budgetMs = budgetMs;
  }

  async maybeYield(): Promise<void> {
    if (performance.now() - this.#since < this.#budgetMs) return;
    await yieldToEventLoop();
    this.#since = performance.now();
  }
}
