/**
 * The differencing attack, and differential privacy stopping it.
 *
 * Two employers (providers) hold their employees' salaries; an analyst
 * (the buyer) may ask for aggregates across both — never a row. It asks
 *
 *   Q1: SELECT SUM(salary) FROM employer_a UNION ALL employer_b
 *   Q2: the same, over the same tables minus one row (the target's)
 *
 * (in practice a filter that excludes one person does it), and subtracts.
 * Encryption and k thresholds do not help: both sums are legal, large
 * aggregates. Without differential privacy Q1 − Q2 is the target's salary,
 * exactly. With it (each query ε = 1 at δ = 1e-6 — ρ = 487/20000, as
 * `--epsilon 1` converts it), each provider adds its share of discrete
 * Gaussian noise before masking, so each sum carries noise of σ ≈ Δ/√ρ
 * (Δ = the salary bound; ρ is split between the count and the sum,
 * docs/differential-privacy.md): Q1 − Q2 is the salary plus the difference
 * of two such noises, of σ·√2 — over a million here, against a salary of
 * 87,400.
 *
 * Every role runs in this process over the real protocol
 * (runFederatedAggregate); the data is synthetic, from a fixed seed; the
 * noise is drawn from node:crypto, so the DP numbers differ run to run.
 *
 * Run: npm run example:differencing
 */
import { Int32, Table, Utf8, vectorFromArray } from "apache-arrow";
import { closePool } from "../../engine/pool/index.js";
import { epsilonFromRho, rational, rationalToNumber } from "../../engine/dp/index.js";
import { runFederatedAggregate, type FaRunResult } from "../../protocols/index.js";
import { rhoForEpsilon } from "../../node/epsilon.js";
import { count, prng } from "../common.js";

const SEED = 13;
const EMPLOYEES = [250, 180];
/** The declared bound on a salary (--max-abs-value): a row moves a sum by at most this. */
const MAX_SALARY = 200_000;
const TARGET = { id: "B-0042", salary: 87_400 };
const EPSILON = 1;
const DELTA = 1e-6;
/** Attacks repeated with DP, to show the error's spread beside the stated σ. */
const REPEATS = 10;

function employer(prefix: string, n: number, rnd: () => number, target?: typeof TARGET): { ids: string[]; salaries: number[] } {
  const ids: string[] = [];
  const salaries: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${String(i).padStart(4, "0")}`;
    ids.push(id);
    salaries.push(id === target?.id ? target.salary : 30_000 + Math.round(rnd() * 90_000));
  }
  return { ids, salaries };
}

const table = (e: { ids: string[]; salaries: number[] }, skip?: string): Table => {
  const keep = e.ids.map((id, i) => [id, e.salaries[i] as number] as const).filter(([id]) => id !== skip);
  return new Table({ employee: vectorFromArray(keep.map(([id]) => id), new Utf8()), salary: vectorFromArray(keep.map(([, s]) => s), new Int32()) });
};

async function sum(tables: readonly Table[], rho?: string): Promise<{ sum: bigint; run: FaRunResult }> {
  const run = await runFederatedAggregate({
    providers: tables.map((t) => ({ table: t })),
    aggregates: [{ fn: "sum", column: "salary" }],
    minGroupSize: 1,
    maxAbsValue: MAX_SALARY,
    ...(rho !== undefined ? { dp: { rho } } : {}),
  });
  return { sum: run.result.cells[0]?.columns["salary"]?.sum ?? 0n, run };
}

const euros = (x: bigint | number): string => `${x < 0 ? "−" : ""}${count(Math.abs(Number(x)))}`;

async function main(): Promise<number> {
  const rnd = prng(SEED);
  const a = employer("A", EMPLOYEES[0] as number, rnd);
  const b = employer("B", EMPLOYEES[1] as number, rnd, TARGET);
  const full = [table(a), table(b)];
  const minusOne = [table(a), table(b, TARGET.id)];
  console.log(`Differencing attack — two employers' salaries (synthetic, seed ${SEED}): ${count(EMPLOYEES[0] as number)} + ${count(EMPLOYEES[1] as number)} rows, salaries bounded by ${count(MAX_SALARY)}`);
  console.log(`Q1 = SUM(salary) over both; Q2 = the same without one row (employee ${TARGET.id}); the attack: Q1 − Q2\n`);

  // Without differential privacy.
  const [q1, q2] = [await sum(full), await sum(minusOne)];
  const recovered = q1.sum - q2.sum;
  console.log("Without differential privacy");
  console.log(`  Q1 = ${euros(q1.sum)}, Q2 = ${euros(q2.sum)}, Q1 − Q2 = ${euros(recovered)}`);
  console.log(`  the target's salary is ${euros(TARGET.salary)}: recovered exactly: ${recovered === BigInt(TARGET.salary) ? "yes" : "no"}\n`);

  // With differential privacy: each query ε = 1 at δ = 1e-6.
  const r = rhoForEpsilon(EPSILON, DELTA);
  const rho = `${r.num}/${r.den}`;
  const twice = rational(2n * r.num, r.den, "ρ");
  const both = epsilonFromRho(rationalToNumber(twice), DELTA);
  const d1 = await sum(full, rho);
  const d2 = await sum(minusOne, rho);
  const st = d1.run.result.dp?.statistics.find((s) => s.name === "sum(salary)");
  const [vn, vd] = (st?.variance ?? "0/1").split("/").map(Number) as [number, number];
  const sigma = Math.sqrt(vn / vd);
  const sigmaDiff = sigma * Math.SQRT2;
  const w = (d1.run.result.cells[0]?.noise?.columns["salary"]?.sum?.halfWidth ?? 0n) + (d2.run.result.cells[0]?.noise?.columns["salary"]?.sum?.halfWidth ?? 0n);
  const dpRecovered = d1.sum - d2.sum;
  console.log(`With differential privacy: each query ε = ${EPSILON} at δ = 1e-6 (ρ = ${rho} zCDP; the two together ρ = ${twice.num}/${twice.den}, ε = ${both.toFixed(2)})`);
  console.log(`  each sum's noise: σ = ${euros(Math.round(sigma))} (the sum of two providers' discrete Gaussian shares); Q1 − Q2's: σ = ${euros(Math.round(sigmaDiff))}`);
  console.log(`  Q1 = ${euros(d1.sum)}, Q2 = ${euros(d2.sum)}, Q1 − Q2 = ${euros(dpRecovered)}: off by ${euros(dpRecovered - BigInt(TARGET.salary))} (the 95% half-widths add up to ${euros(w)})`);
  console.log(`  recovered exactly: ${dpRecovered === BigInt(TARGET.salary) ? "yes" : "no"}`);
  const errors: number[] = [];
  for (let i = 0; i < REPEATS; i++) errors.push(Number((await sum(full, rho)).sum - (await sum(minusOne, rho)).sum) - TARGET.salary);
  const sd = Math.sqrt(errors.reduce((s, e) => s + e * e, 0) / errors.length);
  console.log(`  the attack ${REPEATS} more times: recovered exactly ${errors.filter((e) => e === 0).length} times; the error's root mean square ${euros(Math.round(sd))} (stated σ ${euros(Math.round(sigmaDiff))})`);
  console.log(`\nThe analyst learns the salary only to within about ±${euros(Math.round(1.96 * sigmaDiff))} (95%) — more than the salary range itself. The budget (umbra dataset budget) caps how often it may try.`);
  return 0;
}

try {
  process.exitCode = await main();
} finally {
  await closePool();
}
