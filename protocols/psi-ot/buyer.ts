/**
 * psi-ot's buyer: the OPRF receiver (KKRT16 §5). It holds its keys in a
 * cuckoo table, one OT row per bin and stash slot, and learns which of its
 * rows' keys the provider holds, and the provider's set size. Steps 1, 2, 5
 * and 6 are its; it takes 3, 4 and 7 (index.ts has the flow).
 */
import { randomBytes } from "node:crypto";
import type { KeyColumn } from "../../engine/columns/index.js";
import { baseOtSenderFinish, baseOtSenderStart, CODE_WIDTH, codeKeys, encodeInto, extensionReceive, oprfReceiverTags, TAG_BYTES, type BaseOtSenderState } from "../../engine/ot/index.js";
import { CUCKOO_HASHES, cuckooInsert, cuckooParams, cuckooRowInputs, distinctKeys, ElementIndex, ITEM_BYTES, itemDigests } from "../../engine/psi/index.js";
import type { PackedBytes } from "../../engine/packed.js";
import { OT_NONCE_BYTES, type ElementBatch, type OtBaseMessage, type OtMatrixChunk, type OtPsiReveal, type ProtocolMessage } from "../codec.js";
import { BelowMinimumError, ProtocolError, RefusedError, WrongStepError } from "../errors.js";
import { RoleName, type Role, type Step } from "../role.js";
import { checkBatch, checkBinding, chunkCount, expectStep, header, withRoom } from "../steps.js";
import { addressed, assertRole, baseOtGroup, blake2b, checkHello, expectFrom, hello, invalid, jobSeeds, matrixChunking, maxMatrixColumns, nonceCommitment, PsiOtStep, resolveParams, type Common, type PsiOtContext, type PsiOtParams } from "./common.js";

/** The buyer's state: plain data. */
export interface PsiOtBuyerState extends Common {
  readonly role: "buyer";
  readonly rows: number;
  /** Per buyer row, its distinct key index or −1 (null). */
  readonly rowToDistinct: Int32Array;
  /** Its distinct keys, until the seeds are known (step 4); then emptied. */
  readonly distinct: PackedBytes;
  readonly baseOt: BaseOtSenderState;
  readonly helloReceived: boolean;
  readonly providerNonce: Uint8Array;
  readonly peerChunkElements: number;
  /** From step 4 on: the cuckoo table's element per bin and per stash slot (−1: empty), and its tag per OT row. */
  readonly bins: Int32Array;
  readonly stash: Int32Array;
  readonly tags: Uint8Array;
  readonly extended: boolean;
  /** The provider's tags, (3 + stash) per provider key, grown as step 7 arrives. */
  readonly peerTags: Uint8Array;
  readonly peerTagsExpected: number;
  readonly peerTagsReceived: number;
}

export interface PsiOtInit {
  readonly params: PsiOtParams;
  readonly keys: KeyColumn;
}

export interface PsiOtBuyerResult {
  readonly mode: "intersection";
  readonly matchedRows: Uint32Array;
  readonly providerSetSize: number;
  readonly buyerSetSize: number;
}

const EMPTY8 = new Uint8Array(0);
const EMPTY32 = new Int32Array(0);

async function start(params: PsiOtParams, keys: KeyColumn, ctx: PsiOtContext): Promise<PsiOtBuyerState> {
  const p = resolveParams(params);
  const d = ctx.pool ? await ctx.pool.distinctKeys(keys) : distinctKeys(keys);
  const rows = cuckooParams(d.count).rows; // UnsupportedSizeError past the table, before anything is sent
  const group = await baseOtGroup();
  const base = baseOtSenderStart(group, CODE_WIDTH);
  return {
    ...p,
    matrixColumns: Math.min(p.matrixColumns, maxMatrixColumns(rows)),
    role: "buyer",
    setSize: d.count,
    peerSetSize: 0,
    nonce: new Uint8Array(randomBytes(OT_NONCE_BYTES)),
    rows: keys.length,
    rowToDistinct: d.rowToDistinct,
    distinct: { data: d.distinct.data, offsets: d.distinct.offsets },
    baseOt: base.state,
    helloReceived: false,
    providerNonce: EMPTY8,
    peerChunkElements: 0,
    bins: EMPTY32,
    stash: EMPTY32,
    tags: EMPTY8,
    extended: false,
    peerTags: EMPTY8,
    peerTagsExpected: 0,
    peerTagsReceived: 0,
  };
}

