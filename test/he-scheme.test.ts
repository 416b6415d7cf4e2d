/**
 * engine/he's one scheme interface, the same suite run against each
 * implementation (BFV, CKKS): keys and their key-set id, pairwise masks
 * that cancel in the sum of three parties' ciphertexts, the headers a sum
 * and its re-randomisation record, decryption against the plaintext sum,
 * the other scheme's frames and corrupted bytes refused with typed errors,
 * and the mask arithmetic of masks.ts on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bfvScheme,
  ckksScheme,
  createCkksContext,
  createHeContext,
  createHeScheme,
  HeSchemeName,
  InvalidCiphertextError,
  maskedReals,
  maskedResidues,
  ParameterMismatchError,
  schemeOfFrame,
  uniformReals,
  uniformResidues,
  type HeScheme,
  type HeSchemeOptions,
  type PairMask,
  type WordStream,
} from "../engine/he/index.js";
import { rng } from "./helpers/data.js";

/** A seeded word stream: the two members of a pair build it from the same seed. */
const words = (seed: number): WordStream => {
  const r = rng(seed);
  return () => Math.floor(r() * 2 ** 32);
};

/** Party `me` of `n`'s masks: pair (lo, hi) seeded by lo·n + hi, added by lo, subtracted by hi. */
const masksOf = (me: number, n: number): PairMask[] =>
  Array.from({ length: n }, (_, j) => j)
    .filter((j) => j !== me)
    .map((j) => ({ stream: words(1 + Math.min(me, j) * n + Math.max(me, j)), sign: me < j ? 1 : -1 }));

const N = 3;

interface Case {
  readonly name: HeSchemeName;
  readonly options: HeSchemeOptions;
  readonly other: HeSchemeOptions;
  /** Each party's slots, in the scheme's type. */
  readonly values: readonly (readonly (bigint | number)[])[];
  readonly total: (i: number) => number;
}

const BFV: HeSchemeOptions = { scheme: "bfv", options: { maxAbsValue: 1000n, maxRows: N, scale: 0, maxLength: 8, polyModulusDegree: 4096 } };
const CKKS: HeSchemeOptions = { scheme: "ckks", options: { maxAbsValue: (N - 1) * 2 ** 20 + 1, maxRows: N, maxLength: 8, precisionBits: 40 } };

const CASES: Case[] = [
  {
    name: HeSchemeName.Bfv,
    options: BFV,
    other: CKKS,
    values: [
      [5n, -3n, 0n, 1000n, -1000n],
      [7n, 0n, 0n, 1n, 2n],
      [-12n, 3n, 1n, 0n, 0n],
    ],
    total: (i) => [0, 0, 1, 1001, -998][i] as number,
  },
  {
    name: HeSchemeName.Ckks,
    options: CKKS,
    other: BFV,
    values: [
      [0.5, -0.25, 0, 1, -1],
      [0.125, 0, 0, 1, 0.75],
      [-0.625, 0.25, 1, -1, 0],
    ],
    total: (i) => [0, 0, 1, 1, -0.25][i] as number,
  },
];

