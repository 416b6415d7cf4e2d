/**
 * RFC 9497 Oblivious Pseudorandom Functions, suite ristretto255-SHA512, in the
 * three modes OPRF (0), VOPRF (1) and POPRF (2), over any ristretto255
 * backend (`AdditiveGroup`). Functions carry the RFC's names and take and
 * return bytes; randomness (blinds, proof nonces) is an optional parameter so
 * the known-answer vectors replay exactly.
 *
 * Roles: the client holds `input` and learns F(sk, input); the server holds
 * `sk` and learns nothing about `input` (the blinded element is uniformly
 * random). Every element received from the other role is strictly decoded and
 * the identity refused (RFC 9497 §3.3, §4.1 DeserializeElement).
 */
import { concatBytes } from "@noble/hashes/utils.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { InvalidArgumentError, InvalidInputError, InvalidLengthError, InvalidPointError } from "../errors.js";
import { dstPrime, expandMessageXmdPrime, nobleSha512Parts } from "../group/expand.js";
import { bytesToNumberLE, invertScalarNumber, mod, ORDER, randomScalarNumber, scalarFromBytes, scalarToBytes, scalarReduce } from "../group/scalar.js";
import type { AdditiveGroup, PointBytes, RandomSource, ScalarBytes } from "../group/types.js";

export const OprfMode = { OPRF: 0, VOPRF: 1, POPRF: 2 } as const;
export type OprfMode = (typeof OprfMode)[keyof typeof OprfMode];

export const SUITE_ID = "ristretto255-SHA512";
const enc = new TextEncoder();


/** I2OSP(n, 2) || bytes — the RFC's length-prefixed framing. */
function lp(bytes: Uint8Array): Uint8Array {
  if (bytes.length > 0xffff) throw new InvalidLengthError("framed input", "at most 65535", bytes.length);
  return concatBytes(new Uint8Array([bytes.length >> 8, bytes.length & 0xff]), bytes);
}

function i2osp2(n: number): Uint8Array {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}

function eqBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}

/** RFC 9497 §3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier. */
export function contextString(mode: OprfMode): Uint8Array {
  return concatBytes(enc.encode("OPRFV1-"), new Uint8Array([mode]), enc.encode("-" + SUITE_ID));
}

export interface BlindResult {
  readonly blind: ScalarBytes;
  readonly blindedElement: PointBytes;
}
export interface PoprfBlindResult extends BlindResult {
  readonly tweakedKey: PointBytes;
}
export interface KeyPair {
  readonly secretKey: ScalarBytes;
  readonly publicKey: PointBytes;
}
export interface ProvedEvaluation {
  readonly evaluatedElements: PointBytes[];
  readonly proof: Uint8Array;
}

/** A proof that does not verify (VOPRF/POPRF). */
export class VerifyError extends InvalidInputError {
  constructor() {
    super("OPRF proof does not verify");
  }
}

const MAX_INPUT = 0xffff;

function checkInput(input: Uint8Array, what = "input"): void {
  if (!(input instanceof Uint8Array)) throw new InvalidArgumentError(`${what} must be a Uint8Array`);
  if (input.length > MAX_INPUT) throw new InvalidLengthError(what, `at most ${MAX_INPUT}`, input.length);
}

/**
 * The suite for one mode over one ristretto255 backend. Create one with
 * {@link createOprfSuite}; `oprf` in `./index.ts` is the OPRF mode on the
 * reference backend.
 */
