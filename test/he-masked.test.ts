/**
 * engine/he: encrypted per-group selection sums (maskedBlockSums,
 * blockTotals, sliceBlocks, addAll, CryptoPool.heMaskedGroupSums) against
 * the same sums in BigInt, on one thread and across workers, with the
 * refusals (bad masks, other key sets, row bounds) as typed errors; the
 * zero-sum masks and int64 residues of engine/he/block-residues.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "./helpers/data.js";
import { bfvFixture } from "./helpers/he.js";
import { BoundExceededError, CryptoPool, InvalidArgumentError, InvalidInputError, KeyMismatchError, NoiseBudgetExhaustedError, residuesOf, zeroSumMasks, type HeContext, type HeContextOptions, type HeGaloisKeys, type HeKeyBytes } from "../engine/index.js";
import { InvalidLengthError } from "../engine/errors.js";


/** Uniform in [−bound, bound] (bound < 2^53), with zeros and ±bound mixed in. */
function randomColumn(next: () => number, length: number, bound: bigint): BigInt64Array {
  const out = new BigInt64Array(length);
  const b = Number(bound);
  for (let i = 0; i < length; i++) {
    const r = next();
    if (r < 0.1) out[i] = 0n;
    else if (r < 0.2) out[i] = bound;
    else if (r < 0.3) out[i] = -bound;
    else out[i] = BigInt(Math.floor(next() * (2 * b + 1)) - b);
  }
  return out;
}

/**
 * Groups of every kind: empty; everything (weight 1); random 0/1; weights
 * 0/1/2/7 mixed; weight 7 on every slot holding +V (a large total); then
 * random 0/1 for the rest.
 */
function groupMasks(next: () => number, x: BigInt64Array, bound: bigint, groups: number): Uint32Array[] {
  const n = x.length;
  const weights = [0, 1, 2, 7];
  const kinds: ((i: number) => number)[] = [
    () => 0,
    () => 1,
    () => (next() < 0.5 ? 1 : 0),
    () => weights[Math.floor(next() * 4)] as number,
    (i) => (x[i] === bound ? 7 : 0),
  ];
  return Array.from({ length: groups }, (_, g) => {
    const kind = kinds[g] ?? kinds[2]!;
    return Uint32Array.from({ length: n }, (_, i) => kind(i));
  });
}

/** The oracle: T_g = Σ_s w_g[s]·x[s] in BigInt. */
function groupTotals(x: BigInt64Array, masks: readonly Uint32Array[]): bigint[] {
  return masks.map((m) => {
    let t = 0n;
    for (let i = 0; i < x.length; i++) if (m[i] !== 0) t += BigInt(m[i] as number) * (x[i] as bigint);
    return t;
  });
}

/** Block g of maskedBlockSums in BigInt: slot i = Σ_b w_g[bN + i]·x[bN + i]. */
function maskedBlocks(x: BigInt64Array, masks: readonly Uint32Array[], n: number): bigint[] {
  const out: bigint[] = [];
  for (const m of masks) {
    const block = new Array<bigint>(n).fill(0n);
    for (let s = 0; s < x.length; s++) if (m[s] !== 0) block[s % n] = (block[s % n] as bigint) + BigInt(m[s] as number) * (x[s] as bigint);
    out.push(...block);
  }
  return out;
}

