/**
 * A progress display on stderr for long runs, driven by the
 * `onProgress(phase, done, total)` callbacks of the protocol runners.
 *
 * - On a TTY: one line per phase (phase name, percent, done/total, elapsed
 *   time since the phase began), redrawn in place with `\r` and cursor-up at
 *   most every 100 ms, and whenever a phase starts or reaches 100%. Phases
 *   may run concurrently (the buyer and the provider of one job are in this
 *   process), so the lines of unfinished phases form a block redrawn
 *   together; a finished phase at the top of the block is left as it is.
 * - Not a TTY (a pipe, a log file): a plain line per phase at most every 2 s,
 *   and once when it reaches 100%.
 * - `quiet`: nothing at all.
 *
 * It prints phase names (constants of the protocol code) and counts only,
 * never a key or a value. No dependencies.
 */

/** The runners' progress callback. */
export type ProgressCallback = (phase: string, done: number, total: number) => void;

/** Where the progress goes: process.stderr, or anything with the same surface (tests). */
export interface ProgressStream {
  write(s: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  /** Print nothing. */
  readonly quiet?: boolean;
  /** Default process.stderr. */
  readonly stream?: ProgressStream;
  /** Milliseconds clock (default performance.now). */
  readonly now?: () => number;
  /** Least time between two plain lines of one phase (default 2,000 ms). */
  readonly plainIntervalMs?: number;
  /** Least time between two redraws on a TTY (default 100 ms). */
  readonly ttyIntervalMs?: number;
}

export interface Progress {
  /** Pass this to the runner as `onProgress`. */
  readonly onProgress: ProgressCallback;
  /** Draws the final state and leaves the cursor on a fresh line (call once, also after an error). */
  finish(): void;
}

interface Phase {
  readonly name: string;
  readonly started: number;
  done: number;
  total: number;
  /** When it reached 100% (its elapsed time stops there). */
  ended: number | undefined;
  lastPrinted: number;
  finalPrinted: boolean;
}

const nf = new Intl.NumberFormat("en-US");

function isComplete(p: Phase): boolean {
  return p.done >= p.total;
}

/** "phase  45%  4,500/10,000  1.2 s" — counts and time only. */
export function formatProgressLine(name: string, done: number, total: number, elapsedMs: number): string {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
  return `${name.padEnd(30)}  ${String(pct).padStart(3)}%  ${nf.format(done)}/${nf.format(total)}  ${(elapsedMs / 1000).toFixed(1)} s`;
}

/** A progress display for one command run. */
export function createProgress(options: ProgressOptions = {}): Progress {
  if (options.quiet) return { onProgress: () => undefined, finish: () => undefined };
  const stream: ProgressStream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  const tty = stream.isTTY === true;
  const plainInterval = options.plainIntervalMs ?? 2000;
  const ttyInterval = options.ttyIntervalMs ?? 100;

  const phases: Phase[] = [];
  const byName = new Map<string, Phase>();
  /** TTY: lines at the top that are final and no longer redrawn. */
  let frozen = 0;
  /** TTY: lines of the redrawn block currently on screen (the cursor is just below them). */
  let drawn = 0;
  let lastDraw = -Infinity;
  let finished = false;

  const line = (p: Phase): string => {
    const text = formatProgressLine(p.name, p.done, p.total, (p.ended ?? now()) - p.started);
    const width = (stream.columns ?? 0) - 1;
    // A wrapped line would break the cursor-up arithmetic.
    return width > 10 && text.length > width ? text.slice(0, width) : text;
  };

  const draw = (): void => {
    let out = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (let i = frozen; i < phases.length; i++) out += `\r${line(phases[i] as Phase)}\x1b[K\n`;
    stream.write(out);
    drawn = phases.length - frozen;
    while (frozen < phases.length && isComplete(phases[frozen] as Phase)) {
      frozen++;
      drawn--;
    }
    lastDraw = now();
  };

  const onProgress: ProgressCallback = (name, done, total) => {
    if (finished) return;
    const t = now();
    let p = byName.get(name);
    const isNew = p === undefined;
    if (p === undefined) {
      p = { name, started: t, done: 0, total: 0, ended: undefined, lastPrinted: t, finalPrinted: false };
      byName.set(name, p);
      phases.push(p);
    }
    const wasComplete = !isNew && isComplete(p);
    p.done = Number.isFinite(done) ? Math.max(0, done) : 0;
    p.total = Number.isFinite(total) ? Math.max(0, total) : 0;
    const complete = isComplete(p);
    if (complete && !wasComplete) p.ended = t;
    if (!complete) p.ended = undefined;
    if (tty) {
      if (isNew || (complete && !wasComplete) || t - lastDraw >= ttyInterval) draw();
      return;
    }
    if (complete) {
      if (p.finalPrinted) return;
      p.finalPrinted = true;
    } else if (t - p.lastPrinted < plainInterval) {
      return;
    }
    p.lastPrinted = t;
    stream.write(`${line(p)}\n`);
  };

  const finish = (): void => {
    if (finished) return;
    finished = true;
    if (tty && phases.length > frozen) draw();
  };

  return { onProgress, finish };
}
