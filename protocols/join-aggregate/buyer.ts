/**
 * join-aggregate's buyer: the HE key holder. It starts with its keys and
 * group labels (steps 1–3 to the provider; 1, 10, 11 to the exchange),
 * raises the provider's blinded elements (4, 5 from the provider; 12 to
 * the exchange), and decrypts the released groups' totals (13, 14 from the
 * exchange). In a job with dp its rows per key are capped at maxRowsPerKey
 * and it receives every group, noisy, and applies k to the noisy counts
 * (dp.ts). What it learns: ./index.ts.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { createGroup } from "../../engine/group/index.js";
import type { KeyColumn } from "../../engine/columns/index.js";
import { BoundExceededError } from "../../engine/he/index.js";
import { permuteFixedAsync } from "../../engine/psi/index.js";
import type { JoinCiphertext, JoinResult, ProtocolMessage } from "../codec.js";
import { InvalidMessageError, RefusedError, WrongStepError } from "../errors.js";
import type { Outgoing, Role, Step } from "../role.js";
import { batches, checkBinding, expectStep } from "../steps.js";
import { groupCodes, weightChunks } from "./groups.js";
import { checkBuyerKeys, checkHello, handlerFor, hello, keyMessage, raiseBatch, readU32, readU64, countInSlots, countSlot, resultLayout, type Handlers } from "./messages.js";
import {
  checkState,
  ELEMENT,
  groupSpec,
  jaDst,
  jaHeOptions,
  JaStep,
  resolveJaParams,
  withHe,
  type JaContext,
  type JaResolved,
  type JoinAggregateParams,
} from "./params.js";
import { buyerResult, type JaResult } from "./result.js";

export interface JaBuyerInput {
  readonly keys: KeyColumn;
  /** Per buyer row, its group label (null: the NULL group). Omit when not grouped. */
  readonly groups?: readonly (string | null)[];
  /** The group column's name, for the error that refuses a key in two groups. */
  readonly groupColumn?: string;
}

/** What the buyer's role starts from: the job's parameters and its own input. */
export interface JaBuyerInit extends JaBuyerInput {
  readonly params: JoinAggregateParams;
}

export interface JaBuyerState extends JaResolved {
  readonly role: "buyer";
  readonly secret: Uint8Array;
  readonly heSecretKey: Uint8Array;
  readonly fingerprint: string;
  readonly setSize: number;
  /** Group labels by code (null: the NULL group); one entry "" when not grouped. */
  readonly labels: readonly (string | null)[];
  readonly labelNull: readonly boolean[];
  readonly providerHello: boolean;
  readonly peerSetSize: number;
  readonly peerReceived: number;
  readonly result: { readonly codes: Uint32Array; readonly counts: readonly bigint[]; readonly suppressed: number } | null;
  /** Per stat column, the decrypted per-block slot totals received so far (decimal strings by released group). */
  readonly totals: readonly (readonly string[])[];
  readonly valueChunksReceived: number;
}

/**
 * Starts the buyer: HE keys, de-duplicated shuffled keys hashed and blinded,
 * group codes and weights. Returns steps 1–3 for the provider and 1, 10, 11
 * for the exchange.
 */
