/**
 * psi-ot's provider: the OPRF sender (KKRT16 §5). It is the base-OT
 * receiver with the random w-bit secret s as its choices, turns the buyer's
 * matrix u into its OT rows q, evaluates the OPRF on each of its keys in its
 * 3 bins and every stash row (simple hashing), and sends the tags shuffled.
 * It learns the buyer's set size (the cuckoo table's size) and nothing else.
 * It takes steps 1, 2, 5 and 6 and sends 3, 4 and 7 (index.ts has the flow).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { baseOtReceiverRespond, CODE_WIDTH, codeKeys, extensionSend, oprfSenderTagsForItems, TAG_BYTES } from "../../engine/ot/index.js";
import { CUCKOO_HASHES, cuckooParams, distinctKeys, itemDigests, permuteFixed, shuffledOrder } from "../../engine/psi/index.js";
import type { PackedBytes } from "../../engine/packed.js";
import { OT_NONCE_BYTES, type OtBaseMessage, type OtMatrixChunk, type OtPsiReveal, type ProtocolMessage } from "../codec.js";
import { KeyLimitExceededError, ProtocolError, RefusedError, WrongStepError } from "../errors.js";
import { RoleName, type Role, type Step } from "../role.js";
import { batches, checkBinding, expectStep, header, withRoom } from "../steps.js";
import type { PsiOtInit } from "./buyer.js";
import { addressed, assertRole, baseOtGroup, blake2b, checkHello, columnBytes, expectFrom, hello, invalid, jobSeeds, matrixChunking, maxMatrixColumns, nonceCommitment, PsiOtStep, resolveParams, type Common, type PsiOtContext } from "./common.js";

/** The provider's state: plain data. */
export interface PsiOtProviderState extends Common {
  readonly role: "provider";
  /** Its distinct keys, until its tags are sent; then emptied. */
  readonly distinct: PackedBytes;
  readonly helloReceived: boolean;
  /** The buyer's nonce commitment (step 1), then its nonce (step 5). */
  readonly commitment: Uint8Array;
  readonly buyerNonce: Uint8Array;
  /** OT rows m = bins + stash of the buyer's cuckoo table. */
  readonly otRows: number;
  /** From step 2: s and the base-OT keys k_i^{s_i}. */
  readonly secret: Uint8Array;
  readonly baseKeys: Uint8Array;
  /** u's columns as they arrive (step 6). */
  readonly matrix: Uint8Array;
  readonly columnsReceived: number;
  readonly tagsSent: boolean;
}

const EMPTY = new Uint8Array(0);

async function start(init: PsiOtInit, ctx: PsiOtContext): Promise<PsiOtProviderState> {
  const p = resolveParams(init.params);
  const d = ctx.pool ? await ctx.pool.distinctKeys(init.keys) : distinctKeys(init.keys);
  return {
    ...p,
    matrixColumns: 0,
    role: "provider",
    setSize: d.count,
    peerSetSize: 0,
    nonce: new Uint8Array(randomBytes(OT_NONCE_BYTES)),
    distinct: { data: d.distinct.data, offsets: d.distinct.offsets },
    helloReceived: false,
    commitment: EMPTY,
    buyerNonce: EMPTY,
    otRows: 0,
    secret: EMPTY,
    baseKeys: EMPTY,
    matrix: EMPTY,
    columnsReceived: 0,
    tagsSent: false,
  };
}

/** Step 1: the buyer's hello; answered with step 3 (this provider's hello). */
function buyerHello(s: PsiOtProviderState, m: ProtocolMessage): Step<PsiOtProviderState> {
  const h = checkHello(s, m, PsiOtStep.BuyerHello, (n) => new KeyLimitExceededError("the buyer's hello", n, s.maxPeerSetSize));
  const otRows = cuckooParams(h.setSize).rows; // UnsupportedSizeError past the cuckoo table
  if (h.chunkElements < 1 || h.chunkElements > maxMatrixColumns(otRows)) invalid(`the buyer's matrix chunks must hold 1..${maxMatrixColumns(otRows)} columns`);
  const state: PsiOtProviderState = { ...s, helloReceived: true, peerSetSize: h.setSize, commitment: Uint8Array.from(h.nonce), otRows, matrixColumns: h.chunkElements };
  return addressed(RoleName.Buyer, state, [hello(state, PsiOtStep.ProviderHello, s.nonce, s.chunkElements)]);
}

/** Step 2: the buyer's C ‖ R; answered with step 4 (one PK0 per base OT, the choices s hidden in them). */
async function buyerBaseOt(s: PsiOtProviderState, m: ProtocolMessage): Promise<Step<PsiOtProviderState>> {
  expectStep(m.header, PsiOtStep.BuyerBaseOt, 0, 1, "otBaseMessage", m.kind);
  const b = m as OtBaseMessage;
  if (b.count !== CODE_WIDTH || b.points.length !== 64) invalid(`step 2 must carry C ‖ R for ${CODE_WIDTH} base OTs`);
  const secret = new Uint8Array(randomBytes(CODE_WIDTH >>> 3));
  const reply = baseOtReceiverRespond(await baseOtGroup(), CODE_WIDTH, secret, b.points); // C and R strictly decoded
  const state: PsiOtProviderState = { ...s, secret, baseKeys: reply.keys };
  const out: OtBaseMessage = { kind: "otBaseMessage", header: header(s, PsiOtStep.ProviderBaseOt, 0, 1), count: CODE_WIDTH, points: reply.message };
  return addressed(RoleName.Buyer, state, [out]);
}

