/**
 * ristretto255 (RFC 9496) on libsodium compiled to WebAssembly
 * (libsodium-wrappers-sumo). Same bytes as the noble reference; several times
 * faster. hash_to_ristretto255 = crypto_core_ristretto255_from_hash (RFC 9496
 * §4.3.4) of expand_message_xmd(SHA-512, 64 bytes) (RFC 9380 Appendix B).
 */
import sodiumModule from "libsodium-wrappers-sumo";
import { InvalidPointError, UnsupportedBackendError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import { concatSha512 } from "./concat-sha.js";
import { dstPrime, expandMessageXmdPrime } from "./expand.js";
import { invertScalarBytes, randomScalarNumber, scalarFromBytes, scalarToBytes } from "./scalar.js";
import { BackendId, GroupId, type DecodeOptions, type AdditiveGroup, type PointBytes, type RandomSource, type ScalarBytes } from "./types.js";
import { assertDst, assertElementBytes, assertMessages, elementCount, isZero } from "./validate.js";

type Sodium = typeof sodiumModule;

let ready: Promise<Sodium> | undefined;

/** Loads the libsodium WebAssembly module once per thread. */
export function loadLibsodium(): Promise<Sodium> {
  ready ??= sodiumModule.ready.then(
    () => sodiumModule,
    (cause: unknown) => {
      ready = undefined;
      throw new UnsupportedBackendError("libsodium-wrappers-sumo failed to load", { cause });
    },
  );
  return ready;
}

export async function createRistrettoLibsodium(): Promise<AdditiveGroup<Uint8Array>> {
  const na = await loadLibsodium();
  const sha512 = concatSha512((m) => na.crypto_hash_sha512(m));

  const decodeStrict = (bytes: Uint8Array, options?: DecodeOptions, index?: number): Uint8Array => {
    assertElementBytes(bytes, index);
    if (isZero(bytes)) {
      if (options?.allowIdentity) return Uint8Array.from(bytes);
      throw new InvalidPointError("identity element refused", index);
    }
    if (!na.crypto_core_ristretto255_is_valid_point(bytes)) {
      throw new InvalidPointError("not a canonical ristretto255 encoding", index);
    }
    return Uint8Array.from(bytes);
  };
  // Scalars are < ℓ and non-zero and elements are non-identity in a prime-order
  // group, so a product is never the identity (libsodium's only failure).
  const mul = (s: Uint8Array, p: Uint8Array): Uint8Array => na.crypto_scalarmult_ristretto255(s, p);
  const hash = (msg: Uint8Array, dstP: Uint8Array): Uint8Array =>
    na.crypto_core_ristretto255_from_hash(expandMessageXmdPrime(msg, dstP, 64, sha512));

  return {
    id: GroupId.Ristretto255,
    backend: BackendId.Libsodium,
    elementBytes: 32,
    scalarBytes: 32,
    hashToGroup(msg: Uint8Array, dst: Uint8Array): Uint8Array {
      assertDst(dst);
      return hash(msg, dstPrime(dst, sha512));
    },
    multiply(scalar: ScalarBytes, element: Uint8Array): Uint8Array {
      scalarFromBytes(scalar);
      return mul(scalar, element);
    },
    multiplyBase(scalar: ScalarBytes): Uint8Array {
      scalarFromBytes(scalar);
      return na.crypto_scalarmult_ristretto255_base(scalar);
    },
    encode(element: Uint8Array): PointBytes {
      return Uint8Array.from(element);
    },
    decode(bytes: Uint8Array, options?: DecodeOptions): Uint8Array {
      return decodeStrict(bytes, options);
    },
    add(a: Uint8Array, b: Uint8Array): Uint8Array {
      return na.crypto_core_ristretto255_add(a, b);
    },
    equals(a: Uint8Array, b: Uint8Array): boolean {
      return na.compare(a, b) === 0;
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
      if (scalar !== undefined) scalarFromBytes(scalar);
      const dstP = dstPrime(dst, sha512);
      const out = new Uint8Array(n * 32);
      const { data, offsets } = messages;
      for (let i = 0; i < n; i++) {
        const p = hash(data.subarray(offsets[i] ?? 0, offsets[i + 1] ?? 0), dstP);
        out.set(scalar === undefined ? p : mul(scalar, p), i * 32);
      }
      return out;
    },
    multiplyBatch(scalar: ScalarBytes, points: Uint8Array): Uint8Array {
      scalarFromBytes(scalar);
      const n = elementCount(points);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const p = points.subarray(i * 32, i * 32 + 32);
        decodeStrict(p, undefined, i);
        out.set(mul(scalar, p), i * 32);
      }
      return out;
    },
  };
}
