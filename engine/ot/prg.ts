/**
 * The symmetric primitives of OT extension, in bulk through node:crypto
 * (OpenSSL, AES-NI where the CPU has it).
 *
 * - PRG G(k) = AES-128-CTR under key k, IV 0, over a zero buffer: the
 *   standard instantiation of IKNP's PRG (Ishai, Kilian, Nissim, Petrank,
 *   CRYPTO 2003, §3; Asharov, Lindell, Schneider, Zohner, CCS 2013, §5.1, who
 *   expand each base-OT seed with AES in counter mode). Each 16-byte seed is
 *   used as one AES key, for one stream of at most 2^32 blocks.
 * - ECB encryption of many independent blocks under one key: the pseudorandom
 *   code (code.ts) and anything else that is "AES on a batch of blocks".
 */
import { createCipheriv } from "node:crypto";
import { InvalidLengthError } from "../errors.js";

const ZERO_IV = new Uint8Array(16);
let zeros = new Uint8Array(0);

function assertKey(key: Uint8Array): void {
  if (key.length !== 16) throw new InvalidLengthError("AES-128 key", "16", key.length);
}

/**
 * Writes G(key)[offset .. offset + out.length) into `out` (AES-128-CTR, IV 0,
 * of zeros). `offset` must be a multiple of 16 bytes: the stream then starts
 * at counter block offset/16 (the IV as a big-endian 128-bit counter, as
 * OpenSSL's CTR increments it), so a range of the stream costs only its own
 * blocks — what lets pool workers each expand their rows' part of a column.
 */
export function prgInto(key: Uint8Array, out: Uint8Array, offset = 0): void {
  assertKey(key);
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 16 !== 0) throw new InvalidLengthError("PRG offset", "a non-negative multiple of 16", offset);
  if (zeros.length < out.length) zeros = new Uint8Array(out.length);
  let iv = ZERO_IV;
  if (offset > 0) {
    iv = new Uint8Array(16);
    new DataView(iv.buffer).setBigUint64(8, BigInt(offset / 16), false);
  }
  const c = createCipheriv("aes-128-ctr", key, iv);
  const n = c.update(zeros.subarray(0, out.length));
  out.set(n);
  c.final();
}

/** AES-128-ECB of `blocks` (a multiple of 16 bytes) under `key`, into `out` (same length). */
export function aesEcbInto(key: Uint8Array, blocks: Uint8Array, out: Uint8Array): void {
  assertKey(key);
  if (blocks.length % 16 !== 0) throw new InvalidLengthError("AES input", "a multiple of 16", blocks.length);
  if (out.length !== blocks.length) throw new InvalidLengthError("AES output", String(blocks.length), out.length);
  const c = createCipheriv("aes-128-ecb", key, null);
  c.setAutoPadding(false);
  out.set(c.update(blocks));
  c.final();
}
