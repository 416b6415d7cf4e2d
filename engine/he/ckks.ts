/**
 * `CkksContext`: approximate sums with CKKS (Microsoft SEAL through
 * node-seal 6.0.3), for jobs that declare approximate arithmetic. Every
 * result comes with `errorBound`, a conservative bound on
 * |decrypted − exact| derived below from the operations the ciphertext
 * header records.
 *
 * ## Parameters
 *
 * N = 8192 (4096 complex slots, of which we use the real parts), coefficient
 * modulus of bit sizes [60, 40, 40, 60]: 200 bits, within SEAL's 218-bit
 * limit for N = 8192 at 128-bit security (HomomorphicEncryption.org
 * standard; SEAL's context is built with `SecurityLevel.tc128`, which
 * refuses anything weaker). The last 60-bit prime is the special prime P of
 * key switching; the data level is Q = q0·q1·q2 ≈ 2^140. The two 40-bit
 * primes match the default scale Δ = 2^40 so that up to two plaintext
 * multiplications with rescaling would fit, although this module only adds
 * and rotates (so it never rescales: every ciphertext stays at the data
 * level, at scale Δ). `precisionBits` sets Δ = 2^precisionBits (20…60);
 * the context is refused when maxRows·maxAbsValue·Δ could reach Q/8, so no
 * slot can wrap modulo Q.
 *
 * ## The error bound
 *
 * All noise terms are bounds on the canonical-embedding norm (the largest
 * error over the slots), in units of Δ, with tail factor t = 6 for every
 * Gaussian-like factor (a complex Gaussian exceeds 6 standard deviations
 * with probability e^-36 ≈ 2^-52; a product of two such factors is bounded
 * by the product of their bounds). σ = 3.2 is SEAL's error deviation; the
 * secret and the encryption randomness are uniform ternary (variance 2/3
 * per coefficient).
 *
 * - Fresh encryption, B_fresh: decrypting (u·pk0 + e0 + m, u·pk1 + e1)
 *   leaves m + u·e + e1·s + e0, so B_fresh = 2·t²·σ·N·√(2/3) + t·σ·√N
 *   (≈ 2^20.6). (SEAL actually encrypts at the key level and divides by P,
 *   which makes the real fresh noise ~100× smaller; we take no credit.)
 * - Encoding: rounding each of the N coefficients to an integer moves a
 *   slot by at most N/2 (deterministic).
 * - Key switching (one rotation), B_ks: (Σ_i d_i·e_i)/P with d_i uniform
 *   mod q_i over the 3 data primes, plus the rounding of the division by P:
 *   B_ks = 3·t²·(q_max/P)·σ·N/√12 + t·√(N/12)·(1 + √(2N/3)) (≈ 2^19.7).
 * - Floating point: SEAL's encoder and decoder run an N-point FFT in
 *   doubles and convert N coefficients. The FFT's error has 2-norm at most
 *   c·log2 N·u·‖x‖_2 (Higham's bound; c = 8 covers the twiddle factors'
 *   own rounding with room), each conversion adds u relatively, and the
 *   canonical embedding scales 2-norms by √N both ways, so one encoding or
 *   decoding moves the slot vector z by a vector of 2-norm (and so every
 *   slot by) at most FP·max|z| with FP = (8·log2 N + 1)·√N·2^-53 (≈ 2^-39.8):
 *   maxAbsValue per encoding, the slot's magnitude bound (plus its noise)
 *   at decoding.
 *
 * The header records, per slot: `rows`, how many input values its total
 * may hold (so |total| ≤ rows·maxAbsValue); `encryptions`, how many fresh
 * encryptions' noise it carries; `keySwitches`, how many key-switching
 * noise terms; `encodings`, how many encoding floating-point terms
 * (FP·maxAbsValue each). add() adds the four counts; sumSlots() first adds
 * the blocks, then rotates by 1, 2, …, 2048 adding at each step, so every
 * slot holds the sum of all 4096 slots' noise plus 2^12 − 1 key-switching
 * terms: rows ← rows·length, encryptions ← encryptions·blocks·4096,
 * keySwitches ← keySwitches·blocks·4096 + 4095. The encoding errors of a
 * ciphertext never summed are bounded in 2-norm, and a sum of 4096 slots
 * is at most √4096 = 64 times a 2-norm (Cauchy–Schwarz), so there
 * encodings ← encodings·blocks·64 (·4096 if it was already summed). Then
 *
 *   noise      = (encryptions·(B_fresh + N/2) + keySwitches·B_ks) / Δ
 *   errorBound = noise + FP·encodings·maxAbsValue + FP·(rows·maxAbsValue + noise)
 *
 * Sums over 4096 slots are bounded by 4096 × the largest slot error, which
 * is what makes the rotate-and-sum bound looser (independent errors grow
 * like √4096 in practice); the tests check the bound holds and stays within
 * 10^6 of the observed error.
 *
 * reRandomize() adds a fresh encryption of zero (encryptions + 1) and drops
 * to the last level. Dropping RNS primes of a CKKS ciphertext in NTT form is
 * exact (no division, so no rounding): the bound gains one fresh noise term
 * and nothing else. The last level's single 60-bit prime holds far smaller
 * totals than the data level, so reRandomize refuses (BoundExceeded) unless
 * (total bound + errorBound)·Δ < q0/16 — see its comment.
 *
 * The header is not authenticated: a party that forges it can understate
 * the counts, just as it could send any ciphertext. The bound is as honest
 * as the parties that computed the ciphertext.
 *
 * ## Bytes
 *
 * The frames (magic "UHC1", the ciphertext header with its counts) are
 * ckks-format.ts.
 *
 * Longer than ~500 lines on purpose, as bfv.ts: the one class that owns
 * every SEAL object of the scheme, and the error analysis its operations
 * record, stay together.
 *
 * ## Ownership
 *
 * As in bfv.ts: the context owns its SEAL Context, CKKSEncoder and
 * Evaluator; key handles own their Encryptor, Decryptor or GaloisKeys; each
 * operation owns its temporaries in a scope deleted in `finally`.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { createHash, randomBytes } from "node:crypto";
import type { CipherText } from "node-seal/implementation/cipher-text.js";
import type { CKKSEncoder } from "node-seal/implementation/ckks-encoder.js";
import type { Context } from "node-seal/implementation/context.js";
import type { Decryptor } from "node-seal/implementation/decryptor.js";
import type { Encryptor } from "node-seal/implementation/encryptor.js";
import type { Evaluator } from "node-seal/implementation/evaluator.js";
import type { GaloisKeys } from "node-seal/implementation/galois-keys.js";
import type { ParmsIdType } from "node-seal/implementation/parms-id-type.js";
import { InvalidArgumentError, InvalidLengthError } from "../errors.js";
import {
  BoundExceededError,
  DisposedError,
  InvalidCiphertextError,
  InvalidKeyError,
  KeyMismatchError,
  ValueOutOfRangeError,
} from "./errors.js";
import { disposeHandles, KeyHandle, sameBytes, Scope, scoped, sealLoad, sealObjects, withKey, type Deletable } from "./owned.js";
import { loadSeal, type SEALLibrary } from "./seal.js";
import {
  CKKS_POLY_MODULUS_DEGREE,
  CKKS_SLOTS,
  CkksFrameKind as Kind,
  decodeCkksFrame as decodeFrame,
  encodeCkksFrame as encodeFrame,
  type CkksCounts as Counts,
  type CkksFrame as Frame,
  type CkksFrameLimits as Limits,
} from "./ckks-format.js";

export { CKKS_POLY_MODULUS_DEGREE, CKKS_SLOTS };
/** Bit sizes of the coefficient modulus: 3 data primes and the special prime (200 ≤ 218 bits). */
export const CKKS_COEFF_BITS: readonly number[] = [60, 40, 40, 60];
export const CKKS_DEFAULT_PRECISION_BITS = 40;
export const CKKS_MAX_ROWS = 2 ** 40;
export const CKKS_MAX_LENGTH = 2 ** 22;

