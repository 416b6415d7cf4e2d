/**
 * `npm run bench:event-loop`: how long each node's main thread is blocked
 * while a job runs. An exchange and two party agents (bank: the buyer,
 * telco: the provider), each in its own process (bench/event-loop-node.ts),
 * on loopback; a join-aggregate job (or psi, --protocol psi) of N rows per
 * side (default 10^5; --large adds 10^6). The data is join-aggregate's
 * bench's: the buyer's keys customer-<i> for i in [0, N) with group
 * g<i mod 10>, the provider's for i in [N/2, 3N/2) with a value |v| ≤ 1000;
 * count, sum(v), avg(v), var(v) per group, k = 1.
 *
 * While the job runs, the bench polls every node as a client would (every
 * 100 ms, each poll waiting for the previous answer): the buyer's
 * GET /v1/jobs/:id (which the agent forwards to the exchange — what
 * `umbra job submit --wait` polls), the provider's GET /v1/status and the
 * exchange's GET /v1/identity. It reports per node the event loop delay
 * (perf_hooks.monitorEventLoopDelay: max, p99), the main-thread gaps over
 * 50 ms, and per API the slowest answer and any that was not 200; and the
 * job's wall time (submission to its final state, as the buyer's API shows
 * it). The result is checked (10 groups, N/2 joined rows).
 *
 * Security finding 14, measured with this bench on a 2-core machine shared
 * with other work (so noisy: a gap can be the OS not scheduling the thread,
 * or a GC), join-aggregate, max event-loop delay buyer / provider /
 * exchange, and the job's wall time:
 *
 *   N      before (HE contexts and column work     after (on the pool, in slices)
 *          on the main thread)
 *   10^5   2,171 / 2,051 / 2,238 ms, 33.2 s        80 / 88 / 97 ms, 27.5 s
 *   10^6   3,280 / 2,026 / 2,252 ms, 237.1 s       104 / 772 / 188 ms, 198.8 s
 *
 * What is left at 10^6 is the provider's agent persisting its ~60 MB state
 * (at its start and after the buyer's key: node/server/party.ts persist,
 * 0.35-0.8 s each) and, on the exchange, each relayed MB-sized envelope
 * (50-110 ms: verified, decoded, re-encoded to check it is canonical).
 * psi at 10^6, for comparison: 2,489 / 1,316 / 706 ms before, 683 / 450 /
 * 44 ms after (only the shared pieces changed: envelope checks, the pool's
 * chunking; psi's own distinct / shuffle / index steps still run on the
 * main thread).
 *
 * Options: --sizes N[,N] (even), --large (10^5 and 10^6), --protocol
 * join-aggregate|psi, --poll MS, --profile DIR (each node writes a V8 CPU
 * profile there: node --cpu-prof), --gaps (list every gap over 50 ms).
 */
import { fork, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tableFromIPC } from "apache-arrow";
import { createInvitation } from "../node/admission.js";
import { openStore } from "../node/store.js";
import type { LoopStats, NodeMessage } from "./event-loop-node.js";
import { formatTable } from "./table.js";

const args = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`${name} needs a value`);
  return v;
}
const sizesArg = option("--sizes");
const sizes = sizesArg !== undefined ? sizesArg.split(",").map(Number) : args.includes("--large") ? [100_000, 1_000_000] : [100_000];
if (sizes.some((s) => !Number.isSafeInteger(s) || s < 2 || s % 2 !== 0)) throw new Error("--sizes needs comma-separated even integers");
const protocol = option("--protocol") ?? "join-aggregate";
if (protocol !== "join-aggregate" && protocol !== "psi") throw new Error("--protocol must be join-aggregate or psi");
const pollMs = Number(option("--poll") ?? 100);
const profileDir = option("--profile");
const listGaps = args.includes("--gaps");

const nodeFile = fileURLToPath(new URL("./event-loop-node.js", import.meta.url));
const GROUPS = 10;
const value = (i: number): number => ((i * 2654435761) % 2001) - 1000;

interface Node {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  request(m: "reset" | "stats"): Promise<LoopStats>;
  close(): Promise<void>;
}

