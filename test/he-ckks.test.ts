/**
 * engine/he CKKS: approximate sums from several providers and rotate-and-sum
 * totals within their reported bound (and the bound not absurdly loose),
 * the bound growing with the rows added, refusals with typed errors, and
 * WASM memory across 200 encrypt/add/decrypt cycles.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "./helpers/data.js";
import { ckksFixture } from "./helpers/he.js";
import {
  BoundExceededError,
  CKKS_COEFF_BITS,
  createCkksContext,
  createHeContext,
  DisposedError,
  InvalidCiphertextError,
  InvalidKeyError,
  KeyMismatchError,
  ParameterMismatchError,
  ValueOutOfRangeError,
  type CkksContext,
  type CkksKeyBytes,
  type CkksGaloisKeys,
  type CkksPublicKey,
  type CkksSecretKey,
} from "../engine/he/index.js";
import { InvalidArgumentError, InvalidInputError } from "../engine/errors.js";


/** Catch node-seal's WebAssembly.Memory as the module is instantiated (see test/he.test.ts). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  instantiate: (...args: unknown[]) => Promise<unknown>;
  Memory: abstract new (...args: never[]) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
const wasmMemories: WasmMemory[] = [];
const instantiate = wasm.instantiate.bind(wasm);
wasm.instantiate = async (...args: unknown[]) => {
  const result = await instantiate(...args);
  const instance = ((result as { instance?: unknown }).instance ?? result) as { exports: Record<string, unknown> };
  for (const v of Object.values(instance.exports)) if (v instanceof wasm.Memory) wasmMemories.push(v);
  return result;
};

const MAX_ABS = 1e6;

/** A column mixing negatives, zeros, values at and near ±maxAbs, and small fractions. */
function column(seed: number, length: number, maxAbs = MAX_ABS): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const kind = i % 8;
    const sign = r() < 0.5 ? -1 : 1;
    if (kind === 0) out[i] = 0;
    else if (kind === 1) out[i] = sign * maxAbs;
    else if (kind === 2) out[i] = sign * maxAbs * (1 - r() * 1e-9);
    else if (kind === 3) out[i] = sign * r() * 1e-6;
    else if (kind === 4) out[i] = sign * r();
    else out[i] = (2 * r() - 1) * maxAbs;
  }
  return out;
}

/** Neumaier-compensated sum: the reference totals (error ≈ 2^-53 of the total, far below any CKKS bound). */
function exactSum(xs: readonly number[]): number {
  let s = 0;
  let c = 0;
  for (const x of xs) {
    const t = s + x;
    c += Math.abs(s) >= Math.abs(x) ? s - t + x : x - t + s;
    s = t;
  }
  return s + c;
}

function maxError(got: Float64Array, want: readonly number[]): number {
  let m = 0;
  want.forEach((w, i) => {
    m = Math.max(m, Math.abs((got[i] as number) - w));
  });
  return m;
}

let ctx: CkksContext;
let keys: CkksKeyBytes;
let pk: CkksPublicKey;
let sk: CkksSecretKey;
let gk: CkksGaloisKeys;

const he = ckksFixture({ maxAbsValue: MAX_ABS, maxRows: 2 ** 16 });
beforeAll(() => void ({ ctx, keys, pk, sk, gk } = he));

describe("CKKS parameters", () => {
  it("N = 8192, [60, 40, 40, 60] within SEAL's 218 bits, scale 2^40 by default", () => {
    expect(ctx.params.polyModulusDegree).toBe(8192);
    expect(ctx.params.slotCount).toBe(4096);
    expect(ctx.params.coeffModulusBits).toEqual(CKKS_COEFF_BITS);
    expect(CKKS_COEFF_BITS.reduce((s, b) => s + b, 0)).toBeLessThanOrEqual(218);
    ctx.params.coeffModulus.forEach((q, i) => expect(q.toString(2).length).toBe(CKKS_COEFF_BITS[i]));
    expect(ctx.params.scaleBits).toBe(40);
  });

  it("refuses bad options and bounds that would not fit the modulus", async () => {
    await expect(createCkksContext({ maxAbsValue: 0, maxRows: 10 })).rejects.toThrow(InvalidArgumentError);
    await expect(createCkksContext({ maxAbsValue: Number.NaN, maxRows: 10 })).rejects.toThrow(InvalidArgumentError);
    await expect(createCkksContext({ maxAbsValue: 1, maxRows: 0 })).rejects.toThrow(InvalidArgumentError);
    await expect(createCkksContext({ maxAbsValue: 1, maxRows: 10, precisionBits: 61 })).rejects.toThrow(InvalidArgumentError);
    await expect(createCkksContext({ maxAbsValue: 2 ** 60, maxRows: 2 ** 40, precisionBits: 60 })).rejects.toThrow(InvalidArgumentError);
  });
});

