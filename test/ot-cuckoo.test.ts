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
    [0, 308, 12],
    [256, 308, 12],
    [257, 309, 12],
    [4095, 4914, 12],
    [4096, 4916, 6],
    [65_536, 78_644, 4],
    [1_000_000, 1_200_000, 4],
    [2 ** 20, 1_258_292, 3],
    [2 ** 24, 20_132_660, 2],
  ])("n = %i: %i bins, stash %i", (n, bins, stash) => {
    const p = cuckooParams(n);
    expect([p.bins, p.stash, p.rows]).toEqual([bins, stash, bins + stash]);
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
