/**
 * engine/dp's accounting (issue 13, item 1's bookkeeping) against known
 * answers: the discrete Gaussian's ρ = Δ²/(2σ²) exactly (CKS20 Theorem 4);
 * the ρ → (ε, δ) conversion of CKS20 §2.3 against values computed
 * independently at 30 digits (mpmath, optimising α) — δ(ρ = 0.025, ε = 1),
 * δ(0.5, 3), ε(0.025, δ = 10^-6) (Steinke's cdp2adp example), ε(0.5, 10^-5);
 * AKL21's Skellam Rényi bound by hand at α = 2 and the resulting ε over
 * integer orders; the pmfs against e^(−μ)I_k(μ) and the discrete Gaussian's
 * exact sums; 95% intervals by hand; bad arguments refused.
 */
import { describe, expect, it } from "vitest";
import {
  deltaFromRho,
  discreteGaussianNormalizer,
  discreteGaussianPmf,
  discreteGaussianRho,
  discreteLaplacePmf,
  epsilonFromRdp,
  epsilonFromRho,
  InvalidArgumentError,
  noiseHalfWidth,
  noisyValueInterval,
  poissonPmf,
  rational,
  skellamEpsilon,
  skellamPmf,
  skellamRdp,
  skellamRho,
} from "../engine/index.js";

const close = (got: number, want: number, rel = 1e-9) => Math.abs(got - want) <= rel * Math.abs(want);

describe("ρ of the discrete Gaussian: Δ²/(2σ²), exact", () => {
  it.each([
    [1n, 10n, 1n, { num: 1n, den: 20n }],
    [3n, 9n, 2n, { num: 1n, den: 1n }],
    [2n, 7n, 3n, { num: 6n, den: 7n }],
    [0n, 5n, 1n, { num: 0n, den: 1n }],
  ])("Δ = %s, σ² = %s/%s", (d, n, m, want) => {
    expect(discreteGaussianRho(d, n, m)).toEqual(want);
  });
});

describe("ρ-zCDP → (ε, δ) (CKS20 §2.3, Corollary 13)", () => {
  it("δ(ρ, ε) matches the 30-digit optimum", () => {
    expect([close(deltaFromRho(0.025, 1), 1.3361319064032224e-6, 1e-7), close(deltaFromRho(0.5, 3), 5.143184063862149e-3, 1e-7)]).toEqual([true, true]);
  });

  it("ε(ρ, δ) matches the 30-digit optimum and is never below it", () => {
    const a = epsilonFromRho(0.025, 1e-6);
    const b = epsilonFromRho(0.5, 1e-5);
    expect([close(a, 1.014074254726128, 1e-9), close(b, 4.728386984943314, 1e-9), a >= 1.014074254726127, b >= 4.728386984943313]).toEqual([true, true, true, true]);
  });

  it("ρ = 0 costs nothing; a larger ρ never costs less", () => {
    expect([deltaFromRho(0, 1), epsilonFromRho(0, 1e-6), epsilonFromRho(0.1, 1e-6) < epsilonFromRho(0.2, 1e-6)]).toEqual([0, 0, true]);
  });

  it("one Rényi order: ε = τ + ln(1 − 1/α) − (ln α + ln δ)/(α − 1), by hand at α = 2, τ = 1, δ = e^−10", () => {
    // 1 + ln(1/2) − (ln 2 − 10) = 11 − 2 ln 2
    expect(close(epsilonFromRdp(2, 1, Math.exp(-10)), 11 - 2 * Math.LN2, 1e-12)).toBe(true);
  });
});

describe("Skellam accounting (AKL21 §3)", () => {
  it("τ(α = 2) for μ = 100, Δ = 1 by hand: 2/200 + min(9/40000, 3/200) = 0.010225; ρ is that", () => {
    const s = { l1: 1, l2: 1 };
    expect([close(skellamRdp(2, 100n, 1n, s), 0.010225, 1e-12), close(skellamRho(100n, 1n, s), 0.010225, 1e-12)]).toEqual([true, true]);
  });

  it("the second branch of the min: μ = 1, Δ = 1, α = 5: 5/2 + min(15/4, 3/2) = 4", () => {
    expect(close(skellamRdp(5, 1n, 1n, { l1: 1, l2: 1 }), 4, 1e-12)).toBe(true);
  });

  it("ε at δ = 10^-5 over integer orders matches the 30-digit computation (μ = 100: 0.37742 at α = 40; μ = 10: 1.39100 at α = 14)", () => {
    const s = { l1: 1, l2: 1 };
    expect([close(skellamEpsilon(100n, 1n, s, 1e-5), 0.3774237563966407, 1e-9), close(skellamEpsilon(10n, 1n, s, 1e-5), 1.3909972690274296, 1e-9)]).toEqual([true, true]);
  });

  it("the ε from the Rényi curve is below the one from the conservative ρ", () => {
    const s = { l1: 1, l2: 1 };
    expect(skellamEpsilon(100n, 1n, s, 1e-5) < epsilonFromRho(skellamRho(100n, 1n, s), 1e-5)).toBe(true);
  });
});

