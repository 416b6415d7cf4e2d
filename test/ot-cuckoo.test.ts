/**
 * engine/psi/cuckoo: the parameter table (refusing sizes past it), the
 * false-positive bound of 96-bit tags, digests deterministic in the seed,
 * insertion that places every element exactly once in one of its bins or
 * the stash (or refuses with HashingFailedError), and simple hashing's
 * queries.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CUCKOO_HASHES,
  CUCKOO_MAX_ITEMS,
  CUCKOO_TABLE,
  cuckooInsert,
  cuckooParams,
  falsePositiveLog2,
  HashingFailedError,
  itemDigests,
  loadBlake2b,
  packStrings,
  simpleHashQueries,
  TAG_BYTES,
  UnsupportedSizeError,
} from "../engine/index.js";

const range = (n: number, tag: string) => packStrings(Array.from({ length: n }, (_, i) => `${tag}-${i}`));

describe("cuckoo parameters", () => {
  it.each([
    [0, 6063],
    [4096, 6063],
    [4097, 6105],
    [8192, 12_207],
    [65_536, 98_960],
    [1_000_000, 1_540_000],
    [2 ** 20, 1_614_808],
    [2 ** 24, 26_508_002],
  ])("n = %i: %i bins and no stash", (n, bins) => {
    const p = cuckooParams(n);
    expect([p.bins, p.stash, p.rows]).toEqual([bins, 0, bins]);
  });

  it("the table's expansions solve the fitted failure law λ = a·e + b for λ ≥ 40 (PSWW18)", () => {
    // a = 123.5/2 · (1 + erf((log2 n − 6.3)/(2.3√2))), b = −130/2 · (1 + erf((log2 n − 6.45)/(2.18√2))) − log2 n.
    const erf = (x: number): number => {
      // Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), plenty against the 0.01 rounding.
      const t = 1 / (1 + 0.3275911 * Math.abs(x));
      const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
      return x >= 0 ? y : -y;
    };
    const lambda = CUCKOO_TABLE.map((p) => {
      const nn = Math.log2(p.n);
      const a = (123.5 / 2) * (1 + erf((nn - 6.3) / (2.3 * Math.SQRT2)));
      const b = (-130 / 2) * (1 + erf((nn - 6.45) / (2.18 * Math.SQRT2))) - nn;
      return a * p.expansion + b;
    });
    expect([Math.min(...lambda) >= 40, Math.min(...lambda) < 41.3, CUCKOO_TABLE.every((p) => p.stash === 0)]).toEqual([true, true, true]);
  });

  it("refuses more than 2^24 elements with UnsupportedSizeError", () => {
    expect(() => cuckooParams(CUCKOO_MAX_ITEMS + 1)).toThrow(UnsupportedSizeError);
  });

  it("96-bit tags keep a false match ≤ 2^-40 at every table size, both sides that size", () => {
    expect(Math.max(...CUCKOO_TABLE.map((p) => falsePositiveLog2(cuckooParams(p.n), p.n, TAG_BYTES * 8)))).toBeLessThanOrEqual(-40);
  });
});

describe("digests and insertion", () => {
  it("digests are deterministic in the seed and differ between seeds", async () => {
    const hash = await loadBlake2b();
    const keys = range(500, "k");
    const seed = randomBytes(16);
    const a = itemDigests(hash, keys, seed, 1000);
    const b = itemDigests(hash, keys, Uint8Array.from(seed), 1000);
    const c = itemDigests(hash, keys, randomBytes(16), 1000);
    expect([Buffer.compare(a.blocks, b.blocks), a.positions.join() === b.positions.join(), Buffer.compare(a.blocks, c.blocks) !== 0]).toEqual([0, true, true]);
  });

  it.each([1, 256, 257, 5000, 40_000])("%i elements: each placed once, in one of its bins or the stash", async (n) => {
    const hash = await loadBlake2b();
    const params = cuckooParams(n);
    const seed = randomBytes(16);
    const d = itemDigests(hash, range(n, "e"), seed, params.bins);
    const t = cuckooInsert(d.positions, params, seed);
    const seen = new Uint8Array(n);
    let wrongBin = 0;
    for (let b = 0; b < params.bins; b++) {
      const e = t.bins[b] as number;
      if (e < 0) continue;
      seen[e]!++;
      if (d.positions[e * CUCKOO_HASHES + (t.binHash[b] as number)] !== b) wrongBin++;
    }
    for (const e of t.stash) if (e >= 0) seen[e]!++;
    expect([wrongBin, seen.every((c) => c === 1)]).toEqual([0, true]);
  });

  it("insertion replays from the seed", async () => {
    const hash = await loadBlake2b();
    const params = cuckooParams(3000);
    const seed = randomBytes(16);
    const d = itemDigests(hash, range(3000, "e"), seed, params.bins);
    expect(cuckooInsert(d.positions, params, seed).bins).toEqual(cuckooInsert(d.positions, params, seed).bins);
  });

  it("the insertion fails no more often than the fitted law says, where failures are common enough to count", () => {
    // n = 2^12 at e = 1.168, where the law gives λ = 2: failure ≈ 2^-2, about 500 of 2,000 tables.
    // (Measured: none fails — the law is conservative for this insertion, at most 1,000 evictions per element.)
    const n = 4096;
    const params = { n, bins: Math.ceil(1.168 * n), stash: 0, rows: Math.ceil(1.168 * n) };
    let x = 0x2545f491;
    const next = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
    let failed = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      const positions = Uint32Array.from({ length: n * CUCKOO_HASHES }, () => Math.floor(next() * params.bins));
      try {
        cuckooInsert(positions, params, Uint8Array.of(t & 255, t >>> 8, 1, 0));
      } catch (e) {
        if (!(e instanceof HashingFailedError)) throw e;
        failed++;
      }
    }
    expect(failed).toBeLessThanOrEqual(trials / 4);
  });

  it("more elements sharing three bins than bins and stash can hold: HashingFailedError", () => {
    const params = cuckooParams(16);
    const positions = new Uint32Array(16 * CUCKOO_HASHES).map((_, i) => i % CUCKOO_HASHES);
    expect(() => cuckooInsert(positions, params, randomBytes(16))).toThrow(HashingFailedError);
  });

  it("simple hashing: 3 + stash queries per element, rows in range", async () => {
    const hash = await loadBlake2b();
    const params = cuckooParams(1000);
    const d = itemDigests(hash, range(700, "s"), randomBytes(16), params.bins);
    const q = simpleHashQueries(d, params);
    expect([q.rowOf.length, Math.max(...q.rowOf) < params.rows]).toEqual([700 * (CUCKOO_HASHES + params.stash), true]);
  });
});