/** Steps 1 and 2: the hello (set size, nonce commitment, columns per matrix chunk) and the base-OT sender's C ‖ R. */
function opening(s: PsiOtBuyerState): ProtocolMessage[] {
  const base: OtBaseMessage = { kind: "otBaseMessage", header: header(s, PsiOtStep.BuyerBaseOt, 0, 1), count: CODE_WIDTH, points: s.baseOt.first };
  return [hello(s, PsiOtStep.BuyerHello, nonceCommitment(s.job, s.nonce), s.matrixColumns), base];
}

/** Step 3: the provider's hello (its set size, nonce and tag chunk size). */
function providerHello(s: PsiOtBuyerState, m: ProtocolMessage): PsiOtBuyerState {
  const h = checkHello(s, m, PsiOtStep.ProviderHello, (n) => invalid(`announced set of ${n} exceeds the limit of ${s.maxPeerSetSize}`));
  if (h.chunkElements < 1) invalid("the provider's tag chunk size must be positive");
  const perKey = CUCKOO_HASHES + cuckooParams(s.setSize).stash;
  const expected = h.setSize * perKey;
  if (!Number.isSafeInteger(expected) || chunkCount(expected, h.chunkElements) > 1 << 24) invalid(`${expected} tags in chunks of ${h.chunkElements} exceed the chunk limit`);
  return { ...s, helloReceived: true, peerSetSize: h.setSize, providerNonce: Uint8Array.from(h.nonce), peerChunkElements: h.chunkElements, peerTagsExpected: expected };
}

/**
 * Step 4: the provider's base-OT reply. The buyer finishes the base OTs,
 * derives the seeds, places its keys by cuckoo hashing, and answers with
 * step 5 (its nonce) and step 6 (u, in chunks of whole columns).
 */
async function providerBaseOt(s: PsiOtBuyerState, m: ProtocolMessage, ctx: PsiOtContext): Promise<Step<PsiOtBuyerState>> {
  expectStep(m.header, PsiOtStep.ProviderBaseOt, 0, 1, "otBaseMessage", m.kind);
  const b = m as OtBaseMessage;
  if (b.count !== CODE_WIDTH || b.points.length !== CODE_WIDTH * 32) invalid(`step 4 must carry ${CODE_WIDTH} base-OT points`);
  const [group, hash] = await Promise.all([baseOtGroup(), blake2b()]);
  const keys = baseOtSenderFinish(group, s.baseOt, b.points); // every point strictly decoded, the identity refused
  const seeds = jobSeeds(s.job, s.nonce, s.providerNonce);
  const params = cuckooParams(s.setSize);
  const pool = ctx.pool;
  const digests = pool ? await pool.otItemDigests(s.distinct, seeds.hashing, params.bins) : itemDigests(hash, s.distinct, seeds.hashing, params.bins);
  const table = cuckooInsert(digests.positions, params, seeds.hashing);
  const inputs = cuckooRowInputs(table, digests, randomBytes(params.rows * ITEM_BYTES));
  const onProgress = (done: number, total: number): void => ctx.onProgress?.("buyer: extension", done, total);
  let ext: { message: Uint8Array; tags: Uint8Array };
  if (pool) {
    // Codewords, u and the tags by ranges of rows on the workers; the rows t never come back.
    ext = await pool.otExtensionReceive({ keys0: keys.keys0, keys1: keys.keys1, codeKeys: codeKeys(seeds.code), inputs, m: params.rows }, { onProgress });
  } else {
    const codewords = new Uint8Array(params.rows * (CODE_WIDTH >>> 3));
    encodeInto(codeKeys(seeds.code), inputs, codewords, CODE_WIDTH);
    const e = extensionReceive(keys.keys0, keys.keys1, codewords, params.rows, CODE_WIDTH);
    ext = { message: e.message, tags: oprfReceiverTags(hash, e.rows, params.rows, CODE_WIDTH) };
    onProgress(params.rows, params.rows);
  }
  const tags = ext.tags;
  const state: PsiOtBuyerState = { ...s, distinct: { data: EMPTY8, offsets: new Uint32Array(1) }, bins: table.bins, stash: table.stash, tags, extended: true };
  const reveal: OtPsiReveal = { kind: "otPsiReveal", header: header(s, PsiOtStep.BuyerReveal, 0, 1), nonce: s.nonce };
  const { columnBytes, perChunk, chunks } = matrixChunking(params.rows, s.matrixColumns);
  const out: ProtocolMessage[] = [reveal];
  for (let c = 0; c < chunks; c++) {
    const first = c * perChunk;
    const columns = Math.min(perChunk, CODE_WIDTH - first);
    const chunk: OtMatrixChunk = { kind: "otMatrixChunk", header: header(s, PsiOtStep.BuyerMatrix, c, chunks), firstColumn: first, columns, data: ext.message.subarray(first * columnBytes, (first + columns) * columnBytes) };
    out.push(chunk);
  }
  return { state, messages: out.map((message) => ({ to: RoleName.Provider, message })) };
}

