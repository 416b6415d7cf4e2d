/**
 * Scalars for the x25519 group. X25519 clamps its scalar to k = 2^254 + 8m
 * (0 ≤ m < 2^251). For an element P of order ℓ, X25519(k, u(P)) = u(k·P), so a
 * scalar s ∈ [1, ℓ) is applied as k = 8r with r = s/8 mod ℓ when
 * r ∈ [2^251, 2^252) (then k ≡ s mod ℓ and clamping leaves k unchanged), or
 * with −s instead (same u-coordinate). A random s has neither form with
 * probability about 2^-126; such an s (only ever met on purpose) is applied
 * as two multiplications by c and s/c for a small c where both have one.
 */
import { InvalidScalarError } from "../errors.js";
import { invertScalarNumber, numberToBytesLE, ORDER, scalarFromBytes } from "./scalar.js";
import type { ScalarBytes } from "./types.js";

const INV8 = invertScalarNumber(8n);
const LOW = 1n << 251n;
const HIGH = 1n << 252n;

/** The clamped X25519 scalar k with k ≡ ±s (mod ℓ), or undefined when s has none. */
export function clampedFromScalar(s: bigint): Uint8Array | undefined {
  const r = (s * INV8) % ORDER;
  if (r >= LOW && r < HIGH) return numberToBytesLE(8n * r, 32);
  const r2 = ORDER - r;
  if (r2 >= LOW && r2 < HIGH) return numberToBytesLE(8n * r2, 32);
  return undefined;
}

/** The X25519 scalars to apply in turn for s: one almost always, two otherwise. */
export function x25519ScalarPlan(scalar: ScalarBytes): Uint8Array[] {
  const s = scalarFromBytes(scalar);
  const k = clampedFromScalar(s);
  if (k) return [k];
  for (let c = 2n; c < 64n; c++) {
    const kc = clampedFromScalar(c);
    const kr = clampedFromScalar((s * invertScalarNumber(c)) % ORDER);
    if (kc && kr) return [kc, kr];
  }
  throw new InvalidScalarError("scalar cannot be used with the x25519 group");
}