export interface CkksContextOptions {
  /** Every input value satisfies |v| ≤ maxAbsValue (finite, > 0). */
  readonly maxAbsValue: number;
  /** The most input values one slot's total may hold (after add and sumSlots). */
  readonly maxRows: number;
  /** log2 of the scale Δ, an integer in [20, 60]; default 40. */
  readonly precisionBits?: number;
  /** The longest column; default max(4096, min(maxRows, 2^20)). */
  readonly maxLength?: number;
}

export interface CkksParameters {
  readonly scheme: "ckks";
  readonly polyModulusDegree: number;
  readonly slotCount: number;
  readonly coeffModulusBits: readonly number[];
  readonly coeffModulus: readonly bigint[];
  readonly scaleBits: number;
  readonly maxAbsValue: number;
  readonly maxRows: number;
  readonly maxLength: number;
  /** Hex, 16 bytes: what frames carry to refuse other parameters. */
  readonly fingerprint: string;
}

export type CkksCiphertextBytes = Uint8Array;

/** Where a ciphertext sits in the modulus chain (see the module comment's Bytes). */
export const CkksLevel = { Data: "data", Last: "last" } as const;
export type CkksLevel = (typeof CkksLevel)[keyof typeof CkksLevel];

export interface CkksKeyBytes {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  /** Present unless generateKeys({ galois: false }): needed by sumSlots only. */
  readonly galoisKeys?: Uint8Array;
}

export interface CkksCiphertextInfo {
  /** "data": fresh or added or summed; "last": re-randomised, for the key holder only. */
  readonly level: CkksLevel;
  readonly length: number;
  readonly blocks: number;
  readonly rows: number;
  readonly encryptions: number;
  readonly keySwitches: number;
  readonly encodings: number;
  readonly keyId: string;
}

export interface CkksResult {
  readonly values: Float64Array;
  /** A conservative bound on |values[i] − exact total| for every i. */
  readonly errorBound: number;
}