/** Step 7: a chunk of the provider's shuffled tags. */
function providerTags(s: PsiOtBuyerState, m: ProtocolMessage): PsiOtBuyerState {
  const per = s.peerChunkElements;
  const chunk = s.peerTagsReceived / per;
  expectStep(m.header, PsiOtStep.ProviderTags, chunk, chunkCount(s.peerTagsExpected, per), "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, s.peerTagsExpected, per, PsiOtStep.ProviderTags, TAG_BYTES);
  const peerTags = withRoom(s.peerTags, s.peerTagsReceived * TAG_BYTES, b.elements.length, s.peerTagsExpected * TAG_BYTES);
  peerTags.set(b.elements, s.peerTagsReceived * TAG_BYTES);
  return { ...s, peerTags, peerTagsReceived: s.peerTagsReceived + b.count };
}

function done(s: PsiOtBuyerState): boolean {
  return s.helloReceived && s.extended && s.peerTagsReceived === s.peerTagsExpected;
}

async function receive(s: PsiOtBuyerState, m: ProtocolMessage, ctx: PsiOtContext): Promise<Step<PsiOtBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (!s.helloReceived) return addressed(RoleName.Provider, providerHello(s, m), []);
  if (!s.extended) return providerBaseOt(s, m, ctx);
  if (s.peerTagsReceived < s.peerTagsExpected) return addressed(RoleName.Provider, providerTags(s, m), []);
  throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
}

/** The buyer's rows whose key the provider holds; BelowMinimumError under the job's minIntersection. */
function result(s: PsiOtBuyerState): PsiOtBuyerResult {
  assertRole(s, "buyer");
  if (!done(s)) throw new ProtocolError("the protocol has not finished");
  const hit = new Uint8Array(s.setSize);
  if (s.peerTagsReceived > 0) {
    const match = ElementIndex.build(s.peerTags.subarray(0, s.peerTagsReceived * TAG_BYTES), TAG_BYTES).matchAll(s.tags);
    const slots = [...s.bins, ...s.stash];
    slots.forEach((e, row) => {
      if (e >= 0 && (match[row] as number) >= 0) hit[e] = 1;
    });
  }
  let distinct = 0;
  for (const h of hit) distinct += h;
  if (s.minIntersection > 1 && distinct < s.minIntersection) throw new BelowMinimumError(s.minIntersection);
  const rows: number[] = [];
  s.rowToDistinct.forEach((d, r) => {
    if (d >= 0 && hit[d] === 1) rows.push(r);
  });
  return { mode: "intersection", matchedRows: Uint32Array.from(rows), providerSetSize: s.peerSetSize, buyerSetSize: s.setSize };
}

/** The buyer of psi-ot: sends steps 1 and 2 at start, takes 3, 4 and 7 and sends 5 and 6; its result is its matching rows. */
export const psiOtBuyer: Role<PsiOtBuyerState, PsiOtInit, PsiOtContext, PsiOtBuyerResult> = {
  start: async (init, ctx) => {
    const state = await start(init.params, init.keys, ctx);
    return addressed(RoleName.Provider, state, opening(state));
  },
  receive: async (state, from, message, ctx) => {
    expectFrom(from, RoleName.Provider);
    return receive(state, message, ctx);
  },
  done,
  result,
};
