/**
 * `HeContext`: the owner of the SEAL contexts for one parameter set, and the
 * operations over packed, CRT-split BFV ciphertexts.
 *
 * ## Ownership
 *
 * Every SEAL object has exactly one owner, which deletes it:
 * - the context owns, per CRT prime, its SEAL `Context`, `BatchEncoder`,
 *   `Evaluator` and the parms ids it compares against; `dispose()` deletes
 *   them and every key handle it loaded;
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
 */
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
import { CrtBasis, selectParameters, type HeContextOptions, type HeParameters } from "./params.js";
import { hex, KeyHandle, sameBytes, Scope, sealLoad, type Deletable } from "./owned.js";
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


// The SEAL objects inside a handle are private to it; only this module reads them, through these.
let encryptorsOf: (h: HePublicKey) => readonly Encryptor[];
let decryptorsOf: (h: HeSecretKey) => readonly Decryptor[];
let galoisOf: (h: HeGaloisKeys) => readonly GaloisKeys[];

/** A loaded public key: one encryptor per CRT prime. */
export class HePublicKey extends KeyHandle<HeContext> {
  readonly #encryptors: readonly Encryptor[];
  static {
    encryptorsOf = (h) => h.#encryptors;
  }
  /** Use HeContext.loadPublicKey. */
  constructor(owner: HeContext, keyId: Uint8Array, encryptors: readonly Encryptor[]) {
    super(owner, keyId, (h) => untrack(owner, h));
    this.#encryptors = encryptors;
  }
  protected release(): void {
    for (const e of this.#encryptors) e.delete();
  }
}

/** A loaded secret key: one decryptor per CRT prime. */
export class HeSecretKey extends KeyHandle<HeContext> {
  readonly #decryptors: readonly Decryptor[];
  static {
    decryptorsOf = (h) => h.#decryptors;
  }
  /** Use HeContext.loadSecretKey. */
  constructor(owner: HeContext, keyId: Uint8Array, decryptors: readonly Decryptor[]) {
    super(owner, keyId, (h) => untrack(owner, h));
    this.#decryptors = decryptors;
  }
  protected release(): void {
    for (const d of this.#decryptors) d.delete();
  }
}

/** Loaded Galois keys (rotations by 1, 2, 4, …, N/4 and the column swap), one set per CRT prime. */
export class HeGaloisKeys extends KeyHandle<HeContext> {
  readonly #keys: readonly GaloisKeys[];
  static {
    galoisOf = (h) => h.#keys;
  }
  /** Use HeContext.loadGaloisKeys. */
  constructor(owner: HeContext, keyId: Uint8Array, keys: readonly GaloisKeys[]) {
    super(owner, keyId, (h) => untrack(owner, h));
    this.#keys = keys;
  }
  protected release(): void {
    for (const g of this.#keys) g.delete();
  }
}

const handles = new WeakMap<HeContext, Set<KeyHandle<HeContext>>>();
function untrack(owner: HeContext, h: KeyHandle<HeContext>): void {
  handles.get(owner)?.delete(h);
}

export class HeContext {
  readonly params: HeParameters;
  readonly #seal: SEALLibrary;
  readonly #primes: PrimeContext[] = [];
  readonly #fingerprint: Uint8Array;
  readonly #crt: CrtBasis;
  readonly #residues: ResidueEncoder;
  readonly #rotationSteps: number[];
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
    handles.set(this, new Set());
    try {
      for (const p of params.plainModuli) this.#primes.push(this.#buildPrime(p));
    } catch (e) {
      this.dispose();
      throw e;
    }
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
    const hs = handles.get(this);
    if (hs) for (const h of [...hs]) h.dispose();
    for (const p of this.#primes) {
      p.lastParmsId.delete();
      p.evaluator.delete();
      p.encoder.delete();
      p.context.delete();
    }
    this.#primes.length = 0;
  }

  #live(): PrimeContext[] {
    if (this.#disposed) throw new DisposedError("HE context");
    return this.#primes;
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
    return this.#track(new HePublicKey(this, frame.keyId, encryptors));
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
    return this.#track(new HeSecretKey(this, frame.keyId, decryptors));
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
    return this.#track(new HeGaloisKeys(this, frame.keyId, keys));
  }

  #track<T extends KeyHandle<HeContext>>(h: T): T {
    handles.get(this)?.add(h);
    return h;
  }

  /** Runs `fn` with a usable handle: the given one, or one loaded from bytes for this call only. */
  #withKey<H extends KeyHandle<HeContext>, R>(key: H | Uint8Array, load: (b: Uint8Array) => H, what: string, fn: (h: H) => R): R {
    if (key instanceof Uint8Array) {
      const h = load(key);
      try {
        return fn(h);
      } finally {
        h.dispose();
      }
    }
    if (!(key instanceof KeyHandle)) throw new InvalidArgumentError(`${what} must be bytes or a handle loaded by this context`);
    key.checkUsable(this, what);
    return fn(key);
  }

  // ---------------------------------------------------------------- ciphertext I/O

  /** Reads a ciphertext's header (no SEAL object is created). */
  inspect(ct: CiphertextBytes): CiphertextInfo {
    this.#live();
    const f = decodeFrame(ct, FrameKind.Ciphertext, this.#limits.ct);
    return { length: f.length, blocks: f.blocks, rows: f.rows, keyId: hex(f.keyId) };
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
    return { length: f.length, blocks: f.blocks, rows: f.rows, keyId: hex(f.keyId) };
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
            (encryptorsOf(pk)[j] as Encryptor).encrypt(pt, ct);
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
   */
  encryptResidues(residues: readonly Uint32Array[], publicKey: HePublicKey | PublicKeyBytes): CiphertextBytes {
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
            (encryptorsOf(pk)[j] as Encryptor).encrypt(pt, ct);
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
    this.#live();
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
          const keys = galoisOf(gk)[j] as GaloisKeys;
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
          (encryptorsOf(pk)[j] as Encryptor).encryptZero(zero);
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
            const dec = decryptorsOf(sk)[j] as Decryptor;
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

  #checkRows(rows: number): void {
    if (rows > this.params.maxRows) {
      throw new BoundExceededError(`the result could include ${rows} rows, more than the context's maxRows ${this.params.maxRows}: its total could wrap`);
    }
  }
}

