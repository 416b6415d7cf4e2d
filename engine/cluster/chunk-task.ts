/**
 * The work a coordinator hands its cluster workers, one chunk at a time:
 * hash-and-blind a chunk of keys (`scalar · H(key)`), or raise a chunk of
 * received points (`scalar · P`). A chunk is a flat binary buffer (sealed by
 * seal.ts before it enters Redis) and is decoded strictly on the worker: a
 * known magic, op, group and backend, a bounded element count, lengths that
 * add up to the buffer exactly and offsets that run from 0 to the data's end.
 * The worker runs it on its own CryptoPool — the very code the in-process
 * pool runs — so a chunk's result is the same bytes wherever it ran.
 *
 * HE chunks (join-aggregate's encryption and masked sums) and match chunks
 * (a partition of a match) have their own layouts and magics: he-chunk.ts,
 * match-chunk.ts.
 *
 * Layout (little-endian): "UMC1" | op u8 | group u8 | backend u8 | has scalar
 * u8 | count u32 | dst length u32 | data length u32 | scalar (32, if any) |
 * dst | offsets ((count + 1) × u32, hash only) | data.
 */
import { BackendId, GroupId } from "../group/types.js";
import type { PackedBytes } from "../packed.js";
import type { CryptoPool } from "../pool/pool.js";
import { ClusterError, ClusterErrorCode } from "./errors.js";
import { decodeHeChunk, encodeHeChunk, heChunkCount, HE_MAGIC, type HeChunk } from "./he-chunk.js";
import { decodeMatchChunk, encodeMatchChunk, MATCH_MAGIC, type MatchChunk } from "./match-chunk.js";
import { packParts } from "../he/task.js";

/** The largest chunk a worker accepts, in elements. */
export const MAX_CHUNK_ELEMENTS = 65_536;
/** The largest key data a hash chunk may carry. */
export const MAX_CHUNK_DATA_BYTES = 64 * 1024 * 1024;
const MAX_DST_BYTES = 255;
const SCALAR = 32;
const ELEMENT = 32;
const HEADER = 20;
const MAGIC = [0x55, 0x4d, 0x43, 0x31]; // "UMC1"

const GROUPS = [GroupId.Ristretto255, GroupId.X25519] as const;
const BACKENDS = [BackendId.Noble, BackendId.Libsodium, BackendId.SodiumNative] as const;

export interface HashChunk {
  readonly op: "hash";
  readonly group: GroupId;
  readonly backend: BackendId;
  readonly dst: Uint8Array;
  readonly scalar?: Uint8Array;
  readonly messages: PackedBytes;
}

export interface MultiplyChunk {
  readonly op: "multiply";
  readonly group: GroupId;
  readonly backend: BackendId;
  readonly scalar: Uint8Array;
  readonly points: Uint8Array;
}

export type GroupChunk = HashChunk | MultiplyChunk;
export type ChunkTask = GroupChunk | HeChunk | MatchChunk;

const OPS = ["hash", "multiply"] as const;

function malformed(what: string): ClusterError {
  return new ClusterError(ClusterErrorCode.Malformed, `a cluster chunk is malformed: ${what}`);
}

/** The number of elements in a chunk (a group chunk's result is this many 32-byte elements; an HE chunk's, values or slots). */
export function chunkCount(t: ChunkTask): number {
  if (t.op === "he-encrypt" || t.op === "he-sums") return heChunkCount(t);
  if (t.op === "match") return (t.indexed.length + t.probe.length) / ELEMENT;
  return t.op === "hash" ? t.messages.offsets.length - 1 : t.points.length / ELEMENT;
}

export function encodeChunk(t: ChunkTask): Uint8Array {
  if (t.op === "he-encrypt" || t.op === "he-sums") return encodeHeChunk(t);
  if (t.op === "match") return encodeMatchChunk(t);
  const count = chunkCount(t);
  const scalar = t.scalar;
  const dst = t.op === "hash" ? t.dst : new Uint8Array(0);
  const data = t.op === "hash" ? t.messages.data.subarray(t.messages.offsets[0] ?? 0, t.messages.offsets[count] ?? 0) : t.points;
  const offsets = t.op === "hash" ? (count + 1) * 4 : 0;
  const out = new Uint8Array(HEADER + (scalar ? SCALAR : 0) + dst.length + offsets + data.length);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = OPS.indexOf(t.op);
  out[5] = GROUPS.indexOf(t.group as (typeof GROUPS)[number]);
  out[6] = BACKENDS.indexOf(t.backend as (typeof BACKENDS)[number]);
  out[7] = scalar ? 1 : 0;
  v.setUint32(8, count, true);
  v.setUint32(12, dst.length, true);
  v.setUint32(16, data.length, true);
  let p = HEADER;
  if (scalar) {
    out.set(scalar, p);
    p += SCALAR;
  }
  out.set(dst, p);
  p += dst.length;
  if (t.op === "hash") {
    const base = t.messages.offsets[0] ?? 0;
    for (let i = 0; i <= count; i++, p += 4) v.setUint32(p, (t.messages.offsets[i] ?? base) - base, true);
  }
  out.set(data, p);
  return out;
}

