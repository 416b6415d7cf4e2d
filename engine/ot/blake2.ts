/**
 * BLAKE2b-512 (RFC 7693) one short message at a time, on native libsodium
 * (sodium-native's crypto_generichash with a 64-byte output, unkeyed) when
 * it loads, else node:crypto's "blake2b512": the same function, so both
 * parties get the same bytes whichever loads (test/ot-hash.test.ts checks
 * them against each other).
 *
 * The OT-PSI uses it twice, both times as a random oracle: to digest each
 * variable-length key into a fixed block and its cuckoo positions
 * (engine/psi/cuckoo.ts), and as KKRT's hash H on the OT rows (kkrt.ts).
 */
import { createHash } from "node:crypto";

/** Writes BLAKE2b-512(input) into out[0..64). */
export type Blake2b512 = (out: Uint8Array, input: Uint8Array) => void;

let loaded: Promise<Blake2b512> | undefined;

/** node:crypto's BLAKE2b-512 (OpenSSL), the fallback and the cross-check. */
export const blake2bNode: Blake2b512 = (out, input) => {
  out.set(createHash("blake2b512").update(input).digest());
};

/** The fastest BLAKE2b-512 that loads here (sodium-native, else node:crypto). */
export function loadBlake2b(): Promise<Blake2b512> {
  loaded ??= import("sodium-native").then(
    (m) => {
      const sodium = m.default;
      const f: Blake2b512 = (out, input) => sodium.crypto_generichash(out.length === 64 ? out : out.subarray(0, 64), input);
      return f;
    },
    () => blake2bNode,
  );
  return loaded;
}
