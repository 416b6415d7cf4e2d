/**
 * join-aggregate's groups: the buyer's labels as random codes with one
 * group per key, its per-position weights in step-11 chunks, and at the
 * exchange each group's COUNT(*), its distinct matched keys, the k rule and
 * the weight masks of the released groups. Local computation only: no
 * message is checked here. The threat model these rules serve: ./index.ts.
 */
import { BoundExceededError } from "../../engine/he/index.js";
import { shuffledOrder } from "../../engine/psi/index.js";
import { forEachSlice, SLICE_ITEMS } from "../../engine/slices.js";
import type { JoinWeights } from "../codec.js";
import { OverlappingGroupsError } from "../errors.js";
import { chunkCount, header } from "../steps.js";
import { u32le } from "./messages.js";
import { JA_MAX_GROUPS, JaStep, type JaResolved } from "./params.js";

/** The buyer's groups: labels by random code, and each row's code. */
export interface GroupCodes {
  /** Group labels by code (null: the NULL group); one entry "" when not grouped. */
  readonly labels: (string | null)[];
  readonly labelNull: boolean[];
  /** Per buyer row, its group's code. */
  readonly codeOfRow: Uint32Array;
}

/**
 * Maps the buyer's group labels to codes 0 … G−1 in random order and
 * refuses a key in two groups (see the threat model: one group per key).
 * `rowToDistinct` maps each row to its distinct key (−1: a null key, which
 * never matches and is in no group's check).
 * @throws OverlappingGroupsError naming the group column and the first two data rows of one key in two groups, never the key;
 *   BoundExceededError beyond JA_MAX_GROUPS groups.
 */
export function groupCodes(r: JaResolved, rows: number, groups: readonly (string | null)[] | undefined, groupColumn: string | undefined, rowToDistinct: ArrayLike<number>, distinct: number): GroupCodes {
  const labelIndex = new Map<string, number>();
  const labels: (string | null)[] = [];
  const rowLabel = new Int32Array(rows);
  let nullLabel = -1;
  for (let i = 0; i < rows; i++) {
    if (!r.grouped) break;
    const g = (groups as readonly (string | null)[])[i];
    let li: number;
    if (g === null || g === undefined) {
      if (nullLabel < 0) {
        nullLabel = labels.length;
        labels.push(null);
      }
      li = nullLabel;
    } else {
      const known = labelIndex.get(g);
      if (known === undefined) {
        li = labels.length;
        labelIndex.set(g, li);
        labels.push(g);
      } else li = known;
    }
    rowLabel[i] = li;
  }
  if (!r.grouped) labels.push("");
  else {
    // One group per key (see the threat model): the first row of each key, and any later row of it in another group.
    const first = new Int32Array(distinct).fill(-1);
    for (let i = 0; i < rows; i++) {
      const di = rowToDistinct[i] ?? -1;
      if (di < 0) continue;
      const f = first[di] as number;
      if (f < 0) first[di] = i;
      else if (rowLabel[f] !== rowLabel[i]) throw new OverlappingGroupsError(groupColumn ?? "the group column", f + 1, i + 1);
    }
  }
  const G = labels.length;
  if (G > JA_MAX_GROUPS) throw new BoundExceededError(`the buyer has ${G} groups, at most ${JA_MAX_GROUPS} are allowed`);
  const codeOf = shuffledOrder(G); // label index → code
  const byCode: (string | null)[] = new Array(G);
  const nullByCode: boolean[] = new Array(G).fill(false);
  for (let li = 0; li < G; li++) {
    byCode[codeOf[li] as number] = labels[li] as string | null;
    nullByCode[codeOf[li] as number] = labels[li] === null;
  }
  const codeOfRow = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) codeOfRow[i] = r.grouped ? (codeOf[rowLabel[i] as number] as number) : (codeOf[0] as number);
  return { labels: byCode, labelNull: nullByCode, codeOfRow };
}

