/**
 * `HeContext`: the owner of the SEAL contexts for one parameter set, and the
 * operations over packed, CRT-split BFV ciphertexts — the BFV scheme of
 * engine/he (scheme.ts wraps it, with CKKS, behind the one `HeScheme`
 * interface the protocols use).
 *
 * Longer than ~500 lines on purpose: one class owns every SEAL object of the
 * scheme (see Ownership), and each operation must reach the same private
 * per-prime contexts, scopes and level switches; splitting the operations
 * across files would mean handing raw SEAL handles between modules, which
 * the ownership rule forbids.
 *
 * ## Ownership
 *
 * Every SEAL object has exactly one owner, which deletes it:
 * - the context owns, per CRT prime, its SEAL `Context`, `BatchEncoder`,
 *   `Evaluator` and the parms ids it compares against, built by the first
 *   operation that needs SEAL (inspect, concat and sliceBlocks work on the
 *   frames alone, so a host that only cuts and joins never builds them);
 *   `dispose()` deletes them and every key handle it loaded;
 * - a key handle (`HePublicKey`, `HeSecretKey`, `HeGaloisKeys`) owns its
 *   encryptors, decryptors or Galois keys; `dispose()` deletes them;
 * - each operation owns its temporaries (loaded ciphertexts, plaintexts,
 *   rotation buffers) in a {@link Scope} that deletes them in `finally`,
 *   whether the operation returns or throws.
 * Nothing leaves this module but bytes, bigints and handles.
 *
 * ## Layout
 *
 * A column of `length` values is cut into `blocks = ceil(length / N)` blocks
 * of N slots (the last one zero-padded); each block is one ciphertext per
 * CRT prime. Operations work block by block and prime by prime.
 *
 * ## Levels (masked group sums)
 *
 * maskedBlockSums and blockTotals trade unused noise budget for speed by
 * working below the first data level, where every SEAL operation touches
 * fewer RNS primes. Measured at N = 8192 (4 data primes; budget held by a
 * fresh ciphertext at 4 / 3 / 2 primes: 145 / 101 / 57 bits; a plaintext
 * mask costs ~25 bits, a full rotate-and-sum ~12, the unit-vector placement
 * ~22, summing blocks and partials a few): masks at 3 primes leave ~70 bits;
 * switching to 2 primes caps that at 57; rotate-and-sum and placement leave
 * ~20, and reRandomize's switch to the last level leaves its usual ~14. A
 * rotation costs 3 ms at 2 primes against 10 ms at 4, a mask ~3/4 of its cost
 * at 4. At N = 4096 (2 data primes, 45 bits) nothing is switched — and there
 * the budget holds one plaintext multiplication only (see blockTotals).
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { randomBytes } from "node:crypto";
import { InvalidArgumentError, InvalidLengthError } from "../errors.js";
import type { BatchEncoder } from "node-seal/implementation/batch-encoder.js";
import type { CipherText } from "node-seal/implementation/cipher-text.js";
import type { Context } from "node-seal/implementation/context.js";
import type { Decryptor } from "node-seal/implementation/decryptor.js";
import type { Encryptor } from "node-seal/implementation/encryptor.js";
import type { Evaluator } from "node-seal/implementation/evaluator.js";
import type { GaloisKeys } from "node-seal/implementation/galois-keys.js";
import type { ParmsIdType } from "node-seal/implementation/parms-id-type.js";
import {
  BoundExceededError,
  DisposedError,
  InvalidCiphertextError,
  InvalidKeyError,
  KeyMismatchError,
  NoiseBudgetExhaustedError,
} from "./errors.js";
import { ResidueEncoder, type ColumnValues } from "./encode.js";
import { decodeFrame, encodeFrame, FrameKind, type Frame, type FrameLimits } from "./format.js";
import { CrtBasis, scaledBound, selectParameters, type HeContextOptions, type HeParameters } from "./params.js";
import { disposeHandles, KeyHandle, sameBytes, Scope, sealLoad, sealObjects, withKey, type Deletable } from "./owned.js";
import { loadSeal, type SEALLibrary } from "./seal.js";

/** Serialised packed ciphertexts (see format.ts). */
export type CiphertextBytes = Uint8Array;
export type PublicKeyBytes = Uint8Array;
export type SecretKeyBytes = Uint8Array;
export type GaloisKeyBytes = Uint8Array;

export interface HeKeyBytes {
  readonly publicKey: PublicKeyBytes;
  readonly secretKey: SecretKeyBytes;
  /** Present unless generateKeys({ galois: false }): needed by sumSlots only. */
  readonly galoisKeys?: GaloisKeyBytes;
}

/** What the header of a ciphertext says (no decryption needed). */
export interface CiphertextInfo {
  readonly length: number;
  readonly blocks: number;
  /** The most input rows one slot's total may include. */
  readonly rows: number;
  /** Hex id of the key set it is encrypted under. */
  readonly keyId: string;
}


/** One CRT component: a SEAL context whose plaintext modulus is one prime. */
interface PrimeContext {
  readonly prime: number;
  readonly context: Context;
  readonly encoder: BatchEncoder;
  readonly evaluator: Evaluator;
  readonly lastParmsId: ParmsIdType;
}


/** Creates a context for the declared range (loads SEAL on first use in this thread). */
export async function createHeContext(options: HeContextOptions): Promise<HeContext> {
  const seal = await loadSeal();
  return new HeContext(seal, selectParameters(seal, options));
}

/**
 * Runs `fn` with `existing` when it is live and was built for `options`
 * (same value bound, rows, scale, length and degree), else with a context
 * built for this call and disposed after it: how a protocol step uses the
 * caller's long-lived context without trusting it to fit the job.
 */
export async function withHeContext<R>(existing: HeContext | undefined, options: HeContextOptions, fn: (he: HeContext) => R | Promise<R>): Promise<R> {
  if (existing && !existing.disposed) {
    const o = existing.params;
    const scale = options.scale ?? 0;
    if (
      o.scale === scale &&
      o.maxAbsScaled === scaledBound(options.maxAbsValue, scale) &&
      o.maxRows === options.maxRows &&
      (options.maxLength === undefined || o.maxLength === options.maxLength) &&
      (options.polyModulusDegree === undefined || o.polyModulusDegree === options.polyModulusDegree)
    ) {
      return fn(existing);
    }
  }
  const he = await createHeContext(options);
  try {
    return await fn(he);
  } finally {
    he.dispose();
  }
}


/** The most groups whose accumulators maskedBlockSums keeps in memory at once (~400 KB each at N = 8192). */
const MASK_BATCH = 64;

/**
 * The checks maskedBlockSums makes before any SEAL work, for a column of
 * `length` values: at least one mask, each a Uint32Array of `length`
 * weights, each weight below the smallest plaintext prime (so it is the same
 * residue under every prime), and a G-block result that fits the context
 * (G·N ≤ maxLength). Errors name the mask and the slot, never a weight.
 * Exported for the pool, which checks on the host before it cuts the work.
 * Returns, per group, which blocks hold a non-zero weight (1) or none (0).
 */
