/**
 * federated-aggregate with differential privacy (protocols/federated-aggregate/dp.ts):
 * the sum of the providers' noise shares follows its law (chi-square against
 * the exact convolution of their pmfs, seeded); the noisy result minus the
 * exact one is exactly the sum of the shares the providers drew (replayed
 * from their seeds); each released value carries its law and a 95% interval;
 * the differencing attack recovers a row exactly without DP and not with it;
 * malformed ρ and dp with approximate arithmetic are refused.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { describe, expect, it } from "vitest";
import { discreteGaussianPmf, distributedGaussianRho, noiseHalfWidth, seededUniformSource, type UniformSource } from "../engine/dp/index.js";
import { InvalidArgumentError } from "../engine/errors.js";
import { faDpPlan, faNoiseShares, parseRho, resolveFaParams, runFederatedAggregate, type AggregateSpec, type FederatedAggregateParams } from "../protocols/index.js";
import { aggregateCommand } from "../node/commands/aggregate.js";
import { chiSquareTest, wilsonInterval } from "./helpers/chi-square.js";

const N = 3;
const seeds = (tag: string): UniformSource[] => Array.from({ length: N }, (_, i) => seededUniformSource(`${tag}/provider-${i}`));

/** The pmf of the sum of `n` independent N_Z(0, σ²), by convolution over [−w, w]. */
function sumPmf(n: number, num: number, den: number, w: number): (x: number) => number {
  const one = Array.from({ length: 2 * w + 1 }, (_, i) => discreteGaussianPmf(num, den, i - w));
  let acc = [1];
  for (let k = 0; k < n; k++) {
    const next = new Array<number>(acc.length + one.length - 1).fill(0);
    acc.forEach((a, i) => one.forEach((b, j) => (next[i + j] = (next[i + j] as number) + a * b)));
    acc = next;
  }
  const mid = (acc.length - 1) / 2;
  return (x) => acc[x + mid] ?? 0;
}

const layout = (providers: number, k = 1) => ({ providers, minGroupSize: k, columns: [], squares: [], columnOffsets: [], histColumn: "", histOffset: 1, bins: 0, stride: 1 });

describe("the providers' noise shares", () => {
  it("sum to the law of n independent N_Z(0, σ²): chi-square on 200,000 seeded sums, and the 95% interval covers", () => {
    const dp = faDpPlan({ rho: "1/20" }, layout(N), 1n);
    const st = dp.statistics[0];
    expect(st?.sigma2).toBe("10000/2997"); // Δ²/(2n·ρ·(1 − 1/1000)) = 1/(6 · 1/20 · 999/1000)
    const draws = 200_000;
    const rngs = seeds("law");
    const shares = rngs.map((r) => faNoiseShares(dp, 1, draws, r));
    const sums = new BigInt64Array(draws);
    for (let i = 0; i < draws; i++) sums[i] = shares.reduce((a, s) => a + (s[i] as bigint), 0n);
    const pmf = sumPmf(N, 10000, 2997, 40);
    const r = chiSquareTest(sums, pmf, -30, 30);
    expect(r.statistic).toBeLessThan(r.critical);
    const w = noiseHalfWidth({ kind: "distributed-discrete-gaussian", parties: N, sigma2: { num: 10000n, den: 2997n } });
    let inside = 0;
    for (const z of sums) if (z <= w && -z <= w) inside++;
    expect(wilsonInterval(inside, draws, 3.29).high).toBeGreaterThan(0.95);
  });

  it("meet the job's ρ by KLS21's bound, statistic by statistic", () => {
    const dp = faDpPlan({ rho: "1/2" }, { ...layout(5, 2), columns: ["v"], squares: [true], columnOffsets: [1], histColumn: "h", histOffset: 3, bins: 4, stride: 7 }, 1000n);
    expect(dp.statistics.map((s) => s.name)).toEqual(["count", "sum(v)", "sumsq(v)", "histogram(h)"]);
    for (const s of dp.statistics) {
      expect(s.rho).toBe("1/8");
      const [num, den] = s.sigma2.split("/").map(BigInt) as [bigint, bigint];
      const d = Number(s.sensitivity);
      expect(distributedGaussianRho(5, num, den, { l1: d, l2: d, dimension: s.offsets.length })).toBeLessThanOrEqual(1 / 8);
    }
    expect(dp.statistics.map((s) => s.sensitivity)).toEqual(["2", "2000", "2000000", "2"]); // k·1, k·V, k·V², k·1
  });
});

