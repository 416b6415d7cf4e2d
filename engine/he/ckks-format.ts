/**
 * The byte format of CKKS keys and ciphertexts (ckks.ts): a small header
 * around SEAL's own (zstd-compressed) serialisations, as format.ts is for
 * BFV.
 *
 * ```
 * offset size
 *  0     4   magic "UHC1" (CKKS; BFV frames are "UHE1")
 *  4     1   kind: 1 ciphertext, 2 public key, 3 secret key, 4 Galois keys
 *  5     1   level (ciphertexts): 0 the data level, 1 the last level
 *            (re-randomised: decryptSums takes it, nothing else); keys: 0
 *  6     2   0
 *  8    16   parameter fingerprint (N, moduli, scale, bounds)
 * 24    16   key-set id (random, shared by the keys of one generateKeys())
 * -- ciphertexts only --
 * 40     4   length: values in the column (u32 LE)
 * 44     4   blocks: ceil(length / 4096) (u32 LE)
 * 48     8   rows (u64 LE)
 * 56     8   encryptions (u64 LE)
 * 64     8   keySwitches (u64 LE)
 * 72     8   encodings (u64 LE)
 * -- then one entry per block (ciphertexts) or one (keys) --
 *        4   n (u32 LE), then n bytes of SEAL serialisation (zstd)
 * ```
 *
 * Parsing checks the whole frame against size bounds derived from the
 * parameters before SEAL sees a byte; SEAL's `load` then validates each
 * object against the context, and each loaded ciphertext must be a
 * 2-polynomial, NTT-form ciphertext at the level its header names (the
 * data level, or the last after reRandomize) and at scale Δ.
 */
import { InvalidCiphertextError, InvalidKeyError, ParameterMismatchError } from "./errors.js";

/** N, the ring degree of every CKKS context (see ckks.ts Parameters). */
export const CKKS_POLY_MODULUS_DEGREE = 8192;
/** Values per ciphertext block: N/2 complex slots, of which the real parts are used. */
export const CKKS_SLOTS = CKKS_POLY_MODULUS_DEGREE / 2;

/** The first four bytes of every CKKS frame: "UHC1". */
export const CKKS_FRAME_MAGIC: readonly number[] = [0x55, 0x48, 0x43, 0x31];

export const CkksFrameKind = { Ciphertext: 1, PublicKey: 2, SecretKey: 3, GaloisKeys: 4 } as const;
export type CkksFrameKind = (typeof CkksFrameKind)[keyof typeof CkksFrameKind];
const Kind = CkksFrameKind;
type Kind = CkksFrameKind;
const KIND_NAME: Record<Kind, string> = { 1: "ciphertext", 2: "public key", 3: "secret key", 4: "Galois keys" };
const KEY_HEADER = 40;
const CT_HEADER = 80;

/** A ciphertext's counts: its level and the history the error bound is derived from. */
export interface CkksCounts {
  /** 0: the data level; 1: the last level. */
  readonly level?: 0 | 1;
  readonly length: number;
  readonly blocks: number;
  readonly rows: number;
  readonly encryptions: number;
  readonly keySwitches: number;
  readonly encodings: number;
}
export interface CkksFrame extends CkksCounts {
  readonly keyId: Uint8Array;
  readonly entries: readonly Uint8Array[];
}

export function encodeCkksFrame(kind: CkksFrameKind, fingerprint: Uint8Array, keyId: Uint8Array, entries: readonly Uint8Array[], counts?: CkksCounts): Uint8Array {
  const header = kind === Kind.Ciphertext ? CT_HEADER : KEY_HEADER;
  const out = new Uint8Array(entries.reduce((s, e) => s + 4 + e.length, header));
  const dv = new DataView(out.buffer);
  out.set(CKKS_FRAME_MAGIC, 0);
  out[4] = kind;
  out[5] = counts?.level ?? 0;
  out.set(fingerprint, 8);
  out.set(keyId, 24);
  if (counts) {
    dv.setUint32(40, counts.length, true);
    dv.setUint32(44, counts.blocks, true);
    dv.setBigUint64(48, BigInt(counts.rows), true);
    dv.setBigUint64(56, BigInt(counts.encryptions), true);
    dv.setBigUint64(64, BigInt(counts.keySwitches), true);
    dv.setBigUint64(72, BigInt(counts.encodings), true);
  }
  let off = header;
  for (const e of entries) {
    dv.setUint32(off, e.length, true);
    out.set(e, off + 4);
    off += 4 + e.length;
  }
  return out;
}