/** Deep equality of typed arrays by their bytes (expect().toEqual walks them element by element: seconds for megabytes). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const V4 = 2n ** 40n;
const options4: HeContextOptions = { maxAbsValue: V4, maxRows: 4096, maxLength: 8 * 4096 };

describe("masked group sums, N = 4096", () => {
  let ctx: HeContext;
  let keys: HeKeyBytes;
  let gk: HeGaloisKeys;

  const he = bfvFixture(options4);
  beforeAll(() => void ({ ctx, keys, gk } = he));

  it("sliceBlocks cuts whole blocks (the last one partial) and concat joins them back", () => {
    const next = mulberry32(1);
    const x = randomColumn(next, 2 * 4096 + 123, V4);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const parts = [ctx.sliceBlocks(ct, 0, 1), ctx.sliceBlocks(ct, 1, 3)];
    expect(parts.map((p) => ctx.inspect(p))).toMatchObject([
      { length: 4096, blocks: 1, rows: 1 },
      { length: 4096 + 123, blocks: 2, rows: 1 },
    ]);
    expect(ctx.decryptSums(parts[1] as Uint8Array, keys.secretKey)).toEqual(Array.from(x.subarray(4096)));
    expect(ctx.decryptSums(ctx.concat(parts), keys.secretKey)).toEqual(Array.from(x));
    for (const [a, b] of [[0, 0], [2, 1], [-1, 1], [0, 4], [0.5, 1]] as const) expect(() => ctx.sliceBlocks(ct, a, b)).toThrow(InvalidArgumentError);
  });

  it.each([
    ["one partial block", 1000, 3],
    ["one full block", 4096, 2],
    ["three blocks, the last partial", 2 * 4096 + 77, 5],
  ])("maskedBlockSums is exact: %s, %i values, %i groups", (_, length, groups) => {
    const next = mulberry32(length);
    const x = randomColumn(next, length, V4);
    const masks = groupMasks(next, x, V4, groups);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const sums = ctx.maskedBlockSums(ct, masks, 4096);
    expect(ctx.inspect(sums)).toMatchObject({ length: groups * 4096, blocks: groups, rows: 4096 });
    expect(ctx.decryptSums(sums, keys.secretKey)).toEqual(maskedBlocks(x, masks, 4096));
  });

  it("blockTotals places each block's total in its slot (fresh blocks; after re-randomisation)", () => {
    const next = mulberry32(2);
    const x = randomColumn(next, 3 * 4096, V4);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const want = [0, 1, 2].map((g) => x.subarray(g * 4096, (g + 1) * 4096).reduce((s, v) => s + v, 0n));
    const totals = ctx.blockTotals(ct, gk, 4096);
    expect(ctx.inspect(totals)).toMatchObject({ length: 3, blocks: 1, rows: 4096 });
    expect(ctx.decryptSums(ctx.reRandomize(totals, keys.publicKey), keys.secretKey)).toEqual(want);
    // Placed parts add into one column.
    const a = ctx.blockTotals(ctx.sliceBlocks(ct, 0, 1), keys.galoisKeys as Uint8Array, 4096, { first: 0, length: 3 });
    const b = ctx.blockTotals(ctx.sliceBlocks(ct, 1, 3), gk, 4096, { first: 1, length: 3 });
    const joined = ctx.addAll([a, b], 4096);
    expect(ctx.inspect(joined).rows).toBe(4096);
    expect(ctx.decryptSums(joined, keys.secretKey)).toEqual(want);
    expect(() => ctx.blockTotals(ct, gk, 4096, { first: 1, length: 3 })).toThrow(InvalidArgumentError);
    expect(() => ctx.blockTotals(ct, gk, 4096, { length: 4097 })).toThrow(InvalidArgumentError);
    // Not whole blocks.
    expect(() => ctx.blockTotals(ctx.encryptColumn(Int32Array.of(1, 2), keys.publicKey), gk, 1)).toThrow(InvalidArgumentError);
  });

  it("at N = 4096 a masked sum has no budget left for the placement: decryption refuses it", () => {
    const x = Int32Array.from({ length: 100 }, (_, i) => i);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const sums = ctx.maskedBlockSums(ct, [Uint32Array.from(x, () => 1)], 100);
    expect(() => ctx.decryptSums(ctx.blockTotals(sums, gk, 100), keys.secretKey)).toThrow(NoiseBudgetExhaustedError);
  });

  it("addAll: one load and save per component; rows default to the sum of the parts' bounds", () => {
    const x = Int32Array.of(5, -7, 11);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const sum = ctx.addAll([ct, ct, ct]);
    expect(ctx.inspect(sum).rows).toBe(3);
    expect(ctx.decryptSums(sum, keys.secretKey)).toEqual([15n, -21n, 33n]);
    expect(ctx.inspect(ctx.addAll([ct, ct], 1)).rows).toBe(1);
    expect(() => ctx.addAll([])).toThrow(InvalidArgumentError);
    expect(() => ctx.addAll([ct, ctx.encryptColumn(Int32Array.of(1), keys.publicKey)])).toThrow(InvalidInputError);
    expect(() => ctx.addAll([ct], 4097)).toThrow(BoundExceededError);
    const other = ctx.generateKeys({ galois: false });
    expect(() => ctx.addAll([ct, ctx.encryptColumn(x, other.publicKey)])).toThrow(KeyMismatchError);
  });

  it("refuses bad masks before any work, naming the mask and slot but no weight; nothing changes", () => {
    const x = Int32Array.from({ length: 5000 }, (_, i) => i - 2500);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const before = ct.slice();
    const good = new Uint32Array(5000).fill(1);
    const big = new Uint32Array(5000);
    const limit = Math.min(...ctx.params.plainModuli);
    big[4321] = limit;
    const bigCopy = big.slice();
    expect(() => ctx.maskedBlockSums(ct, [], 1)).toThrow(InvalidArgumentError);
    expect(() => ctx.maskedBlockSums(ct, [good, new Uint32Array(4999)], 1)).toThrow(InvalidLengthError);
    expect(() => ctx.maskedBlockSums(ct, [good, new Uint8Array(5000) as unknown as Uint32Array], 1)).toThrow(InvalidArgumentError);
    expect(() => ctx.maskedBlockSums(ct, [Array.from(good) as unknown as Uint32Array], 1)).toThrow(InvalidArgumentError);
    expect(() => ctx.maskedBlockSums(ct, "masks" as unknown as Uint32Array[], 1)).toThrow(InvalidArgumentError);
    let error: unknown;
    try {
      ctx.maskedBlockSums(ct, [good, big], 5000);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/mask 1\b.*slot 4321\b/);
    expect((error as Error).message).not.toContain(String(limit));
    big[4321] = limit - 1; // the largest allowed weight
    expect(ctx.inspect(ctx.maskedBlockSums(ct, [big], 4096)).blocks).toBe(1);
    big[4321] = limit;
    // More groups than maxLength has blocks for.
    expect(() => ctx.maskedBlockSums(ct, Array.from({ length: 9 }, () => good), 1)).toThrow(InvalidArgumentError);
    expect(sameBytes(ct, before)).toBe(true);
    expect(sameBytes(big, bigCopy)).toBe(true);
  });

  it("refuses other key sets and row bounds past maxRows", () => {
    const ct = ctx.encryptColumn(Int32Array.from({ length: 4096 }, (_, i) => i), keys.publicKey);
    const mask = new Uint32Array(4096).fill(1);
    const sums = ctx.maskedBlockSums(ct, [mask], 4096);
    const other = ctx.generateKeys();
    expect(() => ctx.blockTotals(sums, other.galoisKeys as Uint8Array, 4096)).toThrow(KeyMismatchError);
    expect(() => ctx.maskedBlockSums(ct, [mask], 4097)).toThrow(BoundExceededError);
    expect(() => ctx.blockTotals(sums, gk, 4097)).toThrow(BoundExceededError);
    for (const rows of [0, 1.5, Number.NaN]) {
      expect(() => ctx.maskedBlockSums(ct, [mask], rows)).toThrow(InvalidArgumentError);
      expect(() => ctx.blockTotals(sums, gk, rows)).toThrow(InvalidArgumentError);
    }
  });
});

describe("masked group sums, N = 8192, one thread and the pool", () => {
  const V8 = 2n ** 30n;
  const options8: HeContextOptions = { maxAbsValue: V8, maxRows: 2 ** 20, maxLength: 8 * 8192 };
  let ctx: HeContext;
  let keys: HeKeyBytes;
  const pool = new CryptoPool({ threads: 2, inlineBelow: 0 });

  const he = bfvFixture(options8);
  beforeAll(() => void ({ ctx, keys } = he));
  afterAll(() => pool.close());

  it("T_g is exact on one thread and the same from the pool; typed refusals from the workers", async () => {
    expect(ctx.params.polyModulusDegree).toBe(8192);
    const next = mulberry32(8);
    const length = 2 * 8192 + 77;
    const x = randomColumn(next, length, V8);
    // Two more groups whose totals are ±maxTotal exactly: one row of ±V weighted maxRows times.
    const extreme = (v: bigint): Uint32Array => {
      const m = new Uint32Array(length);
      m[x.lastIndexOf(v)] = 2 ** 20;
      return m;
    };
    const masks = [...groupMasks(next, x, V8, 6), extreme(V8), extreme(-V8)];
    // rows = maxRows: the bound of the largest group (the parts' bounds, added, would pass it).
    const rows = 2 ** 20;
    const want = groupTotals(x, masks);
    expect(want[0]).toBe(0n);
    expect(want[4]).toBe(7n * V8 * BigInt(x.filter((v) => v === V8).length));
    expect(want.slice(6)).toEqual([ctx.params.maxTotal, -ctx.params.maxTotal]);
    const ct = ctx.encryptColumn(x, keys.publicKey);

    const sums = ctx.maskedBlockSums(ct, masks, rows);
    const totals = ctx.blockTotals(sums, keys.galoisKeys as Uint8Array, rows);
    const single = ctx.reRandomize(totals, keys.publicKey);
    expect(ctx.decryptSums(single, keys.secretKey)).toEqual(want);

    const progress: [number, number][] = [];
    const pooled = await pool.heMaskedGroupSums(options8, ct, masks, keys.galoisKeys as Uint8Array, keys.publicKey, rows, {
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(ctx.inspect(pooled)).toEqual(ctx.inspect(single));
    expect(ctx.decryptSums(pooled, keys.secretKey)).toEqual(want);
    expect(progress.at(-1)).toEqual([3 + 8, 3 + 8]);

    // One block; fewer groups than workers.
    const one = x.slice(0, 8192);
    const oneMasks = masks.slice(3, 4).map((m) => m.slice(0, 8192));
    const r1 = await pool.heMaskedGroupSums(options8, ctx.encryptColumn(one, keys.publicKey), oneMasks, keys.galoisKeys as Uint8Array, keys.publicKey, 7 * 8192);
    expect(ctx.decryptSums(r1, keys.secretKey)).toEqual(groupTotals(one, oneMasks));

    // Refusals: on the host (masks, rows), from a worker (another key set's Galois keys).
    const ctCopy = ct.slice();
    const masksCopy = masks.map((m) => m.slice());
    const bad = masks.map((m) => m.slice());
    (bad[2] as Uint32Array)[length - 1] = Math.min(...ctx.params.plainModuli);
    await expect(pool.heMaskedGroupSums(options8, ct, bad, keys.galoisKeys as Uint8Array, keys.publicKey, rows)).rejects.toThrow(/mask 2\b.*slot 16460\b/);
    await expect(pool.heMaskedGroupSums(options8, ct, [masks[0]!.subarray(1)], keys.galoisKeys as Uint8Array, keys.publicKey, rows)).rejects.toBeInstanceOf(InvalidLengthError);
    await expect(pool.heMaskedGroupSums(options8, ct, masks, keys.galoisKeys as Uint8Array, keys.publicKey, 2 ** 20 + 1)).rejects.toBeInstanceOf(BoundExceededError);
    const other = ctx.generateKeys();
    const small = ctx.encryptColumn(one, keys.publicKey);
    await expect(pool.heMaskedGroupSums(options8, small, oneMasks, other.galoisKeys as Uint8Array, keys.publicKey, 8192)).rejects.toBeInstanceOf(KeyMismatchError);
    await expect(pool.heMaskedGroupSums(options4, ct, masks, keys.galoisKeys as Uint8Array, keys.publicKey, rows)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(sameBytes(ct, ctCopy)).toBe(true);
    expect(masks.every((m, g) => sameBytes(m, masksCopy[g] as Uint32Array))).toBe(true);
  });

  it("heMaskedBlockSums over a column's parts (the chunks it arrived in) gives the blocks over the whole column, the parts untouched", async () => {
    const next = mulberry32(9);
    const length = 2 * 8192 + 77;
    const x = randomColumn(next, length, V8);
    const masks = groupMasks(next, x, V8, 3);
    const ct = ctx.encryptColumn(x, keys.publicKey);
    const parts = [ctx.sliceBlocks(ct, 0, 1), ctx.sliceBlocks(ct, 1, 3)];
    const copies = parts.map((p) => p.slice());
    const sums = await pool.heMaskedBlockSums(options8, parts, masks, 7 * length);
    expect({ blocks: ctx.decryptSums(sums, keys.secretKey), untouched: parts.every((p, i) => sameBytes(p, copies[i] as Uint8Array)) }).toEqual({
      blocks: maskedBlocks(x, masks, 8192),
      untouched: true,
    });
  });

  it("heEncryptInt64Parts gives parts of whole blocks that decrypt to the column", async () => {
    const x = randomColumn(mulberry32(10), 3 * 8192 + 5, V8);
    const parts = await pool.heEncryptInt64Parts(options8, keys.publicKey, x, { level: "mask", blocksPerPart: 2 });
    expect({ blocks: parts.map((p) => ctx.inspect(p).blocks), values: ctx.decryptSums(ctx.concat(parts), keys.secretKey) }).toEqual({ blocks: [2, 2], values: Array.from(x) });
  });
});

describe("block residues: zero-sum masks and int64 residues (engine/he/block-residues)", () => {
  const primes = [1_032_193, 1_073_153, 1_097_729];
  /** A seeded byte source, so a mask replays exactly. */
  const seeded = (seed: number) => {
    const next = mulberry32(seed);
    return (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
  };

  it("every block of every prime sums to 0 modulo the prime, every slot in [0, p); a seeded source replays the mask", () => {
    const n = 64;
    const masks = zeroSumMasks(primes, 5, n, seeded(7));
    expect(masks.length).toBe(primes.length);
    masks.forEach((m, j) => {
      const p = primes[j] as number;
      expect(m.length).toBe(5 * n);
      for (let b = 0; b < 5; b++) {
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const v = m[b * n + i] as number;
          expect(v).toBeLessThan(p);
          sum = (sum + v) % p;
        }
        expect(sum).toBe(0);
      }
    });
    expect(zeroSumMasks(primes, 5, n, seeded(7))).toEqual(masks);
    expect(zeroSumMasks(primes, 5, n, seeded(8))).not.toEqual(masks);
    // The default source: fresh masks each call, still summing to zero.
    const fresh = zeroSumMasks(primes, 2, n);
    expect(fresh).not.toEqual(zeroSumMasks(primes, 2, n));
    for (const [j, m] of fresh.entries()) expect(Array.from(m.subarray(0, n)).reduce((a, v) => (a + v) % (primes[j] as number), 0)).toBe(0);
  });

  it("residuesOf gives value mod p in [0, p) for signed 64-bit values, over [from, to)", () => {
    const values = BigInt64Array.from([0n, 1n, -1n, (1n << 63n) - 1n, -(1n << 63n), 123_456_789_012n, -987_654_321n]);
    const r = residuesOf(values, 1, values.length, primes);
    primes.forEach((p, j) => {
      const want = Array.from(values.subarray(1)).map((v) => Number(((v % BigInt(p)) + BigInt(p)) % BigInt(p)));
      expect(Array.from(r[j] as Uint32Array)).toEqual(want);
    });
  });
});