function table(groups: string[], values: number[]): Table {
  return new Table({ g: vectorFromArray(groups, new Utf8()), v: vectorFromArray(values, new Float64()) });
}

const providers = [
  table(["a", "a", "b", "b", "a"], [10, 20, 30, 40, 50]),
  table(["a", "b", "b"], [5, 6, 7]),
  table(["b", "a", "a", "a"], [1, 2, 3, 4]),
];
const aggregates: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }];
const base = { aggregates, groupBy: { column: "g", categories: ["a", "b"] }, minGroupSize: 1, maxAbsValue: 100, scale: 1 };

describe("runFederatedAggregate with dp", () => {
  it("releases the exact totals plus exactly the sum of the shares the providers drew", async () => {
    const exact = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })) });
    const noisy = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })), dp: { rho: "1/4" }, testNoiseSources: seeds("e2e") });
    const params: FederatedAggregateParams = { job: "replay", providers: N, minProviders: 2, maxRowsPerProvider: 5, ...base, dp: { rho: "1/4" } };
    const s = resolveFaParams(params);
    const shares = seeds("e2e").map((r) => faNoiseShares(s.dp!, s.stride, s.length, r));
    const noise = (slot: number) => shares.reduce((a, x) => a + (x[slot] as bigint), 0n);
    noisy.result.cells.forEach((cell, c) => {
      const e = exact.result.cells[c]!;
      expect((cell.count as bigint) - (e.count as bigint)).toBe(noise(c * s.stride));
      expect((cell.columns["v"]!.sum as bigint) - (e.columns["v"]!.sum as bigint)).toBe(noise(c * s.stride + 1));
    });
    expect(noisy.result.cells.some((c, i) => c.columns["v"]!.sum !== exact.result.cells[i]!.columns["v"]!.sum)).toBe(true);
  });

  it("gives each released value its noise law and a 95% interval that holds the exact total (seeded run)", async () => {
    const exact = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })) });
    const noisy = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })), dp: { rho: 0.25 }, testNoiseSources: seeds("meta") });
    expect(noisy.result.dp?.rho).toBe("1/4");
    expect(noisy.result.dp?.statistics.map((s) => s.name)).toEqual(["count", "sum(v)"]);
    const sumStat = noisy.result.dp!.statistics[1]!;
    expect(sumStat.sensitivity).toBe("1000"); // maxAbsValue·10^scale, k = 1
    noisy.result.cells.forEach((cell, c) => {
      const n = cell.noise!;
      const e = exact.result.cells[c]!;
      expect(n.count!.variance).toBe(noisy.result.dp!.statistics[0]!.variance);
      expect(n.count!.low <= (e.count as bigint) && (e.count as bigint) <= n.count!.high).toBe(true);
      const sum = n.columns["v"]!.sum!;
      expect(sum.low <= (e.columns["v"]!.sum as bigint) && (e.columns["v"]!.sum as bigint) <= sum.high).toBe(true);
    });
  });

  it("puts each released value's 95% interval in the table, after the value: NAME_low95, NAME_high95", async () => {
    const noisy = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })), dp: { rho: 0.25 }, testNoiseSources: seeds("meta") });
    const t = noisy.table;
    const names = t.schema.fields.map((f) => f.name);
    const at = (name: string, i: number) => t.getChild(name)?.get(i) as unknown;
    const want = noisy.result.cells.map((c) => [c.noise?.count?.low ?? null, c.noise?.count?.high ?? null, c.noise?.columns["v"]?.sum ? Number(c.noise.columns["v"].sum.low) / 10 : null]);
    const got = noisy.result.cells.map((_, i) => [at("count_low95", i), at("count_high95", i), at("sum_v_low95", i)]);
    expect(names.filter((n) => n.endsWith("95"))).toEqual(aggregates.flatMap((a) => (a.fn === "count" ? ["count_low95", "count_high95"] : a.fn === "sum" || a.fn === "avg" ? [`${a.fn}_${a.column}_low95`, `${a.fn}_${a.column}_high95`] : [])));
    expect(got).toEqual(want);
    const exact = await runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })) });
    expect(exact.table.schema.fields.some((f) => f.name.endsWith("95"))).toBe(false);
  });

  it("turns the differencing attack's exact answer into one with the noise's error", async () => {
    // The buyer asks for group a's sum twice: with the target row, and with the same data minus it.
    const minus = [providers[0]!, providers[1]!, table(["b", "a", "a"], [1, 2, 3])];
    const run = (ts: Table[], tag?: string) =>
      runFederatedAggregate({ ...base, providers: ts.map((t) => ({ table: t })), ...(tag ? { dp: { rho: "1/4" }, testNoiseSources: seeds(tag) } : {}) });
    const diff = async (tag?: string) => {
      const [all, rest] = [await run(providers, tag && `${tag}/1`), await run(minus, tag && `${tag}/2`)];
      const cell = (r: typeof all) => r.result.cells[0]!;
      return { value: (cell(all).columns["v"]!.sum as bigint) - (cell(rest).columns["v"]!.sum as bigint), all, rest };
    };
    expect((await diff()).value).toBe(40n); // the target row's value, 4.0 at scale 1: recovered exactly
    const { value, all, rest } = await diff("attack");
    const error = value - 40n;
    expect(error).not.toBe(0n);
    // The difference of two independent noisy sums: within the sum of their 95% half-widths.
    const w = all.result.cells[0]!.noise!.columns["v"]!.sum!.halfWidth + rest.result.cells[0]!.noise!.columns["v"]!.sum!.halfWidth;
    expect(error <= w && -error <= w).toBe(true);
  });

  it("refuses dp with approximate arithmetic, and a ρ that is not a positive rational", async () => {
    await expect(runFederatedAggregate({ ...base, providers: providers.map((t) => ({ table: t })), dp: { rho: "1/4" }, approximate: true })).rejects.toThrow(InvalidArgumentError);
    for (const bad of ["abc", "-1", "0", "1/0", "", Number.NaN, 0]) expect(() => parseRho(bad)).toThrow(InvalidArgumentError);
    expect([parseRho("1/10"), parseRho("0.1"), parseRho(0.1), parseRho("1e-1")]).toEqual(Array(4).fill({ num: 1n, den: 10n }));
  });
});

