/**
 * The bulk-PSI group: Curve25519's prime-order subgroup in X25519 form, on
 * native libsodium (sodium-native). Protocols reach it only through the
 * `Group` interface; the OPRF stays RFC 9497 ristretto255.
 *
 * ## Elements
 *
 * An element is the class {P, −P} of a point P of order ℓ on Curve25519,
 * encoded as the 32-byte little-endian Montgomery u-coordinate (RFC 7748).
 * Scalar multiplication is well defined on these classes (u(k·P) = u(k·(−P))),
 * which is all ECDH-PSI needs: H(x)^(ab) = H(x)^(ba). There is no addition.
 *
 * ## Scalars
 *
 * Scalars are the same as ristretto255's: integers s in [1, ℓ), applied
 * through X25519's clamped scalars as `x25519-scalar.ts` explains.
 *
 * ## Hashing (random-oracle construction, RFC 9380 §3 style)
 *
 *   uniform = expand_message_xmd(SHA-512, msg, DST, 64)     (RFC 9380 §5.3.1)
 *   Q0 = from_uniform(uniform[0..32]), Q1 = from_uniform(uniform[32..64])
 *   H(msg) = u(Q0 + Q1)
 *
 * where from_uniform is libsodium's crypto_core_ed25519_from_uniform: the
 * low 255 bits as a field element r (statistical distance 19/2^255 from
 * uniform), Elligator 2 on Curve25519 (Z = 2, as RFC 9380 §6.7.1), mapped to
 * edwards25519 with the x sign taken from the top bit, then multiplied by
 * the cofactor 8. Summing two independent maps is RFC 9380's hash_to_curve
 * construction (indifferentiable from a random oracle, Brier et al. 2010);
 * each summand is already in the prime-order subgroup, so the sum is too.
 * The Edwards sum converts to u = (1 + y)/(1 − y). `x25519-noble.ts`
 * implements the same construction on @noble/curves and the tests check
 * both agree byte for byte.
 *
 * ## Validation of received elements
 *
 * Every element taken from outside (`decode`, `multiply*`) must be 32 bytes,
 * canonical (bit 255 clear and u < p), not 0 (X25519's encoding of the
 * identity) and not p − 1, and its Edwards image y = (u − 1)/(u + 1) must be
 * a point of edwards25519's prime-order subgroup
 * (crypto_core_ed25519_is_valid_point: on the curve — so not on the twist —,
 * not of small order, and ℓ·P = 0). That check costs about one scalar
 * multiplication; it is kept because a strictly decoded group is simpler to
 * reason about than relying on X25519's twist security and cofactor
 * clearing.
 */
