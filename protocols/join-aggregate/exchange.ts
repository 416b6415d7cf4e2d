/**
 * join-aggregate's exchange: the matcher and aggregator. It takes the
 * buyer's key, hello, weights and the provider's elements raised by the
 * buyer (1, 10, 11, 12 from the buyer) and the provider's hello, row counts,
 * encrypted statistics and the buyer's elements raised by the provider (6,
 * 7, 8, 9 from the provider), in any interleaving of the two streams. Once
 * every input is in it matches, counts, applies k, sums under encryption,
 * masks, re-randomises and answers the buyer (13, 14). In a job with dp it
 * releases every group, adds the provider's noise share (sent encrypted with
 * its statistics) and its own (through the zero-sum mask) to every block,
 * and sends no COUNT(*) in the clear: COUNT(*)'s block is the provider's
 * share of the group's code alone, its mask's slots summing to the count it
 * computed plus its own share (dp.ts). What it learns: ./index.ts.
 */
import { BoundExceededError, KeyMismatchError, zeroSumMasks } from "../../engine/he/index.js";
import type { JoinCiphertext, JoinCounts, JoinResult, JoinWeights, ProtocolMessage } from "../codec.js";
import { InvalidMessageError, RefusedError, WrongStepError } from "../errors.js";
import type { Outgoing, Role, Step } from "../role.js";
import { checkBinding, expectStep, header, withRoom } from "../steps.js";
import { groupCounts, releasedGroups, weightMasks, type Matching } from "./groups.js";
import { cryptoUniformSource } from "../../engine/dp/index.js";
import { addToBlockSums, countSlotsMask, JA_NOISE_SLOTS, jaExchangeNoise, jaNoiseRows, slotResidues, withNoiseShares } from "./dp.js";
import { checkBuyerKeys, checkHello, checkKey, concatU32, countInSlots, countNoiseInline, countSlot, handlerFor, nextChunk, noiseBlockColumns, noiseInline, providerColumns, resultLayout, readU32, receiveCompared, u32le, valueChunkCount, type Handlers } from "./messages.js";
import {
  checkState,
  jaHeOptions,
  JA_MAX_GROUPS,
  JA_SLOTS,
  JaStep,
  PROVIDER_BLOCKS_PER_CHUNK,
  resolveJaParams,
  withHe,
  type JaContext,
  type JaResolved,
  type JoinAggregateParams,
} from "./params.js";

/** What the exchange's role starts from: the job's parameters only. */
export interface JaExchangeInit {
  readonly params: JoinAggregateParams;
}

export interface JaExchangeState extends JaResolved {
  readonly role: "exchange";
  readonly keyReceived: boolean;
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  // Buyer stream.
  readonly buyerHello: boolean;
  readonly buyerSetSize: number;
  readonly groups: number;
  readonly weightsReceived: number;
  /** weightsReceived + 1 offsets in use (grown as the weights arrive). */
  readonly weightOffsets: Uint32Array;
  readonly weightCodes: Uint32Array[];
  readonly weightValues: Uint32Array[];
  readonly providerDoubledHello: boolean;
  readonly providerDoubled: Uint8Array;
  readonly providerDoubledReceived: number;
  // Provider stream.
  readonly providerHello: boolean;
  readonly providerSetSize: number;
  readonly countsReceived: number;
  readonly counts: Uint32Array;
  readonly valueChunks: Uint8Array[];
  readonly buyerDoubled: Uint8Array;
  readonly buyerDoubledReceived: number;
  readonly finished: boolean;
}