/** Decodes a chunk strictly; anything out of shape is ClusterError Malformed. */
export function decodeChunk(b: Uint8Array): ChunkTask {
  if (b.length >= 4 && HE_MAGIC.every((m, i) => b[i] === m)) return decodeHeChunk(b);
  if (b.length >= 4 && MATCH_MAGIC.every((m, i) => b[i] === m)) return decodeMatchChunk(b);
  if (b.length < HEADER || MAGIC.some((m, i) => b[i] !== m)) throw malformed("not a chunk of this version");
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const op = OPS[b[4] ?? 255];
  const group = GROUPS[b[5] ?? 255];
  const backend = BACKENDS[b[6] ?? 255];
  if (op === undefined || group === undefined || backend === undefined) throw malformed("unknown op, group or backend");
  const hasScalar = b[7];
  if (hasScalar !== 0 && hasScalar !== 1) throw malformed("bad scalar flag");
  const count = v.getUint32(8, true);
  const dstLength = v.getUint32(12, true);
  const dataLength = v.getUint32(16, true);
  if (count > MAX_CHUNK_ELEMENTS) throw malformed(`${count} elements (at most ${MAX_CHUNK_ELEMENTS})`);
  if (dstLength > MAX_DST_BYTES || dataLength > MAX_CHUNK_DATA_BYTES) throw malformed("a length out of bounds");
  const offsetsBytes = op === "hash" ? (count + 1) * 4 : 0;
  const expected = HEADER + hasScalar * SCALAR + dstLength + offsetsBytes + dataLength;
  if (b.length !== expected) throw malformed(`${b.length} bytes where its header adds up to ${expected}`);
  let p = HEADER;
  const scalar = hasScalar ? b.slice(p, p + SCALAR) : undefined;
  p += hasScalar * SCALAR;
  const dst = b.slice(p, p + dstLength);
  p += dstLength;
  if (op === "multiply") {
    if (!scalar || dstLength !== 0 || dataLength !== count * ELEMENT) throw malformed("a multiply chunk needs a scalar and count × 32 bytes of points");
    return { op, group, backend, scalar, points: b.slice(p, p + dataLength) };
  }
  const offsets = new Uint32Array(count + 1);
  for (let i = 0; i <= count; i++, p += 4) {
    const o = v.getUint32(p, true);
    if ((i === 0 && o !== 0) || o < (offsets[i - 1] ?? 0) || o > dataLength) throw malformed(`offset ${i} out of order`);
    offsets[i] = o;
  }
  if (offsets[count] !== dataLength) throw malformed("the offsets do not end at the data's end");
  return { op, group, backend, dst, ...(scalar ? { scalar } : {}), messages: { data: b.slice(p, p + dataLength), offsets } };
}

/** Runs a chunk on a worker's local pool: n × 32 bytes for a group chunk; an HE chunk's ciphertext (its parts packed, for encryption); a match chunk's positions (i32 per probe point). */
export async function runChunk(pool: CryptoPool, t: ChunkTask): Promise<Uint8Array> {
  if (t.op === "he-encrypt") return packParts(await pool.heEncryptInt64Parts(t.options, t.publicKey, t.values, { level: t.level, blocksPerPart: t.blocksPerPart }));
  if (t.op === "he-sums") return pool.heMaskedBlockSums(t.options, t.ciphertext, t.masks, t.rows);
  if (t.op === "match") {
    const hit = await pool.matchElements(t.indexed, t.probe);
    return new Uint8Array(hit.buffer, hit.byteOffset, hit.byteLength);
  }
  const choice = { group: t.group, backend: t.backend };
  if (t.op === "hash") return pool.hashToGroup(choice, t.messages, t.dst, t.scalar);
  return pool.multiply(choice, t.scalar, t.points);
}
