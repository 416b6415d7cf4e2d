/**
 * engine/he: exact CRT sums against BigInt sums, fixed point, masks,
 * rotate-and-sum, re-randomisation, refusals with typed errors, and WASM
 * memory across 1,000 encrypt/add/decrypt cycles.
 */
import { Int32, makeVector, vectorFromArray } from "apache-arrow";
import { beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "./helpers/data.js";
import { bfvFixture } from "./helpers/he.js";
import {
  BoundExceededError,
  createHeContext,
  CrtBasis,
  DisposedError,
  executeHeTask,
  fixedPointToString,
  HeTaskOp,
  InvalidCiphertextError,
  InvalidKeyError,
  KeyMismatchError,
  NoiseBudgetExhaustedError,
  ParameterMismatchError,
  ValueOutOfRangeError,
  valuesFromArrow,
  type HeContext,
  type HeGaloisKeys,
  type HeKeyBytes,
  type HePublicKey,
  type HeSecretKey,
} from "../engine/he/index.js";
import { InvalidArgumentError, InvalidInputError } from "../engine/errors.js";


/** Uniform in [−bound, bound] (bound < 2^63), with zeros and ±bound mixed in. */
function randomColumn(next: () => number, length: number, bound: bigint): BigInt64Array {
  const out = new BigInt64Array(length);
  const span = 2n * bound + 1n;
  for (let i = 0; i < length; i++) {
    const r = next();
    if (r < 0.1) out[i] = 0n;
    else if (r < 0.15) out[i] = bound;
    else if (r < 0.2) out[i] = -bound;
    else {
      const x = (BigInt(Math.floor(next() * 2 ** 32)) << 32n) | BigInt(Math.floor(next() * 2 ** 32));
      out[i] = (x % span) - bound;
    }
  }
  return out;
}

const V52 = 2n ** 52n;

/**
 * node-seal does not expose its WebAssembly.Memory: catch it as the module
 * is instantiated (the first createHeContext in this process loads SEAL; no
 * other WASM loads in this file). Its byteLength is the WASM heap, which
 * grows and never shrinks: a leak of SEAL objects shows there exactly.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  instantiate: (...args: unknown[]) => Promise<unknown>;
  Memory: abstract new (...args: never[]) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly; // lib ES2023 has no WebAssembly types
const wasmMemories: WasmMemory[] = [];
const instantiate = wasm.instantiate.bind(wasm);
wasm.instantiate = async (...args: unknown[]) => {
  const result = await instantiate(...args);
  const instance = ((result as { instance?: unknown }).instance ?? result) as { exports: Record<string, unknown> };
  for (const v of Object.values(instance.exports)) if (v instanceof wasm.Memory) wasmMemories.push(v);
  return result;
};

describe("parameters", () => {
  it("chooses N by the row count and the fewest CRT primes for the bound", async () => {
    const small = await createHeContext({ maxAbsValue: 1000, maxRows: 100 });
    const big = await createHeContext({ maxAbsValue: V52, maxRows: 1024 });
    const wide = await createHeContext({ maxAbsValue: 1000, maxRows: 2 ** 12 + 1 });
    try {
      expect(small.params.polyModulusDegree).toBe(4096);
      expect(small.params.coeffModulusBits).toBe(109);
      expect(small.params.plainModuli).toHaveLength(1);
      expect(big.params.polyModulusDegree).toBe(4096);
      expect(big.params.maxTotal).toBe(2n ** 62n);
      expect(big.params.plainModuli).toHaveLength(4);
      expect(wide.params.polyModulusDegree).toBe(8192);
      expect(wide.params.coeffModulusBits).toBe(218);
      for (const c of [small, big, wide]) {
        expect(2n * c.params.maxTotal).toBeLessThan(c.params.crtModulus);
        for (const p of c.params.plainModuli) expect(p % (2 * c.params.polyModulusDegree)).toBe(1);
        expect(new Set(c.params.plainModuli).size).toBe(c.params.plainModuli.length);
      }
      expect(small.params.fingerprint).not.toBe(big.params.fingerprint);
    } finally {
      small.dispose();
      big.dispose();
      wide.dispose();
    }
  });

  it("refuses a range the CRT cannot hold and bad options", async () => {
    await expect(createHeContext({ maxAbsValue: 2n ** 200n, maxRows: 10 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(createHeContext({ maxAbsValue: -1, maxRows: 10 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(createHeContext({ maxAbsValue: 1, maxRows: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(createHeContext({ maxAbsValue: 1, maxRows: 10, scale: 19 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(createHeContext({ maxAbsValue: 1, maxRows: 2 ** 20, polyModulusDegree: 4096 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("Garner recombination matches BigInt arithmetic", () => {
    const primes = [1032193, 974849, 925697, 786433];
    const crt = new CrtBasis(primes);
    const next = mulberry32(7);
    const xs = Array.from(randomColumn(next, 500, crt.modulus / 2n - 1n > 2n ** 63n - 1n ? 2n ** 63n - 1n : crt.modulus / 2n - 1n));
    const residues = primes.map((p) => Uint32Array.from(xs, (x) => Number(((x % BigInt(p)) + BigInt(p)) % BigInt(p))));
    expect(crt.combine(residues, xs.length)).toEqual(xs);
  });
});

describe("BFV N=4096, totals up to 2^62", () => {
  let ctx: HeContext;
  let keys: HeKeyBytes;
  let pk: HePublicKey;
  let sk: HeSecretKey;
  let gk: HeGaloisKeys;

  const he = bfvFixture({ maxAbsValue: V52, maxRows: 1024, maxLength: 9000 });
  beforeAll(() => void ({ ctx, keys, pk, sk, gk } = he));

  it("keys are compressed and carry one key-set id", () => {
    // Seeded + zstd: a 4-prime public key in well under 4 × 196,608 raw bytes.
    expect(keys.publicKey.length).toBeLessThan(4 * 196_608 * 0.6);
    expect(ctx.inspect(ctx.encryptColumn(Int32Array.of(1), pk)).keyId).toBe(Buffer.from(pk.keyId).toString("hex"));
  });

  it("slot-wise sums of several providers' columns equal the BigInt sums (negatives, zeros, ±V)", () => {
    const next = mulberry32(1);
    const cols = [0, 1, 2, 3].map(() => randomColumn(next, 9000, V52)); // three blocks of 4096 slots
    let acc = ctx.encryptColumn(cols[0] as BigInt64Array, pk);
    for (const c of cols.slice(1)) acc = ctx.add(acc, ctx.encryptColumn(c, keys.publicKey));
    const expected = Array.from({ length: (cols[0] as BigInt64Array).length }, (_, i) => cols.reduce((s, c) => s + (c[i] as bigint), 0n));
    expect(ctx.decryptSums(acc, sk)).toEqual(expected);
  });

  it("rotate-and-sum reaches ±2^62 exactly, and matches random totals", () => {
    const plus = ctx.encryptColumn(new BigInt64Array(256).fill(V52), pk);
    const minus = ctx.encryptColumn(new BigInt64Array(256).fill(-V52), pk);
    let p4 = plus;
    let m4 = minus;
    for (let i = 0; i < 3; i++) {
      p4 = ctx.add(p4, plus);
      m4 = ctx.add(m4, minus);
    }
    expect(ctx.decryptSums(ctx.sumSlots(p4, gk), sk)).toEqual([2n ** 62n]);
    expect(ctx.decryptSums(ctx.sumSlots(m4, gk), sk)).toEqual([-(2n ** 62n)]);

    const next = mulberry32(2);
    const col = randomColumn(next, 1000, V52);
    const total = col.reduce((s, v) => s + v, 0n);
    expect(ctx.decryptSums(ctx.sumSlots(ctx.encryptColumn(col, pk), keys.galoisKeys as Uint8Array), sk)).toEqual([total]);
  });

  it("masks select slots; rotate-and-sum then re-randomisation keeps the exact total", () => {
    const next = mulberry32(3);
    const col = randomColumn(next, 500, V52);
    const mask = Uint8Array.from({ length: 500 }, () => (next() < 0.5 ? 1 : 0));
    const ct = ctx.encryptColumn(col, pk);
    const masked = ctx.multiplyPlain(ct, mask);
    expect(ctx.decryptSums(masked, sk)).toEqual(Array.from(col, (v, i) => (mask[i] ? v : 0n)));
    const total = col.reduce((s, v, i) => (mask[i] ? s + v : s), 0n);
    const summed = ctx.sumSlots(masked, gk);
    const r1 = ctx.reRandomize(summed, pk);
    const r2 = ctx.reRandomize(summed, keys.publicKey);
    expect(ctx.decryptSums(r1, sk)).toEqual([total]);
    expect(ctx.decryptSums(r2, keys.secretKey)).toEqual([total]);
    expect(Buffer.from(r1).equals(Buffer.from(summed))).toBe(false);
    expect(Buffer.from(r1).equals(Buffer.from(r2))).toBe(false);
    expect(r1.length).toBeLessThan(summed.length); // at the last modulus: one prime left
    // A re-randomised ciphertext still adds (the other side is switched down to it).
    expect(ctx.decryptSums(ctx.add(r1, summed), sk)).toEqual([2n * total]);
  });

  it("an all-zero mask gives exact zeros and the ciphertext stays usable", () => {
    const col = BigInt64Array.from({ length: 10 }, (_, i) => BigInt(i + 1));
    const zeroed = ctx.multiplyPlain(ctx.encryptColumn(col, pk), new Uint8Array(10));
    expect(ctx.decryptSums(zeroed, sk)).toEqual(new Array(10).fill(0n));
    const back = ctx.add(zeroed, ctx.encryptColumn(col, pk));
    expect(ctx.decryptSums(ctx.reRandomize(ctx.sumSlots(back, gk), pk), sk)).toEqual([55n]);
    expect(ctx.decryptSums(ctx.reRandomize(ctx.sumSlots(zeroed, gk), pk), sk)).toEqual([0n]);
  });

  it("refuses values outside the range, by index", () => {
    const col = new BigInt64Array(10);
    col[7] = V52 + 1n;
    const err = (() => {
      try {
        ctx.encryptColumn(col, pk);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValueOutOfRangeError);
    expect((err as ValueOutOfRangeError).index).toBe(7);
    expect((err as Error).message).not.toContain(String(V52 + 1n));
    expect(() => ctx.encryptColumn(Float64Array.of(1, Number.NaN), pk)).toThrow(ValueOutOfRangeError);
  });

  it("refuses sums that could exceed maxRows (they could wrap)", () => {
    const col = ctx.encryptColumn(new BigInt64Array(600).fill(1n), pk);
    expect(() => ctx.sumSlots(ctx.add(col, col), gk)).toThrow(BoundExceededError);
    let acc = ctx.encryptColumn(Int32Array.of(1), pk);
    for (let i = 0; i < 10; i++) acc = ctx.add(acc, acc);
    expect(ctx.inspect(acc).rows).toBe(1024);
    expect(ctx.decryptSums(acc, sk)).toEqual([1024n]);
    expect(() => ctx.add(acc, acc)).toThrow(BoundExceededError);
  });

  it("refuses a ciphertext whose noise budget is spent instead of decrypting it wrong", () => {
    // At N = 4096 the last modulus leaves ~9 bits; a mask costs ~24.
    const last = ctx.reRandomize(ctx.encryptColumn(Int32Array.of(1, 2, 3), pk), pk);
    expect(() => ctx.decryptSums(ctx.multiplyPlain(last, Uint8Array.of(1, 0, 1)), sk)).toThrow(NoiseBudgetExhaustedError);
  });

  it("refuses malformed, oversized and truncated keys with typed errors", () => {
    const garbage = new Uint8Array(1000).fill(7);
    expect(() => ctx.loadPublicKey(garbage)).toThrow(InvalidKeyError);
    expect(() => ctx.loadPublicKey(keys.secretKey)).toThrow(InvalidKeyError); // a secret key is not a public key
    expect(() => ctx.loadSecretKey(keys.publicKey.subarray(0, keys.publicKey.length - 1))).toThrow(InvalidKeyError);
    expect(() => ctx.loadPublicKey(keys.publicKey.subarray(0, keys.publicKey.length - 1))).toThrow(InvalidKeyError);
    // Oversized: a valid header followed by a huge first component is refused on its declared size.
    const huge = new Uint8Array(keys.publicKey.length + 8_000_000);
    huge.set(keys.publicKey);
    new DataView(huge.buffer).setUint32(40, 8_000_000, true);
    expect(() => ctx.loadPublicKey(huge)).toThrow(/at most/);
    // A well-framed component whose SEAL bytes are corrupt is refused by SEAL's validation.
    const bad = keys.publicKey.slice();
    for (let i = 44; i < 60; i++) bad[i] = 0xff;
    expect(() => ctx.loadPublicKey(bad)).toThrow(InvalidKeyError);
    const badSk = keys.secretKey.slice();
    badSk.fill(0, 44 + 16, badSk.length);
    expect(() => ctx.loadSecretKey(badSk)).toThrow(InvalidKeyError);
    const galois = keys.galoisKeys as Uint8Array;
    expect(() => ctx.loadGaloisKeys(galois.subarray(0, 5000))).toThrow(InvalidKeyError);
    expect(() => ctx.loadGaloisKeys(keys.publicKey)).toThrow(InvalidKeyError);
  });

  it("refuses malformed, oversized and tampered ciphertexts with typed errors", () => {
    const ct = ctx.encryptColumn(Int32Array.of(1, 2, 3), pk);
    expect(() => ctx.decryptSums(new Uint8Array(10), sk)).toThrow(InvalidCiphertextError);
    expect(() => ctx.add(ct, ct.subarray(0, ct.length - 5))).toThrow(InvalidCiphertextError);
    expect(() => ctx.add(ct, keys.publicKey)).toThrow(InvalidCiphertextError);
    const padded = new Uint8Array(ct.length + 1);
    padded.set(ct);
    expect(() => ctx.decryptSums(padded, sk)).toThrow(InvalidCiphertextError); // trailing bytes
    const lying = ct.slice();
    new DataView(lying.buffer).setUint32(40, 4097, true); // length says two blocks, one is there
    expect(() => ctx.decryptSums(lying, sk)).toThrow(InvalidCiphertextError);
    const oversized = new Uint8Array(ct.length + 300_000);
    oversized.set(ct);
    new DataView(oversized.buffer).setUint32(56, 300_000, true);
    expect(() => ctx.decryptSums(oversized, sk)).toThrow(/at most/);
    // Components swapped between CRT primes: each is a valid SEAL ciphertext, for another context.
    const one = ctx.encryptColumn(Int32Array.of(5), pk);
    const dv = new DataView(one.buffer, one.byteOffset);
    const n0 = dv.getUint32(56, true);
    const first = one.slice(56, 60 + n0);
    const rest = one.slice(60 + n0);
    const swapped = new Uint8Array(one.length);
    swapped.set(one.subarray(0, 56));
    const n1 = new DataView(rest.buffer).getUint32(0, true);
    swapped.set(rest.subarray(0, 4 + n1), 56);
    swapped.set(first, 60 + n1);
    swapped.set(rest.subarray(4 + n1), 60 + n1 + first.length);
    expect(() => ctx.decryptSums(swapped, sk)).toThrow(InvalidCiphertextError);
    // Masks: wrong length, non-binary bytes.
    expect(() => ctx.multiplyPlain(ct, Uint8Array.of(1, 0))).toThrow(InvalidInputError);
    expect(() => ctx.multiplyPlain(ct, Uint8Array.of(1, 2, 0))).toThrow(InvalidArgumentError);
  });

  it("refuses ciphertexts and keys of another context or key set", async () => {
    const other = await createHeContext({ maxAbsValue: V52, maxRows: 1000 });
    try {
      const otherKeys = other.generateKeys({ galois: false });
      const foreign = other.encryptColumn(Int32Array.of(1, 2, 3), otherKeys.publicKey);
      expect(() => ctx.decryptSums(foreign, sk)).toThrow(ParameterMismatchError);
      expect(() => ctx.add(ctx.encryptColumn(Int32Array.of(1, 2, 3), pk), foreign)).toThrow(ParameterMismatchError);
      expect(() => ctx.loadPublicKey(otherKeys.publicKey)).toThrow(ParameterMismatchError);
      expect(() => ctx.loadSecretKey(otherKeys.secretKey)).toThrow(ParameterMismatchError);
      expect(() => ctx.encryptColumn(Int32Array.of(1), other.loadPublicKey(otherKeys.publicKey))).toThrow(InvalidArgumentError);

      // Same parameters, another buyer's key set.
      const second = ctx.generateKeys({ galois: false });
      const mine = ctx.encryptColumn(Int32Array.of(1, 2, 3), pk);
      const theirs = ctx.encryptColumn(Int32Array.of(1, 2, 3), second.publicKey);
      expect(() => ctx.add(mine, theirs)).toThrow(KeyMismatchError);
      expect(() => ctx.decryptSums(theirs, sk)).toThrow(KeyMismatchError);
      expect(() => ctx.reRandomize(mine, second.publicKey)).toThrow(KeyMismatchError);
      expect(ctx.decryptSums(theirs, second.secretKey)).toEqual([1n, 2n, 3n]);
    } finally {
      other.dispose();
    }
  });
});

describe("fixed point and Arrow input", () => {
  it("sums decimals exactly at the declared scale", async () => {
    const ctx = await createHeContext({ maxAbsValue: 1_000_000, maxRows: 500, scale: 2 });
    try {
      const { publicKey, secretKey, galoisKeys } = ctx.generateKeys();
      const next = mulberry32(4);
      // Decimal strings with ≤ 2 digits, their Float64 values, and the exact scaled integers.
      const cents = Array.from({ length: 300 }, (_, i) => (i % 17 === 0 ? 0n : i % 31 === 0 ? 100_000_000n : BigInt(Math.floor(next() * 200_000_001)) - 100_000_000n));
      const floats = Float64Array.from(cents, (c) => Number(fixedPointToString(c, 2)));
      const a = ctx.encryptColumn(floats, publicKey);
      const ints = Int32Array.from({ length: 300 }, (_, i) => (i % 2 ? -i : i) * 1000);
      const b = ctx.encryptColumn(ints, publicKey); // integers are scaled by 10^2 too
      const sums = ctx.decryptSums(ctx.add(a, b), secretKey);
      expect(sums).toEqual(cents.map((c, i) => c + BigInt(ints[i] as number) * 100n));
      const total = cents.reduce((s, c) => s + c, 0n);
      const [t] = ctx.decryptSums(ctx.sumSlots(a, galoisKeys as Uint8Array), secretKey);
      expect(t).toBe(total);
      expect(fixedPointToString(-1250n, 2)).toBe("-12.50");
      expect(fixedPointToString(5n, 2)).toBe("0.05");
      expect(() => ctx.encryptColumn(Float64Array.of(1_000_000.01), publicKey)).toThrow(ValueOutOfRangeError);
    } finally {
      ctx.dispose();
    }
  });

  it("takes Arrow numeric vectors and refuses nulls", async () => {
    const ctx = await createHeContext({ maxAbsValue: 10n ** 12n, maxRows: 100 });
    try {
      const { publicKey, secretKey } = ctx.generateKeys({ galois: false });
      const big = makeVector(BigInt64Array.of(10n ** 12n, -5n, 0n));
      expect(ctx.decryptSums(ctx.encryptColumn(valuesFromArrow(big), publicKey), secretKey)).toEqual([10n ** 12n, -5n, 0n]);
      const f = makeVector(Float32Array.of(1.5, -2));
      expect(ctx.decryptSums(ctx.encryptColumn(valuesFromArrow(f), publicKey), secretKey)).toEqual([2n, -2n]);
      const withNull = vectorFromArray([1, null, 3], new Int32());
      expect(withNull.nullCount).toBe(1);
      expect(() => valuesFromArrow(withNull)).toThrow(InvalidArgumentError);
    } finally {
      ctx.dispose();
    }
  });
});

describe("BFV N=8192", () => {
  it("sums and rotate-and-sums exactly above the 4096 row limit", async () => {
    const ctx = await createHeContext({ maxAbsValue: 1000, maxRows: 2 ** 17 });
    try {
      expect(ctx.params.polyModulusDegree).toBe(8192);
      const keys = ctx.generateKeys();
      const next = mulberry32(5);
      const col = Int32Array.from({ length: 10_000 }, () => Math.floor(next() * 2001) - 1000);
      const ct = ctx.encryptColumn(col, keys.publicKey);
      const sums = ctx.decryptSums(ctx.add(ct, ct), keys.secretKey);
      expect(sums).toEqual(Array.from(col, (v) => 2n * BigInt(v)));
      const total = col.reduce((s, v) => s + BigInt(v), 0n);
      const gk = ctx.loadGaloisKeys(keys.galoisKeys as Uint8Array);
      const mask = Uint8Array.from(col, (v) => (v > 0 ? 1 : 0));
      const pos = col.reduce((s, v) => (v > 0 ? s + BigInt(v) : s), 0n);
      const rr = ctx.reRandomize(ctx.sumSlots(ctx.multiplyPlain(ct, mask), gk), keys.publicKey);
      expect(ctx.decryptSums(rr, keys.secretKey)).toEqual([pos]);
      expect(ctx.decryptSums(ctx.sumSlots(ct, gk), keys.secretKey)).toEqual([total]);
    } finally {
      ctx.dispose();
    }
  });
});

describe("pool tasks (run inline)", () => {
  it("encrypts chunks as a worker would and joins them into one column", async () => {
    const options = { maxAbsValue: 1000, maxRows: 100, maxLength: 10_000 };
    const ctx = await createHeContext(options);
    try {
      const { publicKey, secretKey } = ctx.generateKeys({ galois: false });
      const col = Int32Array.from({ length: 9000 }, (_, i) => (i % 7) - 3);
      const n = ctx.params.slotCount;
      const parts: Uint8Array[] = [];
      for (let s = 0; s < col.length; s += n) {
        parts.push(await executeHeTask({ op: HeTaskOp.Encrypt, options, publicKey, values: col.slice(s, s + n) }));
      }
      const joined = ctx.concat(parts);
      expect(ctx.inspect(joined)).toMatchObject({ length: 9000, blocks: 3, rows: 1 });
      const doubled = await executeHeTask({ op: HeTaskOp.Add, options, ciphertexts: [joined, joined, joined] });
      expect(ctx.decryptSums(doubled, secretKey)).toEqual(Array.from(col, (v) => 3n * BigInt(v)));
      expect(() => ctx.concat([parts[2] as Uint8Array, parts[0] as Uint8Array])).toThrow(InvalidArgumentError);
    } finally {
      ctx.dispose();
    }
  });
});

describe("ownership", () => {
  it("a disposed context or handle refuses work", async () => {
    const ctx = await createHeContext({ maxAbsValue: 10, maxRows: 10 });
    const keys = ctx.generateKeys({ galois: false });
    const pk = ctx.loadPublicKey(keys.publicKey);
    pk.dispose();
    expect(() => ctx.encryptColumn(Int32Array.of(1), pk)).toThrow(DisposedError);
    ctx.dispose();
    expect(() => ctx.encryptColumn(Int32Array.of(1), keys.publicKey)).toThrow(DisposedError);
  });

  it("WASM memory does not grow across 1,000 encrypt/add/decrypt cycles", async () => {
    const ctx = await createHeContext({ maxAbsValue: 100, maxRows: 4000 });
      expect(ctx.params.plainModuli).toHaveLength(1);
    try {
      const keys = ctx.generateKeys({ galois: false });
      const pk = ctx.loadPublicKey(keys.publicKey);
      const sk = ctx.loadSecretKey(keys.secretKey);
      const col = Int32Array.from({ length: 64 }, (_, i) => i - 32);
      const cycle = (i: number): void => {
        const a = ctx.encryptColumn(col, pk);
        const b = ctx.encryptColumn(col, pk);
        const s = ctx.decryptSums(ctx.add(a, b), i % 100 === 0 ? keys.secretKey : sk); // now and then through the bytes path
        if (s[0] !== -64n) throw new Error("wrong sum");
      };
      for (let i = 0; i < 50; i++) cycle(i); // warm-up: SEAL's memory pool reaches its working size
      expect(wasmMemories).toHaveLength(1);
      const heap = wasmMemories[0] as WasmMemory;
      const before = heap.buffer.byteLength;
      const externalBefore = process.memoryUsage().external;
      for (let i = 0; i < 1000; i++) cycle(i);
      // One leaked ciphertext per cycle (2 × 2 × 4096 × 8 bytes) would add ~131 MB; nothing may be added.
      expect(heap.buffer.byteLength - before).toBeLessThan(1024 * 1024);
      // `external` also counts JS buffers awaiting GC, so only a loose check there.
      expect(process.memoryUsage().external - externalBefore).toBeLessThan(64 * 1024 * 1024);
    } finally {
      ctx.dispose();
    }
  });
});
