/**
 * Column values → scaled integers → residues modulo each CRT prime.
 *
 * Inputs are typed arrays (or Arrow numeric vectors through
 * {@link valuesFromArrow}); every value is scaled to the integer
 * round(value · 10^scale) (half away from zero) and must satisfy
 * |scaled| ≤ V, the context's bound, or the column is refused with the
 * index of the first offending value (never the value). A decimal with at
 * most `scale` digits after the point maps to its exact scaled integer as
 * long as |value| · 10^scale < 2^52; beyond that a Float64 cannot hold it
 * exactly anyway — pass a BigInt64Array of scaled units instead (with
 * scale 0) for such magnitudes.
 */
import { DataType, type Vector } from "apache-arrow";
import { InvalidArgumentError, UnsupportedTypeError } from "../errors.js";
import { ValueOutOfRangeError } from "./errors.js";

/** The column types `encryptColumn` takes. */
export type ColumnValues = BigInt64Array | Float64Array | Int32Array;

const SAFE = Number.MAX_SAFE_INTEGER;

/** Scales and reduces values [start, end) into out[j][0 .. end − start) (residues mod primes[j]); the rest of out is zeroed. */
export class ResidueEncoder {
  readonly #primes: readonly number[];
  readonly #bigPrimes: readonly bigint[];
  readonly #factor: number;
  readonly #bigFactor: bigint;
  readonly #bound: bigint;
  readonly #boundNumber: number;

  constructor(primes: readonly number[], scale: number, bound: bigint) {
    this.#primes = primes;
    this.#bigPrimes = primes.map((p) => BigInt(p));
    this.#bigFactor = 10n ** BigInt(scale);
    this.#factor = Number(this.#bigFactor);
    this.#bound = bound;
    this.#boundNumber = bound <= BigInt(SAFE) ? Number(bound) : Infinity;
  }

  fill(values: ColumnValues, start: number, end: number, out: readonly Uint32Array[]): void {
    for (const o of out) o.fill(0);
    const f = this.#factor;
    if (values instanceof Int32Array) {
      for (let i = start; i < end; i++) {
        const s = (values[i] as number) * f;
        if (Number.isSafeInteger(s)) this.#putNumber(s, i, i - start, out);
        else this.#putBig(BigInt(values[i] as number) * this.#bigFactor, i, i - start, out);
      }
    } else if (values instanceof Float64Array) {
      for (let i = start; i < end; i++) {
        const x = values[i] as number;
        if (!Number.isFinite(x)) throw new ValueOutOfRangeError("value is not a finite number", i);
        const y = x * f;
        const r = y < 0 ? -Math.round(-y) : Math.round(y);
        if (Number.isSafeInteger(r)) this.#putNumber(r, i, i - start, out);
        else this.#putBig(BigInt(r), i, i - start, out);
      }
    } else if (values instanceof BigInt64Array) {
      for (let i = start; i < end; i++) {
        const b = values[i] as bigint;
        const n = Number(b);
        if (n >= -SAFE && n <= SAFE && Number.isSafeInteger(n * f)) this.#putNumber(n * f, i, i - start, out);
        else this.#putBig(b * this.#bigFactor, i, i - start, out);
      }
    } else {
      throw new InvalidArgumentError("values must be a BigInt64Array, Float64Array or Int32Array");
    }
  }

  #putNumber(s: number, index: number, slot: number, out: readonly Uint32Array[]): void {
    if (s > this.#boundNumber || -s > this.#boundNumber) throw new ValueOutOfRangeError("value outside the declared range", index);
    const primes = this.#primes;
    for (let j = 0; j < primes.length; j++) {
      const p = primes[j] as number;
      let r = s % p;
      if (r < 0) r += p;
      (out[j] as Uint32Array)[slot] = r;
    }
  }

  #putBig(s: bigint, index: number, slot: number, out: readonly Uint32Array[]): void {
    if (s > this.#bound || -s > this.#bound) throw new ValueOutOfRangeError("value outside the declared range", index);
    const primes = this.#bigPrimes;
    for (let j = 0; j < primes.length; j++) {
      const p = primes[j] as bigint;
      let r = s % p;
      if (r < 0n) r += p;
      (out[j] as Uint32Array)[slot] = Number(r);
    }
  }
}

/**
 * An Arrow numeric vector as the typed array `encryptColumn` takes: integers
 * of up to 32 bits and Uint32 as Int32Array/Float64Array, (U)Int64 as
 * BigInt64Array, floats as Float64Array. Nulls are refused: fill or filter
 * them first (a null is not a zero in a COUNT).
 */
export function valuesFromArrow(vector: Vector): ColumnValues {
  if (vector.nullCount > 0) throw new InvalidArgumentError(`column has ${vector.nullCount} nulls; fill or filter them before encrypting`);
  const type = vector.type;
  if (DataType.isInt(type)) {
    if (type.bitWidth === 64) {
      const a = vector.toArray() as BigInt64Array | BigUint64Array;
      if (a instanceof BigInt64Array) return a;
      const out = new BigInt64Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const v = a[i] as bigint;
        if (v > 0x7fffffffffffffffn) throw new ValueOutOfRangeError("value outside the declared range", i);
        out[i] = v;
      }
      return out;
    }
    if (type.bitWidth === 32 && !type.isSigned) return Float64Array.from(vector.toArray() as Uint32Array);
    return Int32Array.from(vector.toArray() as ArrayLike<number>);
  }
  if (DataType.isFloat(type)) {
    const a = vector.toArray() as Float64Array | Float32Array | Uint16Array;
    if (a instanceof Float64Array) return a;
    if (a instanceof Float32Array) return Float64Array.from(a);
    // Float16 comes back as raw halves: decode each value through get().
    const out = new Float64Array(vector.length);
    for (let i = 0; i < vector.length; i++) out[i] = Number(vector.get(i));
    return out;
  }
  throw new UnsupportedTypeError(`column type ${String(type)} is not an integer or floating-point type`);
}

/** A scaled total as a decimal string ("-12.50" for −1250n at scale 2). */
export function fixedPointToString(total: bigint, scale: number): string {
  if (scale === 0) return total.toString();
  const neg = total < 0n;
  const digits = (neg ? -total : total).toString().padStart(scale + 1, "0");
  return `${neg ? "-" : ""}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/**
 * Signed 64-bit integers [from, to) of `values` as residues modulo each
 * prime (Number arithmetic: primes < 2^22): entry j of the result holds
 * value mod primes[j] for every value, in [0, p). No range check: the
 * caller's values are already scaled and bounded.
 */
export function int64Residues(values: BigInt64Array, from: number, to: number, primes: readonly number[]): Uint32Array[] {
  const len = to - from;
  const out = primes.map(() => new Uint32Array(len));
  const words = new Int32Array(values.buffer, values.byteOffset + from * 8, len * 2);
  const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  for (let j = 0; j < primes.length; j++) {
    const p = primes[j] as number;
    const two32 = 2 ** 32 % p;
    const o = out[j] as Uint32Array;
    for (let i = 0; i < len; i++) {
      let lo: number;
      let hi: number;
      if (LE) {
        lo = (words[2 * i] as number) >>> 0;
        hi = words[2 * i + 1] as number; // signed high word
      } else {
        hi = words[2 * i] as number;
        lo = (words[2 * i + 1] as number) >>> 0;
      }
      // v = hi · 2^32 + lo, hi signed: reduce each part (|hi mod p| · two32 < 2^44, exact).
      let h = hi % p;
      if (h < 0) h += p;
      o[i] = ((h * two32) % p + (lo % p)) % p;
    }
  }
  return out;
}