async function start(init: JaBuyerInit, ctx: JaContext): Promise<Step<JaBuyerState>> {
  const r = resolveJaParams(init.params);
  const keys = init.keys;
  if (r.grouped && (!init.groups || init.groups.length !== keys.length)) throw new InvalidArgumentError("a grouped job needs one group label per buyer row");
  const group = await createGroup(groupSpec(r, ctx));
  const d = await ctx.pool.distinctKeys(keys);
  if (d.count > r.maxSetSize) throw new BoundExceededError(`the buyer has ${d.count} distinct keys, the job allows ${r.maxSetSize}`);
  checkBuyerKeys(r, d.count, "the buyer's input");
  // Group labels → random codes, one group per key.
  const { labels, labelNull, codeOfRow } = groupCodes(r, keys.length, init.groups, init.groupColumn, d.rowToDistinct, d.count);
  const G = labels.length;
  // Positions: the distinct keys shuffled. pos[p] = distinct index at position p.
  const order = await ctx.pool.shuffledOrder(d.count);
  const posOf = new Uint32Array(d.count);
  for (let p = 0; p < d.count; p++) posOf[order[p] as number] = p;
  // Weights per position: (code, rows) pairs, by position then code — COUNT(*) per
  // (position, code) over the rows with a key, on a worker (no per-row objects).
  const positionOf = new Int32Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const di = d.rowToDistinct[i] ?? -1;
    positionOf[i] = di < 0 ? -1 : (posOf[di] as number);
  }
  const { offsets, groups: codes, rows: weights } = await ctx.pool.pairCounts(positionOf, codeOfRow, d.count, G);
  // With dp a key's rows beyond maxRowsPerKey are dropped (all of a key's rows are alike for the join and in one group): dp.ts.
  if (r.dp) for (let i = 0; i < weights.length; i++) if ((weights[i] as number) > r.dp.maxRowsPerKey) weights[i] = r.dp.maxRowsPerKey;
  const secret = group.randomScalar();
  // The HE key set is made while the keys are hashed (seconds on one thread at N = 8192; with a cluster the local threads are free then).
  const [blinded, { keyBytes, fingerprint }] = await Promise.all([
    ctx.pool.hashToGroup(groupSpec(r, ctx), d.distinct, jaDst(r.group, r.job), secret, {
      onProgress: (done, tot) => ctx.onProgress?.("buyer: hash and blind", done, tot),
    }),
    withHe(r, ctx, async (he) => ({ keyBytes: await ctx.pool.heGenerateKeys(jaHeOptions(r), { galois: false }), fingerprint: he.params.fingerprint })),
  ]);
  const shuffled = await permuteFixedAsync(blinded, ELEMENT, order);
  const state: JaBuyerState = {
    ...r,
    role: "buyer",
    secret,
    heSecretKey: keyBytes.secretKey,
    fingerprint,
    setSize: d.count,
    labels,
    labelNull,
    providerHello: false,
    peerSetSize: 0,
    peerReceived: 0,
    result: null,
    totals: [],
    valueChunksReceived: 0,
  };
  const key = keyMessage(r, fingerprint, keyBytes.publicKey);
  const toProvider: Outgoing[] = [key, hello(r, JaStep.BuyerHello, d.count), ...batches(r, JaStep.BuyerBlinded, shuffled, r.chunkElements, ELEMENT)].map((message) => ({ to: "provider", message }));
  const toExchange: Outgoing[] = [key, hello(r, JaStep.BuyerExchangeHello, d.count, { groups: G }), ...weightChunks(r, offsets, codes, weights)].map((message) => ({ to: "exchange", message }));
  return { state, messages: [...toProvider, ...toExchange] };
}

// ------------------------------------------------------------------ handlers, one per step

/** Step 4, provider → buyer: the provider's padded set size (and the buyer set size it received). */
function providerHello(s: JaBuyerState, m: ProtocolMessage): Step<JaBuyerState> {
  if (s.providerHello) throw new WrongStepError("the provider's hello was already received");
  const h = checkHello(s, m, JaStep.ProviderHello);
  if (h.peerSetSize !== s.setSize) throw new InvalidMessageError("the provider announces a buyer set size other than this buyer's");
  return { state: { ...s, providerHello: true, peerSetSize: h.setSize }, messages: [] };
}

/** Step 5, provider → buyer: a chunk of H(y)^p, raised to b and sent on to the exchange as step 12 (after its hello). */
async function providerBlinded(s: JaBuyerState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaBuyerState>> {
  if (!s.providerHello) throw new WrongStepError("the provider's elements before its hello");
  if (s.peerReceived >= s.peerSetSize) throw new WrongStepError(`step ${m.header.step} is complete`);
  const per = s.chunkElements;
  const raised = await raiseBatch(s, m, ctx, { step: JaStep.ProviderBlinded, reply: JaStep.ProviderDoubled, received: s.peerReceived, total: s.peerSetSize, per, phase: "buyer: raise provider elements" });
  const out: Outgoing[] = [];
  if (s.peerReceived === 0) out.push({ to: "exchange", message: hello(s, JaStep.ProviderDoubled, s.peerSetSize, { peerSetSize: s.setSize, peerChunkElements: per }) });
  out.push({ to: "exchange", message: raised });
  return { state: { ...s, peerReceived: s.peerReceived + raised.count }, messages: out };
}

/** Step 13, exchange → buyer: the released group codes with their COUNT(*), and how many groups were suppressed. */
function exchangeResult(s: JaBuyerState, m: ProtocolMessage): Step<JaBuyerState> {
  if (s.result !== null) throw new WrongStepError("the result was already received");
  if (s.peerReceived < s.peerSetSize || !s.providerHello) throw new WrongStepError("a result before the provider's elements were raised");
  expectStep(m.header, JaStep.Result, 0, 1, "joinResult", m.kind);
  const res = m as JoinResult;
  const codes = readU32(res.codes);
  const counts = readU64(res.counts);
  const seen = new Set<number>();
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] as number;
    if (c >= s.labels.length || seen.has(c)) throw new InvalidMessageError("the result names an unknown or repeated group code");
    seen.add(c);
    const n = counts[i] as bigint;
    // With dp no exact count travels (the count is a noisy statistic): zeros only.
    if (s.dp ? n !== 0n : n < BigInt(s.minGroupSize) || n > BigInt(s.maxJoinRows)) throw new InvalidMessageError(s.dp ? "a dp job's result carries no count in the clear" : "a released group's count is outside [k, maxJoinRows]");
  }
  if (s.dp && res.suppressed !== 0) throw new InvalidMessageError("a dp job's exchange releases every group (k is applied to the noisy counts)");
  // Every group of the buyer's is either released or suppressed (a group with no match too).
  if (codes.length + res.suppressed !== s.labels.length) throw new InvalidMessageError("the released and suppressed groups do not add up to the buyer's groups");
  const state: JaBuyerState = { ...s, result: { codes, counts, suppressed: res.suppressed }, totals: s.stats.map(() => new Array<string>(codes.length).fill("")) };
  return { state, messages: [] };
}