describe("CKKS sums", () => {
  it("sums of 2 and 3 providers' columns decrypt within the reported bound, and the bound is not loose by more than 10^6", () => {
    const length = 5000; // two blocks
    const cols = [column(1, length), column(2, length), column(3, length)];
    const cts = cols.map((c) => ctx.encryptColumn(c, pk));
    expect(ctx.inspect(cts[0] as Uint8Array)).toMatchObject({ length, blocks: 2, rows: 1, encryptions: 1, keySwitches: 0, encodings: 1 });
    const two = ctx.add(cts[0] as Uint8Array, cts[1] as Uint8Array);
    const three = ctx.add(two, cts[2] as Uint8Array);
    for (const [ct, n] of [[two, 2], [three, 3]] as const) {
      const want = Array.from({ length }, (_, i) => exactSum(cols.slice(0, n).map((c) => c[i] as number)));
      const { values, errorBound } = ctx.decryptSums(ct, sk);
      expect(values).toHaveLength(length);
      const err = maxError(values, want);
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThanOrEqual(errorBound);
      expect(errorBound / err).toBeLessThan(1e6);
    }
    // The secret key as bytes gives the same.
    const viaBytes = ctx.decryptSums(three, keys.secretKey);
    expect(viaBytes.errorBound).toBe(ctx.decryptSums(three, sk).errorBound);
  });

  it("small values with a small maxAbs: the bound tracks the scale, not a fixed epsilon", async () => {
    const small = await createCkksContext({ maxAbsValue: 1, maxRows: 64 });
    try {
      const k = small.generateKeys({ galois: false });
      const cols = [column(7, 300, 1), column(8, 300, 1)];
      const sum = small.add(small.encryptColumn(cols[0] as Float64Array, k.publicKey), small.encryptColumn(cols[1] as Float64Array, k.publicKey));
      const { values, errorBound } = small.decryptSums(sum, k.secretKey);
      const err = maxError(values, Array.from({ length: 300 }, (_, i) => exactSum(cols.map((c) => c[i] as number))));
      expect(err).toBeLessThanOrEqual(errorBound);
      expect(errorBound / err).toBeLessThan(1e6);
      expect(errorBound).toBeLessThan(1e-4);
    } finally {
      small.dispose();
    }
  });

  it("rotate-and-sum totals lie within the bound, and the bound is not loose by more than 10^6", () => {
    // One total's error can land near zero by chance: compare the bound with the largest error over several trials.
    let worst = 0;
    let bound = 0;
    for (let trial = 0; trial < 4; trial++) {
      const length = trial === 0 ? 6000 : 4096;
      const cols = [column(11 + 3 * trial, length), column(12 + 3 * trial, length), column(13 + 3 * trial, length)];
      const sum = cols.map((c) => ctx.encryptColumn(c, pk)).reduce((a, b) => ctx.add(a, b));
      const total = ctx.sumSlots(sum, trial === 1 ? (keys.galoisKeys as Uint8Array) : gk); // once through the bytes path
      expect(ctx.inspect(total)).toMatchObject({ length: 1, blocks: 1, rows: 3 * length, keySwitches: 4095 });
      const { values, errorBound } = ctx.decryptSums(total, sk);
      const err = Math.abs((values[0] as number) - exactSum(cols.flatMap((c) => Array.from(c))));
      expect(err).toBeLessThanOrEqual(errorBound);
      worst = Math.max(worst, err);
      bound = Math.max(bound, errorBound);
    }
    expect(worst).toBeGreaterThan(0);
    expect(bound / worst).toBeLessThan(1e6);
  }, 30_000);

  it("the bound grows with the number of rows added, and refuses more than maxRows", async () => {
    const col = column(21, 100);
    let acc = ctx.encryptColumn(col, pk);
    const bounds = [ctx.decryptSums(acc, sk).errorBound];
    for (let i = 0; i < 5; i++) {
      acc = ctx.add(acc, ctx.encryptColumn(col, pk));
      const { values, errorBound } = ctx.decryptSums(acc, sk);
      bounds.push(errorBound);
      const want = Array.from(col, (v) => v * (i + 2));
      expect(maxError(values, want)).toBeLessThanOrEqual(errorBound);
    }
    for (let i = 1; i < bounds.length; i++) expect(bounds[i] as number).toBeGreaterThan(bounds[i - 1] as number);
    // Linear in the rows: six rows' bound is six times one row's.
    expect((bounds[5] as number) / (bounds[0] as number)).toBeCloseTo(6, 6);

    const tight = await createCkksContext({ maxAbsValue: 10, maxRows: 2 });
    try {
      const k = tight.generateKeys();
      const a = tight.encryptColumn(Float64Array.of(1, 2, 3), k.publicKey);
      const b = tight.add(a, a);
      expect(() => tight.add(b, a)).toThrow(BoundExceededError);
      expect(() => tight.sumSlots(a, k.galoisKeys as Uint8Array)).toThrow(BoundExceededError);
    } finally {
      tight.dispose();
    }
  }, 30_000);
});