async function start(init: JaExchangeInit): Promise<Step<JaExchangeState>> {
  const r = resolveJaParams(init.params);
  const state: JaExchangeState = {
    ...r,
    role: "exchange",
    keyReceived: false,
    publicKey: new Uint8Array(0),
    keyId: "",
    buyerHello: false,
    buyerSetSize: 0,
    groups: 0,
    weightsReceived: 0,
    weightOffsets: new Uint32Array(1),
    weightCodes: [],
    weightValues: [],
    providerDoubledHello: false,
    providerDoubled: new Uint8Array(0),
    providerDoubledReceived: 0,
    providerHello: false,
    providerSetSize: 0,
    countsReceived: 0,
    counts: new Uint32Array(0),
    valueChunks: [],
    buyerDoubled: new Uint8Array(0),
    buyerDoubledReceived: 0,
    finished: false,
  };
  return { state, messages: [] };
}

// ------------------------------------------------------------------ handlers: from the buyer

/** Step 1, buyer → exchange: the buyer's HE public key (statistics that came first on the provider's stream are checked against it). */
async function buyerKey(s: JaExchangeState, m: ProtocolMessage, ctx: JaContext): Promise<JaExchangeState> {
  if (s.keyReceived) throw new WrongStepError("the key was already received");
  const { key, keyId } = await withHe(s, ctx, async (he) => {
    const checked = await checkKey(s, m, he, ctx.pool);
    // Statistics that arrived before the key (another stream) are checked against it now.
    for (const c of s.valueChunks) if (he.inspect(c).keyId !== checked.keyId) throw new KeyMismatchError("the provider's statistics are not under the buyer's key");
    return checked;
  });
  return { ...s, keyReceived: true, publicKey: key.publicKey.slice(), keyId };
}

/** Step 10, buyer → exchange: the buyer's set size and number of groups. */
function buyerHello(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  if (s.buyerHello) throw new WrongStepError("the buyer's hello was already received");
  const h = checkHello(s, m, JaStep.BuyerExchangeHello);
  checkBuyerKeys(s, h.setSize, "the buyer's hello");
  if ((h.groups < 1 && h.setSize > 0) || h.groups > JA_MAX_GROUPS || (!s.grouped && h.groups !== 1)) throw new InvalidMessageError("the buyer announces an invalid number of groups");
  if (s.providerHello && h.setSize !== s.buyerSetSize) throw new InvalidMessageError("the buyer's set size differs from the one the provider received");
  // Buffers grow as the chunks arrive: nothing is sized from the announcement.
  return { ...s, buyerHello: true, buyerSetSize: h.setSize, groups: h.groups };
}

/** Step 11, buyer → exchange: per buyer position, the one group code of its rows and how many rows (one group per key). */
function buyerWeights(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  const step = JaStep.BuyerWeights;
  if (!s.buyerHello) throw new WrongStepError("weights before the buyer's hello");
  const { chunk, want } = nextChunk(m, step, "joinWeights", s.weightsReceived, s.buyerSetSize, s.chunkElements);
  const w = m as JoinWeights;
  if (w.count !== want) throw new InvalidMessageError(`step ${step} chunk ${chunk} must describe ${want} positions`);
  const off = readU32(w.offsets);
  const codes = readU32(w.codes);
  const weights = readU32(w.weights);
  if (off[0] !== 0 || off[w.count] !== codes.length) throw new InvalidMessageError("weights offsets do not cover the codes");
  for (let i = 0; i < w.count; i++) {
    const n = (off[i + 1] as number) - (off[i] as number);
    if (n < 1) throw new InvalidMessageError("every buyer position must have a group");
    // One group per key (see the threat model): a key in two groups would let A − B isolate one key under k.
    if (n > 1) throw new InvalidMessageError("a buyer position carries weights for more than one group: each key must fall in one group");
  }
  let rows = 0;
  for (let i = 0; i < codes.length; i++) {
    if ((codes[i] as number) >= s.groups) throw new InvalidMessageError("a weight names an unknown group code");
    if ((weights[i] as number) < 1) throw new InvalidMessageError("a weight must be at least 1");
    if (s.dp && (weights[i] as number) > s.dp.maxRowsPerKey) throw new InvalidMessageError(`a weight exceeds the job's maxRowsPerKey ${s.dp.maxRowsPerKey} (differential privacy bounds each key's rows)`);
    rows += weights[i] as number;
  }
  if (rows > s.maxJoinRows) throw new InvalidMessageError("the weights exceed maxJoinRows");
  const base = s.weightCodes.reduce((n, a) => n + a.length, 0);
  const offsets = withRoom(s.weightOffsets, s.weightsReceived + 1, w.count, s.buyerSetSize + 1);
  for (let i = 1; i <= w.count; i++) offsets[s.weightsReceived + i] = base + (off[i] as number);
  return { ...s, weightsReceived: s.weightsReceived + w.count, weightOffsets: offsets, weightCodes: [...s.weightCodes, codes], weightValues: [...s.weightValues, weights] };
}