export function checkMasks(params: HeParameters, length: number, masks: readonly Uint32Array[]): Uint8Array[] {
  if (!Array.isArray(masks) || masks.length < 1) throw new InvalidArgumentError("masks must be a non-empty array of Uint32Array, one per group");
  const n = params.slotCount;
  if (masks.length * n > params.maxLength) {
    throw new InvalidArgumentError(`${masks.length} groups need ${masks.length} blocks of ${n} slots: more than maxLength ${params.maxLength}`);
  }
  const blocks = Math.ceil(length / n);
  const limit = Math.min(...params.plainModuli);
  const nonZero: Uint8Array[] = [];
  masks.forEach((m, g) => {
    if (!(m instanceof Uint32Array)) throw new InvalidArgumentError(`mask ${g} must be a Uint32Array`);
    if (m.length !== length) throw new InvalidLengthError(`mask ${g}`, `${length}`, m.length, `mask ${g}: expected ${length} weights, got ${m.length}`);
    const nz = new Uint8Array(blocks);
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let s = b * n, end = Math.min(length, s + n); s < end; s++) {
        const w = m[s] as number;
        if (w > max) {
          if (w >= limit) throw new InvalidArgumentError(`mask ${g}: the weight at slot ${s} is not below the smallest plaintext prime`);
          max = w;
        }
      }
      nz[b] = max === 0 ? 0 : 1;
    }
    nonZero.push(nz);
  });
  return nonZero;
}

/** A caller's row bound: a positive integer (InvalidArgumentError), at most the context's maxRows (BoundExceededError, as #checkRows). */
export function checkRowBound(params: HeParameters, rows: number): void {
  if (!Number.isSafeInteger(rows) || rows < 1) throw new InvalidArgumentError("rows must be a positive integer");
  checkMaxRows(params, rows);
}

function checkMaxRows(params: HeParameters, rows: number): void {
  if (rows > params.maxRows) {
    throw new BoundExceededError(`the result could include ${rows} rows, more than the context's maxRows ${params.maxRows}: its total could wrap`);
  }
}

/** A loaded public key: one encryptor per CRT prime (HeContext.loadPublicKey). */
export class HePublicKey extends KeyHandle<HeContext, Encryptor> {
  readonly kind = "bfv-public-key";
}

/** A loaded secret key: one decryptor per CRT prime (HeContext.loadSecretKey). */
export class HeSecretKey extends KeyHandle<HeContext, Decryptor> {
  readonly kind = "bfv-secret-key";
}

/** Loaded Galois keys (rotations by 1, 2, 4, …, N/4 and the column swap), one set per CRT prime (HeContext.loadGaloisKeys). */
export class HeGaloisKeys extends KeyHandle<HeContext, GaloisKeys> {
  readonly kind = "bfv-galois-keys";
}

export class HeContext {
  readonly params: HeParameters;
  readonly #seal: SEALLibrary;
  readonly #primes: PrimeContext[] = [];
  readonly #fingerprint: Uint8Array;
  readonly #crt: CrtBasis;
  readonly #residues: ResidueEncoder;
  readonly #rotationSteps: number[];
  /** RNS primes of the ciphertext modulus at which maskedBlockSums multiplies / blockTotals rotates (see Levels). */
  readonly #maskPrimes: number;
  readonly #rotatePrimes: number;
  readonly #limits: Record<"ct" | "pk" | "sk" | "gk", FrameLimits>;
  #disposed = false;

  /** Use {@link createHeContext}. */
  constructor(seal: SEALLibrary, params: HeParameters) {
    this.#seal = seal;
    this.params = params;
    this.#fingerprint = Uint8Array.from(Buffer.from(params.fingerprint, "hex"));
    this.#crt = new CrtBasis(params.plainModuli);
    this.#residues = new ResidueEncoder(params.plainModuli, params.scale, params.maxAbsScaled);
    const n = params.polyModulusDegree;
    this.#rotationSteps = [];
    for (let s = 1; s < n / 2; s *= 2) this.#rotationSteps.push(s);
    const dataPrimes = params.coeffModulus.length - 1;
    this.#maskPrimes = Math.min(dataPrimes, Math.max(2, dataPrimes - 1));
    this.#rotatePrimes = Math.min(dataPrimes, 2);
    // The SEAL contexts are built on first use (#live): seconds of WASM work at N = 8192, which
    // a host that only inspects, cuts and joins frames (the pool's, on the main thread) never does.
    // Size bounds, from the parameters, for what SEAL may be asked to load.
    const q = params.coeffModulus.length; // key level: data primes + the special prime
    const l = q - 1; // first data level
    const poly = n * 8;
    const nKeys = this.#rotationSteps.length + 1;
    const base = { primes: params.plainModuli.length, fingerprint: this.#fingerprint, slotCount: n };
    this.#limits = {
      ct: { ...base, maxEntry: 2 * l * poly + 1024, maxBlocks: Math.ceil(params.maxLength / n) },
      pk: { ...base, maxEntry: 2 * q * poly + 1024, maxBlocks: 1 },
      sk: { ...base, maxEntry: q * poly + 1024, maxBlocks: 1 },
      gk: { ...base, maxEntry: nKeys * l * (2 * q * poly + 2048) + 16 * n + 4096, maxBlocks: 1 },
    };
  }

  #buildPrime(prime: number): PrimeContext {
    const seal = this.#seal;
    const n = this.params.polyModulusDegree;
    const scope = new Scope();
    const owned: Deletable[] = [];
    try {
      const parms = scope.own(seal.EncryptionParameters(seal.SchemeType.bfv));
      parms.setPolyModulusDegree(n);
      parms.setCoeffModulus(scope.own(seal.CoeffModulus.BFVDefault(n, seal.SecurityLevel.tc128)));
      parms.setPlainModulus(scope.own(seal.Modulus(BigInt(prime))));
      const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
      owned.push(context);
      if (!context.parametersSet()) throw new InvalidArgumentError("SEAL refused the encryption parameters");
      const first = scope.own(context.firstContextData);
      const qualifiers = scope.own(first.qualifiers);
      if (!qualifiers.usingBatching) throw new InvalidArgumentError("plaintext modulus does not support batching");
      const encoder = seal.BatchEncoder(context);
      owned.push(encoder);
      const evaluator = seal.Evaluator(context);
      owned.push(evaluator);
      const lastParmsId = context.lastParmsId;
      owned.push(lastParmsId);
      return { prime, context, encoder, evaluator, lastParmsId };
    } catch (e) {
      for (const o of owned.reverse()) o.delete();
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
    this.#release();
  }