describe("CKKS refusals", () => {
  it("refuses out-of-range and non-finite values with their index", () => {
    expect(() => ctx.encryptColumn(Float64Array.of(1, MAX_ABS * 1.000001), pk)).toThrow(ValueOutOfRangeError);
    try {
      ctx.encryptColumn(Float64Array.of(0, 1, Number.NaN), pk);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ValueOutOfRangeError);
      expect((e as ValueOutOfRangeError).index).toBe(2);
    }
    expect(() => ctx.encryptColumn(Float64Array.of(Number.POSITIVE_INFINITY), pk)).toThrow(ValueOutOfRangeError);
    expect(() => ctx.encryptColumn(new Float64Array(0), pk)).toThrow(InvalidArgumentError);
    expect(() => ctx.encryptColumn([1, 2] as unknown as Float64Array, pk)).toThrow(InvalidArgumentError);
    expect(() => ctx.encryptColumn(new Float64Array(ctx.params.maxLength + 1), pk)).toThrow(InvalidArgumentError);
  });

  it("refuses malformed and oversized ciphertexts before SEAL, and corrupted ones through SEAL", () => {
    const ct = ctx.encryptColumn(Float64Array.of(1, 2, 3), pk);
    const bad = (mutate: (b: Uint8Array) => Uint8Array): Uint8Array => mutate(ct.slice());
    const cases: Uint8Array[] = [
      new Uint8Array(10),
      bad((b) => b.subarray(0, b.length - 1)), // truncated
      bad((b) => Uint8Array.from([...b, 0])), // trailing byte
      bad((b) => ((b[0] = 0x00), b)), // magic
      bad((b) => ((b[4] = 2), b)), // kind
      bad((b) => ((b[6] = 1), b)), // reserved
      bad((b) => (new DataView(b.buffer).setUint32(40, 0, true), b)), // empty
      bad((b) => (new DataView(b.buffer).setUint32(44, 2, true), b)), // blocks ≠ length
      bad((b) => (new DataView(b.buffer).setBigUint64(48, 0n, true), b)), // no rows
      bad((b) => (new DataView(b.buffer).setBigUint64(56, 0n, true), b)), // encryptions < rows
      bad((b) => (new DataView(b.buffer).setBigUint64(64, 2n ** 63n, true), b)), // count out of range
      bad((b) => (new DataView(b.buffer).setBigUint64(72, 0n, true), b)), // no encodings
      bad((b) => (new DataView(b.buffer).setUint32(80, 0xffffffff, true), b)), // entry length oversized
      bad((b) => ((b[84] = (b[84] as number) ^ 0xff), b)), // SEAL header corrupted
    ];
    for (const c of cases) {
      expect(() => ctx.decryptSums(c, sk)).toThrow(InvalidCiphertextError);
      expect(() => ctx.add(c, ct)).toThrow(InvalidInputError);
    }
    // More rows than maxRows in the header.
    const many = bad((b) => (new DataView(b.buffer).setBigUint64(48, 2n ** 20n, true), b));
    expect(() => ctx.inspect(many)).toThrow(InvalidCiphertextError);
    // Oversized: a column far longer than maxLength.
    const huge = bad((b) => {
      const dv = new DataView(b.buffer);
      dv.setUint32(40, 2 ** 30, true);
      dv.setUint32(44, 2 ** 18, true);
      return b;
    });
    expect(() => ctx.inspect(huge)).toThrow(InvalidCiphertextError);
    // Columns of different lengths.
    expect(() => ctx.add(ct, ctx.encryptColumn(Float64Array.of(1, 2), pk))).toThrow(InvalidInputError);
  });

  it("refuses ciphertexts and keys of other parameters, other key sets and other schemes", async () => {
    const other = await createCkksContext({ maxAbsValue: MAX_ABS, maxRows: 2 ** 16, precisionBits: 30 });
    const bfv = await createHeContext({ maxAbsValue: 1000, maxRows: 100 });
    try {
      const ok = ctx.encryptColumn(Float64Array.of(1, 2, 3), pk);
      const otherKeys = other.generateKeys({ galois: false });
      expect(() => ctx.decryptSums(other.encryptColumn(Float64Array.of(1, 2, 3), otherKeys.publicKey), sk)).toThrow(ParameterMismatchError);
      expect(() => ctx.loadSecretKey(otherKeys.secretKey)).toThrow(ParameterMismatchError);
      expect(() => other.decryptSums(ok, otherKeys.secretKey)).toThrow(ParameterMismatchError);
      // Another key set under the same parameters.
      const second = ctx.generateKeys({ galois: false });
      const theirs = ctx.encryptColumn(Float64Array.of(1, 2, 3), second.publicKey);
      expect(() => ctx.decryptSums(ok, second.secretKey)).toThrow(KeyMismatchError);
      expect(() => ctx.add(ok, theirs)).toThrow(KeyMismatchError);
      expect(() => ctx.sumSlots(theirs, gk)).toThrow(KeyMismatchError);
      // Keys: wrong kind, truncated, corrupted, missing rotations.
      expect(() => ctx.loadPublicKey(keys.secretKey)).toThrow(InvalidKeyError);
      expect(() => ctx.loadSecretKey(keys.secretKey.subarray(0, 100))).toThrow(InvalidKeyError);
      const corrupt = keys.publicKey.slice();
      corrupt[44] = (corrupt[44] as number) ^ 0xff;
      expect(() => ctx.loadPublicKey(corrupt)).toThrow(InvalidKeyError);
      expect(() => ctx.loadGaloisKeys(new Uint8Array(64))).toThrow(InvalidKeyError);
      // BFV frames are not CKKS frames, and the other way round.
      const bfvKeys = bfv.generateKeys({ galois: false });
      const bfvCt = bfv.encryptColumn(Int32Array.of(1, 2, 3), bfvKeys.publicKey);
      expect(() => ctx.decryptSums(bfvCt, sk)).toThrow(InvalidCiphertextError);
      expect(() => ctx.loadPublicKey(bfvKeys.publicKey)).toThrow(InvalidKeyError);
      expect(() => bfv.decryptSums(ok, bfvKeys.secretKey)).toThrow(InvalidCiphertextError);
      // A handle of another context.
      const otherPk = other.loadPublicKey(otherKeys.publicKey);
      expect(() => ctx.encryptColumn(Float64Array.of(1), otherPk as unknown as CkksPublicKey)).toThrow(InvalidArgumentError);
    } finally {
      other.dispose();
      bfv.dispose();
    }
  }, 30_000);

  it("refuses use after dispose", async () => {
    const c = await createCkksContext({ maxAbsValue: 1, maxRows: 4 });
    const k = c.generateKeys({ galois: false });
    const p = c.loadPublicKey(k.publicKey);
    p.dispose();
    expect(() => c.encryptColumn(Float64Array.of(1), p)).toThrow(DisposedError);
    c.dispose();
    expect(() => c.encryptColumn(Float64Array.of(1), k.publicKey)).toThrow(DisposedError);
    expect(() => c.generateKeys()).toThrow(DisposedError);
  });
});

describe("CKKS memory", () => {
  it("WASM memory does not grow across 200 encrypt/add/decrypt cycles", () => {
    const col = column(31, 64);
    const want = Array.from(col, (v) => 2 * v);
    const cycle = (i: number): void => {
      const a = ctx.encryptColumn(col, pk);
      const b = ctx.encryptColumn(col, i % 50 === 0 ? keys.publicKey : pk); // now and then through the bytes path
      const { values, errorBound } = ctx.decryptSums(ctx.add(a, b), i % 50 === 0 ? keys.secretKey : sk);
      if (maxError(values, want) > errorBound) throw new Error("sum outside its bound");
    };
    for (let i = 0; i < 20; i++) cycle(i); // warm-up: SEAL's memory pool reaches its working size
    expect(wasmMemories).toHaveLength(1);
    const heap = wasmMemories[0] as WasmMemory;
    const before = heap.buffer.byteLength;
    for (let i = 0; i < 200; i++) cycle(i);
    // One leaked ciphertext per cycle (2 × 3 × 8192 × 8 bytes) would add ~79 MB.
    expect(heap.buffer.byteLength - before).toBeLessThan(1024 * 1024);
  }, 60_000);
});
