/**
 * expand_message_xmd with SHA-512 (RFC 9380 §5.3.1), parameterised by the
 * SHA-512 implementation so each backend uses its fastest one. Long DSTs
 * (> 255 bytes) are hashed as in §5.3.3.
 */
import { sha512 as nobleSha512 } from "@noble/hashes/sha2.js";
import { InvalidArgumentError } from "../errors.js";

/** SHA-512 over the concatenation of `parts`. */
export type Sha512 = (parts: readonly Uint8Array[]) => Uint8Array;

export const nobleSha512Parts: Sha512 = (parts) => {
  const h = nobleSha512.create();
  for (const p of parts) h.update(p);
  return h.digest();
};

const B_IN_BYTES = 64;
const R_IN_BYTES = 128;
const ZERO_PAD = new Uint8Array(R_IN_BYTES);
const LONG_DST_PREFIX = new TextEncoder().encode("H2C-OVERSIZE-DST-");

/** DST_prime = DST || I2OSP(len(DST), 1), with the oversize-DST rule applied. */
export function dstPrime(dst: Uint8Array, sha512: Sha512 = nobleSha512Parts): Uint8Array {
  const d = dst.length > 255 ? sha512([LONG_DST_PREFIX, dst]) : dst;
  if (d.length === 0) throw new InvalidArgumentError("domain separation tag must not be empty");
  const out = new Uint8Array(d.length + 1);
  out.set(d);
  out[d.length] = d.length;
  return out;
}

/**
 * Returns `lenInBytes` uniform bytes. `dstP` is DST_prime from {@link dstPrime}
 * (callers that hash many messages under one DST compute it once).
 */
export function expandMessageXmdPrime(msg: Uint8Array, dstP: Uint8Array, lenInBytes: number, sha512: Sha512): Uint8Array {
  const ell = Math.ceil(lenInBytes / B_IN_BYTES);
  if (ell > 255 || lenInBytes > 65535 || lenInBytes <= 0) throw new InvalidArgumentError("expand_message_xmd: length out of range");
  const libStr = new Uint8Array([lenInBytes >> 8, lenInBytes & 0xff, 0]);
  const b0 = sha512([ZERO_PAD, msg, libStr, dstP]);
  const out = new Uint8Array(ell * B_IN_BYTES);
  const counter = new Uint8Array(1);
  counter[0] = 1;
  let prev = sha512([b0, counter, dstP]);
  out.set(prev, 0);
  const mixed = new Uint8Array(B_IN_BYTES);
  for (let i = 2; i <= ell; i++) {
    for (let j = 0; j < B_IN_BYTES; j++) mixed[j] = (b0[j] ?? 0) ^ (prev[j] ?? 0);
    counter[0] = i;
    prev = sha512([mixed, counter, dstP]);
    out.set(prev, (i - 1) * B_IN_BYTES);
  }
  return out.subarray(0, lenInBytes);
}

/** expand_message_xmd(msg, DST, len_in_bytes) with SHA-512. */
export function expandMessageXmd(msg: Uint8Array, dst: Uint8Array, lenInBytes: number, sha512: Sha512 = nobleSha512Parts): Uint8Array {
  return expandMessageXmdPrime(msg, dstPrime(dst, sha512), lenInBytes, sha512);
}
