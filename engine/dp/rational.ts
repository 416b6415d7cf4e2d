/**
 * Exact non-negative rationals for engine/dp's parameters (σ², scales,
 * means, γ): a numerator and a denominator as BigInt, checked and reduced.
 * Callers may pass each part as a bigint or as a safe-integer Number; any
 * other value (a fraction such as 1.5, NaN, a string) is refused with an
 * InvalidArgumentError naming the parameter, never its value's meaning.
 */
import { InvalidArgumentError } from "../errors.js";

/** An integer as callers may give it: a bigint, or a Number that is a safe integer. */
export type IntLike = bigint | number;

/** num / den in lowest terms, den ≥ 1. */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

/** `x` as a bigint; refuses a Number that is not a safe integer, and anything else. */
export function toBigInt(x: IntLike, what: string): bigint {
  if (typeof x === "bigint") return x;
  if (typeof x === "number" && Number.isSafeInteger(x)) return BigInt(x);
  throw new InvalidArgumentError(`${what} must be an integer (a bigint or a safe-integer number)`);
}

export function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/**
 * num / den checked: den ≥ 1, num ≥ 0 (num ≥ 1 when `positive`), reduced.
 * @throws InvalidArgumentError naming `what`
 */
export function rational(num: IntLike, den: IntLike, what: string, options?: { positive?: boolean }): Rational {
  const n = toBigInt(num, `${what} (numerator)`);
  const d = toBigInt(den, `${what} (denominator)`);
  if (d < 1n) throw new InvalidArgumentError(`${what}: the denominator must be ≥ 1`);
  if (options?.positive === true ? n < 1n : n < 0n) {
    throw new InvalidArgumentError(`${what} must be ${options?.positive === true ? "> 0" : "≥ 0"}`);
  }
  const g = gcd(n, d);
  return g <= 1n ? { num: n, den: d } : { num: n / g, den: d / g };
}

/** ⌊√x⌋ for x ≥ 0 (Newton's method on integers, from a power of two above the root). */
export function isqrt(x: bigint): bigint {
  if (x < 0n) throw new InvalidArgumentError("isqrt of a negative number");
  if (x < 2n) return x;
  let r = 1n << BigInt(Math.ceil(bitLength(x) / 2));
  for (;;) {
    const next = (r + x / r) >> 1n;
    if (next >= r) return r;
    r = next;
  }
}

export function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** The value as a Number (for reporting and test statistics only, never for sampling decisions). */
export function rationalToNumber(r: Rational): number {
  const sn = Math.max(0, bitLength(r.num) - 64);
  const sd = Math.max(0, bitLength(r.den) - 64);
  return (Number(r.num >> BigInt(sn)) / Number(r.den >> BigInt(sd))) * 2 ** (sn - sd);
}
