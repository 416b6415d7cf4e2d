/**
 * The byte formats at the engine's boundary: a small header around SEAL's own
 * (zstd-compressed) serialisations.
 *
 * ```
 * offset size
 *  0     4   magic "UHE1"
 *  4     1   kind: 1 ciphertext, 2 public key, 3 secret key, 4 Galois keys
 *  5     1   k, the number of CRT primes (one SEAL object per prime)
 *  6     2   0
 *  8    16   parameter fingerprint (see params.ts)
 * 24    16   key-set id (random, shared by the three keys of one generateKeys())
 * -- ciphertexts only --
 * 40     4   length: values in the column (u32 LE)
 * 44     4   blocks: ceil(length / slots) (u32 LE)
 * 48     8   rows: the most input rows one slot's total may include (u64 LE)
 * -- then, per block (ciphertexts) and per prime --
 *        4   n (u32 LE), then n bytes of SEAL serialisation
 * ```
 *
 * Parsing checks the whole frame (lengths, counts, per-object size bounds
 * derived from the parameters) before any byte reaches SEAL, and SEAL's own
 * `load` then validates each object against its context.
 */
import { InvalidCiphertextError, InvalidKeyError, ParameterMismatchError } from "./errors.js";

export const FrameKind = { Ciphertext: 1, PublicKey: 2, SecretKey: 3, GaloisKeys: 4 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** The first four bytes of every BFV frame: "UHE1" (CKKS frames are "UHC1", ckks-format.ts). */
export const BFV_FRAME_MAGIC: readonly number[] = [0x55, 0x48, 0x45, 0x31];
const MAGIC = BFV_FRAME_MAGIC;
const KEY_HEADER = 40;
const CT_HEADER = 56;

const KIND_NAME: Record<FrameKind, string> = { 1: "ciphertext", 2: "public key", 3: "secret key", 4: "Galois keys" };

export interface Frame {
  readonly kind: FrameKind;
  readonly keyId: Uint8Array;
  /** Ciphertexts: values in the column; keys: 0. */
  readonly length: number;
  readonly blocks: number;
  readonly rows: number;
  /** SEAL serialisations: block-major for ciphertexts (block b, prime j at b·k + j). */
  readonly entries: readonly Uint8Array[];
}

export interface FrameLimits {
  /** k, the number of CRT primes. */
  readonly primes: number;
  readonly fingerprint: Uint8Array;
  /** The most bytes one SEAL object of this kind may take. */
  readonly maxEntry: number;
  /** Ciphertexts: the most blocks a column may have. */
  readonly maxBlocks: number;
  readonly slotCount: number;
}

export function encodeFrame(kind: FrameKind, fingerprint: Uint8Array, keyId: Uint8Array, entries: readonly Uint8Array[], column?: { length: number; blocks: number; rows: number }): Uint8Array {
  const header = kind === FrameKind.Ciphertext ? CT_HEADER : KEY_HEADER;
  const size = entries.reduce((s, e) => s + 4 + e.length, header);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = kind;
  const k = column ? entries.length / column.blocks : entries.length;
  out[5] = k;
  out.set(fingerprint, 8);
  out.set(keyId, 24);
  if (column) {
    dv.setUint32(40, column.length, true);
    dv.setUint32(44, column.blocks, true);
    dv.setBigUint64(48, BigInt(column.rows), true);
  }
  let off = header;
  for (const e of entries) {
    dv.setUint32(off, e.length, true);
    out.set(e, off + 4);
    off += 4 + e.length;
  }
  return out;
}

/** Parses and checks a frame; the entries are views into `bytes`. */
export function decodeFrame(bytes: Uint8Array, kind: FrameKind, limits: FrameLimits): Frame {
  const what = KIND_NAME[kind];
  const fail = (m: string): never => {
    throw kind === FrameKind.Ciphertext ? new InvalidCiphertextError(`${what}: ${m}`) : new InvalidKeyError(`${what}: ${m}`);
  };
  if (!(bytes instanceof Uint8Array)) return fail("expected a Uint8Array");
  const header = kind === FrameKind.Ciphertext ? CT_HEADER : KEY_HEADER;
  if (bytes.length < header) return fail(`${bytes.length} bytes is shorter than the ${header}-byte header`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) return fail("bad magic");
  if (bytes[4] !== kind) return fail(`kind ${bytes[4]} is not a ${what}`);
  if (bytes[6] !== 0 || bytes[7] !== 0) return fail("reserved bytes are not zero");
  const fp = bytes.subarray(8, 24);
  for (let i = 0; i < 16; i++) {
    if (fp[i] !== limits.fingerprint[i]) throw new ParameterMismatchError(`${what} was made for other encryption parameters`);
  }
  const k = bytes[5] as number;
  if (k !== limits.primes) return fail(`${k} CRT components, expected ${limits.primes}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let length = 0;
  let blocks = 1;
  let rows = 0;
  if (kind === FrameKind.Ciphertext) {
    length = dv.getUint32(40, true);
    blocks = dv.getUint32(44, true);
    const rows64 = dv.getBigUint64(48, true);
    if (length < 1) return fail("empty column");
    if (blocks !== Math.ceil(length / limits.slotCount)) return fail("block count does not match the length");
    if (blocks > limits.maxBlocks) return fail(`${blocks} blocks, at most ${limits.maxBlocks}`);
    if (rows64 < 1n || rows64 > BigInt(Number.MAX_SAFE_INTEGER)) return fail("row bound out of range");
    rows = Number(rows64);
  }
  const count = blocks * k;
  const maxSize = header + count * (4 + limits.maxEntry);
  if (bytes.length > maxSize) return fail(`${bytes.length} bytes, at most ${maxSize}`);
  const entries: Uint8Array[] = [];
  let off = header;
  for (let i = 0; i < count; i++) {
    if (off + 4 > bytes.length) return fail("truncated");
    const n = dv.getUint32(off, true);
    if (n < 16 || n > limits.maxEntry) return fail(`component ${i} is ${n} bytes, at most ${limits.maxEntry}`);
    if (off + 4 + n > bytes.length) return fail("truncated");
    entries.push(bytes.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  if (off !== bytes.length) return fail("trailing bytes");
  return { kind, keyId: bytes.slice(24, 40), length, blocks, rows, entries };
}
