/**
 * engine/dp's exact samplers against their exact pmfs (issue 13, item 1):
 * Pearson chi-square on 10^6 draws per law and scale (discrete Gaussian
 * σ² = 1, 10, 1000, 7/3; discrete Laplace t = 1, 5; Poisson 7/3; Skellam
 * μ = 2, 50; the sum of three parties' Skellam shares), each below the
 * 0.001 critical value for its degrees of freedom (bins merged to expect
 * ≥ 5 each); Bernoulli(exp(−γ)) inside Wilson's 99.9% interval; the
 * uniform source itself; the Number fast paths drawing exactly what the
 * BigInt reference paths draw; a deliberately under-noised mechanism caught
 * by a neighbouring-datasets likelihood-ratio test that the correctly
 * noised one passes (the idea of Google DP's stochastic tester, made
 * deterministic by a seed); bad arguments refused with typed errors.
 * Every draw comes from a seeded ChaCha20 source, so each test asserts one
 * replayable outcome.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cryptoUniformSource,
  discreteGaussianPmf,
  discreteLaplacePmf,
  InvalidArgumentError,
  poissonPmf,
  sampleBernoulliExp,
  sampleDiscreteGaussian,
  sampleDiscreteGaussianBatch,
  sampleDiscreteLaplace,
  sampleDiscreteLaplaceBatch,
  samplePoisson,
  sampleSkellam,
  sampleSkellamBatch,
  sampleSkellamShare,
  sampleSkellamShareBatch,
  seededUniformSource,
  skellamPmf,
} from "../engine/index.js";
import { discreteGaussianBig } from "../engine/dp/gaussian.js";
import { discreteLaplaceBig } from "../engine/dp/laplace.js";
import { chiSquareCritical, chiSquareTest, wilsonInterval } from "./helpers/chi-square.js";

const N = 1_000_000;

function chiSquareOf(samples: BigInt64Array, pmf: (x: number) => number, lo: number, hi: number) {
  const r = chiSquareTest(samples, pmf, lo, hi);
  return { below: r.statistic < r.critical, ...r };
}

describe("chi-square critical values", () => {
  it("match the published 0.001 table values", () => {
    const got = [1, 10, 30, 100].map((df) => Number(chiSquareCritical(df).toFixed(3)));
    expect(got).toEqual([10.828, 29.588, 59.703, 149.449]);
  });
});

describe("discrete Gaussian (CKS20 Algorithm 3)", () => {
  it.each([
    [1n, 1n, -12, 12],
    [10n, 1n, -40, 40],
    [1000n, 1n, -400, 400],
    [7n, 3n, -25, 25],
  ])("σ² = %s/%s: 10^6 draws fit the pmf", (num, den, lo, hi) => {
    const draws = sampleDiscreteGaussianBatch(num, den, N, seededUniformSource(`gauss-${num}/${den}`));
    const r = chiSquareOf(draws, (x) => discreteGaussianPmf(num, den, x), lo, hi);
    expect(r, JSON.stringify(r)).toMatchObject({ below: true });
  });

  it("the test has power: draws of σ² = 10 against the pmf of σ² = 11 fail it", () => {
    const draws = sampleDiscreteGaussianBatch(10n, 1n, 200_000, seededUniformSource("gauss-power"));
    const r = chiSquareOf(draws, (x) => discreteGaussianPmf(11n, 1n, x), -40, 40);
    expect(r.statistic > r.critical).toBe(true);
  });

  it("the Number fast path draws exactly what the BigInt reference draws", () => {
    for (const [a, b] of [[1n, 1n], [10n, 1n], [1000n, 1n], [7n, 3n], [1n, 9n], [123456789n, 1000n]] as const) {
      const fast = sampleDiscreteGaussianBatch(a, b, 3000, seededUniformSource(`lockstep-${a}/${b}`));
      const rng = seededUniformSource(`lockstep-${a}/${b}`);
      const ref = BigInt64Array.from({ length: 3000 }, () => discreteGaussianBig(rng, a, b));
      expect(fast).toEqual(ref);
    }
  });

  it("fast and reference paths agree for any small σ² (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 1000 }), fc.string(), (a, b, seed) => {
        const g = gcdNumber(a, b);
        const fast = sampleDiscreteGaussianBatch(a, b, 50, seededUniformSource(seed));
        const rng = seededUniformSource(seed);
        const ref = BigInt64Array.from({ length: 50 }, () => discreteGaussianBig(rng, BigInt(a / g), BigInt(b / g)));
        expect(fast).toEqual(ref);
      }),
      { numRuns: 60, seed: 13 },
    );
  });

  it("a σ² past the fast path (BigInt only) still centres on 0 with the right spread", () => {
    // σ² = 10^16 (σ = 10^8): t = 10^8 + 1 > 2^26, so every step runs on BigInt.
    const rng = seededUniformSource("gauss-big");
    const draws = Array.from({ length: 400 }, () => Number(sampleDiscreteGaussian(10n ** 16n, 1n, rng)) / 1e8);
    const mean = draws.reduce((s, x) => s + x, 0) / draws.length;
    const variance = draws.reduce((s, x) => s + x * x, 0) / draws.length;
    // 400 standard normals: |mean| < 0.25 and variance in [0.75, 1.3] except with probability < 10^-5.
    expect({ mean: Math.abs(mean) < 0.25, variance: variance > 0.75 && variance < 1.3 }).toEqual({ mean: true, variance: true });
  });
});

describe("discrete Laplace (CKS20 Algorithm 2)", () => {
  it.each([
    [1n, 1n, -30, 30],
    [5n, 1n, -120, 120],
    [3n, 2n, -45, 45],
  ])("t = %s/%s: 10^6 draws fit the pmf", (num, den, lo, hi) => {
    const draws = sampleDiscreteLaplaceBatch(num, den, N, seededUniformSource(`laplace-${num}/${den}`));
    const r = chiSquareOf(draws, (x) => discreteLaplacePmf(num, den, x), lo, hi);
    expect(r, JSON.stringify(r)).toMatchObject({ below: true });
  });

  it("the Number fast path draws exactly what the BigInt reference draws", () => {
    for (const [t, s] of [[1n, 1n], [5n, 1n], [3n, 2n], [1n, 7n], [1000n, 3n]] as const) {
      const fast = sampleDiscreteLaplaceBatch(t, s, 3000, seededUniformSource(`lap-lockstep-${t}/${s}`));
      const rng = seededUniformSource(`lap-lockstep-${t}/${s}`);
      const ref = BigInt64Array.from({ length: 3000 }, () => discreteLaplaceBig(rng, s, t));
      expect(fast).toEqual(ref);
    }
  });
});

describe("Poisson and Skellam (distributed noise)", () => {
  it("Poisson(7/3): 10^6 draws fit the pmf (halves and a remainder of 1/3)", () => {
    const rng = seededUniformSource("poisson-7/3");
    const draws = BigInt64Array.from({ length: N }, () => samplePoisson(7n, 3n, rng));
    const r = chiSquareOf(draws, (x) => poissonPmf(7n, 3n, x), 0, 30);
    expect(r, JSON.stringify(r)).toMatchObject({ below: true });
  });

  it.each([
    [2n, -20, 20],
    [50n, -80, 80],
  ])("Skellam μ = %s: 10^6 draws fit e^(−μ)·I_|k|(μ)", (mu, lo, hi) => {
    const draws = sampleSkellamBatch(mu, 1n, N, seededUniformSource(`skellam-${mu}`));
    const r = chiSquareOf(draws, (x) => skellamPmf(mu, 1n, x), lo, hi);
    expect(r, JSON.stringify(r)).toMatchObject({ below: true });
  });

  it("three parties' shares of Sk(20) sum to Sk(20): 10^6 sums fit the pmf", () => {
    const rngs = [0, 1, 2].map((p) => seededUniformSource(`party-${p}`));
    const shares = rngs.map((rng) => sampleSkellamShareBatch(20n, 1n, 3n, N, rng));
    const sums = new BigInt64Array(N);
    for (let i = 0; i < N; i++) sums[i] = (shares[0]?.[i] ?? 0n) + (shares[1]?.[i] ?? 0n) + (shares[2]?.[i] ?? 0n);
    const r = chiSquareOf(sums, (x) => skellamPmf(20n, 1n, x), -50, 50);
    expect(r, JSON.stringify(r)).toMatchObject({ below: true });
  });

  it("one party's share alone is Sk(μ/3), not Sk(μ): its chi-square against Sk(20) is far above the critical value", () => {
    const share = sampleSkellamShareBatch(20n, 1n, 3n, 100_000, seededUniformSource("party-alone"));
    const r = chiSquareOf(share, (x) => skellamPmf(20n, 1n, x), -50, 50);
    expect(r.statistic > 10 * r.critical).toBe(true);
  });
});

describe("Bernoulli(exp(−γ)) (CKS20 Algorithm 1)", () => {
  it.each([
    [0n, 1n, N],
    [1n, 3n, N],
    [1n, 1n, N],
    [7n, 5n, N],
    [5n, 2n, N],
    [10n, 1n, N],
    [10n ** 30n + 1n, 3n * 10n ** 30n, 200_000], // a γ ≈ 1/3 past 2^53: the BigInt path
  ])("γ = %s/%s: over %i draws the frequency of 1 has exp(−γ) inside its Wilson interval (z = 3.29, 99.9 per cent)", (num, den, n) => {
    const rng = seededUniformSource(`bexp-${num}/${den}`);
    let ones = 0;
    for (let i = 0; i < n; i++) if (sampleBernoulliExp(num, den, rng)) ones++;
    const p = Math.exp(-Number(num) / Number(den));
    const w = wilsonInterval(ones, n, 3.2905);
    expect({ ones, inside: w.low <= p && p <= w.high }).toEqual({ ones, inside: true });
  });
});

describe("the uniform source", () => {
  it("below(n) is uniform (chi-square, 10^6 draws) for n = 6, 1000 and 2^40 + 5 (two-word path, bucketed)", () => {
    const rng = seededUniformSource("below");
    for (const [n, buckets] of [[6, 6], [1000, 1000], [2 ** 40 + 5, 50]] as const) {
      const b = new BigInt64Array(N);
      for (let i = 0; i < N; i++) b[i] = BigInt(Math.floor((rng.below(n) * buckets) / n));
      const r = chiSquareTest(b, (x) => bucketMass(x, n, buckets), 0, buckets - 1);
      expect(r.statistic < r.critical, `n = ${n}: ${JSON.stringify(r)}`).toBe(true);
    }
  });

  it("belowBig(n) agrees with below(n) draw for draw up to 2^53 and stays below n beyond", () => {
    const a = seededUniformSource("agree");
    const b = seededUniformSource("agree");
    const bounds = [1, 2, 3, 255, 2 ** 32, 2 ** 32 + 1, 2 ** 53];
    for (let i = 0; i < 7000; i++) {
      const n = bounds[i % bounds.length] ?? 1;
      expect(BigInt(a.below(n))).toBe(b.belowBig(BigInt(n)));
    }
    const big = 3n * 2n ** 70n + 1n;
    const c = seededUniformSource("big");
    let top = 0;
    for (let i = 0; i < 3000; i++) {
      const v = c.belowBig(big);
      expect(v >= 0n && v < big).toBe(true);
      if (v >= 2n * 2n ** 70n) top++;
    }
    // P[v ≥ 2^71] ≈ 1/3: 3000 draws put it in [850, 1150] except with probability < 10^-6.
    expect(top > 850 && top < 1150).toBe(true);
  });

  it("the default source is node:crypto's: two fresh sources differ", () => {
    const a = sampleDiscreteGaussianBatch(1000n, 1n, 64, cryptoUniformSource());
    const b = sampleDiscreteGaussianBatch(1000n, 1n, 64);
    expect(a).not.toEqual(b);
  });
});

describe("neighbouring datasets: a likelihood-ratio test catches under-noising", () => {
  // Count query, sensitivity 1, claimed ε = 1: x = 100 and its neighbour x' = 101. The correct
  // mechanism adds Lap_Z(1) (pure ε-DP: every outcome's probability ratio is at most e^ε); the broken
  // one adds Lap_Z(1/2), whose ratio is e^2. For each outcome with ≥ 1000 draws under both inputs, the
  // test flags it when the lower Wilson bound (z = 4.5) of one frequency exceeds e^ε times the upper
  // bound of the other's.
  function violations(scaleNum: bigint, scaleDen: bigint, seed: string): number {
    const rng = seededUniformSource(seed);
    const count = (x: number) => {
      const m = new Map<number, number>();
      for (const d of sampleDiscreteLaplaceBatch(scaleNum, scaleDen, 400_000, rng)) {
        const y = x + Number(d);
        m.set(y, (m.get(y) ?? 0) + 1);
      }
      return m;
    };
    const p = count(100);
    const q = count(101);
    const n = 400_000;
    let flagged = 0;
    for (const [y, k] of p) {
      const k2 = q.get(y) ?? 0;
      if (k < 1000 || k2 < 1000) continue;
      const a = wilsonInterval(k, n, 4.5);
      const b = wilsonInterval(k2, n, 4.5);
      if (a.low > Math.E * b.high || b.low > Math.E * a.high) flagged++;
    }
    return flagged;
  }

  it("the correctly noised mechanism (Lap_Z(1/ε)) shows no violation", () => {
    expect(violations(1n, 1n, "ratio-correct")).toBe(0);
  });

  it("the under-noised mechanism (Lap_Z(1/(2ε))) is caught", () => {
    expect(violations(1n, 2n, "ratio-broken")).toBeGreaterThan(0);
  });
});

describe("bad arguments", () => {
  it.each([
    ["σ² = 0", () => sampleDiscreteGaussian(0n, 1n)],
    ["σ² < 0", () => sampleDiscreteGaussian(-4n, 1n)],
    ["σ² with denominator 0", () => sampleDiscreteGaussian(1n, 0n)],
    ["σ² = 1.5 (not an integer numerator)", () => sampleDiscreteGaussian(1.5, 1)],
    ["σ² as a string", () => sampleDiscreteGaussian("4" as unknown as bigint, 1n)],
    ["Laplace scale 0", () => sampleDiscreteLaplace(0n, 1n)],
    ["Laplace scale with NaN", () => sampleDiscreteLaplace(Number.NaN, 1)],
    ["γ < 0", () => sampleBernoulliExp(-1n, 2n)],
    ["Poisson mean above 2^24", () => samplePoisson(2n ** 24n + 1n, 1n)],
    ["Poisson mean < 0", () => samplePoisson(-1n, 1n)],
    ["Skellam μ = 0", () => sampleSkellam(0n, 1n)],
    ["Skellam share for 0 parties", () => sampleSkellamShare(10n, 1n, 0n)],
    ["a batch of −1", () => sampleDiscreteGaussianBatch(1n, 1n, -1)],
    ["a batch of 2.5", () => sampleSkellamBatch(1n, 1n, 2.5)],
    ["below(0)", () => seededUniformSource("x").below(0)],
    ["below(2^53 + 2)", () => seededUniformSource("x").below(2 ** 53 + 2)],
  ])("%s: InvalidArgumentError", (_what, f) => {
    expect(f).toThrow(InvalidArgumentError);
  });
});

function gcdNumber(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** P[⌊U·buckets/n⌋ = x] for U uniform on [0, n). */
function bucketMass(x: number, n: number, buckets: number): number {
  const first = Math.ceil((x * n) / buckets);
  const next = Math.ceil(((x + 1) * n) / buckets);
  return (next - first) / n;
}
