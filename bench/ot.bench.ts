/**
 * `npm run bench:ot`: the OT-extension PSI's engine stages (engine/ot,
 * engine/psi/cuckoo) on one thread, both roles in this process
 * (otPsiLocal), n × n keys with half of them shared, at 10^4, 10^5, 10^6.
 * Prints each stage's wall time (median of the runs), the total, the bytes
 * each way and the peak RSS. The pooled, chunked protocol run is issue 14's
 * next step; this measures the single-thread cost it will divide.
 *
 * Options: --quick (10^4 and 10^5, one run), --sizes 10000,100000 (any list).
 */
import { OT_PSI_STAGES, otPsiLocal, packStrings, type OtPsiStage } from "../engine/index.js";
import { formatTable, median, peakRssMiB } from "./table.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const sizesArg = args.indexOf("--sizes");
const SIZES = sizesArg >= 0 ? String(args[sizesArg + 1]).split(",").map(Number) : quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
const runsFor = (n: number) => (quick || n >= 1_000_000 ? 1 : 3);

function keys(n: number, from: number) {
  return packStrings(Array.from({ length: n }, (_, i) => `user-${(from + i).toString(36)}-+86138${String(from + i).padStart(8, "0")}`));
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

const rows: string[][] = [];
for (const n of SIZES) {
  const buyer = keys(n, 0);
  const provider = keys(n, Math.floor(n / 2));
  const stages = new Map<OtPsiStage, number[]>();
  const totals: number[] = [];
  let up = 0;
  let down = 0;
  let matched = 0;
  for (let r = 0; r < runsFor(n); r++) {
    const t0 = performance.now();
    const res = await otPsiLocal(buyer, provider, { onStage: (s, secs) => stages.set(s, [...(stages.get(s) ?? []), secs]) });
    totals.push((performance.now() - t0) / 1000);
    up = res.bytesToProvider;
    down = res.bytesToBuyer;
    matched = res.rows.length;
  }
  if (matched !== n - Math.floor(n / 2)) throw new Error(`bench run matched ${matched} keys, expected ${n - Math.floor(n / 2)}`);
  rows.push([n.toLocaleString("en"), ...OT_PSI_STAGES.map((s) => median(stages.get(s) ?? []).toFixed(2)), median(totals).toFixed(2), mib(up), mib(down), peakRssMiB().toFixed(0)]);
  console.error(`n = ${n}: ${median(totals).toFixed(2)} s`);
}

console.log(`\nOT-extension PSI, both roles on one thread (${process.version}), n × n keys, n/2 shared; seconds per stage (median)\n`);
console.log(formatTable(["n", ...OT_PSI_STAGES, "total s", "MiB to provider", "MiB to buyer", "peak RSS MiB"], rows));
