/**
 * The HE chunks a coordinator hands its cluster workers: encrypt a range of
 * whole blocks of a 64-bit integer column (CryptoPool.heEncryptInt64Parts),
 * or the masked block sums of a range of whole blocks of an encrypted column
 * (CryptoPool.heMaskedBlockSums) — join-aggregate's HE work, the provider's
 * and the exchange's. Sealed like every chunk (seal.ts) and decoded strictly
 * on the worker: a known magic and op, the HE context's options as a small
 * JSON object of known fields, lengths within bounds that add up to the
 * buffer exactly, masks of at most 64 MiB once expanded. The worker runs it on its own CryptoPool, so the result
 * decrypts to what the in-process pool's would.
 *
 * Layout (little-endian): "UMH1" | op u8 | level u8 | masks u8 | 0 u8 |
 * options length u32 | key-or-ciphertext length u32 | count u32 (values, or
 * masks) | mask length u32 | blocksPerPart-or-rows f64 | options JSON | key
 * or ciphertext | values (count × i64) or the masks: dense (masks 0: count ×
 * mask length × u32) or, when no slot has a weight in more than one mask —
 * join-aggregate's, where each row is in one group — one per slot (masks 1:
 * mask length × u16 mask index, 0xffff for none, then mask length × u32
 * weight), 6 bytes a slot instead of 4 per mask.
 */
import type { HeContextOptions, PolyModulusDegree } from "../he/params.js";
import { ClusterError, ClusterErrorCode } from "./errors.js";

/** A range of whole blocks of a column to encrypt: parts of `blocksPerPart` blocks come back, packed (engine/he packParts). */
export interface HeEncryptChunk {
  readonly op: "he-encrypt";
  readonly options: HeContextOptions;
  readonly publicKey: Uint8Array;
  readonly values: BigInt64Array;
  readonly level: "first" | "mask";
  readonly blocksPerPart: number;
}

/** The masked block sums of a range of whole blocks (the masks' matching slots): one ciphertext of G blocks comes back. */
export interface HeSumsChunk {
  readonly op: "he-sums";
  readonly options: HeContextOptions;
  readonly ciphertext: Uint8Array;
  readonly masks: readonly Uint32Array[];
  readonly rows: number;
}

export type HeChunk = HeEncryptChunk | HeSumsChunk;

/** The largest HE chunk a worker accepts. */
export const MAX_HE_CHUNK_BYTES = 64 * 1024 * 1024;
const MAX_OPTIONS_BYTES = 1024;
const MAX_MASKS = 4096;
const HEADER = 32;
export const HE_MAGIC = [0x55, 0x4d, 0x48, 0x31]; // "UMH1"
const OPS = ["he-encrypt", "he-sums"] as const;
const LEVELS = ["first", "mask"] as const;
const OPTION_FIELDS: ReadonlySet<string> = new Set(["maxAbsValue", "maxRows", "scale", "maxLength", "polyModulusDegree"]);
const DENSE = 0;
const ONE_PER_SLOT = 1;
const NONE = 0xffff;

/** The masks as one (mask index, weight) per slot, or undefined when a slot has weights in two masks (or there are too many masks to index). */
function onePerSlot(masks: readonly Uint32Array[], length: number): { which: Uint16Array; weight: Uint32Array } | undefined {
  if (masks.length >= NONE) return undefined;
  const which = new Uint16Array(length).fill(NONE);
  const weight = new Uint32Array(length);
  for (let g = 0; g < masks.length; g++) {
    const m = masks[g] as Uint32Array;
    for (let i = 0; i < length; i++) {
      const w = m[i] as number;
      if (w === 0) continue;
      if (which[i] !== NONE) return undefined;
      which[i] = g;
      weight[i] = w;
    }
  }
  return { which, weight };
}

function malformed(what: string): ClusterError {
  return new ClusterError(ClusterErrorCode.Malformed, `a cluster HE chunk is malformed: ${what}`);
}

/** The chunk's size in values (encrypt) or slots (sums), for a worker's counts. */
export function heChunkCount(t: HeChunk): number {
  return t.op === "he-encrypt" ? t.values.length : (t.masks[0]?.length ?? 0);
}

export function encodeHeChunk(t: HeChunk): Uint8Array {
  const options = new TextEncoder().encode(
    JSON.stringify({ ...t.options, maxAbsValue: String(t.options.maxAbsValue) }),
  );
  const head = t.op === "he-encrypt" ? t.publicKey : t.ciphertext;
  const count = t.op === "he-encrypt" ? t.values.length : t.masks.length;
  const maskLength = t.op === "he-sums" ? (t.masks[0]?.length ?? 0) : 0;
  if (t.op === "he-sums" && t.masks.some((m) => m.length !== maskLength)) throw malformed("masks of different lengths");
  const sparse = t.op === "he-sums" ? onePerSlot(t.masks, maskLength) : undefined;
  const dataBytes = t.op === "he-encrypt" ? count * 8 : sparse ? maskLength * 6 : count * maskLength * 4;
  const out = new Uint8Array(HEADER + options.length + head.length + dataBytes);
  const v = new DataView(out.buffer);
  out.set(HE_MAGIC, 0);
  out[4] = OPS.indexOf(t.op);
  out[5] = t.op === "he-encrypt" ? LEVELS.indexOf(t.level) : 0;
  out[6] = sparse ? ONE_PER_SLOT : DENSE;
  v.setUint32(8, options.length, true);
  v.setUint32(12, head.length, true);
  v.setUint32(16, count, true);
  v.setUint32(20, maskLength, true);
  v.setFloat64(24, t.op === "he-encrypt" ? t.blocksPerPart : t.rows, true);
  let p = HEADER;
  out.set(options, p);
  p += options.length;
  out.set(head, p);
  p += head.length;
  if (t.op === "he-encrypt") {
    out.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength), p);
  } else if (sparse) {
    out.set(new Uint8Array(sparse.which.buffer), p);
    out.set(new Uint8Array(sparse.weight.buffer), p + maskLength * 2);
  } else {
    for (const m of t.masks) {
      out.set(new Uint8Array(m.buffer, m.byteOffset, m.byteLength), p);
      p += m.byteLength;
    }
  }
  return out;
}

