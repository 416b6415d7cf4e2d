/**
 * How the pool cuts work into chunks and puts it back: slices of a packed
 * column, ranges of blocks, lanes of tasks in flight, a ciphertext column read
 * a range of blocks at a time, typed-array views, and the buffers a task may
 * move to a worker rather than copy.
 */
import { InvalidArgumentError, InvalidLengthError } from "../errors.js";
import type { CiphertextBytes, HeContext } from "../he/bfv.js";
import type { PackedBytes } from "../packed.js";
import type { GroupTask } from "./tasks.js";

export interface Slice {
  readonly start: number;
  readonly end: number;
}

export function slices(n: number, chunk: number): Slice[] {
  const out: Slice[] = [];
  for (let s = 0; s < n; s += chunk) out.push({ start: s, end: Math.min(n, s + chunk) });
  return out;
}

/** A copy of messages [start, end) with offsets rebased to 0 (a transferable chunk). */
export function sliceMessages(m: PackedBytes, s: Slice): { data: Uint8Array; offsets: Uint32Array } {
  const base = m.offsets[s.start] ?? 0;
  const endByte = m.offsets[s.end] ?? base;
  const data = m.data.slice(base, endByte);
  const offsets = new Uint32Array(s.end - s.start + 1);
  for (let i = 0; i <= s.end - s.start; i++) offsets[i] = (m.offsets[s.start + i] ?? base) - base;
  return { data, offsets };
}

/** A typed array that spans its whole buffer (what a worker is sent: structured clone copies a view's whole buffer). */
export function whole<T extends Uint8Array | Uint32Array | Int32Array | BigInt64Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

export const u32 = (b: Uint8Array): Uint32Array => new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
export const i32 = (b: Uint8Array): Int32Array => new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
export const i64 = (b: Uint8Array): BigInt64Array => new BigInt64Array(b.buffer, b.byteOffset, b.byteLength >>> 3);

/**
 * fn(0) … fn(count − 1), at most `width` at a time, each started when an
 * earlier one ends; the results in order. After a failure no new one starts
 * and the first failure is thrown.
 */
export async function inLanes<T>(count: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        out[i] = await fn(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, Math.max(1, width)) }, lane));
  return out;
}

/**
 * A column given whole or as consecutive parts (every part but the last of
 * whole blocks), read a range of blocks at a time: the parts are only
 * inspected here; blocksOf copies just the blocks asked for (or gives one
 * of the caller's parts as it is: `fresh` false).
 */
export function blockSource(
  ctx: HeContext,
  ct: CiphertextBytes | readonly CiphertextBytes[],
): { readonly length: number; readonly blocks: number; readonly blockBytes: number; blocksOf(b0: number, b1: number): { bytes: CiphertextBytes; fresh: boolean } } {
  const parts: readonly CiphertextBytes[] = ct instanceof Uint8Array ? [ct] : ct;
  if (parts.length === 0) throw new InvalidArgumentError("an empty column");
  const n = ctx.params.slotCount;
  const infos = parts.map((p) => ctx.inspect(p));
  const first: number[] = [];
  let blocks = 0;
  let length = 0;
  infos.forEach((info, i) => {
    if (i < infos.length - 1 && info.length % n !== 0) throw new InvalidArgumentError(`part ${i} does not fill whole blocks of ${n} slots`);
    first.push(blocks);
    blocks += info.blocks;
    length += info.length;
  });
  return {
    length,
    blocks,
    blockBytes: Math.max(1, Math.ceil(parts.reduce((sum, p) => sum + p.length, 0) / Math.max(1, blocks))),
    blocksOf(b0, b1) {
      const pieces: CiphertextBytes[] = [];
      parts.forEach((p, i) => {
        const s = first[i] as number;
        const e = s + (infos[i] as { blocks: number }).blocks;
        if (e <= b0 || s >= b1) return;
        pieces.push(s >= b0 && e <= b1 && parts.length > 1 ? p : ctx.sliceBlocks(p, Math.max(b0, s) - s, Math.min(b1, e) - s));
      });
      if (pieces.length > 1) return { bytes: ctx.concat(pieces), fresh: true };
      const only = pieces[0] as CiphertextBytes;
      return { bytes: only, fresh: !parts.includes(only) };
    },
  };
}

/** [0, count) cut into at most `parts` contiguous ranges of near-equal size. */
export function ranges(count: number, parts: number): [number, number][] {
  const m = Math.min(parts, count);
  const out: [number, number][] = [];
  for (let i = 0; i < m; i++) out.push([Math.floor((i * count) / m), Math.floor(((i + 1) * count) / m)]);
  return out;
}

export function stripIndex(message: string): string {
  return message.replace(/ \(element \d+\)$/, "");
}

export function countOf(buf: Uint8Array, size: number, what: string): number {
  if (!(buf instanceof Uint8Array) || buf.length % size !== 0) throw new InvalidLengthError(what, `a multiple of ${size}`, buf?.length ?? 0);
  return buf.length / size;
}

/** Fields that hold the caller's own buffers (shared by every chunk): never detached. */
const CALLER_OWNED = new Set(["scalar", "dst", "secretKey"]);

/** The chunk buffers a task owns (all freshly sliced), moved rather than copied. */
export function transferablesOf(task: GroupTask): ArrayBuffer[] {
  const bufs: ArrayBuffer[] = [];
  for (const [key, v] of Object.entries(task)) {
    if (CALLER_OWNED.has(key) || !(v instanceof Uint8Array || v instanceof Uint32Array)) continue;
    if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer) bufs.push(v.buffer);
  }
  return bufs;
}