/** Step 5: the buyer's nonce, which must open its commitment. */
function buyerReveal(s: PsiOtProviderState, m: ProtocolMessage): PsiOtProviderState {
  expectStep(m.header, PsiOtStep.BuyerReveal, 0, 1, "otPsiReveal", m.kind);
  const nonce = (m as OtPsiReveal).nonce;
  if (!timingSafeEqual(nonceCommitment(s.job, nonce), s.commitment)) throw new ProtocolError("the buyer's nonce does not open its commitment");
  return { ...s, buyerNonce: Uint8Array.from(nonce) };
}

/** Step 6: a chunk of u's columns; after the last, step 7 (the shuffled tags, in chunks). */
async function buyerMatrix(s: PsiOtProviderState, m: ProtocolMessage, ctx: PsiOtContext): Promise<Step<PsiOtProviderState>> {
  const { columnBytes, perChunk, chunks } = matrixChunking(s.otRows, s.matrixColumns);
  const chunk = s.columnsReceived / perChunk;
  expectStep(m.header, PsiOtStep.BuyerMatrix, chunk, chunks, "otMatrixChunk", m.kind);
  const c = m as OtMatrixChunk;
  const columns = Math.min(perChunk, CODE_WIDTH - s.columnsReceived);
  if (c.firstColumn !== s.columnsReceived || c.columns !== columns || c.data.length !== columns * columnBytes) {
    invalid(`step 6 chunk ${chunk} must hold columns ${s.columnsReceived}..${s.columnsReceived + columns - 1} of ${columnBytes} bytes each`);
  }
  const total = CODE_WIDTH * columnBytes;
  const matrix = withRoom(s.matrix, s.columnsReceived * columnBytes, c.data.length, total);
  matrix.set(c.data, s.columnsReceived * columnBytes);
  const state: PsiOtProviderState = { ...s, matrix, columnsReceived: s.columnsReceived + columns };
  if (state.columnsReceived < CODE_WIDTH) return addressed(RoleName.Buyer, state, []);
  const tags = await evaluate(state, ctx);
  const sent: PsiOtProviderState = { ...state, matrix: EMPTY, distinct: { data: EMPTY, offsets: new Uint32Array(1) }, secret: EMPTY, baseKeys: EMPTY, tagsSent: true };
  return addressed(RoleName.Buyer, sent, batches(state, PsiOtStep.ProviderTags, tags, s.chunkElements, TAG_BYTES));
}

/**
 * q from u; the OPRF of every key in its 3 bins and each stash row; shuffled.
 * With a pool, q is made by ranges of rows on the workers into one
 * SharedArrayBuffer (otExtensionSend), and the keys' ranges go to the
 * workers against it (otSenderTags).
 */
async function evaluate(s: PsiOtProviderState, ctx: PsiOtContext): Promise<Uint8Array> {
  const seeds = jobSeeds(s.job, s.buyerNonce, s.nonce);
  const params = cuckooParams(s.peerSetSize);
  const pool = ctx.pool;
  const matrix = s.matrix.subarray(0, CODE_WIDTH * columnBytes(s.otRows));
  const q = pool ? await pool.otExtensionSend({ keys: s.baseKeys, secret: s.secret, message: matrix, m: s.otRows }) : extensionSend(s.baseKeys, s.secret, matrix, s.otRows, CODE_WIDTH);
  const keys = s.distinct.offsets.length - 1;
  const onProgress = (done: number, total: number): void => ctx.onProgress?.("provider: tags", done, total);
  let tags: Uint8Array;
  if (pool) {
    tags = await pool.otSenderTags({ keys: s.distinct, seed: seeds.hashing, params, codeKeys: codeKeys(seeds.code), rows: q, secret: s.secret }, { onProgress });
  } else {
    const hash = await blake2b();
    const d = itemDigests(hash, s.distinct, seeds.hashing, params.bins);
    tags = oprfSenderTagsForItems(hash, codeKeys(seeds.code), q, s.otRows, s.secret, d.blocks, d.positions, CUCKOO_HASHES, params.bins, params.stash, CODE_WIDTH);
    onProgress(keys, keys);
  }
  const count = tags.length / TAG_BYTES;
  return permuteFixed(tags, TAG_BYTES, pool ? await pool.shuffledOrder(count) : shuffledOrder(count));
}

function done(s: PsiOtProviderState): boolean {
  return s.tagsSent;
}

async function receive(s: PsiOtProviderState, m: ProtocolMessage, ctx: PsiOtContext): Promise<Step<PsiOtProviderState>> {
  assertRole(s, "provider");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (!s.helloReceived) return buyerHello(s, m);
  if (s.baseKeys.length === 0 && !s.tagsSent) return buyerBaseOt(s, m);
  if (s.buyerNonce.length === 0) return addressed(RoleName.Buyer, buyerReveal(s, m), []);
  if (!s.tagsSent) return buyerMatrix(s, m, ctx);
  throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
}

/** The provider of psi-ot: waits for the buyer's hello, answers steps 3, 4 and 7; learns the buyer's set size. */
export const psiOtProvider: Role<PsiOtProviderState, PsiOtInit, PsiOtContext, undefined> = {
  start: async (init, ctx) => addressed(RoleName.Buyer, await start(init, ctx), []),
  receive: async (state, from, message, ctx) => {
    expectFrom(from, RoleName.Buyer);
    return receive(state, message, ctx);
  },
  done,
  result: () => undefined,
};