/**
 * Step 14, exchange → buyer: one masked block per released group and
 * statistic, decrypted and summed slot by slot; with dp COUNT(*)'s one block
 * whose slot `code` is the released group's noisy count (messages.ts
 * resultLayout).
 */
async function exchangeResultValues(s: JaBuyerState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaBuyerState>> {
  const step = m.header.step;
  if (s.result === null) throw new WrongStepError("statistics before the result");
  const codes = s.result.codes;
  const layout = resultLayout(s, codes.length);
  const want = layout[s.valueChunksReceived];
  if (want === undefined) throw new WrongStepError(`step ${step} is complete`);
  expectStep(m.header, JaStep.ResultValues, s.valueChunksReceived, layout.length, "joinCiphertext", m.kind);
  const c = m as JoinCiphertext;
  const { column, firstBlock: first, blocks } = want;
  if (c.column !== column || c.firstBlock !== first) throw new InvalidMessageError(`step ${step} chunk ${m.header.chunk} must carry column ${column} from block ${first}`);
  const sums = await withHe(s, ctx, async (he) => {
    const info = he.inspect(c.ciphertext);
    const n = he.params.slotCount;
    if (info.blocks !== blocks || info.length !== blocks * n) throw new InvalidMessageError(`step ${step} chunk ${m.header.chunk} must hold ${blocks} whole blocks`);
    // COUNT(*) with dp: one block, a group's noisy count in the slot of its code (a few ms on this thread).
    if (countInSlots(s, column)) {
      const slots = he.decryptSums(c.ciphertext, s.heSecretKey);
      return Array.from(codes, (code) => (slots[countSlot(s, s.peerSetSize, code)] as bigint).toString());
    }
    // Each block's slots summed (modulo M) as it is decrypted, on a worker.
    const blockSums = await ctx.pool.heDecryptBlockSums(jaHeOptions(s), c.ciphertext, s.heSecretKey);
    const M = he.params.crtModulus;
    const out: string[] = [];
    for (let b = 0; b < blocks; b++) {
      let t = blockSums[b] as bigint;
      t %= M;
      if (t < 0n) t += M;
      if (t > M / 2n) t -= M;
      out.push(t.toString());
    }
    return out;
  });
  const totals = s.totals.map((col, i) => (i === column ? col.map((x, g) => (g >= first && g < first + sums.length ? (sums[g - first] as string) : x)) : col));
  return { state: { ...s, totals, valueChunksReceived: s.valueChunksReceived + 1 }, messages: [] };
}

/** Who sends the buyer which step. */
const HANDLERS: Handlers<JaBuyerState> = {
  provider: { [JaStep.ProviderHello]: providerHello, [JaStep.ProviderBlinded]: providerBlinded },
  exchange: { [JaStep.Result]: exchangeResult, [JaStep.ResultValues]: exchangeResultValues },
};

function done(s: JaBuyerState): boolean {
  return s.result !== null && s.valueChunksReceived === resultLayout(s, s.result.codes.length).length;
}

/** The buyer's role: takes 4, 5 from the provider and 13, 14 from the exchange; its result is the released groups. */
export const jaBuyer: Role<JaBuyerState, JaBuyerInit, JaContext, JaResult> = {
  start,
  async receive(s, from, m, ctx) {
    checkState(s, "buyer");
    const handle = handlerFor("buyer", HANDLERS, from, m);
    checkBinding(s, m.header);
    if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
    return (handle as NonNullable<typeof handle>)(s, m, ctx);
  },
  done,
  result(s) {
    checkState(s, "buyer");
    return buyerResult(s, done(s));
  },
};
