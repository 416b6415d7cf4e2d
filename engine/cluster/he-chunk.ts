/**
 * The HE chunks a coordinator hands its cluster workers: encrypt a range of
 * whole blocks of a 64-bit integer column (CryptoPool.heEncryptInt64Parts),
 * or the masked block sums of a range of whole blocks of an encrypted column
 * (CryptoPool.heMaskedBlockSums) — join-aggregate's HE work, the provider's
 * and the exchange's. Sealed like every chunk (seal.ts) and decoded strictly
 * on the worker: a known magic and op, the HE context's options as a small
 * JSON object of known fields, lengths within bounds that add up to the
 * buffer exactly. The worker runs it on its own CryptoPool, so the result
 * decrypts to what the in-process pool's would.
 *
 * Layout (little-endian): "UMH1" | op u8 | level u8 | 0 u16 | options
 * length u32 | key-or-ciphertext length u32 | count u32 (values, or masks)
 * | mask length u32 | blocksPerPart-or-rows f64 | options JSON | key or
 * ciphertext | values (count × i64) or masks (count × mask length × u32).
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
  const dataBytes = t.op === "he-encrypt" ? count * 8 : count * maskLength * 4;
  const out = new Uint8Array(HEADER + options.length + head.length + dataBytes);
  const v = new DataView(out.buffer);
  out.set(HE_MAGIC, 0);
  out[4] = OPS.indexOf(t.op);
  out[5] = t.op === "he-encrypt" ? LEVELS.indexOf(t.level) : 0;
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
  } else {
    for (const m of t.masks) {
      if (m.length !== maskLength) throw malformed("masks of different lengths");
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
  if (op === undefined || level === undefined || b[6] !== 0 || b[7] !== 0) throw malformed("unknown op or level");
  const optionsLength = v.getUint32(8, true);
  const headLength = v.getUint32(12, true);
  const count = v.getUint32(16, true);
  const maskLength = v.getUint32(20, true);
  const number = v.getFloat64(24, true);
  if (optionsLength > MAX_OPTIONS_BYTES || count < 1) throw malformed("a length out of bounds");
  if (op === "he-encrypt" && maskLength !== 0) throw malformed("an encrypt chunk with masks");
  if (op === "he-sums" && (count > MAX_MASKS || maskLength < 1 || level !== "first")) throw malformed("masks out of bounds");
  if (!Number.isSafeInteger(number) || number < 1) throw malformed(op === "he-encrypt" ? "blocksPerPart is not a positive integer" : "rows is not a positive integer");
  const dataBytes = op === "he-encrypt" ? count * 8 : count * maskLength * 4;
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
  for (let g = 0; g < count; g++, p += maskLength * 4) masks.push(new Uint32Array(b.slice(p, p + maskLength * 4).buffer));
  return { op, options, ciphertext: head, masks, rows: number };
}