// ------------------------------------------------------------------ ownership





/** A loaded CKKS public key: its encryptor (CkksContext.loadPublicKey). */
export class CkksPublicKey extends KeyHandle<CkksContext, Encryptor> {
  readonly kind = "ckks-public-key";
}

/** A loaded CKKS secret key: its decryptor (CkksContext.loadSecretKey). */
export class CkksSecretKey extends KeyHandle<CkksContext, Decryptor> {
  readonly kind = "ckks-secret-key";
}

/** Loaded CKKS Galois keys (CkksContext.loadGaloisKeys). */
export class CkksGaloisKeys extends KeyHandle<CkksContext, GaloisKeys> {
  readonly kind = "ckks-galois-keys";
}

// ------------------------------------------------------------------ parameters and bound

const SIGMA = 3.2;
const TAIL = 6;

/** Validates the options and fixes the parameters (coefficient primes from SEAL). */
export function selectCkksParameters(seal: SEALLibrary, options: CkksContextOptions): CkksParameters {
  const { maxAbsValue, maxRows } = options ?? ({} as CkksContextOptions);
  const scaleBits = options?.precisionBits ?? CKKS_DEFAULT_PRECISION_BITS;
  if (typeof maxAbsValue !== "number" || !Number.isFinite(maxAbsValue) || maxAbsValue <= 0) throw new InvalidArgumentError("maxAbsValue must be a finite number > 0");
  if (!Number.isSafeInteger(maxRows) || maxRows < 1 || maxRows > CKKS_MAX_ROWS) throw new InvalidArgumentError("maxRows must be an integer in [1, 2^40]");
  if (!Number.isInteger(scaleBits) || scaleBits < 20 || scaleBits > 60) throw new InvalidArgumentError("precisionBits must be an integer in [20, 60]");
  const maxLength = options.maxLength ?? Math.max(CKKS_SLOTS, Math.min(maxRows, 2 ** 20));
  if (!Number.isSafeInteger(maxLength) || maxLength < 1 || maxLength > CKKS_MAX_LENGTH) throw new InvalidArgumentError(`maxLength must be an integer in [1, ${CKKS_MAX_LENGTH}]`);
  const v = seal.CoeffModulus.Create(CKKS_POLY_MODULUS_DEGREE, Int32Array.from(CKKS_COEFF_BITS));
  let coeffModulus: bigint[];
  try {
    coeffModulus = Array.from(v.toArray() as BigUint64Array);
  } finally {
    v.delete();
  }
  // No slot may reach Q/8 (Q: the data primes; each prime ≥ 2^(bits−1)): totals, noise and rounding all fit.
  const dataBits = CKKS_COEFF_BITS.slice(0, -1).reduce((s, b) => s + b - 1, 0);
  if (Math.log2(maxRows) + Math.log2(maxAbsValue) + scaleBits > dataBits - 4) {
    throw new InvalidArgumentError(`maxRows · maxAbsValue · 2^${scaleBits} does not fit the ${dataBits}-bit data modulus: lower precisionBits or the bounds`);
  }
  const text = ["umbra-he-ckks-v1", CKKS_POLY_MODULUS_DEGREE, coeffModulus.join(","), scaleBits, maxAbsValue, maxRows, maxLength].join("|");
  const fingerprint = createHash("sha256").update(text).digest("hex").slice(0, 32);
  return {
    scheme: "ckks",
    polyModulusDegree: CKKS_POLY_MODULUS_DEGREE,
    slotCount: CKKS_SLOTS,
    coeffModulusBits: CKKS_COEFF_BITS,
    coeffModulus,
    scaleBits,
    maxAbsValue,
    maxRows,
    maxLength,
    fingerprint,
  };
}

/** The noise constants of the module comment, in units of the scaled integers. */
function noiseConstants(params: CkksParameters): { fresh: number; keySwitch: number; fp: number } {
  const n = params.polyModulusDegree;
  const q = params.coeffModulus;
  const special = Number(q[q.length - 1] as bigint);
  const qMax = Math.max(...q.slice(0, -1).map(Number));
  const data = q.length - 1;
  const ternary = Math.sqrt((2 * n) / 3); // |σ_k(u)| or |σ_k(s)| std
  const fresh = 2 * TAIL * TAIL * SIGMA * Math.sqrt(n) * ternary + TAIL * SIGMA * Math.sqrt(n) + n / 2;
  const keySwitch = data * TAIL * TAIL * (qMax / special) * SIGMA * (n / Math.sqrt(12)) + TAIL * Math.sqrt(n / 12) * (1 + ternary);
  const fp = (8 * Math.log2(n) + 1) * Math.sqrt(n) * 2 ** -53;
  return { fresh, keySwitch, fp };
}

/** zstd's worst case over `raw` bytes, with room for SEAL's own header. */
function slack(raw: number): number {
  return raw + Math.ceil(raw / 64) + 4096;
}