import sodium from "sodium-native";
import { InvalidPointError, UnsupportedBackendError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import { concatSha512 } from "./concat-sha.js";
import { dstPrime, expandMessageXmdPrime, type Sha512 } from "./expand.js";
import { batchDivide, feFromBytes, feIsCanonical, feToBytes, P } from "./field25519.js";
import { invertScalarBytes, randomScalarNumber, scalarToBytes } from "./scalar.js";
import { x25519ScalarPlan } from "./x25519-scalar.js";
import { BackendId, GroupId, type DecodeOptions, type Group, type PointBytes, type RandomSource, type ScalarBytes } from "./types.js";
import { assertDst, assertElementBytes, assertMessages, elementCount } from "./validate.js";

export { clampedFromScalar } from "./x25519-scalar.js";

const P_MINUS_1 = P - 1n;

/**
 * Validates n received u-coordinates in `points` (n × 32 bytes), throwing
 * InvalidPointError with the failing index. Exported for the tests.
 */
export function validateX25519Batch(points: Uint8Array, n: number, allowIdentity = false): void {
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  const idx: number[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * 32;
    if (!feIsCanonical(points, o)) throw new InvalidPointError("not a canonical x25519 encoding", n === 1 ? undefined : i);
    const u = feFromBytes(points, o);
    if (u === 0n) {
      if (allowIdentity) continue;
      throw new InvalidPointError("identity element refused", n === 1 ? undefined : i);
    }
    if (u === P_MINUS_1) throw new InvalidPointError("element of small order refused", n === 1 ? undefined : i);
    nums.push(u - 1n);
    dens.push(u + 1n);
    idx.push(i);
  }
  if (idx.length === 0) return;
  const ys = batchDivide(nums, dens);
  const enc = Buffer.alloc(32);
  for (let j = 0; j < ys.length; j++) {
    feToBytes(ys[j] as bigint, enc, 0);
    if (!sodium.crypto_core_ed25519_is_valid_point(enc)) {
      const i = idx[j] as number;
      throw new InvalidPointError("not an element of the prime-order subgroup", n === 1 ? undefined : i);
    }
  }
}

/** Converts n encoded edwards25519 points (n × 32, prime-order, non-identity) to u-coordinates in place-order into `out`. */
export function edwardsToMontgomeryBatch(ed: Uint8Array, n: number, out: Uint8Array): void {
  const nums = new Array<bigint>(n);
  const dens = new Array<bigint>(n);
  for (let i = 0; i < n; i++) {
    const y = feFromBytes(ed, i * 32);
    if (y === 1n) throw new InvalidPointError("hash produced the identity (probability 2^-252)", i);
    nums[i] = 1n + y;
    dens[i] = (1n - y + P) % P;
  }
  const us = batchDivide(nums, dens);
  for (let i = 0; i < n; i++) feToBytes(us[i] as bigint, out, i * 32);
}

let checked = false;
function assertSodium(): void {
  if (checked) return;
  if (typeof sodium?.crypto_scalarmult !== "function" || typeof sodium.crypto_core_ed25519_from_uniform !== "function") {
    throw new UnsupportedBackendError("sodium-native is not available on this platform");
  }
  checked = true;
}

export function createX25519Sodium(): Group<Uint8Array> {
  assertSodium();
  const sha512: Sha512 = concatSha512((m) => {
    const out = Buffer.alloc(64);
    sodium.crypto_hash_sha512(out, m);
    return out;
  });
  const e0 = Buffer.alloc(32);
  const e1 = Buffer.alloc(32);

  /** Writes the Edwards form of H(msg) at `ed[o..o+32]`. */
  const hashEdwards = (msg: Uint8Array, dstP: Uint8Array, ed: Uint8Array, o: number): void => {
    const uni = expandMessageXmdPrime(msg, dstP, 64, sha512);
    sodium.crypto_core_ed25519_from_uniform(e0, uni.subarray(0, 32));
    sodium.crypto_core_ed25519_from_uniform(e1, uni.subarray(32, 64));
    sodium.crypto_core_ed25519_add(ed.subarray(o, o + 32), e0, e1);
  };

  /** out = plan · u (the plan from x25519ScalarPlan: one X25519 almost always). */
  const mulInto = (plan: Uint8Array[], u: Uint8Array, out: Uint8Array): void => {
    let src = u;
    for (const k of plan) {
      sodium.crypto_scalarmult(out, k, src);
      src = out;
    }
  };

  const group: Group<Uint8Array> = {
    id: GroupId.X25519,
    backend: BackendId.SodiumNative,
    elementBytes: 32,
    scalarBytes: 32,
    hashToGroup(msg: Uint8Array, dst: Uint8Array): Uint8Array {
      assertDst(dst);
      const ed = Buffer.alloc(32);
      hashEdwards(msg, dstPrime(dst, sha512), ed, 0);
      const out = new Uint8Array(32);
      edwardsToMontgomeryBatch(ed, 1, out);
      return out;
    },
    multiply(scalar: ScalarBytes, element: Uint8Array): Uint8Array {
      const k = x25519ScalarPlan(scalar);
      const out = Buffer.alloc(32);
      mulInto(k, element, out);
      return new Uint8Array(out);
    },
    multiplyBase(scalar: ScalarBytes): Uint8Array {
      const [k0, ...rest] = x25519ScalarPlan(scalar);
      const out = Buffer.alloc(32);
      sodium.crypto_scalarmult_base(out, k0 as Uint8Array);
      if (rest.length > 0) mulInto(rest, out, out);
      return new Uint8Array(out);
    },
    encode(element: Uint8Array): PointBytes {
      return Uint8Array.from(element);
    },
    decode(bytes: Uint8Array, options?: DecodeOptions): Uint8Array {
      assertElementBytes(bytes);
      validateX25519Batch(bytes, 1, options?.allowIdentity ?? false);
      return Uint8Array.from(bytes);
    },
    equals(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && Buffer.compare(a, b) === 0;
    },
    randomScalar(rng?: RandomSource): ScalarBytes {
      return scalarToBytes(randomScalarNumber(rng));
    },
    invertScalar(scalar: ScalarBytes): ScalarBytes {
      return invertScalarBytes(scalar);
    },
    hashToGroupBatch(messages: PackedBytes, dst: Uint8Array, scalar?: ScalarBytes): Uint8Array {
      assertDst(dst);
      const n = assertMessages(messages);
      const k = scalar === undefined ? undefined : x25519ScalarPlan(scalar);
      const dstP = dstPrime(dst, sha512);
      const ed = Buffer.alloc(n * 32);
      const { data, offsets } = messages;
      for (let i = 0; i < n; i++) hashEdwards(data.subarray(offsets[i] ?? 0, offsets[i + 1] ?? 0), dstP, ed, i * 32);
      const out = Buffer.alloc(n * 32);
      edwardsToMontgomeryBatch(ed, n, out);
      if (k !== undefined) {
        for (let i = 0; i < n; i++) {
          const u = out.subarray(i * 32, i * 32 + 32);
          mulInto(k, u, u);
        }
      }
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    },
    multiplyBatch(scalar: ScalarBytes, points: Uint8Array): Uint8Array {
      const k = x25519ScalarPlan(scalar);
      const n = elementCount(points);
      validateX25519Batch(points, n);
      const out = Buffer.alloc(n * 32);
      for (let i = 0; i < n; i++) mulInto(k, points.subarray(i * 32, i * 32 + 32), out.subarray(i * 32, i * 32 + 32));
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    },
  };
  return group;
}