export function createOprfSuite<E>(group: AdditiveGroup<E>, mode: OprfMode = OprfMode.OPRF) {
  if (group.id !== "ristretto255") throw new InvalidArgumentError("RFC 9497 ristretto255-SHA512 needs the ristretto255 group");
  const ctx = contextString(mode);
  const htgDst = concatBytes(enc.encode("HashToGroup-"), ctx);
  const htsDstP = dstPrime(concatBytes(enc.encode("HashToScalar-"), ctx));
  const dkpDstP = dstPrime(concatBytes(enc.encode("DeriveKeyPair"), ctx));
  const seedDst = concatBytes(enc.encode("Seed-"), ctx);
  const FINALIZE = enc.encode("Finalize");
  const CHALLENGE = enc.encode("Challenge");
  const COMPOSITE = enc.encode("Composite");
  const INFO = enc.encode("Info");

  const hashToScalarWith = (msg: Uint8Array, dstP: Uint8Array): bigint =>
    scalarReduce(expandMessageXmdPrime(msg, dstP, 64, nobleSha512Parts));
  /** RFC 9497 §4.1 HashToScalar. */
  const hashToScalar = (msg: Uint8Array): bigint => hashToScalarWith(msg, htsDstP);
  /** RFC 9497 §4.1 HashToGroup (refusing the identity, §3.3.1). */
  const hashToGroup = (input: Uint8Array): E => {
    const p = group.hashToGroup(input, htgDst);
    if (isIdentity(p)) throw new InvalidInputError("input hashes to the identity element");
    return p;
  };
  const isIdentity = (p: E): boolean => group.encode(p).every((b) => b === 0);
  const mulN = (s: bigint, p: E): E => group.multiply(scalarToBytes(s), p);
  const baseN = (s: bigint): E => group.multiplyBase(scalarToBytes(s));
  /** DeserializeElement: strict, identity refused. */
  const deserialize = (bytes: Uint8Array, what: string): E => {
    try {
      return group.decode(bytes);
    } catch (e) {
      if (e instanceof InvalidPointError) throw new InvalidPointError(`${what}: ${e.message}`);
      throw e;
    }
  };
  const scalarOf = (bytes: Uint8Array, what: string): bigint => {
    try {
      return scalarFromBytes(bytes);
    } catch (e) {
      if (e instanceof InvalidInputError) throw new InvalidInputError(`${what}: ${e.message}`, e.code);
      throw e;
    }
  };
  const randomScalar = (rng?: RandomSource): bigint => randomScalarNumber(rng);

  /** RFC 9497 §2.2.1 ComputeComposites / ComputeCompositesFast. */
  const computeComposites = (k: bigint | undefined, B: E, C: E[], D: E[]): { M: E; Z: E } => {
    const Bm = group.encode(B);
    const seed = sha512(concatBytes(lp(Bm), lp(seedDst)));
    let M: E | undefined;
    let Z: E | undefined;
    for (let i = 0; i < C.length; i++) {
      const Ci = group.encode(C[i] as E);
      const Di = group.encode(D[i] as E);
      const di = hashToScalar(concatBytes(lp(seed), i2osp2(i), lp(Ci), lp(Di), COMPOSITE));
      if (di === 0n) continue;
      const dC = mulN(di, C[i] as E);
      M = M === undefined ? dC : group.add(M, dC);
      if (k === undefined) {
        const dD = mulN(di, D[i] as E);
        Z = Z === undefined ? dD : group.add(Z, dD);
      }
    }
    if (M === undefined) throw new InvalidInputError("empty batch");
    if (k !== undefined) Z = mulN(k, M);
    return { M, Z: Z as E };
  };

  const challenge = (B: E, M: E, Z: E, t2: E, t3: E): bigint =>
    hashToScalar(
      concatBytes(lp(group.encode(B)), lp(group.encode(M)), lp(group.encode(Z)), lp(group.encode(t2)), lp(group.encode(t3)), CHALLENGE),
    );

  /** RFC 9497 §2.2.1 GenerateProof: proves log_A(B) = log_C(D) for the whole batch. */
  const generateProof = (k: bigint, A: E, B: E, C: E[], D: E[], rng?: RandomSource): Uint8Array => {
    const { M, Z } = computeComposites(k, B, C, D);
    const r = randomScalar(rng);
    const t2 = mulN(r, A);
    const t3 = mulN(r, M);
    const c = challenge(B, M, Z, t2, t3);
    const s = mod(r - c * k, ORDER);
    return concatBytes(scalarToBytes(c), scalarToBytes(s));
  };

  /** RFC 9497 §2.2.2 VerifyProof. */
  const verifyProof = (A: E, B: E, C: E[], D: E[], proof: Uint8Array): boolean => {
    if (!(proof instanceof Uint8Array) || proof.length !== 64) throw new InvalidLengthError("proof", "64", proof?.length ?? 0);
    const { M, Z } = computeComposites(undefined, B, C, D);
    const c = bytesToNumberLE(proof.subarray(0, 32));
    const s = bytesToNumberLE(proof.subarray(32, 64));
    if (c >= ORDER || s >= ORDER) return false;
    // t2 = s·A + c·B, t3 = s·M + c·Z (scalars may be zero: handle them without the Group's non-zero check).
    const lin = (x: bigint, X: E, y: bigint, Y: E): E | undefined => {
      const a = x === 0n ? undefined : mulN(x, X);
      const b = y === 0n ? undefined : mulN(y, Y);
      if (a === undefined) return b;
      if (b === undefined) return a;
      return group.add(a, b);
    };
    const t2 = lin(s, A, c, B);
    const t3 = lin(s, M, c, Z);
    if (t2 === undefined || t3 === undefined) return false;
    return eqBytes(scalarToBytes(challenge(B, M, Z, t2, t3)), proof.subarray(0, 32));
  };

  const framedInfo = (info: Uint8Array): Uint8Array => {
    checkInput(info, "info");
    return concatBytes(INFO, lp(info));
  };

  const finalizeHash = (input: Uint8Array, unblinded: Uint8Array, info?: Uint8Array): Uint8Array =>
    sha512(info === undefined ? concatBytes(lp(input), lp(unblinded), FINALIZE) : concatBytes(lp(input), lp(info), lp(unblinded), FINALIZE));

  const unblind = (blind: Uint8Array, evaluated: E): Uint8Array =>
    group.encode(mulN(invertScalarNumber(scalarOf(blind, "blind")), evaluated));

  return {
    mode,
    group,
    contextString: ctx,

    /** RFC 9497 §3.2.1 DeriveKeyPair(seed, info). */
    deriveKeyPair(seed: Uint8Array, info: Uint8Array): KeyPair {
      if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new InvalidLengthError("seed", "32", seed?.length ?? 0);
      checkInput(info, "info");
      const deriveInput = concatBytes(seed, lp(info));
      for (let counter = 0; counter <= 255; counter++) {
        const sk = hashToScalarWith(concatBytes(deriveInput, new Uint8Array([counter])), dkpDstP);
        if (sk !== 0n) return { secretKey: scalarToBytes(sk), publicKey: group.encode(baseN(sk)) };
      }
      throw new InvalidInputError("DeriveKeyPair: no non-zero key for this seed");
    },

    /** The public key G · sk of a secret key. */
    publicKey(secretKey: ScalarBytes): PointBytes {
      return group.encode(baseN(scalarOf(secretKey, "secret key")));
    },

    /** A fresh random key pair. */
    generateKeyPair(rng?: RandomSource): KeyPair {
      const sk = randomScalar(rng);
      return { secretKey: scalarToBytes(sk), publicKey: group.encode(baseN(sk)) };
    },

    /** RFC 9497 §3.3.1 Blind (OPRF, VOPRF). `blind` replays a given blind (tests). */
    blind(input: Uint8Array, blind?: ScalarBytes, rng?: RandomSource): BlindResult {
      checkInput(input);
      const r = blind === undefined ? randomScalar(rng) : scalarOf(blind, "blind");
      const blindedElement = group.encode(mulN(r, hashToGroup(input)));
      return { blind: scalarToBytes(r), blindedElement };
    },

    /** RFC 9497 §3.3.3 Blind (POPRF): also returns the tweaked key the proof is checked against. */
    blindPoprf(input: Uint8Array, info: Uint8Array, publicKey: PointBytes, blind?: ScalarBytes, rng?: RandomSource): PoprfBlindResult {
      checkInput(input);
      const pk = deserialize(publicKey, "public key");
      const m = hashToScalar(framedInfo(info));
      const tweaked = m === 0n ? pk : group.add(baseN(m), pk);
      if (isIdentity(tweaked)) throw new InvalidInputError("tweaked key is the identity");
      const r = blind === undefined ? randomScalar(rng) : scalarOf(blind, "blind");
      return { blind: scalarToBytes(r), blindedElement: group.encode(mulN(r, hashToGroup(input))), tweakedKey: group.encode(tweaked) };
    },

    /** RFC 9497 §3.3.1 BlindEvaluate (OPRF): sk · blindedElement. */
    blindEvaluate(secretKey: ScalarBytes, blindedElement: PointBytes): PointBytes {
      const k = scalarOf(secretKey, "secret key");
      return group.encode(mulN(k, deserialize(blindedElement, "blinded element")));
    },

    /** RFC 9497 §3.3.2 BlindEvaluate (VOPRF), batched, with one DLEQ proof for the batch. */
    blindEvaluateBatchVoprf(secretKey: ScalarBytes, publicKey: PointBytes, blindedElements: readonly PointBytes[], rng?: RandomSource): ProvedEvaluation {
      const k = scalarOf(secretKey, "secret key");
      const B = deserialize(publicKey, "public key");
      const C = blindedElements.map((b, i) => deserialize(b, `blinded element ${i}`));
      const D = C.map((c) => mulN(k, c));
      const proof = generateProof(k, baseG(), B, C, D, rng);
      return { evaluatedElements: D.map((d) => group.encode(d)), proof };
    },

    /** RFC 9497 §3.3.3 BlindEvaluate (POPRF), batched. */
    blindEvaluateBatchPoprf(secretKey: ScalarBytes, blindedElements: readonly PointBytes[], info: Uint8Array, rng?: RandomSource): ProvedEvaluation {
      const k = scalarOf(secretKey, "secret key");
      const m = hashToScalar(framedInfo(info));
      const t = mod(k + m, ORDER);
      if (t === 0n) throw new InvalidInputError("POPRF: inverse of zero");
      const C = blindedElements.map((b, i) => deserialize(b, `blinded element ${i}`));
      const tInv = invertScalarNumber(t);
      const D = C.map((c) => mulN(tInv, c));
      const tweaked = baseN(t);
      const proof = generateProof(t, baseG(), tweaked, D, C, rng);
      return { evaluatedElements: D.map((d) => group.encode(d)), proof };
    },

    /** RFC 9497 §3.3.1 Finalize (OPRF). Returns the 64-byte PRF output. */
    finalize(input: Uint8Array, blind: ScalarBytes, evaluationElement: PointBytes): Uint8Array {
      checkInput(input);
      const Z = deserialize(evaluationElement, "evaluation element");
      return finalizeHash(input, unblind(blind, Z));
    },

    /** RFC 9497 §3.3.2 Finalize (VOPRF), batched: verifies the proof, then unblinds. */
    finalizeBatchVoprf(
      inputs: readonly Uint8Array[],
      blinds: readonly ScalarBytes[],
      evaluatedElements: readonly PointBytes[],
      blindedElements: readonly PointBytes[],
      publicKey: PointBytes,
      proof: Uint8Array,
    ): Uint8Array[] {
      const n = sameLength(inputs, blinds, evaluatedElements, blindedElements);
      const C = blindedElements.map((b, i) => deserialize(b, `blinded element ${i}`));
      const D = evaluatedElements.map((b, i) => deserialize(b, `evaluation element ${i}`));
      if (!verifyProof(baseG(), deserialize(publicKey, "public key"), C, D, proof)) throw new VerifyError();
      const out: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        checkInput(inputs[i] as Uint8Array);
        out.push(finalizeHash(inputs[i] as Uint8Array, unblind(blinds[i] as Uint8Array, D[i] as E)));
      }
      return out;
    },

    /** RFC 9497 §3.3.3 Finalize (POPRF), batched. */
    finalizeBatchPoprf(
      inputs: readonly Uint8Array[],
      blinds: readonly ScalarBytes[],
      evaluatedElements: readonly PointBytes[],
      blindedElements: readonly PointBytes[],
      proof: Uint8Array,
      info: Uint8Array,
      tweakedKey: PointBytes,
    ): Uint8Array[] {
      const n = sameLength(inputs, blinds, evaluatedElements, blindedElements);
      checkInput(info, "info");
      const C = evaluatedElements.map((b, i) => deserialize(b, `evaluation element ${i}`));
      const D = blindedElements.map((b, i) => deserialize(b, `blinded element ${i}`));
      if (!verifyProof(baseG(), deserialize(tweakedKey, "tweaked key"), C, D, proof)) throw new VerifyError();
      const out: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        checkInput(inputs[i] as Uint8Array);
        out.push(finalizeHash(inputs[i] as Uint8Array, unblind(blinds[i] as Uint8Array, C[i] as E), info));
      }
      return out;
    },

    /** RFC 9497 §3.3.1/§3.3.2 Evaluate: the unblinded PRF, server side (OPRF and VOPRF). */
    evaluate(secretKey: ScalarBytes, input: Uint8Array): Uint8Array {
      checkInput(input);
      const k = scalarOf(secretKey, "secret key");
      return finalizeHash(input, group.encode(mulN(k, hashToGroup(input))));
    },

    /** RFC 9497 §3.3.3 Evaluate (POPRF). */
    evaluatePoprf(secretKey: ScalarBytes, input: Uint8Array, info: Uint8Array): Uint8Array {
      checkInput(input);
      const k = scalarOf(secretKey, "secret key");
      const t = mod(k + hashToScalar(framedInfo(info)), ORDER);
      if (t === 0n) throw new InvalidInputError("POPRF: inverse of zero");
      return finalizeHash(input, group.encode(mulN(invertScalarNumber(t), hashToGroup(input))), info);
    },

    /** The group element an input hashes to under this suite (HashToGroup), encoded. */
    hashToGroup(input: Uint8Array): PointBytes {
      checkInput(input);
      return group.encode(hashToGroup(input));
    },

    /** The DST of this suite's HashToGroup (for batch hashing in the pool). */
    hashToGroupDst: htgDst,

    /** Finalize's hash from an input and its unblinded element (OPRF/VOPRF); used by bulk column evaluation. */
    finalizeFromUnblinded(input: Uint8Array, unblindedElement: PointBytes): Uint8Array {
      return finalizeHash(input, unblindedElement);
    },
  };

  function baseG(): E {
    return baseN(1n);
  }
}

function sameLength(...arrays: readonly (readonly unknown[])[]): number {
  const n = arrays[0]?.length ?? 0;
  if (n === 0) throw new InvalidArgumentError("empty batch");
  for (const a of arrays) if (a.length !== n) throw new InvalidArgumentError("batch arrays differ in length");
  return n;
}

export type OprfSuite = ReturnType<typeof createOprfSuite>;