/** Size bounds, from the parameters, for the ciphertext and key frames SEAL may be asked to load. */
function limitsOf(params: CkksParameters): Record<"ct" | "pk" | "sk", Limits> {
  const q = params.coeffModulus.length;
  const l = q - 1;
  const poly = params.polyModulusDegree * 8;
  const base = { fingerprint: Uint8Array.from(Buffer.from(params.fingerprint, "hex")), maxRows: params.maxRows };
  return {
    ct: { ...base, maxEntry: slack(2 * l * poly), maxEntryLast: slack(2 * poly), maxBlocks: Math.ceil(params.maxLength / CKKS_SLOTS) },
    pk: { ...base, maxEntry: slack(2 * q * poly), maxBlocks: 1 },
    sk: { ...base, maxEntry: slack(q * poly), maxBlocks: 1 },
  };
}

/**
 * Joins columns end to end into one (no SEAL work: the blocks' bytes are
 * copied), as CkksContext.concat — a function of the parameters alone, so
 * that the pool's host can join its workers' chunks without a SEAL context.
 * Every part but the last must fill whole blocks; all must be under one key
 * set and at the data level. Each header count of the result is the largest
 * of the parts' (they are per-slot bounds).
 */
export function concatCkksColumns(params: CkksParameters, parts: readonly CkksCiphertextBytes[]): CkksCiphertextBytes {
  if (!Array.isArray(parts) || parts.length === 0) throw new InvalidArgumentError("nothing to concatenate");
  const limits = limitsOf(params).ct;
  const frames = parts.map((p) => decodeFrame(p, Kind.Ciphertext, limits));
  const first = frames[0] as Frame;
  let length = 0;
  let rows = 0;
  let encryptions = 0;
  let keySwitches = 0;
  let encodings = 0;
  const entries: Uint8Array[] = [];
  frames.forEach((f, i) => {
    if (!sameBytes(f.keyId, first.keyId)) throw new KeyMismatchError("the CKKS parts are under different key sets");
    if (f.level !== 0) throw new InvalidCiphertextError(`CKKS ciphertext: part ${i} is re-randomised (at the last level): only decryptSums takes it`);
    if (i < frames.length - 1 && f.length % CKKS_SLOTS !== 0) throw new InvalidArgumentError(`part ${i} does not fill whole blocks of ${CKKS_SLOTS} slots`);
    length += f.length;
    rows = Math.max(rows, f.rows);
    encryptions = Math.max(encryptions, f.encryptions);
    keySwitches = Math.max(keySwitches, f.keySwitches);
    encodings = Math.max(encodings, f.encodings);
    entries.push(...f.entries);
  });
  if (length > params.maxLength) throw new InvalidArgumentError(`column of ${length} values is longer than maxLength ${params.maxLength}`);
  return encodeFrame(Kind.Ciphertext, limits.fingerprint, first.keyId, entries, { length, blocks: Math.ceil(length / CKKS_SLOTS), rows, encryptions, keySwitches, encodings });
}

// ------------------------------------------------------------------ context

/** Creates a CKKS context (loads SEAL on first use in this thread). Dispose it when done. */
export async function createCkksContext(options: CkksContextOptions): Promise<CkksContext> {
  const seal = await loadSeal();
  return new CkksContext(seal, selectCkksParameters(seal, options));
}

export class CkksContext {
  readonly params: CkksParameters;
  readonly #seal: SEALLibrary;
  readonly #scale: number;
  readonly #fingerprint: Uint8Array;
  readonly #steps: number[];
  readonly #noise: { fresh: number; keySwitch: number; fp: number };
  readonly #limits: Record<"ct" | "pk" | "sk" | "gk", Limits>;
  #context: Context | undefined;
  #encoder: CKKSEncoder | undefined;
  #evaluator: Evaluator | undefined;
  #lastParmsId: ParmsIdType | undefined;
  #disposed = false;

