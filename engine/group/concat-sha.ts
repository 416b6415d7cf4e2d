/** Adapts a one-shot SHA-512 (input → 64 bytes) to the multi-part `Sha512` signature with a reusable scratch buffer. */
import type { Sha512 } from "./expand.js";

export function concatSha512(oneShot: (input: Uint8Array) => Uint8Array): Sha512 {
  let scratch = new Uint8Array(512);
  return (parts) => {
    let total = 0;
    for (const p of parts) total += p.length;
    if (total > scratch.length) scratch = new Uint8Array(Math.max(total, scratch.length * 2));
    let o = 0;
    for (const p of parts) {
      scratch.set(p, o);
      o += p.length;
    }
    return oneShot(scratch.subarray(0, total));
  };
}
