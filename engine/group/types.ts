/**
 * The `Group` interface: a prime-order group as the protocols use it.
 *
 * Elements cross every boundary as their 32-byte canonical encoding
 * (`PointBytes`); scalars as 32-byte little-endian integers reduced modulo the
 * group order ℓ = 2^252 + 27742317777372353535851937790883648493
 * (`ScalarBytes`). Both groups Umbra ships have that same order ℓ, so scalars
 * are interchangeable between them.
 *
 * Received elements are untrusted: `decode` and every multiply refuse a
 * non-canonical encoding, a point off the curve or outside the prime-order
 * subgroup, and the identity, with `InvalidPointError` (RFC 9497 §3.3).
 */
import type { PackedBytes } from "../packed.js";

/** A canonical 32-byte group element encoding. */
export type PointBytes = Uint8Array;
/** A 32-byte little-endian scalar, reduced modulo ℓ and non-zero. */
export type ScalarBytes = Uint8Array;
/** A source of randomness: returns n fresh random bytes. Tests pass a fixed one to replay vectors. */
export type RandomSource = (n: number) => Uint8Array;

export const GroupId = {
  /** ristretto255, RFC 9496. */
  Ristretto255: "ristretto255",
  /**
   * The prime-order subgroup of Curve25519 in X25519's Montgomery
   * u-coordinate form (see `x25519-sodium.ts`): the bulk-PSI group.
   */
  X25519: "x25519",
} as const;
export type GroupId = (typeof GroupId)[keyof typeof GroupId];

export const BackendId = {
  /** @noble/curves: the pure-JS reference, runs anywhere. */
  Noble: "noble",
  /** libsodium-wrappers-sumo: libsodium compiled to WebAssembly. */
  Libsodium: "libsodium",
  /** sodium-native: native libsodium, prebuilt inside the npm package. */
  SodiumNative: "sodium-native",
} as const;
export type BackendId = (typeof BackendId)[keyof typeof BackendId];

export const ELEMENT_BYTES = 32;
export const SCALAR_BYTES = 32;

export interface DecodeOptions {
  /**
   * Accept the identity element. Only for locally produced values (e.g. the
   * RFC 9496 vector of 0·B); never for anything received from a peer.
   */
  readonly allowIdentity?: boolean;
}

export interface Group<E = unknown> {
  readonly id: GroupId;
  readonly backend: BackendId;
  /** Bytes of an encoded element (32). */
  readonly elementBytes: number;
  /** Bytes of an encoded scalar (32). */
  readonly scalarBytes: number;

  /** Hashes `msg` to an element with the caller's domain separation tag (random-oracle construction). */
  hashToGroup(msg: Uint8Array, dst: Uint8Array): E;
  /** scalar · element. */
  multiply(scalar: ScalarBytes, element: E): E;
  /** scalar · generator. */
  multiplyBase(scalar: ScalarBytes): E;
  /** The canonical encoding of an element. */
  encode(element: E): PointBytes;
  /** Strict decoding of an untrusted encoding; refuses the identity unless told otherwise. */
  decode(bytes: Uint8Array, options?: DecodeOptions): E;
  /** True when both elements are the same group element. */
  equals(a: E, b: E): boolean;

  /** A uniformly random non-zero scalar (from `rng` when given, else the system CSPRNG). */
  randomScalar(rng?: RandomSource): ScalarBytes;
  /** s⁻¹ mod ℓ. */
  invertScalar(scalar: ScalarBytes): ScalarBytes;

  /**
   * Batch hash-to-group, optionally followed by a multiplication by `scalar`:
   * returns n × 32 bytes, element i = encode(scalar · H(msg_i)).
   */
  hashToGroupBatch(messages: PackedBytes, dst: Uint8Array, scalar?: ScalarBytes): Uint8Array;
  /**
   * Batch multiply of untrusted encodings (n × 32 bytes) by one scalar:
   * every input is strictly decoded (identity refused); the error names the
   * failing index. Returns n × 32 bytes.
   */
  multiplyBatch(scalar: ScalarBytes, points: Uint8Array): Uint8Array;
}

/** A group with addition: what the OPRF's verifiable modes (DLEQ proofs) need. ristretto255 backends provide it. */
export interface AdditiveGroup<E = unknown> extends Group<E> {
  /** a + b. */
  add(a: E, b: E): E;
}
