/**
 * One interface over engine/he's two schemes, for protocols that sum
 * encrypted vectors: keys, encryption (optionally with pairwise masks,
 * masks.ts), addition, re-randomisation, decryption, the checks a received
 * key or ciphertext must pass, and which scheme a frame belongs to. A
 * protocol picks the scheme once from its parameters ({@link createHeScheme}
 * or {@link withHeScheme}) and writes each role once against
 * {@link HeScheme}.
 *
 * - {@link bfvScheme} over `HeContext` (bfv.ts): exact integer slots
 *   (`bigint`), CRT-split, masks uniform mod every plaintext prime;
 *   `errorBound` is 0.
 * - {@link ckksScheme} over `CkksContext` (ckks.ts): approximate real slots
 *   (`number`), masks uniform reals; `errorBound` is CKKS's bound on
 *   |decrypted − exact| from the ciphertext's recorded history.
 *
 * The scheme owns its context: `dispose()` disposes it.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { createCkksContext, CkksLevel, type CkksContext, type CkksContextOptions } from "./ckks.js";
import { createHeContext, type HeContext } from "./bfv.js";
import { CKKS_FRAME_MAGIC } from "./ckks-format.js";
import { ParameterMismatchError } from "./errors.js";
import { BFV_FRAME_MAGIC } from "./format.js";
import { CKKS_MASK_BITS, maskedReals, maskedResidues, type PairMask } from "./masks.js";
import { scaledBound, type HeContextOptions } from "./params.js";

export const HeSchemeName = { Bfv: "bfv", Ckks: "ckks" } as const;
export type HeSchemeName = (typeof HeSchemeName)[keyof typeof HeSchemeName];

/**
 * Which scheme's frame the bytes claim to be, from their magic ("UHE1":
 * BFV, format.ts; "UHC1": CKKS, ckks.ts); undefined for neither. Only the
 * magic is read: the frame is not checked.
 */
export function schemeOfFrame(bytes: Uint8Array): HeSchemeName | undefined {
  const starts = (magic: readonly number[]): boolean => bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
  return starts(BFV_FRAME_MAGIC) ? HeSchemeName.Bfv : starts(CKKS_FRAME_MAGIC) ? HeSchemeName.Ckks : undefined;
}

/** A fresh key set (public and secret key, no Galois keys) and its key-set id (hex). */
export interface HeKeySet {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  readonly keyId: string;
}

/** What a ciphertext's header says (read without SEAL). */
export interface HeCiphertextSummary {
  readonly keyId: string;
  /** Values in the column. */
  readonly length: number;
  /**
   * The history the header records — BFV: `rows`; CKKS: `level`, `rows`,
   * `encryptions`, `keySwitches`, `encodings` — to compare with
   * {@link HeScheme.sumHistory}.
   */
  readonly history: Readonly<Record<string, number | string>>;
}

/** Decrypted slots: |values[i] − the exact total| ≤ errorBound (0 for BFV). */
export interface HeDecrypted<V> {
  readonly values: readonly V[];
  readonly errorBound: number;
}

/** The options of either scheme's context: what a protocol derives from its parameters. */
export type HeSchemeOptions =
  | { readonly scheme: "bfv"; readonly options: HeContextOptions }
  | { readonly scheme: "ckks"; readonly options: CkksContextOptions; /** Masks' half-width (default CKKS_MASK_BITS). */ readonly maskBits?: number };

/** An HE scheme with one live context: slots of type V (bigint for BFV, number for CKKS). */
export interface HeScheme<V extends bigint | number = bigint | number> {
  readonly name: HeSchemeName;
  /** The parameter fingerprint (hex) every key and ciphertext of the context carries. */
  readonly fingerprint: string;
  readonly disposed: boolean;
  /** Whether the context was built for these options (the same parameters). */
  matches(options: HeSchemeOptions): boolean;
  dispose(): void;
  generateKeys(): HeKeySet;
  /**
   * Parses and loads a public key under this context and returns its key-set
   * id (hex): InvalidKeyError for bytes that are not a key, ParameterMismatchError
   * for another parameter set.
   */
  publicKeyId(publicKey: Uint8Array): string;
  /**
   * A ciphertext's header, checked against the context's limits without
   * SEAL: ParameterMismatchError for the other scheme's frame or another
   * parameter set, InvalidCiphertextError for malformed bytes.
   */
  inspect(ct: Uint8Array): HeCiphertextSummary;
  /** What the header of the sum of `contributors` fresh encryptions records, re-randomised or not. */
  sumHistory(contributors: number, reRandomized: boolean): Readonly<Record<string, number | string>>;
  /** Loads every component through SEAL (InvalidCiphertextError when one is refused). */
  validate(ct: Uint8Array): void;
  /** Encrypts values + Σ sign · mask (masks.ts), one slot per value. */
  encrypt(values: readonly V[], publicKey: Uint8Array, masks?: readonly PairMask[]): Uint8Array;
  add(a: Uint8Array, b: Uint8Array): Uint8Array;
  /**
   * Adds a fresh encryption of zero and drops to the last level, hiding the
   * ciphertext's history (see each scheme's reRandomize). `maxAbsTotal`
   * (CKKS): the caller's bound on every slot's |total|.
   */
  reRandomize(ct: Uint8Array, publicKey: Uint8Array, options?: { readonly maxAbsTotal?: number }): Uint8Array;
  decrypt(ct: Uint8Array, secretKey: Uint8Array): HeDecrypted<V>;
}


function refuseOther(ct: Uint8Array, mine: HeSchemeName): void {
  const other = schemeOfFrame(ct);
  if (other !== undefined && other !== mine) throw new ParameterMismatchError(`a ${other.toUpperCase()} ciphertext where a ${mine.toUpperCase()} one is expected`);
}

