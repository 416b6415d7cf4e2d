/**
 * Goodness-of-fit statistics for engine/dp's tests: Pearson's chi-square
 * against an exact pmf over integer outcomes, with neighbouring outcomes
 * merged so every bin expects at least 5 (the tails go whole into the end
 * bins), the chi-square critical value computed from the regularised
 * incomplete gamma function (Numerical Recipes §6.2: series below a + 1,
 * Lentz's continued fraction above; Lanczos log-gamma, g = 7, n = 9), and
 * Wilson's score interval for a proportion. Floating point here is only
 * the test statistic, never a sampling decision.
 */

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0] ?? 0;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] ?? 0) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Q(a, x) = Γ(a, x)/Γ(a), the upper regularised incomplete gamma function. */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = -x + a * Math.log(x) - lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return 1 - sum * Math.exp(lnPre);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.exp(lnPre) * h;
}

/** The chi-square survival function P[χ²_df > x]. */
export function chiSquareSurvival(df: number, x: number): number {
  return gammaQ(df / 2, x / 2);
}

/** The x with P[χ²_df > x] = alpha (bisection to 1e-10). */
export function chiSquareCritical(df: number, alpha = 0.001): number {
  let lo = 0;
  let hi = df + 100 * Math.sqrt(2 * df) + 100;
  while (hi - lo > 1e-10 * hi) {
    const mid = (lo + hi) / 2;
    if (chiSquareSurvival(df, mid) > alpha) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface ChiSquareResult {
  readonly statistic: number;
  readonly df: number;
  readonly critical: number;
  readonly bins: number;
  readonly samples: number;
}

/**
 * Pearson's chi-square of integer samples against `pmf`, whose mass lies in
 * [lo, hi] but for tails too small to matter (choose [lo, hi] so: what
 * little mass is outside is split between the two end bins, which also
 * take the samples outside). Bins are runs of consecutive outcomes,
 * grown left to right until each expects ≥ 5; a short last bin joins its
 * neighbour. `critical` is the 0.001 critical value for df = bins − 1.
 */
export function chiSquareTest(samples: ArrayLike<bigint | number>, pmf: (x: number) => number, lo: number, hi: number, alpha = 0.001): ChiSquareResult {
  const n = samples.length;
  const width = hi - lo + 1;
  const binOf = new Int32Array(width);
  const expected: number[] = [];
  let acc = 0;
  let bin = 0;
  let interior = 0;
  for (let x = lo; x <= hi; x++) {
    const p = pmf(x);
    interior += p;
    acc += p * n;
    binOf[x - lo] = bin;
    if (acc >= 5) {
      expected.push(acc);
      acc = 0;
      bin++;
    }
  }
  // Outside [lo, hi]: left tail into bin 0, right tail into the last bin.
  const outside = Math.max(0, 1 - interior) * n;
  if (acc > 0 || expected.length === 0) {
    if (expected.length === 0) expected.push(acc);
    else {
      expected[expected.length - 1] = (expected[expected.length - 1] ?? 0) + acc;
      for (let x = hi; x >= lo && binOf[x - lo] === bin; x--) binOf[x - lo] = bin - 1;
    }
  }
  const last = expected.length - 1;
  expected[last] = (expected[last] ?? 0) + outside / 2;
  expected[0] = (expected[0] ?? 0) + outside / 2;
  const observed = new Float64Array(expected.length);
  for (let i = 0; i < n; i++) {
    const x = Number(samples[i]);
    const b = x < lo ? 0 : x > hi ? last : (binOf[x - lo] ?? 0);
    observed[b] = (observed[b] ?? 0) + 1;
  }
  let statistic = 0;
  for (let b = 0; b < expected.length; b++) {
    const e = expected[b] ?? 0;
    const d = (observed[b] ?? 0) - e;
    statistic += (d * d) / e;
  }
  const df = expected.length - 1;
  return { statistic, df, critical: chiSquareCritical(df, alpha), bins: expected.length, samples: n };
}

/** Wilson's score interval for k successes in n trials at normal quantile z. */
export function wilsonInterval(k: number, n: number, z: number): { low: number; high: number } {
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: centre - half, high: centre + half };
}
