/**
 * join-aggregate's provider: it pre-aggregates its table per distinct key,
 * pads, shuffles and blinds its keys, and waits for the buyer (1, 2, 3 from
 * the buyer); on the buyer's hello it sends its hello and blinded set to the
 * buyer (4, 5) and its hello, row counts and encrypted statistics to the
 * exchange (6, 7, 8), then raises the buyer's elements for the exchange (9).
 * In a job with dp it clips its values to ±V and sends its noise shares
 * with its statistics (step 8: in a column's spare slots when its last
 * block has room, else in blocks after them), COUNT(*)'s among them (always
 * a block of its own): the count itself is not encrypted, the exchange has
 * it from the row counts of step 7 (dp.ts). What it learns: ./index.ts.
 */
import { randomBytes } from "node:crypto";
import type { Table } from "apache-arrow";
import { InvalidArgumentError } from "../../engine/errors.js";
import { createGroup } from "../../engine/group/index.js";
import type { KeyColumn } from "../../engine/columns/index.js";
import { BoundExceededError } from "../../engine/he/index.js";
import type { PackedBytes } from "../../engine/packed.js";
import { permuteFixedAsync } from "../../engine/psi/index.js";
import type { JoinCiphertext, ProtocolMessage } from "../codec.js";
import { ProtocolError, RefusedError, WrongStepError } from "../errors.js";
import type { Outgoing, Role, Step } from "../role.js";
import { batches, checkBinding, chunkCount, header } from "../steps.js";
import { scaledValues } from "../aggregate.js";
import { cryptoUniformSource } from "../../engine/dp/index.js";
import { JA_NOISE_SLOTS, jaProviderNoise } from "./dp.js";
import { checkBuyerKeys, checkHello, checkKey, countNoiseInline, handlerFor, hello, noiseBlockColumns, providerColumns, raiseBatch, u32le, valueChunkCount, type Handlers } from "./messages.js";
import {
  checkState,
  ELEMENT,
  groupSpec,
  jaDst,
  jaHeOptions,
  JA_SLOTS,
  JaStep,
  paddedSize,
  PROVIDER_BLOCKS_PER_CHUNK,
  resolveJaParams,
  withHe,
  type JaContext,
  type JaResolved,
  type JoinAggregateParams,
} from "./params.js";

export interface JaProviderInput {
  readonly keys: KeyColumn;
  readonly table: Table;
}

/** What the provider's role starts from: the job's parameters and its own input. */
export interface JaProviderInit extends JaProviderInput {
  readonly params: JoinAggregateParams;
}

export interface JaProviderState extends JaResolved {
  readonly role: "provider";
  readonly secret: Uint8Array;
  /** Padded set size (positions). */
  readonly setSize: number;
  readonly blinded: Uint8Array;
  /** Per position: rows with that key (0 = padding). */
  readonly counts: Uint32Array;
  /** Per column it encrypts (messages.ts providerColumns, in order), per position: the statistic (scaled integers). */
  readonly values: readonly BigInt64Array[];
  readonly keyReceived: boolean;
  readonly publicKey: Uint8Array;
  readonly buyerHello: boolean;
  readonly peerSetSize: number;
  readonly received: number;
}

/**
 * Starts the provider: pre-aggregates per distinct key, pads, shuffles and
 * blinds. Sends nothing until the buyer's key and hello.
 */
