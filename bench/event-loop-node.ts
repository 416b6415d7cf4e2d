/**
 * One node of `npm run bench:event-loop`, in its own process (forked by
 * bench/event-loop.bench.ts with an IPC channel):
 *
 *   node dist/bench/event-loop-node.js exchange DB
 *   node dist/bench/event-loop-node.js party NAME EXCHANGE_URL DB DATA_DIR INVITE
 *
 * Starts the node (startExchangeNode / startPartyNode, port 0, logs at warn
 * on stderr), tells the parent its URL, and measures its main thread's event
 * loop: perf_hooks.monitorEventLoopDelay (10 ms resolution) and a 10 ms
 * ticker that records every gap over 50 ms (when it ended and how long,
 * since the last "reset"). Messages from the parent: "reset" (start a
 * window), "stats" (answer the window's max, p99, mean delay and the long
 * gaps), "close" (close the node; the process then exits by itself).
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { startExchangeNode, startPartyNode, type RunningNode } from "../node/server/start.js";

export interface LoopStats {
  readonly maxMs: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** Ticker gaps over 50 ms: [ms since reset at the gap's end, gap ms]. */
  readonly gaps: readonly (readonly [number, number])[];
}

export type NodeMessage = { readonly kind: "ready"; readonly url: string } | { readonly kind: "stats"; readonly stats: LoopStats };

const [role, ...rest] = process.argv.slice(2);
const logger = { level: "warn", stream: process.stderr };

async function start(): Promise<RunningNode> {
  if (role === "exchange") return startExchangeNode({ port: 0, db: rest[0] as string, logger, handleSignals: false, say: () => undefined });
  if (role === "party") {
    const [name, exchange, db, data, invite] = rest as [string, string, string, string, string | undefined];
    return startPartyNode({ name, exchange, port: 0, db, data, logger, handleSignals: false, say: () => undefined, ...(invite !== undefined ? { invite } : {}) });
  }
  throw new Error(`unknown role ${String(role)}`);
}

const histogram = monitorEventLoopDelay({ resolution: 10 });
histogram.enable();
let t0 = performance.now();
let gaps: [number, number][] = [];
let last = performance.now();
const TICK = 10;
const ticker = setInterval(() => {
  const now = performance.now();
  const gap = now - last - TICK;
  if (gap > 50) gaps.push([Math.round(now - t0), Math.round(gap)]);
  last = now;
}, TICK);

const node = await start();
const send = (m: NodeMessage): void => void process.send?.(m);
process.on("message", (m: string) => {
  if (m === "reset") {
    histogram.reset();
    gaps = [];
    t0 = performance.now();
    send({ kind: "stats", stats: { maxMs: 0, p99Ms: 0, meanMs: 0, gaps: [] } });
  } else if (m === "stats") {
    const ms = (ns: number): number => Math.round(ns / 1e5) / 10;
    send({ kind: "stats", stats: { maxMs: ms(histogram.max), p99Ms: ms(histogram.percentile(99)), meanMs: ms(histogram.mean), gaps } });
  } else if (m === "close") {
    clearInterval(ticker);
    histogram.disable();
    void node.close().then(() => process.disconnect());
  }
});
send({ kind: "ready", url: node.url });
