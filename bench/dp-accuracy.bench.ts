/**
 * `npm run bench:dp`: what differential privacy costs federated-aggregate
 * (issue 13) — accuracy and time. runFederatedAggregate (every role in this
 * process, every message serialised) over two providers' synthetic rows in
 * four groups of 10, 100, 1,000 and 10,000 rows (values uniform integers
 * 1…100, --max-abs-value 100, k = 1), COUNT, SUM and AVG per group, at
 * ε ∈ {0.1, 0.5, 1, 2, 5} (δ = 1e-6, converted to ρ as --epsilon does,
 * node/epsilon.ts). Accuracy: the median over the runs of |noisy − exact| /
 * exact for SUM and AVG per group. Time: the same job without and with DP
 * (ε = 1), median of the runs each, interleaved, and their ratio (goal ≤
 * 1.05x). Then join-aggregate: the same rows (and ten times them) as one
 * provider joined on a unique key with a buyer grouping them the same way,
 * without and with DP (ε = 1, the provider's and the exchange's shares):
 * time, ratio and the SUM's relative error per group. Peak RSS.
 *
 * Options: --runs N (runs per ε, and timed runs per variant — join-aggregate: 3N/5 at 11,110 rows, N/3 at 111,100; default 15, at least 3), --quick (3 runs).
 * A cell whose noisy count is below 1 is suppressed (SUM and AVG not released): its errors count as ∞.
 */
import { Table, Utf8, Int32, vectorFromArray } from "apache-arrow";
import { rationalToNumber } from "../engine/dp/index.js";
import { closePool } from "../engine/pool/index.js";
import { runFederatedAggregate, runJoinAggregate, type FaRunResult, type JaRunResult } from "../protocols/index.js";
import { rhoForEpsilon } from "../node/epsilon.js";
import { formatTable, median, peakRssMiB, timeIt } from "./table.js";
import { prng } from "../examples/common.js";

const argRuns = process.argv.indexOf("--runs");
const RUNS = process.argv.includes("--quick") ? 3 : Math.max(3, argRuns >= 0 ? Number(process.argv[argRuns + 1]) || 15 : 15);
const SIZES = [10, 100, 1_000, 10_000];
const EPSILONS = [0.1, 0.5, 1, 2, 5];
const DELTA = 1e-6;
const MAX = 100;
const groups = SIZES.map((n) => `g${n}`);

/** A small deterministic generator (mulberry32): the data is the same every run. */
const generator = prng;

// Two providers; each group's rows alternate between them.
const rand = generator(13);
const sides: { g: string[]; v: number[] }[] = [
  { g: [], v: [] },
  { g: [], v: [] },
];
const exact = new Map<string, { count: number; sum: number }>();
SIZES.forEach((n, i) => {
  const name = groups[i] as string;
  let sum = 0;
  for (let r = 0; r < n; r++) {
    const v = 1 + Math.floor(rand() * MAX);
    const side = sides[r % 2] as { g: string[]; v: number[] };
    side.g.push(name);
    side.v.push(v);
    sum += v;
  }
  exact.set(name, { count: n, sum });
});
const tables = sides.map((s) => new Table({ g: vectorFromArray(s.g, new Utf8()), v: vectorFromArray(s.v, new Int32()) }));

const job = (rho?: string) =>
  runFederatedAggregate({
    providers: tables.map((table) => ({ table })),
    aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }],
    groupBy: { column: "g", categories: groups },
    minGroupSize: 1,
    maxAbsValue: MAX,
    ...(rho !== undefined ? { dp: { rho } } : {}),
  });

const rhoOf = (epsilon: number): string => {
  const r = rhoForEpsilon(epsilon, DELTA);
  return `${r.num}/${r.den}`;
};