async function start(init: JaProviderInit, ctx: JaContext): Promise<Step<JaProviderState>> {
  const r = resolveJaParams(init.params);
  const keys = init.keys;
  if (keys.length !== init.table.numRows) throw new InvalidArgumentError("the key column and the table differ in rows");
  const group = await createGroup(groupSpec(r, ctx));
  const d = await ctx.pool.distinctKeys(keys);
  const size = paddedSize(d.count, r.padding);
  if (size > r.maxSetSize) throw new BoundExceededError(`the provider has ${d.count} distinct keys, the job allows ${r.maxSetSize}`);
  const V = BigInt(r.valueBound);
  // Per distinct key (padded to `size` with zeros): c, and per stat its total (checked to stay
  // within int64), column by column on a worker (engine/columns int64GroupStats).
  const c = (await ctx.pool.int64GroupStats(d.rowToDistinct, d.count, [], size)).rows;
  // With dp, COUNT(*) is noised like the others but not encrypted here: the exchange adds each group's count, which it
  // computes from `c` (step 7), to its zero-sum mask with its share; this party sends only the count's noise (dp.ts).
  const acc: BigInt64Array[] = [];
  for (const [ci, column] of r.columns.entries()) {
    // With dp, values beyond ±V are clipped rather than refused: a refusal would be an observable that depends on one row (dp.ts).
    const { values, valid } = r.dp ? clipped(scaledValues(init.table, column, r.scale, I64_MAX), V) : scaledValues(init.table, column, r.scale, V);
    const { n, s: sum, q } = (await ctx.pool.int64GroupStats(d.rowToDistinct, d.count, [{ values, valid, squares: r.squares[ci] === true }], size)).columns[0] as { n: BigInt64Array; s: BigInt64Array; q: BigInt64Array | null };
    acc.push(n, sum, ...(q ? [q] : []));
  }
  // Padding: random 32-byte messages, hashed like keys (indistinguishable after blinding), count 0.
  const pad = size - d.count;
  let messages: PackedBytes = d.distinct;
  if (pad > 0) {
    const extra = randomBytes(pad * 32);
    const total = d.distinct.data.length + extra.length;
    const data = new Uint8Array(total);
    data.set(d.distinct.data.subarray(0, d.distinct.offsets[d.count] as number), 0);
    data.set(extra, d.distinct.offsets[d.count] as number);
    const offsets = new Uint32Array(size + 1);
    offsets.set(d.distinct.offsets.subarray(0, d.count + 1));
    const base = d.distinct.offsets[d.count] as number;
    for (let i = 1; i <= pad; i++) offsets[d.count + i] = base + i * 32;
    messages = { data, offsets, length: size } as PackedBytes;
  }
  const secret = group.randomScalar();
  const blinded = await ctx.pool.hashToGroup(groupSpec(r, ctx), messages, jaDst(r.group, r.job), secret, {
    onProgress: (done, tot) => ctx.onProgress?.("provider: hash and blind", done, tot),
  });
  const order = await ctx.pool.shuffledOrder(size); // position p holds distinct/pad index order[p]
  // The per-key columns in position order (padding holds 0s), in slices on this thread.
  const bytesOf = (a: Uint32Array | BigInt64Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const counts = new Uint32Array((await permuteFixedAsync(bytesOf(c), 4, order)).buffer);
  const values: BigInt64Array[] = [];
  for (const a of acc) values.push(new BigInt64Array((await permuteFixedAsync(bytesOf(a), 8, order)).buffer));
  const state: JaProviderState = {
    ...r,
    role: "provider",
    secret,
    setSize: size,
    blinded: await permuteFixedAsync(blinded, ELEMENT, order),
    counts,
    values,
    keyReceived: false,
    publicKey: new Uint8Array(0),
    buyerHello: false,
    peerSetSize: 0,
    received: 0,
  };
  return { state, messages: [] };
}

const I64_MAX = (1n << 63n) - 1n;

/** Scaled values clipped to ±V (in place). */
function clipped(x: { values: BigInt64Array; valid: Uint8Array }, V: bigint): { values: BigInt64Array; valid: Uint8Array } {
  const a = x.values;
  for (let i = 0; i < a.length; i++) {
    const v = a[i] as bigint;
    if (v > V) a[i] = V;
    else if (v < -V) a[i] = -V;
  }
  return x;
}

/**
 * Encrypts every statistic column it sends (providerColumns: with dp not
 * COUNT(*)'s) in the provider's order on the pool's workers, left at the
 * masked-sums level (the exchange's only use of them), and cuts each into
 * chunks of whole blocks. With dp its noise shares go after the column's
 * positions when its last block has room for them (noiseInline), else in
 * blocks of their own after the columns (noiseBlockColumns).
 */
async function encryptStats(s: JaProviderState, ctx: JaContext): Promise<JoinCiphertext[]> {
  const { perColumn, total, length } = valueChunkCount(s, s.setSize);
  const columns = providerColumns(s);
  const countInline = countNoiseInline(s, s.setSize);
  // This party's noise shares, one per possible group code per statistic, COUNT(*) included (dp.ts): drawn here, sent only encrypted.
  const noise = s.dp ? jaProviderNoise(s.dp, ctx.noise ?? cryptoUniformSource()) : [];
  const out: JoinCiphertext[] = [];
  for (const [j, k] of columns.entries()) {
    let values = s.values[j] as BigInt64Array;
    if (length > s.setSize) {
      // Inline: the shares in the spare slots of the last block, where the exchange's masks read them (slot setSize + code);
      // in the first column then COUNT(*)'s too, when there is room (countNoiseInline).
      values = new BigInt64Array(length);
      values.set(s.values[j] as BigInt64Array);
      values.set(noise[k] as BigInt64Array, s.setSize);
      if (j === 0 && countInline) values.set(noise[s.stats.findIndex((st) => st.stat === "c")] as BigInt64Array, s.setSize + JA_NOISE_SLOTS);
    }
    // Residues and encryption on the workers, in chunks of whole blocks: never one column here.
    const chunks = await ctx.pool.heEncryptInt64Parts(jaHeOptions(s), s.publicKey, values, {
      level: "mask",
      blocksPerPart: PROVIDER_BLOCKS_PER_CHUNK,
      onProgress: (done, all) => ctx.onProgress?.("provider: encrypt statistics", j * all + done, columns.length * all),
    });
    if (chunks.length !== perColumn) throw new ProtocolError("the encrypted statistics came back in an unexpected number of chunks");
    chunks.forEach((ciphertext, c) => {
      out.push({ kind: "joinCiphertext", header: header(s, JaStep.ProviderValues, j * perColumn + c, total), column: k, firstBlock: c * PROVIDER_BLOCKS_PER_CHUNK, ciphertext });
    });
  }
  // The other shares, each statistic's padded with zeros to one whole block (the exchange reads it as the block before the
  // column's, or alone for COUNT(*)).
  for (const [i, k] of noiseBlockColumns(s, s.setSize).entries()) {
    const block = new BigInt64Array(JA_SLOTS);
    block.set(noise[k] as BigInt64Array);
    const [ciphertext, ...rest] = await ctx.pool.heEncryptInt64Parts(jaHeOptions(s), s.publicKey, block, { level: "mask", blocksPerPart: 1 });
    if (!ciphertext || rest.length > 0) throw new ProtocolError("the encrypted noise came back in an unexpected number of chunks");
    out.push({ kind: "joinCiphertext", header: header(s, JaStep.ProviderValues, perColumn * columns.length + i, total), column: s.stats.length + k, firstBlock: 0, ciphertext });
  }
  return out;
}

// ------------------------------------------------------------------ handlers, one per step

/** Step 1, buyer → provider: the buyer's HE public key, checked against the job's options. */
async function buyerKey(s: JaProviderState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaProviderState>> {
  if (s.keyReceived) throw new WrongStepError("the key was already received");
  const { key } = await withHe(s, ctx, (he) => checkKey(s, m, he, ctx.pool));
  return { state: { ...s, keyReceived: true, publicKey: key.publicKey.slice() }, messages: [] };
}

/**
 * Step 2, buyer → provider: the buyer's set size. The provider answers with
 * its hello and blinded set to the buyer (4, 5) and its hello, row counts
 * and encrypted statistics to the exchange (6, 7, 8).
 */
async function buyerHello(s: JaProviderState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaProviderState>> {
  if (!s.keyReceived) throw new WrongStepError("the buyer's hello before its key");
  if (s.buyerHello) throw new WrongStepError("the buyer's hello was already received");
  const h = checkHello(s, m, JaStep.BuyerHello);
  checkBuyerKeys(s, h.setSize, "the buyer's hello");
  const state: JaProviderState = { ...s, buyerHello: true, peerSetSize: h.setSize };
  const out: Outgoing[] = [];
  out.push({ to: "buyer", message: hello(s, JaStep.ProviderHello, s.setSize, { peerSetSize: h.setSize, peerChunkElements: h.chunkElements }) });
  for (const b of batches(s, JaStep.ProviderBlinded, s.blinded, s.chunkElements, ELEMENT)) out.push({ to: "buyer", message: b });
  out.push({ to: "exchange", message: hello(s, JaStep.ProviderExchangeHello, s.setSize, { peerSetSize: h.setSize, peerChunkElements: h.chunkElements }) });
  const per = s.chunkElements;
  const chunks = chunkCount(s.setSize, per);
  for (let c = 0; c < chunks; c++) {
    const a = s.counts.subarray(c * per, Math.min(s.setSize, (c + 1) * per));
    out.push({ to: "exchange", message: { kind: "joinCounts", header: header(s, JaStep.ProviderCounts, c, chunks), count: a.length, counts: u32le(a) } });
  }
  const cts = await encryptStats(s, ctx);
  for (const m2 of cts) out.push({ to: "exchange", message: m2 });
  // The blinded set, the counts and the statistics are sent: drop them from the state (it is
  // persisted while the buyer's elements are raised, and needs only the scalar for that).
  return { state: { ...state, values: [], blinded: new Uint8Array(0), counts: new Uint32Array(0) }, messages: out };
}

/** Step 3, buyer → provider: a chunk of H(x)^b, raised to p and sent to the exchange as step 9. */
async function buyerBlinded(s: JaProviderState, m: ProtocolMessage, ctx: JaContext): Promise<Step<JaProviderState>> {
  if (!s.buyerHello) throw new WrongStepError("the buyer's elements before its hello");
  if (s.received >= s.peerSetSize) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  const reply = await raiseBatch(s, m, ctx, { step: JaStep.BuyerBlinded, reply: JaStep.BuyerDoubled, received: s.received, total: s.peerSetSize, per: s.chunkElements, phase: "provider: raise buyer elements" });
  return { state: { ...s, received: s.received + reply.count }, messages: [{ to: "exchange", message: reply }] };
}

/** Who sends the provider which step: the buyer, all of them. */
const HANDLERS: Handlers<JaProviderState> = {
  buyer: { [JaStep.Key]: buyerKey, [JaStep.BuyerHello]: buyerHello, [JaStep.BuyerBlinded]: buyerBlinded },
};

/** The provider's role: takes 1, 2, 3 from the buyer only; learns nothing it takes away. */
export const jaProvider: Role<JaProviderState, JaProviderInit, JaContext> = {
  start,
  async receive(s, from, m, ctx) {
    checkState(s, "provider");
    const handle = handlerFor("provider", HANDLERS, from, m);
    checkBinding(s, m.header);
    if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
    return (handle as NonNullable<typeof handle>)(s, m, ctx);
  },
  done: (s) => s.buyerHello && s.received === s.peerSetSize,
  result: () => undefined,
};