  /** Use {@link createCkksContext}. */
  constructor(seal: SEALLibrary, params: CkksParameters) {
    this.#seal = seal;
    this.params = params;
    this.#scale = 2 ** params.scaleBits;
    this.#fingerprint = Uint8Array.from(Buffer.from(params.fingerprint, "hex"));
    this.#noise = noiseConstants(params);
    this.#steps = [];
    for (let s = 1; s < CKKS_SLOTS; s *= 2) this.#steps.push(s);
    const n = params.polyModulusDegree;
    this.#limits = {
      ...limitsOf(params),
      gk: { fingerprint: this.#fingerprint, maxRows: params.maxRows, maxEntry: slack(this.#steps.length * (params.coeffModulus.length - 1) * 2 * params.coeffModulus.length * n * 8) + 16 * n, maxBlocks: 1 },
    };
    const scope = new Scope();
    try {
      const parms = scope.own(seal.EncryptionParameters(seal.SchemeType.ckks));
      parms.setPolyModulusDegree(n);
      parms.setCoeffModulus(scope.own(seal.CoeffModulus.Create(n, Int32Array.from(params.coeffModulusBits))));
      this.#context = seal.Context(parms, true, seal.SecurityLevel.tc128);
      if (!this.#context.parametersSet()) throw new InvalidArgumentError("SEAL refused the CKKS parameters");
      this.#encoder = seal.CKKSEncoder(this.#context);
      this.#evaluator = seal.Evaluator(this.#context);
      this.#lastParmsId = this.#context.lastParmsId;
      if (this.#encoder.slotCount !== CKKS_SLOTS) throw new InvalidArgumentError("unexpected CKKS slot count");
    } catch (e) {
      this.dispose();
      throw e;
    } finally {
      scope.dispose();
    }
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Deletes every SEAL object of this context and of the key handles it loaded. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    disposeHandles(this);
    this.#lastParmsId?.delete();
    this.#evaluator?.delete();
    this.#encoder?.delete();
    this.#context?.delete();
    this.#lastParmsId = undefined;
    this.#evaluator = undefined;
    this.#encoder = undefined;
    this.#context = undefined;
  }

  #live(): { context: Context; encoder: CKKSEncoder; evaluator: Evaluator } {
    if (this.#disposed || !this.#context || !this.#encoder || !this.#evaluator) throw new DisposedError("CKKS context");
    return { context: this.#context, encoder: this.#encoder, evaluator: this.#evaluator };
  }

  // ---------------------------------------------------------------- keys

  /** A fresh key set, serialised seeded where SEAL can and zstd-compressed; the keys share a random key-set id. */
  generateKeys(options: { galois?: boolean } = {}): CkksKeyBytes {
    const { context } = this.#live();
    const seal = this.#seal;
    const zstd = seal.ComprModeType.zstd;
    const keyId = new Uint8Array(randomBytes(16));
    return scoped((scope) => {
      const kg = scope.own(seal.KeyGenerator(context));
      const fp = this.#fingerprint;
      const publicKey = encodeFrame(Kind.PublicKey, fp, keyId, [scope.own(kg.createPublicKeySerializable()).saveArray(zstd)]);
      const secretKey = encodeFrame(Kind.SecretKey, fp, keyId, [scope.own(kg.secretKey()).saveArray(zstd)]);
      if (options.galois === false) return { publicKey, secretKey };
      const gk = scope.own(kg.createGaloisKeysSerializable(Int32Array.from(this.#steps))).saveArray(zstd);
      return { publicKey, secretKey, galoisKeys: encodeFrame(Kind.GaloisKeys, fp, keyId, [gk]) };
    });
  }

  loadPublicKey(bytes: Uint8Array): CkksPublicKey {
    const { context } = this.#live();
    const f = decodeFrame(bytes, Kind.PublicKey, this.#limits.pk);
    const encryptor = scoped((scope) => {
      const pk = scope.own(this.#seal.PublicKey());
      sealLoad(() => pk.loadArray(context, f.entries[0] as Uint8Array), () => new InvalidKeyError("CKKS public key refused by SEAL"));
      return this.#seal.Encryptor(context, pk);
    });
    return new CkksPublicKey(this, f.keyId, [encryptor]);
  }

  loadSecretKey(bytes: Uint8Array): CkksSecretKey {
    const { context } = this.#live();
    const f = decodeFrame(bytes, Kind.SecretKey, this.#limits.sk);
    const decryptor = scoped((scope) => {
      const sk = scope.own(this.#seal.SecretKey());
      sealLoad(() => sk.loadArray(context, f.entries[0] as Uint8Array), () => new InvalidKeyError("CKKS secret key refused by SEAL"));
      return this.#seal.Decryptor(context, sk);
    });
    return new CkksSecretKey(this, f.keyId, [decryptor]);
  }

  /** Loads Galois keys and checks every rotation sumSlots needs (3^s mod 2N for s = 1, 2, …, 2048) is there. */
  loadGaloisKeys(bytes: Uint8Array): CkksGaloisKeys {
    const { context } = this.#live();
    const f = decodeFrame(bytes, Kind.GaloisKeys, this.#limits.gk);
    const m = 2n * BigInt(this.params.polyModulusDegree);
    const gk = this.#seal.GaloisKeys();
    try {
      sealLoad(() => gk.loadArray(context, f.entries[0] as Uint8Array), () => new InvalidKeyError("CKKS Galois keys refused by SEAL"));
      for (const s of this.#steps) {
        if (!gk.hasKey(Number(3n ** BigInt(s) % m))) throw new InvalidKeyError("CKKS Galois keys lack a rotation sumSlots needs");
      }
    } catch (e) {
      gk.delete();
      throw e;
    }
    return new CkksGaloisKeys(this, f.keyId, [gk]);
  }

  #withKey<H extends KeyHandle<CkksContext, Deletable>, R>(key: H | Uint8Array, load: (b: Uint8Array) => H, what: string, fn: (h: H) => R): R {
    return withKey<CkksContext, H, R>(this, key, load, what, fn);
  }


  // ---------------------------------------------------------------- ciphertexts

  /** Reads a ciphertext's header (no SEAL object is created). */
  inspect(ct: CkksCiphertextBytes): CkksCiphertextInfo {
    this.#live();
    const f = decodeFrame(ct, Kind.Ciphertext, this.#limits.ct);
    return {
      level: f.level === 1 ? CkksLevel.Last : CkksLevel.Data,
      length: f.length,
      blocks: f.blocks,
      rows: f.rows,
      encryptions: f.encryptions,
      keySwitches: f.keySwitches,
      encodings: f.encodings,
      keyId: bytesToHex(f.keyId),
    };
  }

  /**
   * inspect(), and every block loaded by SEAL (which validates it against
   * the context) and checked as #load checks: what a party that only stores
   * or forwards a received ciphertext runs, so a corrupted one is refused on
   * arrival rather than at its first use.
   */
  validate(ct: CkksCiphertextBytes): CkksCiphertextInfo {
    const info = this.inspect(ct);
    const f = this.#parse(ct);
    for (let b = 0; b < f.blocks; b++) scoped((scope) => this.#load(scope, f, b));
    return info;
  }

  #parse(ct: CkksCiphertextBytes): Frame {
    return decodeFrame(ct, Kind.Ciphertext, this.#limits.ct);
  }

  /** #parse, refusing a re-randomised ciphertext: past reRandomize only decryptSums takes it. */
  #parseData(ct: CkksCiphertextBytes): Frame {
    const f = this.#parse(ct);
    if (f.level !== 0) throw new InvalidCiphertextError("CKKS ciphertext is re-randomised (at the last level): only decryptSums takes it");
    return f;
  }

  #load(scope: Scope, f: Frame, i: number): CipherText {
    const { context } = this.#live();
    const ct = scope.own(this.#seal.CipherText());
    sealLoad(() => ct.loadArray(context, f.entries[i] as Uint8Array), () => new InvalidCiphertextError(`CKKS ciphertext: block ${i} refused by SEAL`));
    if (ct.size !== 2) throw new InvalidCiphertextError(`CKKS ciphertext: block ${i} has ${ct.size} polynomials, expected 2`);
    if (ct.polyModulusDegree !== this.params.polyModulusDegree) throw new InvalidCiphertextError(`CKKS ciphertext: block ${i} has the wrong degree`);
    const primes = f.level === 1 ? 1 : this.params.coeffModulus.length - 1;
    if (ct.coeffModulusSize !== primes) throw new InvalidCiphertextError(`CKKS ciphertext: block ${i} is not at the level its header names`);
    if (!ct.isNttForm || ct.isTransparent) throw new InvalidCiphertextError(`CKKS ciphertext: block ${i} is not a CKKS ciphertext`);
    if (ct.scale !== this.#scale) throw new InvalidCiphertextError(`CKKS ciphertext: block ${i} is not at scale 2^${this.params.scaleBits}`);
    return ct;
  }

  #save(ct: CipherText): Uint8Array {
    return ct.saveArray(this.#seal.ComprModeType.zstd);
  }

  /** Refused before any SEAL work: a result whose slots could hold more values than the context was sized for. */
  #checkRows(rows: number): void {
    if (rows > this.params.maxRows) {
      throw new BoundExceededError(`the result could hold ${rows} values in a slot, more than the context's maxRows ${this.params.maxRows}`);
    }
  }

  #frame(keyId: Uint8Array, entries: Uint8Array[], counts: Counts): CkksCiphertextBytes {
    this.#checkRows(counts.rows);
    return encodeFrame(Kind.Ciphertext, this.#fingerprint, keyId, entries, counts);
  }

  /**
   * Encrypts a column: 4096 values per block (the last zero-padded), one
   * ciphertext per block, at scale Δ. Every value must be finite with
   * |v| ≤ maxAbsValue (ValueOutOfRangeError with its index otherwise).
   */
  encryptColumn(values: Float64Array, publicKey: CkksPublicKey | Uint8Array): CkksCiphertextBytes {
    const { encoder } = this.#live();
    if (!(values instanceof Float64Array) || values.length < 1) throw new InvalidArgumentError("values must be a non-empty Float64Array");
    const length = values.length;
    if (length > this.params.maxLength) throw new InvalidArgumentError(`column of ${length} values is longer than maxLength ${this.params.maxLength}`);
    const max = this.params.maxAbsValue;
    for (let i = 0; i < length; i++) {
      const v = values[i] as number;
      if (!(Math.abs(v) <= max)) throw new ValueOutOfRangeError(`value out of the declared range ±${max} or not finite`, i);
    }
    return this.#withKey(publicKey, (b) => this.loadPublicKey(b), "public key", (pk) => {
      const blocks = Math.ceil(length / CKKS_SLOTS);
      const slots = new Float64Array(CKKS_SLOTS);
      const entries: Uint8Array[] = [];
      for (let b = 0; b < blocks; b++) {
        slots.fill(0);
        slots.set(values.subarray(b * CKKS_SLOTS, Math.min(length, (b + 1) * CKKS_SLOTS)));
        scoped((scope) => {
          const pt = scope.own(this.#seal.PlainText());
          encoder.encode(slots, this.#scale, pt);
          const ct = scope.own(this.#seal.CipherText());
          (sealObjects(pk)[0] as Encryptor).encrypt(pt, ct);
          entries.push(this.#save(ct));
        });
      }
      return this.#frame(pk.keyId, entries, { length, blocks, rows: 1, encryptions: 1, keySwitches: 0, encodings: 1 });
    });
  }

  /** Slot-wise sum of two columns of the same length under the same key set. */
  add(a: CkksCiphertextBytes, b: CkksCiphertextBytes): CkksCiphertextBytes {
    const { evaluator } = this.#live();
    const fa = this.#parseData(a);
    const fb = this.#parseData(b);
    if (!sameBytes(fa.keyId, fb.keyId)) throw new KeyMismatchError("the two CKKS ciphertexts are under different key sets");
    if (fa.length !== fb.length) throw new InvalidLengthError("ciphertext column", `${fa.length} values`, fb.length, `cannot add columns of ${fa.length} and ${fb.length} values`);
    const counts: Counts = {
      length: fa.length,
      blocks: fa.blocks,
      rows: fa.rows + fb.rows,
      encryptions: fa.encryptions + fb.encryptions,
      keySwitches: fa.keySwitches + fb.keySwitches,
      encodings: fa.encodings + fb.encodings,
    };
    this.#checkRows(counts.rows);
    const entries: Uint8Array[] = [];
    for (let i = 0; i < fa.blocks; i++) {
      scoped((scope) => {
        const x = this.#load(scope, fa, i);
        const y = this.#load(scope, fb, i);
        evaluator.add(x, y, x);
        entries.push(this.#save(x));
      });
    }
    return this.#frame(fa.keyId, entries, counts);
  }

  /**
   * Rotate-and-sum: adds the blocks, then rotates by 1, 2, …, 2048 adding at
   * each step, so every slot holds the column's total. Returns a column of
   * length 1.
   */
  sumSlots(ct: CkksCiphertextBytes, galoisKeys: CkksGaloisKeys | Uint8Array): CkksCiphertextBytes {
    const { evaluator } = this.#live();
    const f = this.#parseData(ct);
    const spread = f.blocks * CKKS_SLOTS;
    const counts: Counts = {
      length: 1,
      blocks: 1,
      rows: f.rows * f.length,
      encryptions: f.encryptions * spread,
      keySwitches: f.keySwitches * spread + (CKKS_SLOTS - 1),
      encodings: f.encodings * f.blocks * (f.keySwitches > 0 ? CKKS_SLOTS : Math.sqrt(CKKS_SLOTS)),
    };
    this.#checkRows(counts.rows);
    if (!Number.isSafeInteger(counts.encryptions) || !Number.isSafeInteger(counts.keySwitches) || !Number.isSafeInteger(counts.encodings)) throw new BoundExceededError("the noise counts of the result overflow");
    return this.#withKey(galoisKeys, (b) => this.loadGaloisKeys(b), "Galois keys", (gk) => {
      if (!sameBytes(gk.keyId, f.keyId)) throw new KeyMismatchError("the Galois keys are not of the CKKS ciphertext's key set");
      const keys = (sealObjects(gk)[0] as GaloisKeys);
      const entry = scoped((scope) => {
        const acc = this.#load(scope, f, 0);
        for (let b = 1; b < f.blocks; b++) evaluator.add(acc, this.#load(scope, f, b), acc);
        const tmp = scope.own(this.#seal.CipherText());
        for (const s of this.#steps) {
          evaluator.rotateVector(acc, s, keys, tmp);
          evaluator.add(acc, tmp, acc);
        }
        return this.#save(acc);
      });
      return this.#frame(f.keyId, [entry], counts);
    });
  }

  /**
   * Re-randomises a ciphertext before it goes to the key holder: adds a
   * fresh encryption of zero under the public key, then drops to the last
   * level (the first, 60-bit prime alone: a third of the bytes, and nothing
   * left to compute with — add, sumSlots, concat and reRandomize refuse the
   * result; decryptSums takes it). The header gains one fresh encryption
   * (errorBound accounts for it); dropping primes of a CKKS ciphertext in NTT
   * form is exact, so it adds no error.
   *
   * What it hides: the ciphertext's history in its bytes. Its random
   * polynomials no longer relate to the inputs' (whoever saw the inputs — an
   * aggregator — cannot link the output to them, and the key holder cannot
   * tell from the ciphertext which ones were added), and every output sits at
   * the same level whatever was computed.
   *
   * What it does not hide, and here CKKS is weaker than BFV (bfv.ts):
   * the key holder's decryption *is* the message plus the accumulated error —
   * CKKS never rounds noise away, and dropping primes does not divide it as
   * BFV's modulus switch does. The decrypted slots therefore carry the sum of
   * the inputs' encryption noise and encoding rounding, plus the fresh zero's
   * noise: of the same order, not a flood (a statistically hiding flood must
   * be ~2^40 times the error it hides, which at Δ = 2^40 would swamp the
   * values). A key holder who studies the low bits of what it decrypts may
   * learn something about the inputs' encryption randomness and rounding:
   * circuit privacy is heuristic only. Nor does it hide the plaintext (that
   * is the point), that the values are aggregates (the header's counts), the
   * parameters or the key set.
   *
   * The last level holds |total + error|·Δ < q0/2 only (q0 ≥ 2^59: about
   * |total| < 2^18 at Δ = 2^40). `maxAbsTotal` is the caller's bound on every
   * slot's |total| (default, and at most, rows·maxAbsValue: what the header
   * allows); BoundExceededError unless (maxAbsTotal + errorBound)·Δ < q0/16.
   * A caller that knows better than the header — masks that cancel in the
   * sum — passes its bound; the decryption is right only if that bound holds.
   */
  reRandomize(ct: CkksCiphertextBytes, publicKey: CkksPublicKey | Uint8Array, options: { readonly maxAbsTotal?: number } = {}): CkksCiphertextBytes {
    const { evaluator } = this.#live();
    const f = this.#parseData(ct);
    const counts: Counts = { level: 1, length: f.length, blocks: f.blocks, rows: f.rows, encryptions: f.encryptions + 1, keySwitches: f.keySwitches, encodings: f.encodings };
    if (!Number.isSafeInteger(counts.encryptions)) throw new BoundExceededError("the noise counts of the result overflow");
    const headerTotal = f.rows * this.params.maxAbsValue;
    const claimed = options.maxAbsTotal ?? headerTotal;
    if (typeof claimed !== "number" || !Number.isFinite(claimed) || claimed <= 0) throw new InvalidArgumentError("maxAbsTotal must be a finite number > 0");
    const q0 = Number(this.params.coeffModulus[0] as bigint);
    if ((Math.min(claimed, headerTotal) + this.errorBound(counts)) * this.#scale >= q0 / 16) {
      throw new BoundExceededError(`a total of up to ${Math.min(claimed, headerTotal)} in magnitude does not fit the last level at scale 2^${this.params.scaleBits}: pass a tighter maxAbsTotal if the caller knows one`);
    }
    const last = this.#lastParmsId as ParmsIdType;
    return this.#withKey(publicKey, (b) => this.loadPublicKey(b), "public key", (pk) => {
      if (!sameBytes(pk.keyId, f.keyId)) throw new KeyMismatchError("the public key is not of the CKKS ciphertext's key set");
      const entries: Uint8Array[] = [];
      for (let b = 0; b < f.blocks; b++) {
        scoped((scope) => {
          const x = this.#load(scope, f, b);
          const zero = scope.own(this.#seal.CipherText());
          (sealObjects(pk)[0] as Encryptor).encryptZero(zero);
          zero.setScale(x.scale); // SEAL leaves an encryption of zero at scale 1; its value is 0 at any scale
          evaluator.add(x, zero, x);
          const out = scope.own(this.#seal.CipherText());
          evaluator.cipherModSwitchTo(x, last, out);
          entries.push(this.#save(out));
        });
      }
      return this.#frame(f.keyId, entries, counts);
    });
  }

  /**
   * Joins columns end to end into one (no SEAL work): every part but the last
   * must fill whole blocks of 4096 slots — how chunks encrypted on several
   * workers become one column. See {@link concatCkksColumns}.
   */
  concat(parts: readonly CkksCiphertextBytes[]): CkksCiphertextBytes {
    this.#live();
    return concatCkksColumns(this.params, parts);
  }

  /** The bound of the module comment for a ciphertext with these counts. */
  errorBound(info: Pick<CkksCiphertextInfo, "rows" | "encryptions" | "keySwitches" | "encodings">): number {
    const { fresh, keySwitch, fp } = this.#noise;
    const noise = (info.encryptions * fresh + info.keySwitches * keySwitch) / this.#scale;
    const max = this.params.maxAbsValue;
    return noise + fp * info.encodings * max + fp * (info.rows * max + noise);
  }

  /** Decrypts each slot's approximate total, with the bound on its error. */
  decryptSums(ct: CkksCiphertextBytes, secretKey: CkksSecretKey | Uint8Array): CkksResult {
    const { encoder } = this.#live();
    const f = this.#parse(ct);
    return this.#withKey(secretKey, (b) => this.loadSecretKey(b), "secret key", (sk) => {
      if (!sameBytes(sk.keyId, f.keyId)) throw new KeyMismatchError("the secret key is not of the CKKS ciphertext's key set");
      const values = new Float64Array(f.length);
      for (let b = 0; b < f.blocks; b++) {
        scoped((scope) => {
          const x = this.#load(scope, f, b);
          const pt = scope.own(this.#seal.PlainText());
          (sealObjects(sk)[0] as Decryptor).decrypt(x, pt);
          const slots = encoder.decode(pt) as Float64Array;
          values.set(slots.subarray(0, Math.min(CKKS_SLOTS, f.length - b * CKKS_SLOTS)), b * CKKS_SLOTS);
        });
      }
      return { values, errorBound: this.errorBound(f) };
    });
  }
}
