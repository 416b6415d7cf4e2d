/**
 * The few GF(2^255 − 19) operations the x25519 group needs outside libsodium:
 * byte conversions and batched Edwards y ↔ Montgomery u conversion
 * (u = (1 + y) / (1 − y), y = (u − 1) / (u + 1)), one field inversion per
 * batch (Montgomery's trick).
 */
import { invert } from "@noble/curves/abstract/modular.js";

export const P = (1n << 255n) - 19n;
const MASK64 = 0xffffffffffffffffn;

/** Reads a 255-bit little-endian field element at `offset` (bit 255 ignored). */
export function feFromBytes(buf: Uint8Array, offset: number): bigint {
  const dv = new DataView(buf.buffer, buf.byteOffset + offset, 32);
  return (
    dv.getBigUint64(0, true) |
    (dv.getBigUint64(8, true) << 64n) |
    (dv.getBigUint64(16, true) << 128n) |
    ((dv.getBigUint64(24, true) & 0x7fffffffffffffffn) << 192n)
  );
}

/** Writes a reduced field element (< p) as 32 bytes little-endian at `offset`. */
export function feToBytes(v: bigint, out: Uint8Array, offset: number): void {
  const dv = new DataView(out.buffer, out.byteOffset + offset, 32);
  dv.setBigUint64(0, v & MASK64, true);
  dv.setBigUint64(8, (v >> 64n) & MASK64, true);
  dv.setBigUint64(16, (v >> 128n) & MASK64, true);
  dv.setBigUint64(24, v >> 192n, true);
}

/** True when the 32 bytes at `offset` are a canonical field element: bit 255 clear and value < p. */
export function feIsCanonical(buf: Uint8Array, offset: number): boolean {
  if (((buf[offset + 31] ?? 0) & 0x80) !== 0) return false;
  return feFromBytes(buf, offset) < P;
}

/**
 * For each i, out_i = num_i / den_i mod p, all denominators non-zero (the
 * caller checks). One inversion for the whole batch.
 */
export function batchDivide(num: bigint[], den: bigint[]): bigint[] {
  const n = den.length;
  const prefix = new Array<bigint>(n);
  let acc = 1n;
  for (let i = 0; i < n; i++) {
    prefix[i] = acc;
    acc = (acc * (den[i] as bigint)) % P;
  }
  let inv = invert(acc, P);
  const out = new Array<bigint>(n);
  for (let i = n - 1; i >= 0; i--) {
    const d = den[i] as bigint;
    out[i] = ((((inv * (prefix[i] as bigint)) % P) * (num[i] as bigint)) % P);
    inv = (inv * d) % P;
  }
  return out;
}
