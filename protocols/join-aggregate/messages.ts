/**
 * join-aggregate's messages: building and checking the key, the hellos and
 * the chunked steps, the chunk layout of the encrypted statistics, and the
 * table of who sends which step to whom, which every role's `receive` checks
 * first (WrongSenderError). The flow: ./index.ts.
 */
import { checkComparedEncodings } from "../../engine/group/index.js";
import { ParameterMismatchError, type HeContext } from "../../engine/he/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import type { AggregateKey, ElementBatch, JoinHello, ProtocolMessage } from "../codec.js";
import { InvalidMessageError, KeyLimitExceededError, ProtocolError, WrongSenderError, WrongStepError } from "../errors.js";
import type { RoleName, Step } from "../role.js";
import { checkBatch, chunkCount, expectStep, header, pointError, withRoom } from "../steps.js";
import { JA_NOISE_SLOTS } from "./dp.js";
import { ELEMENT, JA_SLOTS, JaStep, jaHeOptions, PROVIDER_BLOCKS_PER_CHUNK, RESULT_BLOCKS_PER_CHUNK, groupSpec, type JaContext, type JaResolved } from "./params.js";

// ------------------------------------------------------------------ senders

/** One step's handler: the state after the message and what the role sends. */
export type Handler<S> = (s: S, m: ProtocolMessage, ctx: JaContext) => Promise<Step<S>> | Step<S>;

/** A role's handlers, by the role that sends the step, then by step. */
export type Handlers<S> = Readonly<Partial<Record<RoleName, Readonly<Partial<Record<number, Handler<S>>>>>>>;

/**
 * The handler for message m from role `from`: the role takes each step from
 * one sender only. A refusal is taken from any role this role hears from
 * (undefined: the caller raises it once the message's binding is checked).
 * @throws WrongSenderError when `from` does not send this role that step (or anything).
 */
export function handlerFor<S>(role: string, handlers: Handlers<S>, from: RoleName, m: ProtocolMessage): Handler<S> | undefined {
  const steps = Object.hasOwn(handlers, from) ? handlers[from] : undefined;
  if (steps === undefined) throw new WrongSenderError(`the ${role} takes no message from the ${from}`);
  if (m.kind === "refusal") return undefined;
  const handler = Object.hasOwn(steps, m.header.step) ? steps[m.header.step] : undefined;
  if (handler === undefined) throw new WrongSenderError(`step ${m.header.step} does not come to the ${role} from the ${from}`);
  return handler;
}

// ------------------------------------------------------------------ packing

export function u32le(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

export function readU32(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}

export function readU64(b: Uint8Array): bigint[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i < b.length / 8; i++) out.push(dv.getBigUint64(i * 8, true));
  return out;
}