/** Per group: the relative errors of SUM and AVG of one run. */
function errors(run: FaRunResult): Map<string, { sum: number; avg: number }> {
  const out = new Map<string, { sum: number; avg: number }>();
  for (const cell of run.result.cells) {
    const want = exact.get(cell.category as string) as { count: number; sum: number };
    const col = cell.columns["v"];
    // A cell whose noisy count is below k = 1 is suppressed (its values null): not released, its error counts as ∞.
    const sum = col?.sum === null || col?.sum === undefined ? Number.POSITIVE_INFINITY : Number(col.sum);
    const avg = col?.avg ?? Number.POSITIVE_INFINITY;
    out.set(cell.category as string, { sum: Math.abs(sum - want.sum) / want.sum, avg: Math.abs(avg - want.sum / want.count) / (want.sum / want.count) });
  }
  return out;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toPrecision(3)}%` : "∞ (suppressed)");

console.log(`federated-aggregate with differential privacy: 2 providers, groups of ${SIZES.map((n) => n.toLocaleString("en-US")).join(" / ")} rows, values 1…${MAX}, k = 1, ${RUNS} runs per ε\n`);

// ------------------------------------------------------------- accuracy
const rows: string[][] = [];
for (const epsilon of EPSILONS) {
  const rho = rhoOf(epsilon);
  const per = new Map<string, { sum: number[]; avg: number[] }>(groups.map((g) => [g, { sum: [], avg: [] }]));
  let sigma = "";
  for (let r = 0; r < RUNS; r++) {
    const run = await job(rho);
    for (const [g, e] of errors(run)) {
      per.get(g)?.sum.push(e.sum);
      per.get(g)?.avg.push(e.avg);
    }
    const st = run.result.dp?.statistics.find((s) => s.name === "sum(v)");
    if (st) {
      const [n, d] = st.variance.split("/").map(Number) as [number, number];
      sigma = Math.sqrt(n / d).toPrecision(3);
    }
  }
  SIZES.forEach((n, i) => {
    const e = per.get(groups[i] as string) as { sum: number[]; avg: number[] };
    rows.push([String(epsilon), `${rho} (${rationalToNumber(rhoForEpsilon(epsilon, DELTA)).toPrecision(3)})`, n.toLocaleString("en-US"), sigma, pct(median(e.sum)), pct(median(e.avg))]);
  });
}
console.log("accuracy: median relative error per group (δ = 1e-6; σ is the SUM's total noise σ)\n");
console.log(formatTable(["ε", "ρ", "group rows", "SUM σ", "SUM rel. error", "AVG rel. error"], rows));

// ------------------------------------------------------------- time
const plain: number[] = [];
const noisy: number[] = [];
const rho1 = rhoOf(1);
await job(); // warm-up: the pool's workers and HE contexts
for (let r = 0; r < RUNS; r++) {
  plain.push(await timeIt(() => job()));
  noisy.push(await timeIt(() => job(rho1)));
}
const [tp, tn] = [median(plain), median(noisy)];
console.log(`\ntime: the same job (${(SIZES.reduce((a, b) => a + b, 0)).toLocaleString("en-US")} rows, 4 groups), median of ${RUNS} runs each, interleaved\n`);
console.log(
  formatTable(
    ["variant", "median s", "min – max s"],
    [
      ["without DP", tp.toFixed(3), `${Math.min(...plain).toFixed(3)} – ${Math.max(...plain).toFixed(3)}`],
      [`with DP (ε = 1, ρ = ${rho1})`, tn.toFixed(3), `${Math.min(...noisy).toFixed(3)} – ${Math.max(...noisy).toFixed(3)}`],
      ["ratio (goal ≤ 1.05x)", `${(tn / tp).toFixed(3)}x`, ""],
    ],
  ),
);

// ------------------------------------------------------------- join-aggregate
// The same rows as one provider's table joined with a buyer holding each provider row's key once, grouped by the buyer's g;
// then the same ×10 (each row ten times under ten keys). DP adds a released statistic (COUNT(*), whose block is the provider's
// noise block alone: the exchange puts the count into its mask) and, per statistic, the provider's noise shares to each group's
// masked block sum (in the spare slots of a column's last block when it has 1,024 of them, else one more block: a cost fixed
// per group and statistic).
const jaTables = (copies: number) => {
  const keys: string[] = [];
  const gs: string[] = [];
  const vs: number[] = [];
  for (let c = 0; c < copies; c++) {
    sides.forEach((side, s) =>
      side.g.forEach((g, i) => {
        keys.push(`${c}-${s}-${i}`);
        gs.push(g);
        vs.push(side.v[i] as number);
      }),
    );
  }
  return {
    rows: keys.length,
    buyer: new Table({ k: vectorFromArray(keys, new Utf8()), g: vectorFromArray(gs, new Utf8()) }),
    provider: new Table({ k: vectorFromArray(keys, new Utf8()), v: vectorFromArray(vs, new Int32()) }),
  };
};
// Runs per variant: more at the small size, whose run-to-run spread (which role's hashing gets the pool's threads first) is
// wide beside the difference measured; fewer at ten times the rows (~25 s a run).
const jaRunsOf = (copies: number) => (copies === 1 ? Math.max(3, Math.ceil((RUNS * 3) / 5)) : Math.max(3, Math.ceil(RUNS / 3)));
const jaRows: string[][] = [];
for (const copies of [1, 10]) {
  const t = jaTables(copies);
  const jaJob = (rho?: string) =>
    runJoinAggregate({
      buyer: { table: t.buyer, keys: ["k"], groupBy: "g" },
      provider: { table: t.provider, keys: ["k"] },
      aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }],
      minGroupSize: 1,
      maxAbsValue: MAX,
      ...(rho !== undefined ? { dp: { rho } } : {}),
    });
  const plainT: number[] = [];
  const noisyT: number[] = [];
  const err = new Map<string, number[]>(groups.map((g) => [g, []]));
  await jaJob(); // warm-up
  for (let r = 0; r < jaRunsOf(copies); r++) {
    plainT.push(await timeIt(() => jaJob()));
    let last: JaRunResult | undefined;
    noisyT.push(await timeIt(async () => void (last = await jaJob(rho1))));
    for (const g of last?.result.groups ?? []) {
      const want = exact.get(g.label as string) as { count: number; sum: number };
      const sum = g.columns["v"]?.sum;
      err.get(g.label as string)?.push(sum === null || sum === undefined ? Number.POSITIVE_INFINITY : Math.abs(Number(sum) - copies * want.sum) / (copies * want.sum));
    }
  }
  const [jp, jn] = [median(plainT), median(noisyT)];
  jaRows.push([
    t.rows.toLocaleString("en-US"),
    String(jaRunsOf(copies)),
    `${jp.toFixed(3)} (${Math.min(...plainT).toFixed(3)} – ${Math.max(...plainT).toFixed(3)})`,
    `${jn.toFixed(3)} (${Math.min(...noisyT).toFixed(3)} – ${Math.max(...noisyT).toFixed(3)})`,
    `${(jn / jp).toFixed(3)}x`,
    groups.map((g) => pct(median(err.get(g) ?? []))).join(" / "),
  ]);
}
console.log(`\njoin-aggregate: the rows joined on a unique key, grouped by the buyer's g (4 groups), without and with DP (ε = 1, ρ = ${rho1}), medians of the runs each, interleaved\n`);
console.log(formatTable(["provider rows", "runs each", "without DP s (min – max)", "with DP s (min – max)", "ratio (goal ≤ 1.05x)", "SUM rel. error per group (smallest … largest)"], jaRows));
console.log(`\npeak RSS: ${peakRssMiB().toFixed(0)} MiB`);
await closePool();
