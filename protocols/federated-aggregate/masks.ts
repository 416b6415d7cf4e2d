/**
 * federated-aggregate's pairwise mask keys (see index.ts, Flow): the mask of
 * providers (lo, hi), lo < hi, is drawn from AES-256-CTR keyed by
 * HKDF-SHA256(X25519(sk_i, pk_j), salt "umbra/federated-aggregate/v1",
 * info = job ‖ lo ‖ hi ‖ pk_lo ‖ pk_hi ‖ HE fingerprint ‖ buyer key-set id),
 * read as little-endian uint32 words. Provider lo adds it, hi subtracts it.
 * What a mask is in each scheme's slot space (residues mod every BFV prime,
 * CKKS reals) is engine/he masks.ts.
 *
 * References: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017) §4; RFC 7748 (X25519);
 * RFC 5869 (HKDF).
 */
import { createCipheriv } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes } from "@noble/hashes/utils.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import type { PairMask, WordStream } from "../../engine/he/index.js";
import { FA_VERSION, type FaResolved } from "./params.js";

const SALT = new TextEncoder().encode(`umbra/federated-aggregate/v${FA_VERSION}`);

function u32be(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, false);
  return b;
}

/** A fresh X25519 key pair for a provider (its registered box key in the node). */
export function faBoxKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const { secretKey, publicKey } = x25519.keygen();
  return { publicKey, secretKey };
}

/** X25519(secretKey, peer) (RFC 7748 §6.1), refusing a peer key that is invalid or of small order (an all-zero secret). */
function sharedSecret(secretKey: Uint8Array, peer: Uint8Array, who: number): Uint8Array {
  let z: Uint8Array;
  try {
    z = x25519.getSharedSecret(secretKey, peer);
  } catch {
    throw new InvalidArgumentError(`provider ${who}'s box public key is not a valid X25519 key`);
  }
  if (z.every((b) => b === 0)) throw new InvalidArgumentError(`provider ${who}'s box public key is of small order`);
  return z;
}

/** Pair (lo, hi)'s PRG: AES-256-CTR keyed by HKDF-SHA256(shared, SALT, job ‖ lo ‖ hi ‖ pk_lo ‖ pk_hi ‖ fingerprint ‖ key-set id), as uint32 words. */
function pairStream(s: FaResolved, shared: Uint8Array, lo: number, hi: number, pkLo: Uint8Array, pkHi: Uint8Array, fingerprint: string, keyId: string): { next: WordStream; close: () => void } {
  const job = new TextEncoder().encode(s.job);
  const info = concatBytes(u32be(job.length), job, u32be(lo), u32be(hi), pkLo, pkHi, Buffer.from(fingerprint, "hex"), Buffer.from(keyId, "hex"));
  const key = hkdf(sha256, shared, SALT, info, 32);
  const cipher = createCipheriv("aes-256-ctr", key, new Uint8Array(16));
  const zeros = new Uint8Array(4096);
  let buf = new Uint8Array(0);
  let pos = 0;
  const next = (): number => {
    if (pos + 4 > buf.length) {
      buf = new Uint8Array(cipher.update(zeros));
      pos = 0;
    }
    const v = ((buf[pos] as number) | ((buf[pos + 1] as number) << 8) | ((buf[pos + 2] as number) << 16) | ((buf[pos + 3] as number) << 24)) >>> 0;
    pos += 4;
    return v;
  };
  return { next, close: () => void cipher.final() };
}

/**
 * Provider `me`'s masks, one per other provider j in index order: pair
 * (min, max)'s stream, added when me < j, subtracted when me > j. Call
 * `close` once the masks are drawn.
 */
export function faPairMasks(
  s: FaResolved,
  me: number,
  boxSecretKey: Uint8Array,
  peers: readonly Uint8Array[],
  fingerprint: string,
  keyId: string,
): { masks: PairMask[]; close: () => void } {
  const masks: PairMask[] = [];
  const streams: { close: () => void }[] = [];
  for (let j = 0; j < s.providers; j++) {
    if (j === me) continue;
    const lo = Math.min(me, j);
    const hi = Math.max(me, j);
    const shared = sharedSecret(boxSecretKey, peers[j] as Uint8Array, j);
    const stream = pairStream(s, shared, lo, hi, peers[lo] as Uint8Array, peers[hi] as Uint8Array, fingerprint, keyId);
    streams.push(stream);
    masks.push({ stream: stream.next, sign: me === lo ? 1 : -1 });
  }
  return { masks, close: () => streams.forEach((t) => t.close()) };
}