/** BFV (exact) as an {@link HeScheme} over `he`, which it owns from now on. */
export function bfvScheme(he: HeContext): HeScheme<bigint> {
  return {
    name: HeSchemeName.Bfv,
    get fingerprint() {
      return he.params.fingerprint;
    },
    get disposed() {
      return he.disposed;
    },
    matches(o) {
      if (o.scheme !== HeSchemeName.Bfv || he.disposed) return false;
      const p = he.params;
      const scale = o.options.scale ?? 0;
      return (
        p.scale === scale &&
        p.maxAbsScaled === scaledBound(o.options.maxAbsValue, scale) &&
        p.maxRows === o.options.maxRows &&
        (o.options.maxLength === undefined || p.maxLength === o.options.maxLength) &&
        (o.options.polyModulusDegree === undefined || p.polyModulusDegree === o.options.polyModulusDegree)
      );
    },
    dispose: () => he.dispose(),
    generateKeys() {
      const keys = he.generateKeys({ galois: false });
      return { publicKey: keys.publicKey, secretKey: keys.secretKey, keyId: this.publicKeyId(keys.publicKey) };
    },
    publicKeyId(publicKey) {
      const pk = he.loadPublicKey(publicKey);
      try {
        return bytesToHex(pk.keyId);
      } finally {
        pk.dispose();
      }
    },
    inspect(ct) {
      refuseOther(ct, HeSchemeName.Bfv);
      const info = he.inspect(ct);
      return { keyId: info.keyId, length: info.length, history: { rows: info.rows } };
    },
    sumHistory: (contributors) => ({ rows: contributors }),
    validate(ct) {
      he.validate(ct);
    },
    encrypt: (values, publicKey, masks = []) => he.encryptResidues(maskedResidues(values, he.params.plainModuli, masks), publicKey),
    add: (a, b) => he.add(a, b),
    reRandomize: (ct, publicKey) => he.reRandomize(ct, publicKey),
    decrypt: (ct, secretKey) => ({ values: he.decryptSums(ct, secretKey), errorBound: 0 }),
  };
}

/** CKKS (approximate) as an {@link HeScheme} over `ckks`, which it owns from now on; masks uniform in [−2^maskBits, 2^maskBits). */
export function ckksScheme(ckks: CkksContext, options: { readonly maskBits?: number } = {}): HeScheme<number> {
  const maskBits = options.maskBits ?? CKKS_MASK_BITS;
  return {
    name: HeSchemeName.Ckks,
    get fingerprint() {
      return ckks.params.fingerprint;
    },
    get disposed() {
      return ckks.disposed;
    },
    matches(o) {
      if (o.scheme !== HeSchemeName.Ckks || ckks.disposed) return false;
      const q = ckks.params;
      const w = o.options;
      return (o.maskBits ?? CKKS_MASK_BITS) === maskBits && q.maxAbsValue === w.maxAbsValue && q.maxRows === w.maxRows && (w.maxLength === undefined || q.maxLength === w.maxLength) && (w.precisionBits === undefined || q.scaleBits === w.precisionBits);
    },
    dispose: () => ckks.dispose(),
    generateKeys() {
      const keys = ckks.generateKeys({ galois: false });
      return { publicKey: keys.publicKey, secretKey: keys.secretKey, keyId: this.publicKeyId(keys.publicKey) };
    },
    publicKeyId(publicKey) {
      const pk = ckks.loadPublicKey(publicKey);
      try {
        return bytesToHex(pk.keyId);
      } finally {
        pk.dispose();
      }
    },
    inspect(ct) {
      refuseOther(ct, HeSchemeName.Ckks);
      const { keyId, length, level, rows, encryptions, keySwitches, encodings } = ckks.inspect(ct);
      return { keyId, length, history: { level, rows, encryptions, keySwitches, encodings } };
    },
    sumHistory: (n, reRandomized) =>
      reRandomized
        ? { level: CkksLevel.Last, rows: n, encryptions: n + 1, keySwitches: 0, encodings: n }
        : { level: CkksLevel.Data, rows: n, encryptions: n, keySwitches: 0, encodings: n },
    validate(ct) {
      ckks.validate(ct);
    },
    encrypt: (values, publicKey, masks = []) => ckks.encryptColumn(maskedReals(Float64Array.from(values), maskBits, masks), publicKey),
    add: (a, b) => ckks.add(a, b),
    reRandomize: (ct, publicKey, o = {}) => ckks.reRandomize(ct, publicKey, o),
    decrypt(ct, secretKey) {
      const r = ckks.decryptSums(ct, secretKey);
      return { values: Array.from(r.values), errorBound: r.errorBound };
    },
  };
}

/** A scheme with a fresh context for `o` (loads SEAL on first use in this thread). */
export async function createHeScheme(o: HeSchemeOptions): Promise<HeScheme> {
  return o.scheme === HeSchemeName.Bfv ? bfvScheme(await createHeContext(o.options)) : ckksScheme(await createCkksContext(o.options), o.maskBits !== undefined ? { maskBits: o.maskBits } : {});
}

/**
 * Runs `fn` with `existing` when it is live and was built for `o`, else with
 * a scheme built for this call and disposed after it: how a protocol step
 * uses the caller's long-lived context without trusting it to fit the job.
 */
export async function withHeScheme<R>(existing: HeScheme | undefined, o: HeSchemeOptions, fn: (scheme: HeScheme) => R | Promise<R>): Promise<R> {
  if (existing && existing.matches(o)) return fn(existing);
  const scheme = await createHeScheme(o);
  try {
    return await fn(scheme);
  } finally {
    scheme.dispose();
  }
}