/** Step 12, buyer → exchange: its hello (the sizes), then the provider's elements raised by the buyer, H(y)^pb, in the provider's order. */
function buyerRaisedProvider(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  const step = JaStep.ProviderDoubled;
  if (!s.providerDoubledHello) {
    const h = checkHello(s, m, step);
    checkBuyerKeys(s, h.peerSetSize, "the buyer's raised elements");
    if (s.providerHello && h.setSize !== s.providerSetSize) throw new InvalidMessageError("the buyer raised a provider set of another size");
    if (s.buyerHello && h.peerSetSize !== s.buyerSetSize) throw new InvalidMessageError("the buyer's set size differs between its messages");
    return { ...s, providerDoubledHello: true, ...(s.providerHello ? {} : { providerSetSize: h.setSize }) };
  }
  const r = receiveCompared(m, step, s.providerDoubled, s.providerDoubledReceived, s.providerSetSize, s.chunkElements);
  return { ...s, providerDoubled: r.elements, providerDoubledReceived: s.providerDoubledReceived + r.count };
}

// ------------------------------------------------------------------ handlers: from the provider

/** Step 6, provider → exchange: its padded set size and the buyer set size it received. */
function providerHello(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  if (s.providerHello) throw new WrongStepError("the provider's hello was already received");
  const h = checkHello(s, m, JaStep.ProviderExchangeHello);
  checkBuyerKeys(s, h.peerSetSize, "the buyer set the provider received");
  if (s.buyerHello && h.peerSetSize !== s.buyerSetSize) throw new InvalidMessageError("the provider received a buyer set of another size");
  if (s.providerDoubledHello && h.setSize !== s.providerSetSize) throw new InvalidMessageError("the provider's set size differs from the one the buyer raised");
  return { ...s, providerHello: true, providerSetSize: h.setSize, buyerSetSize: s.buyerHello ? s.buyerSetSize : h.peerSetSize };
}

/** Step 7, provider → exchange: per provider position, its rows (0: padding). */
function providerCounts(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  const step = JaStep.ProviderCounts;
  if (!s.providerHello) throw new WrongStepError("counts before the provider's hello");
  const { chunk, want } = nextChunk(m, step, "joinCounts", s.countsReceived, s.providerSetSize, s.chunkElements);
  const c = m as JoinCounts;
  if (c.count !== want) throw new InvalidMessageError(`step ${step} chunk ${chunk} must hold ${want} counts`);
  const a = readU32(c.counts);
  for (let i = 0; i < a.length; i++) if ((a[i] as number) > s.maxJoinRows) throw new InvalidMessageError("a row count exceeds maxJoinRows");
  const counts = withRoom(s.counts, s.countsReceived, a.length, s.providerSetSize);
  counts.set(a, s.countsReceived);
  return { ...s, counts, countsReceived: s.countsReceived + c.count };
}