/** What a frame may hold under one parameter set (ckks.ts derives them). */
export interface CkksFrameLimits {
  readonly fingerprint: Uint8Array;
  readonly maxEntry: number;
  /** Ciphertexts at the last level: one RNS prime, so a third of maxEntry. */
  readonly maxEntryLast?: number;
  readonly maxBlocks: number;
  readonly maxRows: number;
}

export function decodeCkksFrame(bytes: Uint8Array, kind: CkksFrameKind, limits: CkksFrameLimits): CkksFrame {
  const what = KIND_NAME[kind];
  const fail = (m: string): never => {
    throw kind === Kind.Ciphertext ? new InvalidCiphertextError(`CKKS ${what}: ${m}`) : new InvalidKeyError(`CKKS ${what}: ${m}`);
  };
  if (!(bytes instanceof Uint8Array)) return fail("expected a Uint8Array");
  const header = kind === Kind.Ciphertext ? CT_HEADER : KEY_HEADER;
  if (bytes.length < header) return fail(`${bytes.length} bytes is shorter than the ${header}-byte header`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== CKKS_FRAME_MAGIC[i]) return fail("bad magic (not a CKKS frame)");
  if (bytes[4] !== kind) return fail(`kind ${bytes[4]} is not a ${what}`);
  const level = bytes[5] as number;
  if (bytes[6] !== 0 || bytes[7] !== 0) return fail("reserved bytes are not zero");
  if (level > (kind === Kind.Ciphertext ? 1 : 0)) return fail(`level byte ${level} out of range`);
  for (let i = 0; i < 16; i++) {
    if (bytes[8 + i] !== limits.fingerprint[i]) throw new ParameterMismatchError(`CKKS ${what} was made for other encryption parameters`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let counts: CkksCounts = { length: 0, blocks: 1, rows: 0, encryptions: 0, keySwitches: 0, encodings: 0 };
  if (kind === Kind.Ciphertext) {
    const length = dv.getUint32(40, true);
    const blocks = dv.getUint32(44, true);
    const safe = (off: number): number => {
      const v = dv.getBigUint64(off, true);
      return v > BigInt(Number.MAX_SAFE_INTEGER) ? fail("count out of range") : Number(v);
    };
    const rows = safe(48);
    const encryptions = safe(56);
    const keySwitches = safe(64);
    const encodings = safe(72);
    if (length < 1) return fail("empty column");
    if (blocks !== Math.ceil(length / CKKS_SLOTS)) return fail("block count does not match the length");
    if (blocks > limits.maxBlocks) return fail(`${blocks} blocks, at most ${limits.maxBlocks}`);
    if (rows < 1 || rows > limits.maxRows) return fail("row count out of range");
    if (encryptions < rows) return fail("encryption count below the row count");
    if (encodings < 1 || encodings > encryptions) return fail("encoding count out of range");
    counts = { level: level as 0 | 1, length, blocks, rows, encryptions, keySwitches, encodings };
  }
  const maxEntry = level === 1 ? (limits.maxEntryLast ?? limits.maxEntry) : limits.maxEntry;
  const maxSize = header + counts.blocks * (4 + maxEntry);
  if (bytes.length > maxSize) return fail(`${bytes.length} bytes, at most ${maxSize}`);
  const entries: Uint8Array[] = [];
  let off = header;
  for (let i = 0; i < counts.blocks; i++) {
    if (off + 4 > bytes.length) return fail("truncated");
    const n = dv.getUint32(off, true);
    if (n < 16 || n > maxEntry) return fail(`component ${i} is ${n} bytes, at most ${maxEntry}`);
    if (off + 4 + n > bytes.length) return fail("truncated");
    entries.push(bytes.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  if (off !== bytes.length) return fail("trailing bytes");
  return { ...counts, keyId: bytes.slice(24, 40), entries };
}