/** The options object of a chunk, checked field by field (the HE context checks their values again). */
function decodeOptions(bytes: Uint8Array): HeContextOptions {
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw malformed("its HE options are not JSON");
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw malformed("its HE options are not an object");
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!OPTION_FIELDS.has(k)) throw malformed(`an unknown HE option "${k.slice(0, 32)}"`);
  const int = (k: string, required: boolean): number | undefined => {
    const x = r[k];
    if (x === undefined && !required) return undefined;
    if (!Number.isSafeInteger(x) || (x as number) < 0) throw malformed(`HE option ${k} is not a non-negative integer`);
    return x as number;
  };
  if (typeof r["maxAbsValue"] !== "string" || !/^[0-9]{1,40}$/.test(r["maxAbsValue"])) throw malformed("HE option maxAbsValue is not a decimal integer");
  const maxRows = int("maxRows", true) as number;
  const scale = int("scale", false);
  const maxLength = int("maxLength", false);
  const degree = int("polyModulusDegree", false);
  if (degree !== undefined && degree !== 4096 && degree !== 8192) throw malformed("HE option polyModulusDegree is not 4096 or 8192");
  return {
    maxAbsValue: BigInt(r["maxAbsValue"]),
    maxRows,
    ...(scale !== undefined ? { scale } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}),
    ...(degree !== undefined ? { polyModulusDegree: degree as PolyModulusDegree } : {}),
  };
}

/** Decodes an HE chunk strictly; anything out of shape is ClusterError Malformed. */
export function decodeHeChunk(b: Uint8Array): HeChunk {
  if (b.length < HEADER || HE_MAGIC.some((m, i) => b[i] !== m)) throw malformed("not an HE chunk of this version");
  if (b.length > MAX_HE_CHUNK_BYTES) throw malformed(`${b.length} bytes (at most ${MAX_HE_CHUNK_BYTES})`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const op = OPS[b[4] ?? 255];
  const level = LEVELS[b[5] ?? 255];
  const maskForm = b[6];
  if (op === undefined || level === undefined || b[7] !== 0) throw malformed("unknown op or level");
  if (maskForm !== DENSE && !(op === "he-sums" && maskForm === ONE_PER_SLOT)) throw malformed("unknown mask form");
  const optionsLength = v.getUint32(8, true);
  const headLength = v.getUint32(12, true);
  const count = v.getUint32(16, true);
  const maskLength = v.getUint32(20, true);
  const number = v.getFloat64(24, true);
  if (optionsLength > MAX_OPTIONS_BYTES || count < 1) throw malformed("a length out of bounds");
  if (op === "he-encrypt" && maskLength !== 0) throw malformed("an encrypt chunk with masks");
  if (op === "he-sums" && (count > MAX_MASKS || maskLength < 1 || level !== "first")) throw malformed("masks out of bounds");
  if (!Number.isSafeInteger(number) || number < 1) throw malformed(op === "he-encrypt" ? "blocksPerPart is not a positive integer" : "rows is not a positive integer");
  // One weight per slot expands to count dense masks on the worker: bounded like a dense chunk.
  if (op === "he-sums" && count * maskLength * 4 > MAX_HE_CHUNK_BYTES) throw malformed(`${count} masks of ${maskLength} slots (at most ${MAX_HE_CHUNK_BYTES} bytes of masks)`);
  const dataBytes = op === "he-encrypt" ? count * 8 : maskForm === ONE_PER_SLOT ? maskLength * 6 : count * maskLength * 4;
  const expected = HEADER + optionsLength + headLength + dataBytes;
  if (b.length !== expected) throw malformed(`${b.length} bytes where its header adds up to ${expected}`);
  let p = HEADER;
  const options = decodeOptions(b.subarray(p, p + optionsLength));
  p += optionsLength;
  const head = b.slice(p, p + headLength);
  p += headLength;
  if (op === "he-encrypt") {
    const values = new BigInt64Array(b.slice(p, p + dataBytes).buffer);
    return { op, options, publicKey: head, values, level, blocksPerPart: number };
  }
  const masks: Uint32Array[] = [];
  if (maskForm === ONE_PER_SLOT) {
    const which = new Uint16Array(b.slice(p, p + maskLength * 2).buffer);
    const weight = new Uint32Array(b.slice(p + maskLength * 2, p + maskLength * 6).buffer);
    for (let g = 0; g < count; g++) masks.push(new Uint32Array(maskLength));
    for (let i = 0; i < maskLength; i++) {
      const g = which[i] as number;
      if (g === NONE) {
        if (weight[i] !== 0) throw malformed(`slot ${i} has a weight and no mask`);
        continue;
      }
      if (g >= count) throw malformed(`slot ${i} names mask ${g} of ${count}`);
      (masks[g] as Uint32Array)[i] = weight[i] as number;
    }
  } else {
    for (let g = 0; g < count; g++, p += maskLength * 4) masks.push(new Uint32Array(b.slice(p, p + maskLength * 4).buffer));
  }
  return { op, options, ciphertext: head, masks, rows: number };
}
