/**
 * Scalars modulo ℓ, the order of ristretto255 and of Curve25519's
 * prime-order subgroup: ℓ = 2^252 + 27742317777372353535851937790883648493.
 * Encoded as 32 bytes little-endian (RFC 9496 §4.4, RFC 9497 §4.1).
 */
import { randomBytes } from "node:crypto";
import { invert } from "@noble/curves/abstract/modular.js";
import { InvalidLengthError, InvalidScalarError } from "../errors.js";
import type { RandomSource, ScalarBytes } from "./types.js";

export const ORDER = (1n << 252n) + 27742317777372353535851937790883648493n;

export function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

export function numberToBytesLE(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = n;
  for (let i = 0; i < length; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

export function powMod(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/** Parses a scalar: 32 bytes, < ℓ, non-zero. Throws InvalidScalarError / InvalidLengthError. */
export function scalarFromBytes(bytes: Uint8Array): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
    throw new InvalidLengthError("scalar", "32", bytes instanceof Uint8Array ? bytes.length : 0);
  }
  const s = bytesToNumberLE(bytes);
  if (s >= ORDER) throw new InvalidScalarError("scalar is not reduced modulo the group order");
  if (s === 0n) throw new InvalidScalarError("scalar is zero");
  return s;
}

export function scalarToBytes(s: bigint): ScalarBytes {
  return numberToBytesLE(mod(s, ORDER), 32);
}

/** Reduces a wide (e.g. 64-byte) little-endian integer modulo ℓ. */
export function scalarReduce(wide: Uint8Array): bigint {
  return bytesToNumberLE(wide) % ORDER;
}

/** A uniformly random non-zero scalar: 64 random bytes reduced modulo ℓ (bias < 2^-250). */
export function randomScalarNumber(rng?: RandomSource): bigint {
  for (;;) {
    const bytes = rng ? rng(64) : randomBytes(64);
    if (bytes.length !== 64) throw new InvalidLengthError("random source output", "64", bytes.length);
    const s = scalarReduce(bytes);
    if (s !== 0n) return s;
  }
}

/** s⁻¹ mod ℓ. */
export function invertScalarNumber(s: bigint): bigint {
  return invert(s, ORDER);
}

export function invertScalarBytes(scalar: ScalarBytes): ScalarBytes {
  return scalarToBytes(invertScalarNumber(scalarFromBytes(scalar)));
}