/** Step 8, provider → exchange: a chunk of an encrypted statistic column under the buyer's key, in the provider's order. */
function providerValues(s: JaExchangeState, m: ProtocolMessage, ctx: JaContext): Promise<JaExchangeState> {
  const step = JaStep.ProviderValues;
  if (!s.providerHello) throw new WrongStepError("statistics before the provider's hello");
  return withHe(s, ctx, (he) => {
    const n = he.params.slotCount;
    const { perColumn, data, total, length: columnLength } = valueChunkCount(s, s.providerSetSize);
    const idx = s.valueChunks.length;
    if (idx >= total) throw new WrongStepError(`step ${step} is complete`);
    expectStep(m.header, step, idx, total, "joinCiphertext", m.kind);
    const c = m as JoinCiphertext;
    // With dp, after the statistics (not COUNT(*): providerColumns): one chunk of the provider's noise shares per statistic
    // column whose shares are not inline, COUNT(*)'s always, one whole block (dp.ts, noiseBlockColumns).
    const noise = idx >= data;
    const column = noise ? s.stats.length + (noiseBlockColumns(s, s.providerSetSize)[idx - data] as number) : (providerColumns(s)[Math.floor(idx / perColumn)] as number);
    const firstBlock = noise ? 0 : (idx % perColumn) * PROVIDER_BLOCKS_PER_CHUNK;
    if (c.column !== column || c.firstBlock !== firstBlock) throw new InvalidMessageError(`step ${step} chunk ${idx} must carry column ${column} from block ${firstBlock}`);
    const info = he.inspect(c.ciphertext);
    const length = noise ? n : Math.min(columnLength - firstBlock * n, PROVIDER_BLOCKS_PER_CHUNK * n);
    if (info.length !== length || info.rows !== 1) throw new InvalidMessageError(`step ${step} chunk ${idx} must hold ${length} slots`);
    // Until the buyer's key is in (it travels on another stream), the key id is checked when it comes.
    if (s.keyReceived && info.keyId !== s.keyId) throw new KeyMismatchError("the statistics are not under the buyer's key");
    return { ...s, valueChunks: [...s.valueChunks, c.ciphertext.slice()] };
  });
}

/** Step 9, provider → exchange: the buyer's elements raised by the provider, H(x)^bp, in the buyer's order. */
function providerRaisedBuyer(s: JaExchangeState, m: ProtocolMessage): JaExchangeState {
  if (!s.providerHello) throw new WrongStepError("raised buyer elements before the provider's hello");
  const r = receiveCompared(m, JaStep.BuyerDoubled, s.buyerDoubled, s.buyerDoubledReceived, s.buyerSetSize, s.chunkElements);
  return { ...s, buyerDoubled: r.elements, buyerDoubledReceived: s.buyerDoubledReceived + r.count };
}

// ------------------------------------------------------------------ the answer

function inputsComplete(s: JaExchangeState): boolean {
  return (
    s.keyReceived &&
    s.buyerHello &&
    s.weightsReceived === s.buyerSetSize &&
    s.providerDoubledHello &&
    s.providerDoubledReceived === s.providerSetSize &&
    s.providerHello &&
    s.countsReceived === s.providerSetSize &&
    s.valueChunks.length === valueChunkCount(s, s.providerSetSize).total &&
    s.buyerDoubledReceived === s.buyerSetSize
  );
}

/**
 * All inputs are in: match, count, suppress (steps 13), aggregate under
 * encryption, add a zero-sum mask, re-randomise (14).
 */
