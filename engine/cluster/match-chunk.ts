/**
 * The match chunk: one partition of a match (CryptoPool.matchElements) —
 * the indexed side's points whose leading bits are p, and the probe side's
 * with the same leading bits. The points are double-blinded, so pseudorandom:
 * which partition a point falls in says nothing about its key, and equal
 * points always fall in the same one, so matching partition by partition is
 * the whole match and no worker sees more than its partition. The worker
 * returns, per probe point, the position of the equal indexed point in the
 * partition or −1 (i32 LE); the coordinator maps positions back.
 *
 * Layout (little-endian): "UMM1" | indexed count u32 | probe count u32 |
 * indexed (count × 32) | probe (count × 32).
 */
import { ClusterError, ClusterErrorCode } from "./errors.js";

export interface MatchChunk {
  readonly op: "match";
  readonly indexed: Uint8Array;
  readonly probe: Uint8Array;
}

/** The most points (both sides) one match chunk carries. */
export const MAX_MATCH_POINTS = 1 << 20;
export const MATCH_MAGIC = [0x55, 0x4d, 0x4d, 0x31]; // "UMM1"
const ELEMENT = 32;
const HEADER = 12;

export function encodeMatchChunk(t: MatchChunk): Uint8Array {
  const out = new Uint8Array(HEADER + t.indexed.length + t.probe.length);
  const v = new DataView(out.buffer);
  out.set(MATCH_MAGIC, 0);
  v.setUint32(4, t.indexed.length / ELEMENT, true);
  v.setUint32(8, t.probe.length / ELEMENT, true);
  out.set(t.indexed, HEADER);
  out.set(t.probe, HEADER + t.indexed.length);
  return out;
}

/** Decodes a match chunk strictly; anything out of shape is ClusterError Malformed. */
export function decodeMatchChunk(b: Uint8Array): MatchChunk {
  const malformed = (what: string): ClusterError => new ClusterError(ClusterErrorCode.Malformed, `a cluster match chunk is malformed: ${what}`);
  if (b.length < HEADER || MATCH_MAGIC.some((m, i) => b[i] !== m)) throw malformed("not a match chunk of this version");
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const indexed = v.getUint32(4, true);
  const probe = v.getUint32(8, true);
  if (indexed < 1 || probe < 1 || indexed + probe > MAX_MATCH_POINTS) throw malformed(`${indexed} + ${probe} points (1 or more a side, at most ${MAX_MATCH_POINTS} in all)`);
  if (b.length !== HEADER + (indexed + probe) * ELEMENT) throw malformed(`${b.length} bytes where its header adds up to ${HEADER + (indexed + probe) * ELEMENT}`);
  return { op: "match", indexed: b.slice(HEADER, HEADER + indexed * ELEMENT), probe: b.slice(HEADER + indexed * ELEMENT) };
}
