/**
 * The x25519 group (see `x25519-sodium.ts` for the construction) on
 * @noble/curves: a slow, independent reference that runs anywhere. It
 * re-implements libsodium's crypto_core_ed25519_from_uniform from its
 * definition so the tests can check the native backend byte for byte.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { InvalidPointError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import { dstPrime, expandMessageXmdPrime, nobleSha512Parts } from "./expand.js";
import { feFromBytes, feIsCanonical, feToBytes, P } from "./field25519.js";
import { invertScalarBytes, mod, powMod, randomScalarNumber, scalarToBytes } from "./scalar.js";
import { x25519ScalarPlan } from "./x25519-scalar.js";
import { BackendId, GroupId, type DecodeOptions, type Group, type PointBytes, type RandomSource, type ScalarBytes } from "./types.js";
import { assertDst, assertElementBytes, assertMessages, elementCount } from "./validate.js";

type EdPoint = InstanceType<typeof ed25519.Point>;
const A = 486662n;
const inv = (x: bigint): bigint => powMod(x, P - 2n, P);

/** scalar · u through X25519 (see x25519-scalar.ts). */
function mulPlan(scalar: ScalarBytes, u: Uint8Array): Uint8Array {
  let out = u;
  for (const k of x25519ScalarPlan(scalar)) out = x25519.scalarMult(k, out);
  return out;
}

/** libsodium's crypto_core_ed25519_from_uniform, from its definition. */
export function edwardsFromUniform(r32: Uint8Array): EdPoint {
  const xSign = ((r32[31] ?? 0) >> 7) & 1;
  const r = feFromBytes(r32, 0) % P;
  // Elligator 2 with Z = 2: x1 = −A / (1 + 2r²); x = x1 if g(x1) is square, else −x1 − A.
  const x1 = mod(-A * inv(mod(1n + 2n * r * r, P)), P);
  const gx1 = mod(x1 * x1 * x1 + A * x1 * x1 + x1, P);
  const notSquare = gx1 !== 0n && powMod(gx1, (P - 1n) / 2n, P) === P - 1n;
  const x = notSquare ? mod(-x1 - A, P) : x1;
  // Birational map to edwards25519: y = (x − 1)/(x + 1); the x sign comes from the top input bit.
  const y = mod((x - 1n) * inv(mod(x + 1n, P)), P);
  const enc = new Uint8Array(32);
  feToBytes(y, enc, 0);
  enc[31] = (enc[31] ?? 0) | (xSign << 7);
  return ed25519.Point.fromBytes(enc).clearCofactor();
}

function montgomeryU(p: EdPoint): Uint8Array {
  const { y } = p.toAffine();
  if (y === 1n) throw new InvalidPointError("hash produced the identity");
  const out = new Uint8Array(32);
  feToBytes(mod((1n + y) * inv(mod(1n - y, P)), P), out, 0);
  return out;
}

function validate(bytes: Uint8Array, options?: DecodeOptions, index?: number): void {
  assertElementBytes(bytes, index);
  if (!feIsCanonical(bytes, 0)) throw new InvalidPointError("not a canonical x25519 encoding", index);
  const u = feFromBytes(bytes, 0);
  if (u === 0n) {
    if (options?.allowIdentity) return;
    throw new InvalidPointError("identity element refused", index);
  }
  if (u === P - 1n) throw new InvalidPointError("element of small order refused", index);
  const y = mod((u - 1n) * inv(u + 1n), P);
  const enc = new Uint8Array(32);
  feToBytes(y, enc, 0);
  let pt: EdPoint;
  try {
    pt = ed25519.Point.fromBytes(enc);
  } catch {
    throw new InvalidPointError("not an element of the prime-order subgroup", index);
  }
  if (pt.isSmallOrder() || !pt.isTorsionFree()) throw new InvalidPointError("not an element of the prime-order subgroup", index);
}

export function createX25519Noble(): Group<Uint8Array> {
  const hash = (msg: Uint8Array, dstP: Uint8Array): Uint8Array => {
    const uni = expandMessageXmdPrime(msg, dstP, 64, nobleSha512Parts);
    return montgomeryU(edwardsFromUniform(uni.subarray(0, 32)).add(edwardsFromUniform(uni.subarray(32, 64))));
  };
  return {
    id: GroupId.X25519,
    backend: BackendId.Noble,
    elementBytes: 32,
    scalarBytes: 32,
    hashToGroup(msg: Uint8Array, dst: Uint8Array): Uint8Array {
      assertDst(dst);
      return hash(msg, dstPrime(dst));
    },
    multiply(scalar: ScalarBytes, element: Uint8Array): Uint8Array {
      return mulPlan(scalar, element);
    },
    multiplyBase(scalar: ScalarBytes): Uint8Array {
      const [k0, ...rest] = x25519ScalarPlan(scalar);
      let out = x25519.scalarMultBase(k0 as Uint8Array);
      for (const k of rest) out = x25519.scalarMult(k, out);
      return out;
    },
    encode(element: Uint8Array): PointBytes {
      return Uint8Array.from(element);
    },
    decode(bytes: Uint8Array, options?: DecodeOptions): Uint8Array {
      validate(bytes, options);
      return Uint8Array.from(bytes);
    },
    equals(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && a.every((v, i) => v === b[i]);
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
      if (scalar !== undefined) x25519ScalarPlan(scalar);
      const dstP = dstPrime(dst);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const h = hash(messages.data.subarray(messages.offsets[i] ?? 0, messages.offsets[i + 1] ?? 0), dstP);
        out.set(scalar === undefined ? h : mulPlan(scalar, h), i * 32);
      }
      return out;
    },
    multiplyBatch(scalar: ScalarBytes, points: Uint8Array): Uint8Array {
      x25519ScalarPlan(scalar);
      const n = elementCount(points);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const p = points.subarray(i * 32, i * 32 + 32);
        validate(p, undefined, i);
        out.set(mulPlan(scalar, p), i * 32);
      }
      return out;
    },
  };
}