  #release(): void {
    for (const p of this.#primes) {
      p.lastParmsId.delete();
      p.evaluator.delete();
      p.encoder.delete();
      p.context.delete();
    }
    this.#primes.length = 0;
  }

  /** The SEAL contexts, one per CRT prime, built on first use. */
  #live(): PrimeContext[] {
    this.#open();
    if (this.#primes.length === 0) {
      try {
        for (const p of this.params.plainModuli) this.#primes.push(this.#buildPrime(p));
      } catch (e) {
        this.#release();
        throw e;
      }
    }
    return this.#primes;
  }

  /** Throws when disposed: what the frame-only operations (inspect, concat, sliceBlocks) check instead of #live. */
  #open(): void {
    if (this.#disposed) throw new DisposedError("HE context");
  }

  // ---------------------------------------------------------------- keys

  /**
   * A fresh key set: one SEAL secret key per CRT prime, its public key and
   * (unless `galois: false`) the Galois keys for rotate-and-sum, each
   * serialised seeded where SEAL can (public and Galois keys: half size) and
   * zstd-compressed. The three share a random key-set id that ciphertexts
   * carry, so mixing key sets is refused instead of decrypting to noise.
   */
  generateKeys(options: { galois?: boolean } = {}): HeKeyBytes {
    const primes = this.#live();
    const seal = this.#seal;
    const zstd = seal.ComprModeType.zstd;
    const keyId = new Uint8Array(randomBytes(16));
    const pks: Uint8Array[] = [];
    const sks: Uint8Array[] = [];
    const gks: Uint8Array[] = [];
    const steps = Int32Array.from([...this.#rotationSteps, 0]); // 0: the column (row-swap) rotation
    for (const p of primes) {
      const scope = new Scope();
      try {
        const kg = scope.own(seal.KeyGenerator(p.context));
        pks.push(scope.own(kg.createPublicKeySerializable()).saveArray(zstd));
        sks.push(scope.own(kg.secretKey()).saveArray(zstd));
        if (options.galois !== false) gks.push(scope.own(kg.createGaloisKeysSerializable(steps)).saveArray(zstd));
      } finally {
        scope.dispose();
      }
    }
    const fp = this.#fingerprint;
    const out: HeKeyBytes = {
      publicKey: encodeFrame(FrameKind.PublicKey, fp, keyId, pks),
      secretKey: encodeFrame(FrameKind.SecretKey, fp, keyId, sks),
    };
    return options.galois === false ? out : { ...out, galoisKeys: encodeFrame(FrameKind.GaloisKeys, fp, keyId, gks) };
  }

  /** Loads public-key bytes (size-checked before SEAL sees them). Dispose the handle, or the context, when done. */
  loadPublicKey(bytes: PublicKeyBytes): HePublicKey {
    const primes = this.#live();
    const frame = decodeFrame(bytes, FrameKind.PublicKey, this.#limits.pk);
    const encryptors: Encryptor[] = [];
    try {
      primes.forEach((p, j) => {
        const pk = this.#seal.PublicKey();
        try {
          sealLoad(() => pk.loadArray(p.context, frame.entries[j] as Uint8Array), () => new InvalidKeyError(`public key: component ${j} refused by SEAL`));
          encryptors.push(this.#seal.Encryptor(p.context, pk));
        } finally {
          pk.delete();
        }
      });
    } catch (e) {
      for (const x of encryptors) x.delete();
      throw e;
    }
    return new HePublicKey(this, frame.keyId, encryptors);
  }

  /** Loads secret-key bytes (size-checked before SEAL sees them). Dispose the handle, or the context, when done. */
  loadSecretKey(bytes: SecretKeyBytes): HeSecretKey {
    const primes = this.#live();
    const frame = decodeFrame(bytes, FrameKind.SecretKey, this.#limits.sk);
    const decryptors: Decryptor[] = [];
    try {
      primes.forEach((p, j) => {
        const sk = this.#seal.SecretKey();
        try {
          sealLoad(() => sk.loadArray(p.context, frame.entries[j] as Uint8Array), () => new InvalidKeyError(`secret key: component ${j} refused by SEAL`));
          decryptors.push(this.#seal.Decryptor(p.context, sk));
        } finally {
          sk.delete();
        }
      });
    } catch (e) {
      for (const x of decryptors) x.delete();
      throw e;
    }
    return new HeSecretKey(this, frame.keyId, decryptors);
  }

  /** Loads Galois-key bytes and checks every rotation sumSlots needs is there. */
  loadGaloisKeys(bytes: GaloisKeyBytes): HeGaloisKeys {
    const primes = this.#live();
    const frame = decodeFrame(bytes, FrameKind.GaloisKeys, this.#limits.gk);
    const keys: GaloisKeys[] = [];
    const m = 2 * this.params.polyModulusDegree;
    // SEAL's Galois element for a left row rotation by s is 3^s mod 2N; the column swap is 2N − 1.
    const elements = [...this.#rotationSteps.map((s) => Number(3n ** BigInt(s) % BigInt(m))), m - 1];
    try {
      primes.forEach((p, j) => {
        const gk = this.#seal.GaloisKeys();
        keys.push(gk);
        sealLoad(() => gk.loadArray(p.context, frame.entries[j] as Uint8Array), () => new InvalidKeyError(`Galois keys: component ${j} refused by SEAL`));
        for (const e of elements) if (!gk.hasKey(e)) throw new InvalidKeyError(`Galois keys: component ${j} lacks a rotation sumSlots needs`);
      });
    } catch (e) {
      for (const x of keys) x.delete();
      throw e;
    }
    return new HeGaloisKeys(this, frame.keyId, keys);
  }

  /** Runs `fn` with a usable handle: the given one, or one loaded from bytes for this call only. */
  #withKey<H extends KeyHandle<HeContext, Deletable>, R>(key: H | Uint8Array, load: (b: Uint8Array) => H, what: string, fn: (h: H) => R): R {
    return withKey<HeContext, H, R>(this, key, load, what, fn);
  }


  // ---------------------------------------------------------------- ciphertext I/O

  /** Reads a ciphertext's header (no SEAL object is created). */
  inspect(ct: CiphertextBytes): CiphertextInfo {
    this.#open();
    const f = decodeFrame(ct, FrameKind.Ciphertext, this.#limits.ct);
    return { length: f.length, blocks: f.blocks, rows: f.rows, keyId: bytesToHex(f.keyId) };
  }

  /**
   * Validates a ciphertext fully: its header (as inspect) and every
   * component through SEAL's own load (which checks each object against its
   * context), without computing anything. For ciphertexts that are stored or
   * forwarded before any operation would load them.
   */
  validate(ct: CiphertextBytes): CiphertextInfo {
    this.#live();
    const f = this.#parse(ct);
    for (let i = 0; i < f.entries.length; i++) {
      const scope = new Scope();
      try {
        this.#load(scope, f, i);
      } finally {
        scope.dispose();
      }
    }
    return { length: f.length, blocks: f.blocks, rows: f.rows, keyId: bytesToHex(f.keyId) };
  }

  #parse(bytes: CiphertextBytes): Frame {
    return decodeFrame(bytes, FrameKind.Ciphertext, this.#limits.ct);
  }

  /** Loads component i (block ⌊i/k⌋, prime i mod k) into a scope-owned SEAL ciphertext. */
  #load(scope: Scope, frame: Frame, i: number): CipherText {
    const k = this.#primes.length;
    const p = this.#primes[i % k] as PrimeContext;
    const ct = scope.own(this.#seal.CipherText());
    sealLoad(() => ct.loadArray(p.context, frame.entries[i] as Uint8Array), () => new InvalidCiphertextError(`ciphertext: component ${i} refused by SEAL`));
    if (ct.size !== 2) throw new InvalidCiphertextError(`ciphertext: component ${i} has ${ct.size} polynomials, expected 2`);
    if (ct.polyModulusDegree !== this.params.polyModulusDegree) throw new InvalidCiphertextError(`ciphertext: component ${i} has the wrong degree`);
    // SEAL loads a BFV ciphertext in NTT form; no operation here makes one, and each would fail on it.
    if (ct.isNttForm) throw new InvalidCiphertextError(`ciphertext: component ${i} is in NTT form`);
    return ct;
  }

  #frame(keyId: Uint8Array, entries: Uint8Array[], column: { length: number; blocks: number; rows: number }): CiphertextBytes {
    return encodeFrame(FrameKind.Ciphertext, this.#fingerprint, keyId, entries, column);
  }

  #save(ct: CipherText): Uint8Array {
    return ct.saveArray(this.#seal.ComprModeType.zstd);
  }

  /** A transparent (all-zero) ciphertext at ct's level: what SEAL refuses to compute for an exact zero. */
  #zeroLike(scope: Scope, p: PrimeContext, like: CipherText): CipherText {
    const pid = scope.own(like.parmsId);
    const z = scope.own(this.#seal.CipherText({ context: p.context, parmsId: pid }));
    z.resize(2);
    return z;
  }

  /** Switches the higher-level of a, b down to the other's level (in place). */
  #align(scope: Scope, p: PrimeContext, a: CipherText, b: CipherText): void {
    while (a.coeffModulusSize > b.coeffModulusSize) this.#switchNext(scope, p, a);
    while (b.coeffModulusSize > a.coeffModulusSize) this.#switchNext(scope, p, b);
  }

  #switchNext(scope: Scope, p: PrimeContext, ct: CipherText): void {
    if (ct.isTransparent) {
      // SEAL will not produce a transparent result: build the all-zero ciphertext one level down.
      const here = scope.own(p.context.getContextData(scope.own(ct.parmsId)));
      const next = scope.own(scope.own(here.nextContextData).parmsId);
      const z = scope.own(this.#seal.CipherText({ context: p.context, parmsId: next }));
      z.resize(2);
      ct.move(z);
      return;
    }
    const next = scope.own(this.#seal.CipherText());
    p.evaluator.cipherModSwitchToNext(ct, next);
    ct.move(next);
  }

  /** Switches ct (not in NTT form) down to `primes` RNS primes, if it is above (in place). */
  #lowerTo(scope: Scope, p: PrimeContext, ct: CipherText, primes: number): void {
    while (ct.coeffModulusSize > primes) this.#switchNext(scope, p, ct);
  }

  /** A transparent zero with `primes` RNS primes (or the first data level, if that has fewer). */
  #zeroAt(scope: Scope, p: PrimeContext, primes: number): CipherText {
    const z = scope.own(this.#seal.CipherText({ context: p.context, parmsId: scope.own(p.context.firstParmsId) }));
    z.resize(2);
    this.#lowerTo(scope, p, z, primes);
    return z;
  }

  // ---------------------------------------------------------------- operations

  /**
   * Encrypts a column under a public key: values spread over N slots per
   * block, one ciphertext per block and CRT prime, at the first data level.
   * Each value must satisfy |round(value · 10^scale)| ≤ V (ValueOutOfRangeError
   * with its index otherwise).
   */
  encryptColumn(values: ColumnValues, publicKey: HePublicKey | PublicKeyBytes): CiphertextBytes {
    const primes = this.#live();
    const length = values?.length;
    if (!Number.isInteger(length) || length < 1) throw new InvalidArgumentError("values must be a non-empty BigInt64Array, Float64Array or Int32Array");
    if (length > this.params.maxLength) throw new InvalidArgumentError(`column of ${length} values is longer than maxLength ${this.params.maxLength}`);
    return this.#withKey(publicKey, (b) => this.loadPublicKey(b), "public key", (pk) => {
      const n = this.params.slotCount;
      const blocks = Math.ceil(length / n);
      const residues = primes.map(() => new Uint32Array(n));
      const entries: Uint8Array[] = [];
      for (let b = 0; b < blocks; b++) {
        this.#residues.fill(values, b * n, Math.min(length, (b + 1) * n), residues);
        primes.forEach((p, j) => {
          const scope = new Scope();
          try {
            const pt = scope.own(this.#seal.PlainText());
            p.encoder.encode(residues[j] as Uint32Array, pt);
            const ct = scope.own(this.#seal.CipherText());
            (sealObjects(pk)[j] as Encryptor).encrypt(pt, ct);
            entries.push(this.#save(ct));
          } finally {
            scope.dispose();
          }
        });
      }
      return this.#frame(pk.keyId, entries, { length, blocks, rows: 1 });
    });
  }

  /**
   * Encrypts a column given directly as residues: `residues[j][s]` is slot s
   * modulo the j-th CRT prime (`params.plainModuli[j]`), each in [0, p_j).
   * No range check applies — the caller owns the bound (the protocols use
   * it to add uniformly random masks in each prime's residue space, which
   * cancel in a sum). The result decrypts, per slot, to the integer in
   * (−M/2, M/2) congruent to the residues; rows is 1, as for encryptColumn.
   *
   * `level: "mask"` switches each fresh ciphertext down to the level at which
   * maskedBlockSums multiplies (see Levels): a quarter smaller at N = 8192
   * (3 RNS primes instead of 4), for columns whose only use is masked sums.
   */
  encryptResidues(residues: readonly Uint32Array[], publicKey: HePublicKey | PublicKeyBytes, options: { readonly level?: "first" | "mask" } = {}): CiphertextBytes {
    const primes = this.#live();
    if (!Array.isArray(residues) || residues.length !== primes.length) throw new InvalidArgumentError(`residues must hold one Uint32Array per CRT prime (${primes.length})`);
    const length = (residues[0] as Uint32Array | undefined)?.length ?? 0;
    if (length < 1) throw new InvalidArgumentError("residues must not be empty");
    if (length > this.params.maxLength) throw new InvalidArgumentError(`column of ${length} values is longer than maxLength ${this.params.maxLength}`);
    primes.forEach((p, j) => {
      const r = residues[j];
      if (!(r instanceof Uint32Array) || r.length !== length) throw new InvalidLengthError("residues", `${length}`, r?.length ?? 0);
      for (let s = 0; s < length; s++) if ((r[s] as number) >= p.prime) throw new InvalidArgumentError(`residue ${s} of prime ${j} is not reduced`);
    });
    if (options.level !== undefined && options.level !== "first" && options.level !== "mask") throw new InvalidArgumentError('level must be "first" or "mask"');
    const toMask = options.level === "mask";
    return this.#withKey(publicKey, (b) => this.loadPublicKey(b), "public key", (pk) => {
      const n = this.params.slotCount;
      const blocks = Math.ceil(length / n);
      const slots = new Uint32Array(n);
      const entries: Uint8Array[] = [];
      for (let b = 0; b < blocks; b++) {
        primes.forEach((p, j) => {
          const scope = new Scope();
          try {
            slots.fill(0);
            slots.set((residues[j] as Uint32Array).subarray(b * n, Math.min(length, (b + 1) * n)));
            const pt = scope.own(this.#seal.PlainText());
            p.encoder.encode(slots, pt);
            const ct = scope.own(this.#seal.CipherText());
            (sealObjects(pk)[j] as Encryptor).encrypt(pt, ct);
            if (toMask) this.#lowerTo(scope, p, ct, this.#maskPrimes);
            entries.push(this.#save(ct));
          } finally {
            scope.dispose();
          }
        });
      }
      return this.#frame(pk.keyId, entries, { length, blocks, rows: 1 });
    });
  }

  /**
   * Joins columns end to end into one (no SEAL work: the blocks are copied).
   * Every part but the last must fill whole blocks (length a multiple of the
   * slot count): this is how chunks encrypted on several workers become one
   * column. The result's row bound is the largest of the parts'.
   */
  concat(parts: readonly CiphertextBytes[]): CiphertextBytes {
    this.#open();
    if (parts.length === 0) throw new InvalidArgumentError("nothing to concatenate");
    const frames = parts.map((p) => this.#parse(p));
    const first = frames[0] as Frame;
    const n = this.params.slotCount;
    let length = 0;
    let rows = 0;
    const entries: Uint8Array[] = [];
    frames.forEach((f, i) => {
      if (!sameBytes(f.keyId, first.keyId)) throw new KeyMismatchError("the parts are under different key sets");
      if (i < frames.length - 1 && f.length % n !== 0) throw new InvalidArgumentError(`part ${i} does not fill whole blocks of ${n} slots`);
      length += f.length;
      rows = Math.max(rows, f.rows);
      entries.push(...f.entries);
    });
    if (length > this.params.maxLength) throw new InvalidArgumentError(`column of ${length} values is longer than maxLength ${this.params.maxLength}`);
    return this.#frame(first.keyId, entries, { length, blocks: Math.ceil(length / n), rows });
  }

  /**
   * The sub-column of whole blocks [fromBlock, toBlock) (no SEAL work: the
   * blocks are copied). Its length is (toBlock − fromBlock)·N, less the
   * padding of the column's last block when toBlock is the last; its row
   * bound is the column's. The inverse of concat: how work is cut for the
   * pool's workers.
   */
  sliceBlocks(ct: CiphertextBytes, fromBlock: number, toBlock: number): CiphertextBytes {
    this.#open();
    const k = this.params.plainModuli.length;
    const f = this.#parse(ct);
    if (!Number.isSafeInteger(fromBlock) || !Number.isSafeInteger(toBlock) || fromBlock < 0 || toBlock <= fromBlock || toBlock > f.blocks) {
      throw new InvalidArgumentError(`block range must satisfy 0 ≤ from < to ≤ ${f.blocks}`);
    }
    const n = this.params.slotCount;
    const length = Math.min(f.length, toBlock * n) - fromBlock * n;
    return this.#frame(f.keyId, f.entries.slice(fromBlock * k, toBlock * k), { length, blocks: toBlock - fromBlock, rows: f.rows });
  }

  /** Slot-wise sum of two columns of the same length under the same key set. */
  add(a: CiphertextBytes, b: CiphertextBytes): CiphertextBytes {
    const primes = this.#live();
    const fa = this.#parse(a);
    const fb = this.#parse(b);
    if (!sameBytes(fa.keyId, fb.keyId)) throw new KeyMismatchError("the two ciphertexts are under different key sets");
    if (fa.length !== fb.length) throw new InvalidLengthError("ciphertext column", `${fa.length} values`, fb.length, `cannot add columns of ${fa.length} and ${fb.length} values`);
    const rows = fa.rows + fb.rows;
    this.#checkRows(rows);
    const k = primes.length;
    const entries: Uint8Array[] = [];
    for (let i = 0; i < fa.entries.length; i++) {
      const scope = new Scope();
      try {
        const p = primes[i % k] as PrimeContext;
        const x = this.#load(scope, fa, i);
        const y = this.#load(scope, fb, i);
        entries.push(this.#save(this.#addInto(scope, p, x, y)));
      } finally {
        scope.dispose();
      }
    }
    return this.#frame(fa.keyId, entries, { length: fa.length, blocks: fa.blocks, rows });
  }

  /**
   * Slot-wise sum of several columns of one length under one key set, each
   * component loaded once and the sum saved once (no intermediate sums are
   * serialised, unlike a chain of add()).
   *
   * `rows` is the result's row bound: by default the sum of the parts'
   * bounds (as add), or the caller's own, tighter bound when the parts are
   * pieces of one result whose bound the caller knows — e.g. partial sums
   * over disjoint blocks, or totals in disjoint slots, where the parts'
   * bounds would add up to more than the whole's. Checked against maxRows.
   */
  addAll(parts: readonly CiphertextBytes[], rows?: number): CiphertextBytes {
    const primes = this.#live();
    if (!Array.isArray(parts) || parts.length === 0) throw new InvalidArgumentError("nothing to add");
    const frames = parts.map((b) => this.#parse(b));
    const first = frames[0] as Frame;
    for (const f of frames) {
      if (!sameBytes(f.keyId, first.keyId)) throw new KeyMismatchError("the parts are under different key sets");
      if (f.length !== first.length) throw new InvalidLengthError("ciphertext column", `${first.length} values`, f.length, `cannot add columns of ${first.length} and ${f.length} values`);
    }
    const bound = rows ?? frames.reduce((s, f) => s + f.rows, 0);
    if (rows === undefined) this.#checkRows(bound);
    else checkRowBound(this.params, bound);
    const column = { length: first.length, blocks: first.blocks, rows: bound };
    if (frames.length === 1) return this.#frame(first.keyId, [...first.entries], column);
    const k = primes.length;
    const entries: Uint8Array[] = [];
    for (let i = 0; i < first.entries.length; i++) {
      const scope = new Scope();
      try {
        const p = primes[i % k] as PrimeContext;
        let acc = this.#load(scope, first, i);
        for (let q = 1; q < frames.length; q++) acc = this.#addInto(scope, p, acc, this.#load(scope, frames[q] as Frame, i));
        entries.push(this.#save(acc));
      } finally {
        scope.dispose();
      }
    }
    return this.#frame(first.keyId, entries, column);
  }

  /** x + y (aligned to the lower level); x may be overwritten. */
  #addInto(scope: Scope, p: PrimeContext, x: CipherText, y: CipherText): CipherText {
    this.#align(scope, p, x, y);
    if (y.isTransparent) return x;
    if (x.isTransparent) return y;
    p.evaluator.add(x, y, x);
    return x;
  }

  /**
   * Multiplies each slot by a public 0/1 mask (one byte per value): selects
   * the rows of a category, a histogram bin, a filter. Costs ~24 bits of
   * noise budget: at N = 4096 apply one mask per ciphertext.
   */
  multiplyPlain(ct: CiphertextBytes, mask: Uint8Array): CiphertextBytes {
    const primes = this.#live();
    const f = this.#parse(ct);
    if (!(mask instanceof Uint8Array) || mask.length !== f.length) throw new InvalidLengthError("mask", `${f.length}`, mask?.length ?? 0);
    for (let i = 0; i < mask.length; i++) if (mask[i] !== 0 && mask[i] !== 1) throw new InvalidArgumentError(`mask byte ${i} is not 0 or 1`);
    const n = this.params.slotCount;
    const k = primes.length;
    const entries: Uint8Array[] = [];
    const slots = new Uint32Array(n);
    for (let b = 0; b < f.blocks; b++) {
      slots.fill(0);
      const part = mask.subarray(b * n, Math.min(f.length, (b + 1) * n));
      slots.set(part);
      const allZero = part.every((v) => v === 0);
      for (let j = 0; j < k; j++) {
        const scope = new Scope();
        try {
          const p = primes[j] as PrimeContext;
          const x = this.#load(scope, f, b * k + j);
          if (allZero || x.isTransparent) {
            entries.push(this.#save(this.#zeroLike(scope, p, x)));
            continue;
          }
          const pt = scope.own(this.#seal.PlainText());
          p.encoder.encode(slots, pt);
          const out = scope.own(this.#seal.CipherText());
          p.evaluator.multiplyPlain(x, pt, out);
          entries.push(this.#save(out));
        } finally {
          scope.dispose();
        }
      }
    }
    return this.#frame(f.keyId, entries, { length: f.length, blocks: f.blocks, rows: f.rows });
  }

  /**
   * Rotate-and-sum: adds the blocks together, then rotates the rows by
   * 1, 2, 4, …, N/4 and swaps the two rows, adding at each step, so that
   * every slot holds the total of the whole column. Returns a column of
   * length 1 (slot 0 holds the total).
   */
  sumSlots(ct: CiphertextBytes, galoisKeys: HeGaloisKeys | GaloisKeyBytes): CiphertextBytes {
    const primes = this.#live();
    const f = this.#parse(ct);
    const rows = f.rows * f.length;
    this.#checkRows(rows);
    return this.#withKey(galoisKeys, (b) => this.loadGaloisKeys(b), "Galois keys", (gk) => {
      if (!sameBytes(gk.keyId, f.keyId)) throw new KeyMismatchError("the Galois keys are not of the ciphertext's key set");
      const k = primes.length;
      const entries: Uint8Array[] = [];
      for (let j = 0; j < k; j++) {
        const scope = new Scope();
        try {
          const p = primes[j] as PrimeContext;
          const keys = sealObjects(gk)[j] as GaloisKeys;
          let acc = this.#load(scope, f, j);
          for (let b = 1; b < f.blocks; b++) acc = this.#addInto(scope, p, acc, this.#load(scope, f, b * k + j));
          if (!acc.isTransparent) {
            const tmp = scope.own(this.#seal.CipherText());
            for (const s of this.#rotationSteps) {
              p.evaluator.rotateRows(acc, s, keys, tmp);
              p.evaluator.add(acc, tmp, acc);
            }
            p.evaluator.rotateColumns(acc, keys, tmp);
            p.evaluator.add(acc, tmp, acc);
          }
          entries.push(this.#save(acc));
        } finally {
          scope.dispose();
        }
      }
      return this.#frame(f.keyId, entries, { length: 1, blocks: 1, rows });
    });
  }

  /**
   * Per-group masked sums over the blocks of a column: for G weight vectors
   * (`masks[g]`, one Uint32Array of the column's length, small non-negative
   * integers below the smallest plaintext prime), returns a column of G
   * blocks, block g = Σ_b ct_b ⊙ mask_g,b slot-wise — the first half of a
   * per-group weighted total T_g = Σ_s w_g[s]·x[s] (blockTotals is the second).
   *
   * Each SEAL ciphertext is loaded and put in NTT form once per prime and
   * multiplied there by every group's mask (a pointwise product), into
   * per-group accumulators kept in memory (at most MASK_BATCH groups at a
   * time: past that the blocks are loaded once per batch); nothing is
   * serialised but the G results. Blocks where a group's weights are all
   * zero are skipped; an all-zero group gives a transparent zero block. The
   * products are taken at the mask level (see Levels): the result sits there.
   *
   * `rows` is the caller's bound on how many input rows any output slot's
   * total may include (the caller knows the true counts; the input's own
   * header may be looser), checked against maxRows and written into the
   * result's header. Bad masks are refused before any SEAL work
   * (InvalidArgumentError / InvalidLengthError naming the mask and slot).
   */
  maskedBlockSums(ct: CiphertextBytes, masks: readonly Uint32Array[], rows: number): CiphertextBytes {
    const primes = this.#live();
    const f = this.#parse(ct);
    const nonZero = checkMasks(this.params, f.length, masks);
    checkRowBound(this.params, rows);
    const n = this.params.slotCount;
    const k = primes.length;
    const groups = masks.length;
    const entries = new Array<Uint8Array>(groups * k);
    const slots = new Uint32Array(n);
    for (let j = 0; j < k; j++) {
      const p = primes[j] as PrimeContext;
      for (let g0 = 0; g0 < groups; g0 += MASK_BATCH) {
        const g1 = Math.min(groups, g0 + MASK_BATCH);
        const outer = new Scope();
        try {
          const pt = outer.own(this.#seal.PlainText());
          const ptNtt = outer.own(this.#seal.PlainText());
          const product = outer.own(this.#seal.CipherText());
          // acc[g − g0]: group g's running sum, in NTT form, all at `level` RNS primes.
          const acc: (CipherText | undefined)[] = new Array(g1 - g0).fill(undefined);
          let level = this.#maskPrimes;
          for (let b = 0; b < f.blocks; b++) {
            let any = false;
            for (let g = g0; g < g1 && !any; g++) any = (nonZero[g] as Uint8Array)[b] === 1;
            if (!any) continue;
            const scope = new Scope();
            try {
              const x = this.#load(scope, f, b * k + j);
              if (x.isTransparent) continue;
              if (x.coeffModulusSize < level) {
                // A block below the others' level: bring the sums down to it.
                level = x.coeffModulusSize;
                for (const a of acc) if (a) this.#lowerNtt(scope, p, a, level);
              }
              this.#lowerTo(scope, p, x, level);
              p.evaluator.cipherTransformToNtt(x, x);
              const parmsId = scope.own(x.parmsId);
              for (let g = g0; g < g1; g++) {
                if ((nonZero[g] as Uint8Array)[b] !== 1) continue;
                slots.fill(0);
                slots.set((masks[g] as Uint32Array).subarray(b * n, Math.min(f.length, (b + 1) * n)));
                p.encoder.encode(slots, pt);
                p.evaluator.plainTransformToNtt(pt, parmsId, ptNtt);
                const a = acc[g - g0];
                if (a) {
                  p.evaluator.multiplyPlain(x, ptNtt, product);
                  p.evaluator.add(a, product, a);
                } else {
                  const fresh = outer.own(this.#seal.CipherText());
                  p.evaluator.multiplyPlain(x, ptNtt, fresh);
                  acc[g - g0] = fresh;
                }
              }
            } finally {
              scope.dispose();
            }
          }
          for (let g = g0; g < g1; g++) {
            const a = acc[g - g0];
            if (a) p.evaluator.cipherTransformFromNtt(a, a);
            entries[g * k + j] = this.#save(a ?? this.#zeroAt(outer, p, level));
          }
        } finally {
          outer.dispose();
        }
      }
    }
    return this.#frame(f.keyId, entries, { length: groups * n, blocks: groups, rows });
  }

  /** Switches a ciphertext in NTT form down to `primes` RNS primes (SEAL switches BFV ciphertexts in coefficient form only). */
  #lowerNtt(scope: Scope, p: PrimeContext, ct: CipherText, primes: number): void {
    if (ct.coeffModulusSize <= primes) return;
    p.evaluator.cipherTransformFromNtt(ct, ct);
    this.#lowerTo(scope, p, ct, primes);
    p.evaluator.cipherTransformToNtt(ct, ct);
  }

  /**
   * The total of each block, one per slot: for a column of G whole blocks,
   * returns a column of `placement.length` slots (default G) whose slot
   * `placement.first + g` (default g) holds the sum of all N slots of block g,
   * and every other slot 0. With maskedBlockSums, slot g holds T_g.
   *
   * Per block and prime: switch to the rotation level (see Levels),
   * rotate-and-sum (as sumSlots: every slot then holds the block's total),
   * multiply by the unit vector e_g, add into the result. The unit vector
   * zeroes every other slot, so the key holder sees the G totals and nothing
   * else (no partial sums). It is a second plaintext multiplication (~22
   * bits): at N = 8192 the budget allows it after maskedBlockSums with ~20
   * bits to spare. At N = 4096 it does not (measured: 45 bits fresh, 21 after
   * the mask, 15 after rotate-and-sum, 0 after the placement), and no other
   * correct placement exists for given blocks: rotations only permute slots
   * the same way in every block, so any sum of rotated blocks gives every
   * slot the same combination of all the blocks' slots, and a slot that
   * holds block g's total and nothing of the others' needs a multiplication
   * by a plaintext that is 1 in slot g and 0 in the other groups' slots.
   * Batching gives such plaintexts coefficients spread over the whole prime
   * (a short one would take a lattice reduction in dimension N to find), so
   * it costs what a mask costs. (A one-multiplication scheme must fold the
   * placement into the first masks — weight slot i of the data for group
   * (i − d) mod W, for each shift d < W, W ≥ G, then rotate by d and fold —
   * which changes what maskedBlockSums returns.) So at N = 4096 use this on
   * fresh blocks only: after maskedBlockSums, decryptSums refuses the result
   * (NoiseBudgetExhaustedError).
   *
   * `rows` is the caller's bound on the rows any total includes (at most
   * N · the input's bound; the caller may know better), checked against
   * maxRows and written into the header. `placement` lets parts computed on
   * several threads — the blocks of groups [first, first + G_part) — be
   * added into one column with addAll.
   */
  blockTotals(ct: CiphertextBytes, galoisKeys: HeGaloisKeys | GaloisKeyBytes, rows: number, placement: { readonly first?: number; readonly length?: number } = {}): CiphertextBytes {
    const primes = this.#live();
    const f = this.#parse(ct);
    const n = this.params.slotCount;
    if (f.length !== f.blocks * n) throw new InvalidArgumentError(`the column must fill whole blocks of ${n} slots`);
    const first = placement.first ?? 0;
    const length = placement.length ?? f.blocks;
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(length) || first < 0 || length > n || first + f.blocks > length) {
      throw new InvalidArgumentError(`placement must satisfy 0 ≤ first, first + ${f.blocks} blocks ≤ length ≤ ${n}`);
    }
    checkRowBound(this.params, rows);
    return this.#withKey(galoisKeys, (b) => this.loadGaloisKeys(b), "Galois keys", (gk) => {
      if (!sameBytes(gk.keyId, f.keyId)) throw new KeyMismatchError("the Galois keys are not of the ciphertext's key set");
      const k = primes.length;
      const entries: Uint8Array[] = [];
      const unit = new Uint32Array(n);
      for (let j = 0; j < k; j++) {
        const p = primes[j] as PrimeContext;
        const keys = sealObjects(gk)[j] as GaloisKeys;
        const outer = new Scope();
        try {
          const pt = outer.own(this.#seal.PlainText());
          let result: CipherText | undefined;
          for (let g = 0; g < f.blocks; g++) {
            const scope = new Scope();
            try {
              const acc = this.#load(scope, f, g * k + j);
              if (acc.isTransparent) continue;
              this.#lowerTo(scope, p, acc, this.#rotatePrimes);
              const tmp = scope.own(this.#seal.CipherText());
              for (const s of this.#rotationSteps) {
                p.evaluator.rotateRows(acc, s, keys, tmp);
                p.evaluator.add(acc, tmp, acc);
              }
              p.evaluator.rotateColumns(acc, keys, tmp);
              p.evaluator.add(acc, tmp, acc);
              unit[first + g] = 1;
              p.encoder.encode(unit, pt);
              unit[first + g] = 0;
              if (result) {
                p.evaluator.multiplyPlain(acc, pt, tmp);
                result = this.#addInto(scope, p, result, tmp);
              } else {
                result = outer.own(this.#seal.CipherText());
                p.evaluator.multiplyPlain(acc, pt, result);
              }
            } finally {
              scope.dispose();
            }
          }
          entries.push(this.#save(result ?? this.#zeroAt(outer, p, this.#rotatePrimes)));
        } finally {
          outer.dispose();
        }
      }
      return this.#frame(f.keyId, entries, { length, blocks: 1, rows });
    });
  }

  /**
   * Re-randomises a ciphertext before it goes to the key holder: adds a fresh
   * encryption of zero under the public key, then switches to the last
   * modulus (the smallest ciphertext, and the least room left for anything
   * but decryption).
   *
   * What it hides: the ciphertext's history. Its random components no longer
   * relate to those of the inputs (whoever saw the inputs cannot link them to
   * the output, nor tell which were added or masked by comparing bytes), and
   * the modulus switch rescales the accumulated noise down to about the
   * rounding noise of the switch, which is what any ciphertext at the last
   * level carries. This is heuristic circuit privacy, not statistical: no
   * noise flooding is added (a statistically hiding flood needs ~40 bits of
   * budget these parameters do not leave at the last level), so a key holder
   * who measures the residual noise exactly might still learn something about
   * how much computation was done.
   *
   * What it does not hide: the plaintext — the key holder decrypts exactly
   * the aggregated values, which is the point; nor that the values are
   * aggregates (the header says how many rows a slot may hold, the length
   * says how many slots), nor the parameters and key set.
   */
  reRandomize(ct: CiphertextBytes, publicKey: HePublicKey | PublicKeyBytes): CiphertextBytes {
    const primes = this.#live();
    const f = this.#parse(ct);
    return this.#withKey(publicKey, (b) => this.loadPublicKey(b), "public key", (pk) => {
      if (!sameBytes(pk.keyId, f.keyId)) throw new KeyMismatchError("the public key is not of the ciphertext's key set");
      const k = primes.length;
      const entries: Uint8Array[] = [];
      for (let i = 0; i < f.entries.length; i++) {
        const scope = new Scope();
        try {
          const j = i % k;
          const p = primes[j] as PrimeContext;
          const x = this.#load(scope, f, i);
          const zero = scope.own(this.#seal.CipherText());
          (sealObjects(pk)[j] as Encryptor).encryptZero(zero);
          const sum = this.#addInto(scope, p, x, zero);
          const last = scope.own(this.#seal.CipherText());
          p.evaluator.cipherModSwitchTo(sum, p.lastParmsId, last);
          entries.push(this.#save(last));
        } finally {
          scope.dispose();
        }
      }
      return this.#frame(f.keyId, entries, { length: f.length, blocks: f.blocks, rows: f.rows });
    });
  }

  /**
   * Decrypts to the exact signed total of each slot, in units of 10^-scale
   * (see fixedPointToString). Refuses a ciphertext whose noise budget is
   * spent (its decryption would be wrong) with NoiseBudgetExhaustedError.
   */
  decryptSums(ct: CiphertextBytes, secretKey: HeSecretKey | SecretKeyBytes): bigint[] {
    const primes = this.#live();
    const f = this.#parse(ct);
    return this.#withKey(secretKey, (b) => this.loadSecretKey(b), "secret key", (sk) => {
      if (!sameBytes(sk.keyId, f.keyId)) throw new KeyMismatchError("the secret key is not of the ciphertext's key set");
      const n = this.params.slotCount;
      const k = primes.length;
      const out: bigint[] = [];
      for (let b = 0; b < f.blocks; b++) {
        const residues: Uint32Array[] = [];
        for (let j = 0; j < k; j++) {
          const scope = new Scope();
          try {
            const p = primes[j] as PrimeContext;
            const dec = sealObjects(sk)[j] as Decryptor;
            const x = this.#load(scope, f, b * k + j);
            if (x.isTransparent) {
              residues.push(new Uint32Array(n));
              continue;
            }
            if (dec.invariantNoiseBudget(x) <= 0) throw new NoiseBudgetExhaustedError(`block ${b}: noise budget exhausted, the result would not be exact`);
            const pt = scope.own(this.#seal.PlainText());
            dec.decrypt(x, pt);
            residues.push(p.encoder.decode(pt, false) as Uint32Array);
          } finally {
            scope.dispose();
          }
        }
        const count = Math.min(n, f.length - b * n);
        for (const v of this.#crt.combine(residues, count)) out.push(v);
      }
      return out;
    });
  }

  /**
   * Decrypts each block and sums its slots modulo every CRT prime: entry
   * j · blocks + b is Σ_s slot_s mod p_j over block b (prime-major, what
   * {@link blockSumsFromResidues} takes). The decryptions are checked as in
   * decryptSums; no slot is combined, so this costs a fraction of
   * decryptSums followed by a sum per block.
   */
  decryptBlockResidueSums(ct: CiphertextBytes, secretKey: HeSecretKey | SecretKeyBytes): Uint32Array {
    const primes = this.#live();
    const f = this.#parse(ct);
    return this.#withKey(secretKey, (b) => this.loadSecretKey(b), "secret key", (sk) => {
      if (!sameBytes(sk.keyId, f.keyId)) throw new KeyMismatchError("the secret key is not of the ciphertext's key set");
      const n = this.params.slotCount;
      const k = primes.length;
      const out = new Uint32Array(k * f.blocks);
      for (let b = 0; b < f.blocks; b++) {
        const count = Math.min(n, f.length - b * n);
        for (let j = 0; j < k; j++) {
          const scope = new Scope();
          try {
            const p = primes[j] as PrimeContext;
            const dec = sealObjects(sk)[j] as Decryptor;
            const x = this.#load(scope, f, b * k + j);
            if (x.isTransparent) continue;
            if (dec.invariantNoiseBudget(x) <= 0) throw new NoiseBudgetExhaustedError(`block ${b}: noise budget exhausted, the result would not be exact`);
            const pt = scope.own(this.#seal.PlainText());
            dec.decrypt(x, pt);
            const slots = p.encoder.decode(pt, false) as Uint32Array;
            let sum = 0; // count · p < 2^13 · 2^22: exact
            for (let i = 0; i < count; i++) sum += slots[i] as number;
            out[j * f.blocks + b] = sum % p.prime;
          } finally {
            scope.dispose();
          }
        }
      }
      return out;
    });
  }

  /** Per block, the signed total in (−M/2, M/2) whose residues {@link decryptBlockResidueSums} gave (no SEAL work). */
  blockSumsFromResidues(residues: Uint32Array, blocks: number): bigint[] {
    this.#open();
    const k = this.params.plainModuli.length;
    if (residues.length !== k * blocks) throw new InvalidLengthError("block residues", `${k * blocks}`, residues.length);
    return this.#crt.combine(this.params.plainModuli.map((_, j) => residues.subarray(j * blocks, (j + 1) * blocks)), blocks);
  }

  #checkRows(rows: number): void {
    checkMaxRows(this.params, rows);
  }
}