async function finish(s: JaExchangeState, ctx: JaContext): Promise<Step<JaExchangeState>> {
  // On the pool: in slices with the event loop let run between them (10^6 positions take ~0.5 s here), or partition by partition on a cluster.
  const matching: Matching = {
    hit: await ctx.pool.matchElements(s.buyerDoubled, s.providerDoubled), // per provider position: buyer position or −1
    counts: s.counts,
    weightOffsets: s.weightOffsets,
    codes: concatU32(s.weightCodes),
    weights: concatU32(s.weightValues),
    buyerSetSize: s.buyerSetSize,
    providerSetSize: s.providerSetSize,
  };
  const { count, keys } = await groupCounts(matching, s.groups);
  // With dp every group is released (noise only where nothing matched) and k is the buyer's, on the noisy count (dp.ts).
  const released = s.dp ? Array.from({ length: s.groups }, (_, g) => g) : releasedGroups(count, keys, s.minGroupSize);
  const suppressed = s.groups - released.length;
  for (const g of released) if ((count[g] as bigint) > BigInt(s.maxJoinRows)) throw new BoundExceededError(`a group joins more rows than maxJoinRows ${s.maxJoinRows}: its totals could wrap`);
  const rel = released.length;
  // With dp no COUNT(*) in the clear: zeros (the buyer gets the count only noisy, as statistic c).
  const counts = new Uint8Array(rel * 8);
  if (!s.dp) released.forEach((g, i) => new DataView(counts.buffer).setBigUint64(i * 8, count[g] as bigint, true));
  const result: JoinResult = { kind: "joinResult", header: header(s, JaStep.Result, 0, 1), codes: u32le(Uint32Array.from(released)), counts, suppressed };
  const out: Outgoing[] = [{ to: "buyer", message: result }];
  if (rel > 0) {
    const dp = s.dp;
    // With dp a group's mask selects its provider share of each column: after the positions when the shares are inline,
    // else in the provider's noise block, read before the column (block 0) (dp.ts).
    const inline = noiseInline(s, s.providerSetSize);
    const { perColumn, data, length: columnLength } = valueChunkCount(s, s.providerSetSize);
    const masks = await weightMasks(matching, released, dp && !inline ? JA_SLOTS : 0, inline ? columnLength - s.providerSetSize : 0);
    if (dp) withNoiseShares(masks, released, inline ? s.providerSetSize : 0);
    const rows = Math.max(1, Number(released.reduce((m, g) => ((count[g] as bigint) > m ? (count[g] as bigint) : m), 0n)));
    const rng = dp ? (ctx.noise ?? cryptoUniformSource()) : null;
    // Each share counts as this many rows of the context's per-row bound (dp.ts).
    const noiseRows = dp ? jaNoiseRows(dp, BigInt(s.he.maxAbsValue)) : 0;
    // COUNT(*) with dp: one mask, weight 1 at the provider's share of every released code — over the first column's last chunk
    // (from block `countFrom`) when the shares are in its spare slots, else over the count's noise block alone (the provider sends
    // no count column). A part starting at a whole block keeps every slot's place within its block.
    const countInline = countNoiseInline(s, s.providerSetSize);
    const countFrom = countInline ? (perColumn - 1) * PROVIDER_BLOCKS_PER_CHUNK : 0;
    const countMask = dp ? [countSlotsMask(released, countInline ? s.providerSetSize + JA_NOISE_SLOTS - countFrom * JA_SLOTS : 0, countInline ? columnLength - countFrom * JA_SLOTS : JA_SLOTS)] : [];
    await withHe(s, ctx, async (he) => {
      const n = he.params.slotCount;
      const sent = providerColumns(s);
      const noiseBlocks = noiseBlockColumns(s, s.providerSetSize);
      const layout = resultLayout(s, rel);
      const options = jaHeOptions(s);
      for (let col = 0; col < s.stats.length; col++) {
        // With dp, COUNT(*) is one block: slot `code` the provider's share of that group code; the count goes into the mask below.
        const inSlots = countInSlots(s, col);
        // The column's chunks as they arrived (the pool cuts its tasks from them; never joined whole here), with dp after the
        // provider's noise block unless its shares are inline: one masked block sum adds each group's rows and the provider's
        // share of its code. COUNT(*)'s shares inline: the first column's last chunk, read with the count's mask.
        const j = sent.indexOf(col);
        const chunks = inSlots && countInline ? s.valueChunks.slice(perColumn - 1, perColumn) : j < 0 ? [] : s.valueChunks.slice(j * perColumn, (j + 1) * perColumn);
        const b = noiseBlocks.indexOf(col);
        const column = b >= 0 ? [s.valueChunks[data + b] as Uint8Array, ...chunks] : chunks;
        const sums = await ctx.pool.heMaskedBlockSums(options, column, inSlots ? countMask : masks, rows + noiseRows);
        let residues: Uint32Array[];
        if (dp && rng && inSlots) {
          // This party's share and the exact count it holds anyway, in the slot of each released code (dp.ts).
          const x = jaExchangeNoise(dp, col, rel, rng);
          const slots = released.map((g) => countSlot(s, s.providerSetSize, g));
          residues = slotResidues(he.params.plainModuli, n, slots, x.map((e, i) => e + (count[released[i] as number] as bigint)));
        } else {
          residues = zeroSumMasks(he.params.plainModuli, rel, n);
          // This party's share goes into the mask's block sums (dp.ts).
          if (dp && rng) addToBlockSums(residues, he.params.plainModuli, n, jaExchangeNoise(dp, col, rel, rng));
        }
        const mask = await ctx.pool.heEncryptResidues(options, s.publicKey, residues, { level: "mask" });
        // Without dp the mask adds 0 to every block total; with dp it adds the exchange's share.
        const fresh = await ctx.pool.heReRandomize(options, [sums, mask], s.publicKey, rows + 2 * noiseRows);
        for (const [i, part] of layout.entries()) {
          if (part.column !== col) continue;
          out.push({
            to: "buyer",
            message: { kind: "joinCiphertext", header: header(s, JaStep.ResultValues, i, layout.length), column: col, firstBlock: part.firstBlock, ciphertext: he.sliceBlocks(fresh, part.firstBlock, part.firstBlock + part.blocks) },
          });
        }
        ctx.onProgress?.("exchange: aggregate under encryption", col + 1, s.stats.length);
      }
    });
  }
  // Release everything the exchange held.
  const state: JaExchangeState = {
    ...s,
    finished: true,
    valueChunks: [],
    buyerDoubled: new Uint8Array(0),
    providerDoubled: new Uint8Array(0),
    weightCodes: [],
    weightValues: [],
    counts: new Uint32Array(0),
    weightOffsets: new Uint32Array(1),
  };
  return { state, messages: out };
}