describe("pmfs", () => {
  it("Skellam: e^(−μ)·I_k(μ) at 30 digits", () => {
    const want: [bigint, number, number][] = [
      [2n, 0, 0.30850832255367104],
      [2n, 1, 0.21526928924893766],
      [2n, -3, 0.028791222639470898],
      [50n, 0, 0.056561626647454193],
      [50n, 10, 0.020668428584210586],
    ];
    expect(want.map(([mu, k, p]) => close(skellamPmf(mu, 1n, k), p, 1e-12))).toEqual(want.map(() => true));
  });

  it("each pmf sums to 1", () => {
    const sum = (f: (x: number) => number, lo: number, hi: number) => {
      let s = 0;
      for (let x = lo; x <= hi; x++) s += f(x);
      return s;
    };
    const sums = [
      sum((x) => discreteGaussianPmf(1n, 3n, x), -20, 20),
      sum((x) => discreteGaussianPmf(1000n, 1n, x), -1000, 1000),
      sum((x) => discreteLaplacePmf(5n, 2n, x), -200, 200),
      sum((x) => poissonPmf(7n, 3n, x), 0, 60),
      sum((x) => skellamPmf(50n, 1n, x), -200, 200),
    ];
    expect(sums.map((s) => close(s, 1, 1e-12))).toEqual(sums.map(() => true));
  });

  it("the discrete Gaussian's normaliser by the theta identity equals the direct sum", () => {
    let direct = 0;
    for (let y = -200; y <= 200; y++) direct += Math.exp((-y * y) / (2 * 7.5));
    expect(close(discreteGaussianNormalizer(7.5), direct, 1e-14)).toBe(true);
  });
});

describe("95% intervals for a released value", () => {
  it("half-widths by hand: N_Z(0, 1) → 2 (P[|Z| ≤ 1] = 0.8829, ≤ 2: 0.9909); Lap_Z(1) → 3 (1 − 1.4621·e^−(w+1)); Sk(2) → 3; Sk(50) → 14", () => {
    const got = [
      noiseHalfWidth({ kind: "discrete-gaussian", sigma2: rational(1n, 1n, "σ²") }),
      noiseHalfWidth({ kind: "discrete-laplace", scale: rational(1n, 1n, "t") }),
      noiseHalfWidth({ kind: "skellam", mu: rational(2n, 1n, "μ") }),
      noiseHalfWidth({ kind: "skellam", mu: rational(50n, 1n, "μ") }),
    ];
    expect(got).toEqual([2n, 3n, 3n, 14n]);
  });

  it("a released value's interval is value ± the half-width", () => {
    expect(noisyValueInterval(100n, { kind: "discrete-gaussian", sigma2: rational(1n, 1n, "σ²") })).toEqual({ low: 98n, high: 102n, halfWidth: 2n, level: 0.95 });
  });
});

describe("bad arguments", () => {
  it.each([
    ["negative sensitivity", () => discreteGaussianRho(-1n, 1n, 1n)],
    ["σ² = 0", () => discreteGaussianRho(1n, 0n, 1n)],
    ["δ = 0", () => epsilonFromRho(0.1, 0)],
    ["δ = 1", () => epsilonFromRho(0.1, 1)],
    ["ρ < 0", () => deltaFromRho(-0.1, 1)],
    ["ε < 0", () => deltaFromRho(0.1, -1)],
    ["a fractional Skellam order", () => skellamRdp(2.5, 10n, 1n, { l1: 1, l2: 1 })],
    ["order 1", () => skellamRdp(1, 10n, 1n, { l1: 1, l2: 1 })],
    ["a negative L1 sensitivity", () => skellamRho(10n, 1n, { l1: -1, l2: 1 })],
    ["Skellam μ = 0", () => skellamRho(0n, 1n, { l1: 1, l2: 1 })],
    ["level 1", () => noiseHalfWidth({ kind: "skellam", mu: rational(2n, 1n, "μ") }, 1)],
    ["a non-integer released value", () => noisyValueInterval(1.5, { kind: "skellam", mu: rational(2n, 1n, "μ") })],
  ])("%s: InvalidArgumentError", (_what, f) => {
    expect(f).toThrow(InvalidArgumentError);
  });
});