/** Step 11: the per-position (code, rows) pairs in chunks of the job's chunk size. */
export function weightChunks(s: JaResolved, offsets: Uint32Array, codes: Uint32Array, weights: Uint32Array): JoinWeights[] {
  const n = offsets.length - 1;
  const per = s.chunkElements;
  const chunks = chunkCount(n, per);
  const out: JoinWeights[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c * per;
    const count = Math.min(per, n - start);
    const lo = offsets[start] as number;
    const hi = offsets[start + count] as number;
    const off = new Uint32Array(count + 1);
    for (let i = 0; i <= count; i++) off[i] = (offsets[start + i] as number) - lo;
    out.push({ kind: "joinWeights", header: header(s, JaStep.BuyerWeights, c, chunks), count, offsets: u32le(off), codes: u32le(codes.subarray(lo, hi)), weights: u32le(weights.subarray(lo, hi)) });
  }
  return out;
}

/** The matching, as the exchange holds it: per provider position its buyer position (or −1), rows, and the buyer's weights. */
export interface Matching {
  /** Per provider position: the buyer position it matches, or −1. */
  readonly hit: ArrayLike<number>;
  /** Per provider position: its rows (0: padding). */
  readonly counts: Uint32Array;
  /** Per buyer position i, its (code, weight) pairs are [weightOffsets[i], weightOffsets[i + 1]). */
  readonly weightOffsets: Uint32Array;
  readonly codes: Uint32Array;
  readonly weights: Uint32Array;
  readonly buyerSetSize: number;
  readonly providerSetSize: number;
}

/**
 * Per group g: COUNT(*)_g = Σ_j w_g[j]·c_j, and its distinct matched keys —
 * the buyer positions some provider position with rows matches (counted by
 * buyer position, so an element repeated on either side still counts once).
 */
export async function groupCounts(m: Matching, groups: number): Promise<{ count: bigint[]; keys: number[] }> {
  const count = new Array<bigint>(groups).fill(0n);
  const keys = new Array<number>(groups).fill(0);
  const matched = new Uint8Array(m.buyerSetSize);
  await forEachSlice(m.providerSetSize, SLICE_ITEMS, (from, to) => {
    for (let j = from; j < to; j++) {
      const i = m.hit[j] as number;
      if (i < 0 || m.counts[j] === 0) continue;
      const c = BigInt(m.counts[j] as number);
      const first = matched[i] === 0;
      matched[i] = 1;
      for (let o = m.weightOffsets[i] as number; o < (m.weightOffsets[i + 1] as number); o++) {
        const g = m.codes[o] as number;
        count[g] = (count[g] as bigint) + BigInt(m.weights[o] as number) * c;
        if (first) keys[g] = (keys[g] as number) + 1;
      }
    }
  });
  return { count, keys };
}

/**
 * The released groups, in code order: at least k distinct matched keys and
 * COUNT(*) ≥ k. Every other group of the buyer's — no match, or too few —
 * counts as suppressed (see the threat model).
 */
export function releasedGroups(count: readonly bigint[], keys: readonly number[], k: number): number[] {
  const released: number[] = [];
  for (let g = 0; g < count.length; g++) if ((keys[g] as number) >= k && (count[g] as bigint) >= BigInt(k)) released.push(g);
  return released;
}

/**
 * Weight masks over provider positions, one per released group: w_g[j] =
 * rows of g whose key is the one at position j, at slot `lead` + j (the
 * `lead` slots before them 0: with dp, the provider's noise block; the
 * `trail` slots after them 0: with dp, its shares in the spare slots).
 */
export async function weightMasks(m: Matching, released: readonly number[], lead = 0, trail = 0): Promise<Uint32Array[]> {
  const slot = new Map(released.map((g, i) => [g, i]));
  const masks = released.map(() => new Uint32Array(lead + m.providerSetSize + trail));
  await forEachSlice(m.providerSetSize, SLICE_ITEMS, (from, to) => {
    for (let j = from; j < to; j++) {
      const i = m.hit[j] as number;
      if (i < 0 || m.counts[j] === 0) continue;
      for (let o = m.weightOffsets[i] as number; o < (m.weightOffsets[i + 1] as number); o++) {
        const gi = slot.get(m.codes[o] as number);
        if (gi !== undefined) (masks[gi] as Uint32Array)[lead + j] = ((masks[gi] as Uint32Array)[lead + j] as number) + (m.weights[o] as number);
      }
    }
  });
  return masks;
}