type Update = (s: JaExchangeState, m: ProtocolMessage, ctx: JaContext) => JaExchangeState | Promise<JaExchangeState>;

/** A step's update, then the answer once every input is in. */
const thenFinish =
  (update: Update) =>
  async (s: JaExchangeState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaExchangeState>> => {
    const next = await update(s, m, ctx);
    return inputsComplete(next) ? finish(next, ctx) : { state: next, messages: [] };
  };

/** Who sends the exchange which step. */
const HANDLERS: Handlers<JaExchangeState> = {
  buyer: {
    [JaStep.Key]: thenFinish(buyerKey),
    [JaStep.BuyerExchangeHello]: thenFinish(buyerHello),
    [JaStep.BuyerWeights]: thenFinish(buyerWeights),
    [JaStep.ProviderDoubled]: thenFinish(buyerRaisedProvider),
  },
  provider: {
    [JaStep.ProviderExchangeHello]: thenFinish(providerHello),
    [JaStep.ProviderCounts]: thenFinish(providerCounts),
    [JaStep.ProviderValues]: thenFinish(providerValues),
    [JaStep.BuyerDoubled]: thenFinish(providerRaisedBuyer),
  },
};

/** The exchange's role: takes 1, 10, 11, 12 from the buyer and 6, 7, 8, 9 from the provider; learns nothing it takes away. */
export const jaExchange: Role<JaExchangeState, JaExchangeInit, JaContext> = {
  start,
  async receive(s, from, m, ctx) {
    checkState(s, "exchange");
    const handle = handlerFor("exchange", HANDLERS, from, m);
    checkBinding(s, m.header);
    if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
    if (s.finished) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
    return (handle as NonNullable<typeof handle>)(s, m, ctx);
  },
  done: (s) => s.finished,
  result: () => undefined,
};