describe("umbra aggregate --rho", () => {
  it("prints ρ, ε and each statistic's noise σ and 95% half-width in the value's units", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-dp-cli-"));
    for (const [i, rows] of [["a,10", "b,20"], ["a,30", "a,40"]].entries()) writeFileSync(join(dir, `p${i}.csv`), `g,v\n${rows.join("\n")}\n`);
    const lines: string[] = [];
    const code = await aggregateCommand(
      ["--provider", join(dir, "p0.csv"), "--provider", join(dir, "p1.csv"), "--agg", "count,sum(v)", "--max-abs-value", "100", "--min-group-size", "1", "--rho", "0.5", "--out", join(dir, "out.csv")],
      { out: (l) => void lines.push(l), err: (l) => void lines.push(l) },
    );
    expect(code).toBe(0);
    // ρ/2 = 1/4 per statistic; a total's variance n·σ² = Δ²/(2·(1/4)·0.999): sum 100²·2/0.999 = 20,020 (σ ≈ 141, 95% ± ⌈√(2·20,020·ln 40)⌉ = 385);
    // count 2/0.999, but τ at σ² ≈ 1 with n = 2 (5·10⁻⁴) is over (1/4)/2000, so σ² is doubled once: n·σ² ≈ 4, σ ≈ 2.
    expect(lines.join("\n")).toContain("differential privacy: ρ = 1/2 zCDP");
    expect(lines.join("\n")).toMatch(/count σ = 2\.00, 95% ± 6\.00; sum\(v\) σ = 141, 95% ± 385/);
  });
});