async function startNode(name: string, argv: readonly string[]): Promise<Node> {
  const execArgv = profileDir !== undefined ? ["--cpu-prof", "--cpu-prof-dir", profileDir, "--cpu-prof-name", `${name}.cpuprofile`] : [];
  const child = fork(nodeFile, [...argv], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting: ((s: LoopStats) => void)[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${name} exited (${String(code)}) before it was ready`)));
    child.on("message", (m: NodeMessage) => {
      if (m.kind === "ready") resolve(m.url);
      else waiting.shift()?.(m.stats);
    });
  });
  return {
    name,
    child,
    url,
    request: (m) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.send(m);
      }),
    close: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.send("close");
      }),
  };
}

function writeData(dir: string, n: number): void {
  const buyer = join(dir, "bank", "customers.csv");
  const provider = join(dir, "telco", "usage.csv");
  writeFileSync(buyer, "k,g\n");
  writeFileSync(provider, "k,v\n");
  const step = 100_000;
  for (let s = 0; s < n; s += step) {
    const b: string[] = [];
    const p: string[] = [];
    for (let i = s; i < Math.min(n, s + step); i++) {
      b.push(`customer-${i},g${i % GROUPS}\n`);
      const j = n / 2 + i;
      p.push(`customer-${j},${value(j)}\n`);
    }
    appendFileSync(buyer, b.join(""));
    appendFileSync(provider, p.join(""));
  }
}

interface Poll {
  requests: number;
  notOk: Map<number, number>;
  maxMs: number;
}

/** Polls `url` every pollMs (each after the previous answer) until stopped; each answer's time and status. */
function poller(url: string, stop: { done: boolean }): { result: Poll; finished: Promise<void> } {
  const result: Poll = { requests: 0, notOk: new Map(), maxMs: 0 };
  const finished = (async () => {
    while (!stop.done) {
      const t = performance.now();
      let status = 0;
      try {
        const res = await fetch(url, { headers: auth(url), signal: AbortSignal.timeout(120_000) });
        await res.arrayBuffer();
        status = res.status;
      } catch {
        status = -1;
      }
      result.requests++;
      result.maxMs = Math.max(result.maxMs, performance.now() - t);
      if (status !== 200) result.notOk.set(status, (result.notOk.get(status) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  })();
  return { result, finished };
}

/** Each party agent's API token, by its URL (read from the token file it wrote beside its database). */
const tokens = new Map<string, string>();
const auth = (url: string): Record<string, string> => {
  const base = [...tokens.keys()].find((b) => url.startsWith(b));
  return base === undefined ? {} : { authorization: `Bearer ${tokens.get(base) as string}` };
};

async function api(base: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(base + path, { method, headers: { ...auth(base), ...(body !== undefined ? { "content-type": "application/json" } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const j = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(j)}`);
  return j;
}

interface Run {
  readonly n: number;
  readonly seconds: number;
  readonly state: string;
  readonly stats: readonly { name: string; stats: LoopStats }[];
  readonly polls: readonly { name: string; poll: Poll }[];
}

async function run(n: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "umbra-event-loop-"));
  mkdirSync(join(dir, "bank"));
  mkdirSync(join(dir, "telco"));
  writeData(dir, n);
  const nodes: Node[] = [];
  try {
    const x = await startNode("exchange", ["exchange", join(dir, "exchange.db")]);
    nodes.push(x);
    // Each party admitted with an invitation, as umbra exchange invite issues it (the exchange's database, WAL: shared while it runs).
    const invite = (name: string): string => {
      const store = openStore(join(dir, "exchange.db"));
      try {
        return createInvitation(store, { name }).code;
      } finally {
        store.close();
      }
    };
    const telco = await startNode("telco", ["party", "telco", x.url, join(dir, "telco.db"), join(dir, "telco"), invite("telco")]);
    nodes.push(telco);
    const bank = await startNode("bank", ["party", "bank", x.url, join(dir, "bank.db"), join(dir, "bank"), invite("bank")]);
    nodes.push(bank);
    for (const [p, name] of [[telco, "telco"], [bank, "bank"]] as const) tokens.set(p.url, readFileSync(join(dir, `${name}.token`), "utf8").trim());
    const policy = { allowedProtocols: ["psi", "join-aggregate"], outputColumns: ["v"], keyColumns: ["k"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };
    await api(telco.url, "POST", "/v1/datasets", { file: "usage.csv", policy });
    const request =
      protocol === "psi"
        ? { protocol: "psi", buyerDataset: "customers.csv", providerDataset: "telco.usage.csv", params: { keyColumns: ["k"] } }
        : {
            protocol: "join-aggregate",
            buyerDataset: "customers.csv",
            providerDataset: "telco.usage.csv",
            params: {
              keyColumns: ["k"],
              minGroupSize: 1,
              aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }, { fn: "var", column: "v" }], groupBy: { column: "g" }, maxAbsValue: "1000" },
            },
          };
    for (const node of nodes) await node.request("reset");
    const t0 = performance.now();
    const job = await api(bank.url, "POST", "/v1/jobs", request);
    const id = String(job["id"]);
    const stop = { done: false };
    const others = [poller(`${telco.url}/v1/status`, stop), poller(`${x.url}/v1/identity`, stop)];
    // The buyer's status, as `umbra job submit --wait` polls it: its answers decide when the job is over.
    const buyerPoll: Poll = { requests: 0, notOk: new Map(), maxMs: 0 };
    let state = "submitted";
    for (;;) {
      const t = performance.now();
      let status = 0;
      try {
        const res = await fetch(`${bank.url}/v1/jobs/${id}`, { headers: auth(bank.url), signal: AbortSignal.timeout(120_000) });
        const j = (await res.json()) as { state?: string };
        status = res.status;
        if (res.ok && typeof j.state === "string") state = j.state;
      } catch {
        status = -1;
      }
      buyerPoll.requests++;
      buyerPoll.maxMs = Math.max(buyerPoll.maxMs, performance.now() - t);
      if (status !== 200) buyerPoll.notOk.set(status, (buyerPoll.notOk.get(status) ?? 0) + 1);
      if (state !== "submitted" && state !== "running") break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    const seconds = (performance.now() - t0) / 1000;
    stop.done = true;
    await Promise.all(others.map((o) => o.finished));
    const stats = [];
    for (const node of [bank, telco, x]) stats.push({ name: node.name, stats: await node.request("stats") });
    if (state === "succeeded") {
      const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: auth(bank.url) });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (protocol === "join-aggregate") {
        const t = tableFromIPC(bytes);
        let joined = 0;
        for (let i = 0; i < t.numRows; i++) joined += Number(t.getChild("count")?.get(i));
        if (t.numRows !== GROUPS || joined !== n / 2) throw new Error(`wrong result: ${t.numRows} groups, ${joined} joined rows`);
      } else if (tableFromIPC(bytes).numRows !== n / 2) throw new Error("wrong intersection");
    }
    return {
      n,
      seconds,
      state,
      stats,
      polls: [
        { name: "bank GET /v1/jobs/:id (via the exchange)", poll: buyerPoll },
        { name: "telco GET /v1/status", poll: (others[0] as { result: Poll }).result },
        { name: "exchange GET /v1/identity", poll: (others[1] as { result: Poll }).result },
      ],
    };
  } finally {
    for (const node of nodes.reverse()) await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (x: number): string => `${Math.round(x).toLocaleString("en-US")} ms`;
const count = (x: number): string => x.toLocaleString("en-US");

async function main(): Promise<void> {
  console.log(`# Umbra event-loop blocking during a job — Node ${process.version}, ${availableParallelism()} cores\n`);
  console.log(`${protocol}, N rows per side, half shared${protocol === "join-aggregate" ? "; count, sum, avg, var per 10 groups, k = 1" : ""}. Exchange, buyer (bank) and provider (telco) each in its own process on loopback; every API polled every ${pollMs} ms.\n`);
  const rows: string[][] = [];
  const polls: string[][] = [];
  const gaps: string[] = [];
  for (const n of sizes) {
    process.stderr.write(`  running ${protocol} ${n} …\n`);
    const r = await run(n);
    for (const s of r.stats) {
      const longest = [...s.stats.gaps].sort((a, b) => b[1] - a[1]).slice(0, 3).map((g) => ms(g[1])).join(", ");
      rows.push([count(n), s.name, ms(s.stats.maxMs), ms(s.stats.p99Ms), String(s.stats.gaps.length), longest || "-", `${r.seconds.toFixed(1)} s (${r.state})`]);
      if (listGaps) gaps.push(`- ${count(n)} ${s.name}: ${s.stats.gaps.map(([at, g]) => `${(at / 1000).toFixed(1)} s: ${g}`).join("; ") || "none"}`);
    }
    for (const p of r.polls) {
      const bad = [...p.poll.notOk].map(([status, k]) => `${k} × ${status === -1 ? "no answer" : status}`).join(", ");
      polls.push([count(n), p.name, String(p.poll.requests), ms(p.poll.maxMs), bad || "none"]);
    }
  }
  console.log(formatTable(["N per side", "node", "max delay", "p99 delay", "gaps > 50 ms", "longest gaps", "job wall time"], rows));
  console.log("");
  console.log(formatTable(["N per side", "API", "requests", "slowest answer", "not 200"], polls));
  if (listGaps) console.log(`\nGaps over 50 ms (seconds after submission: gap ms):\n\n${gaps.join("\n")}`);
}

await main();
