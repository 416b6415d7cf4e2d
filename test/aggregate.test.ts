/**
 * protocols/aggregate.ts, the plumbing the aggregate protocols share: the
 * aggregate list resolved (and refused with typed errors), fixed-point
 * scaling against a bound (nulls refused, or kept and marked), and
 * AVG / VAR_SAMP from sums — exact from integer totals against a plaintext
 * computation, and bounded from approximate ones.
 */
import { Float64, Int32, Int64, Table, vectorFromArray } from "apache-arrow";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, MissingColumnError } from "../engine/errors.js";
import { ValueOutOfRangeError } from "../engine/he/index.js";
import { approxAvg, approxVar, avgFromSums, fixedPoint, resolveAggregates, sampleVarianceFromSums, scaledColumn, scaledValues, type AggregateSpec } from "../protocols/aggregate.js";
import { rng } from "./helpers/data.js";

describe("resolveAggregates", () => {
  it("value columns in first-use order, sums of squares where VAR or STDDEV asks", () => {
    const r = resolveAggregates([{ fn: "count" }, { fn: "avg", column: "b" }, { fn: "sum", column: "a" }, { fn: "stddev", column: "b" }]);
    expect(r.aggregates).toEqual([
      { fn: "count", column: "" },
      { fn: "avg", column: "b" },
      { fn: "sum", column: "a" },
      { fn: "stddev", column: "b" },
    ]);
    expect(r.columns).toEqual(["b", "a"]);
    expect(r.squares).toEqual([true, false]);
  });

  it("refuses an empty list, an unknown function, a missing column", () => {
    expect(() => resolveAggregates([])).toThrow(InvalidArgumentError);
    expect(() => resolveAggregates([{ fn: "median", column: "x" } as unknown as AggregateSpec])).toThrow(InvalidArgumentError);
    expect(() => resolveAggregates([{ fn: "sum" } as unknown as AggregateSpec])).toThrow(InvalidArgumentError);
    expect(() => resolveAggregates([null as unknown as AggregateSpec])).toThrow(InvalidArgumentError);
  });
});

describe("value scaling", () => {
  it("round(v · 10^scale), half away from zero, as engine/he encodes", () => {
    expect([fixedPoint(1.005, 100), fixedPoint(-2.5, 1), fixedPoint(2.5, 1), fixedPoint(-0.125, 100)]).toEqual([100n, -3n, 3n, -13n]);
  });

  it("scaledColumn: int64, int32 and float64 columns against the bound; nulls and a missing column refused", () => {
    const t = new Table({
      i: vectorFromArray([5n, -7n], new Int64()),
      s: vectorFromArray([3, -4], new Int32()),
      f: vectorFromArray([1.25, -0.5], new Float64()),
      n: vectorFromArray([1.5, null], new Float64()),
    });
    expect(scaledColumn(t, "i", 2, 1000n)).toEqual([500n, -700n]);
    expect(scaledColumn(t, "s", 1, null)).toEqual([30n, -40n]);
    expect(scaledColumn(t, "f", 1, 13n)).toEqual([13n, -5n]);
    expect(() => scaledColumn(t, "f", 1, 12n)).toThrow(ValueOutOfRangeError);
    expect(() => scaledColumn(t, "n", 0, null)).toThrow();
    expect(() => scaledColumn(t, "nope", 0, null)).toThrow(MissingColumnError);
  });

  it("scaledValues keeps nulls, marked, and scales the rest the same way", () => {
    const t = new Table({ n: vectorFromArray([1.5, null, -2], new Float64()), i: vectorFromArray([7n, -8n, 0n], new Int64()) });
    const r = scaledValues(t, "n", 1, 20n);
    expect([Array.from(r.values), Array.from(r.valid)]).toEqual([[15n, 0n, -20n], [1, 0, 1]]);
    expect(Array.from(scaledValues(t, "i", 0, 8n).values)).toEqual([7n, -8n, 0n]);
    expect(() => scaledValues(t, "i", 0, 7n)).toThrow(ValueOutOfRangeError);
  });
});

describe("AVG / VAR from sums", () => {
  it("exact totals: equal to the plaintext computation on random data (scale 2)", () => {
    const r = rng(42);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 30);
      const xs = Array.from({ length: n }, () => BigInt(Math.floor((r() - 0.5) * 2e6)));
      const sum = xs.reduce((a, b) => a + b, 0n);
      const sumsq = xs.reduce((a, b) => a + b * b, 0n);
      const mean = xs.reduce((a, b) => a + Number(b), 0) / n / 100;
      expect(avgFromSums(BigInt(n), sum, 2)).toBeCloseTo(mean, 6);
      const v = sampleVarianceFromSums(BigInt(n), sum, sumsq, 2);
      if (n < 2) expect(v).toBeNull();
      else expect(v).toBeCloseTo(xs.reduce((a, b) => a + (Number(b) / 100 - mean) ** 2, 0) / (n - 1), 4);
    }
    expect(avgFromSums(0n, 0n, 0)).toBeNull();
  });

  it("approximate totals: the exact value lies within the bound for every point of the input intervals' corners", () => {
    const n = { value: 10, bound: 0.25 };
    const s = { value: 50, bound: 1 };
    const q = { value: 300, bound: 2 };
    const avg = approxAvg(n, s);
    const v = approxVar(n, s, q);
    if (!avg || !v) throw new Error("expected values");
    for (const dn of [-0.25, 0.25]) {
      for (const ds of [-1, 1]) {
        expect(Math.abs((50 + ds) / (10 + dn) - avg.value)).toBeLessThanOrEqual(avg.bound);
        for (const dq of [-2, 2]) {
          const N = 10 + dn;
          const exact = (N * (300 + dq) - (50 + ds) ** 2) / (N * (N - 1));
          expect(Math.abs(exact - v.var.value)).toBeLessThanOrEqual(v.var.bound);
        }
      }
    }
    expect(approxAvg({ value: 0, bound: 0 }, s)).toBeNull();
    expect(approxVar({ value: 1, bound: 0 }, s, q)).toBeNull();
    expect(approxAvg({ value: 1, bound: 2 }, s)?.bound).toBe(Infinity);
  });
});