describe.each(CASES)("HeScheme: $name", (c) => {
  let he: HeScheme;
  let other: HeScheme;
  beforeAll(async () => {
    he = await createHeScheme(c.options);
    other = await createHeScheme(c.other);
  });
  afterAll(() => {
    he?.dispose();
    other?.dispose();
  });

  it("keys: the key-set id of a fresh key set, its frames named by schemeOfFrame, refused by the other scheme", () => {
    expect(he.name).toBe(c.name);
    expect(he.matches(c.options)).toBe(true);
    expect(he.matches(c.other)).toBe(false);
    const keys = he.generateKeys();
    expect(he.publicKeyId(keys.publicKey)).toBe(keys.keyId);
    expect(schemeOfFrame(keys.publicKey)).toBe(c.name);
    expect(schemeOfFrame(keys.secretKey)).toBe(c.name);
    expect(schemeOfFrame(new Uint8Array([1, 2, 3, 4, 5]))).toBeUndefined();
    expect(() => other.publicKeyId(keys.publicKey)).toThrow();
  });

  it("masks cancel in the sum of three parties; each ciphertext alone hides its slots; headers record the history", () => {
    const keys = he.generateKeys();
    const cts = c.values.map((v, i) => he.encrypt(v as never, keys.publicKey, masksOf(i, N)));
    const one = he.inspect(cts[0] as Uint8Array);
    expect(one.keyId).toBe(keys.keyId);
    expect(one.length).toBe(5);
    expect(one.history).toEqual(he.sumHistory(1, false));
    he.validate(cts[0] as Uint8Array);
    const alone = he.decrypt(cts[0] as Uint8Array, keys.secretKey).values.map(Number);
    // Masked: no slot of party 0's ciphertext is within 1e-3 of its value.
    alone.forEach((x, i) => expect(Math.abs(x - Number(c.values[0]?.[i]))).toBeGreaterThan(1e-3));
    const sum = he.add(he.add(cts[0] as Uint8Array, cts[1] as Uint8Array), cts[2] as Uint8Array);
    expect(he.inspect(sum).history).toEqual(he.sumHistory(N, false));
    const out = he.reRandomize(sum, keys.publicKey, { maxAbsTotal: N + 1 });
    expect(he.inspect(out).history).toEqual(he.sumHistory(N, true));
    const { values, errorBound } = he.decrypt(out, keys.secretKey);
    if (c.name === HeSchemeName.Bfv) expect(errorBound).toBe(0);
    values.forEach((x, i) => expect(Math.abs(Number(x) - c.total(i))).toBeLessThanOrEqual(errorBound));
  });

  it("refuses the other scheme's ciphertext (ParameterMismatchError) and corrupted SEAL bytes (InvalidCiphertextError)", () => {
    const keys = he.generateKeys();
    const ct = he.encrypt(c.values[0] as never, keys.publicKey);
    const otherKeys = other.generateKeys();
    const foreign = other.encrypt((c.name === HeSchemeName.Bfv ? [0.5] : [1n]) as never, otherKeys.publicKey);
    expect(() => he.inspect(foreign)).toThrow(ParameterMismatchError);
    const bad = Uint8Array.from(ct);
    const at = c.name === HeSchemeName.Bfv ? 60 : 84; // SEAL's own magic, past the frame header and the entry's length
    bad[at] = (bad[at] as number) ^ 0xff;
    expect(() => he.validate(bad)).toThrow(InvalidCiphertextError);
  });
});

describe("HeScheme over a caller's context", () => {
  it("bfvScheme and ckksScheme wrap (and own) an existing context", async () => {
    const b = bfvScheme(await createHeContext(BFV.options as never));
    const k = ckksScheme(await createCkksContext(CKKS.options as never));
    expect([b.name, b.matches(BFV), k.name, k.matches(CKKS)]).toEqual(["bfv", true, "ckks", true]);
    b.dispose();
    k.dispose();
    expect([b.disposed, k.disposed]).toEqual([true, true]);
  });
});

describe("masks.ts", () => {
  it("uniformResidues rejects the words above the last whole multiple of p", () => {
    const p = 65537;
    const limit = Math.floor(2 ** 32 / p) * p;
    const seq = [limit, 2 ** 32 - 1, p + 5, 3];
    let i = 0;
    expect(Array.from(uniformResidues(() => seq[i++] as number, p, 2))).toEqual([5, 3]);
    const r = uniformResidues(words(7), p, 10_000);
    expect(r.every((x) => x < p)).toBe(true);
  });

  it("uniformReals lie in [−2^b, 2^b), multiples of 2^(b−52)", () => {
    const r = uniformReals(words(9), 20, 10_000);
    expect(r.every((x) => x >= -(2 ** 20) && x < 2 ** 20 && Number.isInteger(x * 2 ** 32))).toBe(true);
    expect(uniformReals(() => 0, 20, 1)[0]).toBe(-(2 ** 20));
  });

  it("a pair's mask added by one and subtracted by the other cancels: exactly mod every prime, up to rounding as doubles", () => {
    const primes = [65537, 114689];
    const a = maskedResidues([5n, -7n], primes, [{ stream: words(3), sign: 1 }]);
    const b = maskedResidues([1n, 2n], primes, [{ stream: words(3), sign: -1 }]);
    primes.forEach((p, q) => {
      const sum = Array.from(a[q] as Uint32Array, (x, i) => (x + ((b[q] as Uint32Array)[i] as number)) % p);
      expect(sum).toEqual([6, p - 5]);
    });
    const x = maskedReals(Float64Array.of(0.5, -1), 20, [{ stream: words(4), sign: 1 }]);
    const y = maskedReals(Float64Array.of(0.25, 0), 20, [{ stream: words(4), sign: -1 }]);
    expect(Math.abs((x[0] as number) + (y[0] as number) - 0.75)).toBeLessThan(2 ** -30);
    expect(Math.abs((x[1] as number) + (y[1] as number) + 1)).toBeLessThan(2 ** -30);
  });
});