export function concatU32(parts: readonly Uint32Array[]): Uint32Array {
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ------------------------------------------------------------------ key and hellos

/** Step 1: the buyer's HE public key with the options it was made for. */
export function keyMessage(s: JaResolved, fingerprint: string, publicKey: Uint8Array): AggregateKey {
  return {
    kind: "aggregateKey",
    header: header(s, JaStep.Key, 0, 1),
    polyModulusDegree: 0,
    maxAbsValue: s.he.maxAbsValue,
    scale: 0,
    maxRows: s.he.maxRows,
    maxLength: s.he.maxLength,
    fingerprint,
    publicKey,
  };
}

/** Checks a step-1 key against the options this party derives itself. */
export async function checkKey(s: JaResolved, m: ProtocolMessage, he: HeContext, pool: CryptoPool): Promise<{ key: AggregateKey; keyId: string }> {
  expectStep(m.header, JaStep.Key, 0, 1, "aggregateKey", m.kind);
  const k = m as AggregateKey;
  if (k.maxAbsValue !== s.he.maxAbsValue || k.maxRows !== s.he.maxRows || k.maxLength !== s.he.maxLength || k.scale !== 0) {
    throw new ParameterMismatchError("the HE options in the key message differ from the job's");
  }
  if (k.fingerprint !== he.params.fingerprint) throw new ParameterMismatchError("the HE parameter fingerprint differs from this party's");
  // Parsed (size-checked, then loaded by SEAL) on a worker: refuses a malformed key now.
  return { key: k, keyId: await pool.heCheckPublicKey(jaHeOptions(s), k.publicKey) };
}

export function hello(s: JaResolved, step: number, setSize: number, extra: { peerSetSize?: number; peerChunkElements?: number; groups?: number } = {}): JoinHello {
  return {
    kind: "joinHello",
    header: header(s, step, 0, 1),
    group: s.group,
    setSize,
    chunkElements: s.chunkElements,
    peerSetSize: extra.peerSetSize ?? 0,
    peerChunkElements: extra.peerChunkElements ?? 0,
    groups: extra.groups ?? 0,
  };
}

export function checkHello(s: JaResolved, m: ProtocolMessage, step: number): JoinHello {
  expectStep(m.header, step, 0, 1, "joinHello", m.kind);
  const h = m as JoinHello;
  if (h.group !== s.group) throw new ProtocolError(`the other side uses group ${h.group}, this job uses ${s.group}`);
  if (h.setSize > s.maxSetSize || h.peerSetSize > s.maxSetSize) throw new InvalidMessageError(`an announced set exceeds the limit of ${s.maxSetSize}`);
  if (h.chunkElements !== s.chunkElements) throw new InvalidMessageError(`the job's chunks hold ${s.chunkElements} elements, the message says ${h.chunkElements}`);
  if (h.peerChunkElements !== 0 && h.peerChunkElements !== s.chunkElements) throw new InvalidMessageError(`the job's chunks hold ${s.chunkElements} elements`);
  return h;
}

/** Refuses an announced buyer set larger than the job's maxBuyerKeys. */
export function checkBuyerKeys(s: JaResolved, announced: number, what: string): void {
  const limit = s.maxBuyerKeys ?? s.maxSetSize;
  if (announced > limit) throw new KeyLimitExceededError(what, announced, limit);
}

// ------------------------------------------------------------------ chunks

/**
 * Checks that m is the next chunk of a step that carries `total` items in
 * chunks of `per`, `received` of them in so far; returns the chunk's index
 * and how many items it must hold.
 */
export function nextChunk(m: ProtocolMessage, step: number, kind: string, received: number, total: number, per: number): { chunk: number; want: number } {
  if (received >= total) throw new WrongStepError(`step ${step} is complete`);
  const chunk = received / per;
  expectStep(m.header, step, chunk, chunkCount(total, per), kind, m.kind);
  return { chunk, want: Math.min(per, total - received) };
}

/**
 * The next chunk of raised elements of a step of `n` elements (only compared, never multiplied:
 * canonical encodings checked), copied into `into` (grown as chunks arrive); returns the buffer and the count.
 */
export function receiveCompared(m: ProtocolMessage, step: number, into: Uint8Array, received: number, n: number, per: number): { elements: Uint8Array; count: number } {
  const { chunk } = nextChunk(m, step, "elementBatch", received, n, per);
  const b = m as ElementBatch;
  checkBatch(b, n, per, step, ELEMENT);
  try {
    checkComparedEncodings(b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
  const elements = withRoom(into, received * ELEMENT, b.elements.length, n * ELEMENT);
  elements.set(b.elements, received * ELEMENT);
  return { elements, count: b.count };
}

/**
 * Checks that m is the next chunk of the other side's blinded elements,
 * raises them to this side's scalar (each strictly decoded, the identity
 * refused: InvalidPointError with its index in the step) and returns them as
 * the same chunk of the reply step, for the exchange.
 */
export async function raiseBatch(
  s: JaResolved & { readonly secret: Uint8Array },
  m: ProtocolMessage,
  ctx: JaContext,
  o: { readonly step: number; readonly reply: number; readonly received: number; readonly total: number; readonly per: number; readonly phase: string },
): Promise<ElementBatch> {
  const chunk = o.received / o.per;
  const chunks = chunkCount(o.total, o.per);
  expectStep(m.header, o.step, chunk, chunks, "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, o.total, o.per, o.step, ELEMENT);
  let raised: Uint8Array;
  try {
    raised = await ctx.pool.multiply(groupSpec(s, ctx), s.secret, b.elements);
  } catch (e) {
    pointError(e, chunk, o.per);
  }
  ctx.onProgress?.(o.phase, o.received + b.count, o.total);
  return { kind: "elementBatch", header: header(s, o.reply, chunk, chunks), elementSize: ELEMENT, count: b.count, elements: raised };
}

/**
 * The statistic columns whose per-key values the provider encrypts and sends
 * in step 8, by index in the layout: every one but dp's COUNT(*) "c", which
 * the exchange computes from step 7's row counts and the buyer's weights
 * (it knows each group's count anyway) and puts into its zero-sum mask
 * with its noise share (dp.ts). Without dp: all of them.
 */
export function providerColumns(s: JaResolved): number[] {
  return s.stats.flatMap((st, k) => (st.stat === "c" ? [] : [k]));
}

/**
 * With dp, whether the provider's noise shares of each column it encrypts
 * sit in the spare slots of that column's last block (slots size … size +
 * JA_NOISE_SLOTS − 1, dp.ts) rather than in a block of their own: when the
 * `size` positions leave JA_NOISE_SLOTS slots of it free. Then the exchange
 * reads one block less per column and group. Every role derives it from the
 * provider's announced size.
 */
export function noiseInline(s: JaResolved, size: number): boolean {
  return s.dp !== undefined && spareSlots(size) >= JA_NOISE_SLOTS;
}

/** The slots of the last block that `size` positions leave free. */
function spareSlots(size: number): number {
  return Math.ceil(size / JA_SLOTS) * JA_SLOTS - size;
}

/**
 * With dp, whether COUNT(*)'s noise shares sit in the spare slots too: in
 * the first column the provider encrypts, right after that column's own
 * shares (slots size + JA_NOISE_SLOTS …), when its last block leaves room
 * for both. Else they come in a block of their own.
 */
export function countNoiseInline(s: JaResolved, size: number): boolean {
  return s.dp !== undefined && spareSlots(size) >= 2 * JA_NOISE_SLOTS && providerColumns(s).length > 0 && s.stats.some((st) => st.stat === "c");
}

/** The slots after the `size` positions of each column the provider encrypts that hold noise shares (its own, then COUNT(*)'s). */
function inlineNoiseSlots(s: JaResolved, size: number): number {
  return noiseInline(s, size) ? JA_NOISE_SLOTS * (countNoiseInline(s, size) ? 2 : 1) : 0;
}

/**
 * With dp, the slot of COUNT(*)'s one released block where the group with
 * code `code` has its noisy count: the slot of the provider's share of that
 * code — in its noise block, or in the first column's last block.
 */
export function countSlot(s: JaResolved, size: number, code: number): number {
  return countNoiseInline(s, size) ? (size + JA_NOISE_SLOTS + code) % JA_SLOTS : code;
}

/** The statistic columns whose noise shares come in a block of their own (dp): COUNT(*)'s and the others unless inline. */
export function noiseBlockColumns(s: JaResolved, size: number): number[] {
  if (!s.dp) return [];
  const inline = noiseInline(s, size);
  const countInline = countNoiseInline(s, size);
  return s.stats.flatMap((st, k) => ((st.stat === "c" ? !countInline : !inline) ? [k] : []));
}

/**
 * Step 8's layout: chunks of PROVIDER_BLOCKS_PER_CHUNK blocks per provider
 * column of `length` slots (providerColumns, in order: `data` chunks in all;
 * `length` is `size`, plus JA_NOISE_SLOTS when the noise is inline, twice
 * that when COUNT(*)'s is too: countNoiseInline); with
 * dp then one chunk per noiseBlockColumns column of the provider's noise
 * shares (dp.ts: one block of JA_SLOTS slots, `column` = stats + the
 * statistic's index).
 */
export function valueChunkCount(s: JaResolved, size: number): { perColumn: number; data: number; total: number; length: number } {
  const blocks = Math.ceil(size / JA_SLOTS);
  const perColumn = chunkCount(blocks, PROVIDER_BLOCKS_PER_CHUNK);
  const data = perColumn * providerColumns(s).length;
  return { perColumn, data, total: data + noiseBlockColumns(s, size).length, length: size + inlineNoiseSlots(s, size) };
}

/** One chunk of step 14: statistic column `column`'s result blocks firstBlock … firstBlock + blocks − 1. */
export interface ResultChunk {
  readonly column: number;
  readonly firstBlock: number;
  readonly blocks: number;
}

/** Whether statistic column `k` is released as one block of per-group slots: COUNT(*) with dp (dp.ts, countSlots). */
export function countInSlots(s: JaResolved, k: number): boolean {
  return s.dp !== undefined && s.stats[k]?.stat === "c";
}

/**
 * Step 14's chunks, in order: per statistic column, one block per released
 * group (the buyer sums its slots), in chunks of RESULT_BLOCKS_PER_CHUNK —
 * but COUNT(*) with dp is one block whose slot `code` holds the noisy count
 * of the released group with that code (countInSlots), one chunk.
 */
export function resultLayout(s: JaResolved, released: number): ResultChunk[] {
  if (released === 0) return [];
  return s.stats.flatMap((_, column) => {
    if (countInSlots(s, column)) return [{ column, firstBlock: 0, blocks: 1 }];
    return Array.from({ length: chunkCount(released, RESULT_BLOCKS_PER_CHUNK) }, (_, c) => {
      const firstBlock = c * RESULT_BLOCKS_PER_CHUNK;
      return { column, firstBlock, blocks: Math.min(RESULT_BLOCKS_PER_CHUNK, released - firstBlock) };
    });
  });
}
