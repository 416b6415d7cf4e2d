/**
 * ristretto255 (RFC 9496) on @noble/curves: the reference backend.
 * hash_to_ristretto255 is RFC 9380 Appendix B: expand_message_xmd(SHA-512,
 * 64 bytes) then the RFC 9496 §4.3.4 element derivation.
 */
import { ristretto255, ristretto255_hasher } from "@noble/curves/ed25519.js";
import { InvalidPointError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import { dstPrime, expandMessageXmdPrime, nobleSha512Parts } from "./expand.js";
import { invertScalarBytes, randomScalarNumber, scalarFromBytes, scalarToBytes } from "./scalar.js";
import { BackendId, GroupId, type DecodeOptions, type AdditiveGroup, type PointBytes, type RandomSource, type ScalarBytes } from "./types.js";
import { assertDst, assertElementBytes, assertMessages, elementCount } from "./validate.js";

type RistrettoPoint = InstanceType<typeof ristretto255.Point>;
const Point = ristretto255.Point;

/** RFC 9496 §4.3.4: the element derived from 64 uniform bytes. */
export function ristrettoFromUniformNoble(bytes64: Uint8Array): RistrettoPoint {
  const derive = ristretto255_hasher.deriveToCurve;
  if (!derive) throw new Error("noble ristretto255 lacks deriveToCurve");
  return derive(bytes64);
}

function decodeStrict(bytes: Uint8Array, options?: DecodeOptions, index?: number): RistrettoPoint {
  assertElementBytes(bytes, index);
  let p: RistrettoPoint;
  try {
    p = Point.fromBytes(bytes);
  } catch {
    throw new InvalidPointError("not a canonical ristretto255 encoding", index);
  }
  if (!options?.allowIdentity && p.is0()) throw new InvalidPointError("identity element refused", index);
  return p;
}

export function createRistrettoNoble(): AdditiveGroup<RistrettoPoint> {
  const hash = (msg: Uint8Array, dstP: Uint8Array): RistrettoPoint =>
    ristrettoFromUniformNoble(expandMessageXmdPrime(msg, dstP, 64, nobleSha512Parts));

  return {
    id: GroupId.Ristretto255,
    backend: BackendId.Noble,
    elementBytes: 32,
    scalarBytes: 32,
    hashToGroup(msg: Uint8Array, dst: Uint8Array): RistrettoPoint {
      assertDst(dst);
      return hash(msg, dstPrime(dst));
    },
    multiply(scalar: ScalarBytes, element: RistrettoPoint): RistrettoPoint {
      return element.multiply(scalarFromBytes(scalar));
    },
    multiplyBase(scalar: ScalarBytes): RistrettoPoint {
      return Point.BASE.multiply(scalarFromBytes(scalar));
    },
    encode(element: RistrettoPoint): PointBytes {
      return element.toBytes();
    },
    decode(bytes: Uint8Array, options?: DecodeOptions): RistrettoPoint {
      return decodeStrict(bytes, options);
    },
    add(a: RistrettoPoint, b: RistrettoPoint): RistrettoPoint {
      return a.add(b);
    },
    equals(a: RistrettoPoint, b: RistrettoPoint): boolean {
      return a.equals(b);
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
      const s = scalar === undefined ? undefined : scalarFromBytes(scalar);
      const dstP = dstPrime(dst);
      const out = new Uint8Array(n * 32);
      const { data, offsets } = messages;
      for (let i = 0; i < n; i++) {
        const msg = data.subarray(offsets[i] ?? 0, offsets[i + 1] ?? 0);
        const p = hash(msg, dstP);
        out.set((s === undefined ? p : p.multiply(s)).toBytes(), i * 32);
      }
      return out;
    },
    multiplyBatch(scalar: ScalarBytes, points: Uint8Array): Uint8Array {
      const s = scalarFromBytes(scalar);
      const n = elementCount(points);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const p = decodeStrict(points.subarray(i * 32, i * 32 + 32), undefined, i);
        out.set(p.multiply(s).toBytes(), i * 32);
      }
      return out;
    },
  };
}
