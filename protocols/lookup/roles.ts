/**
 * lookup's two roles: the buyer (steps 1 and 2 out, 3, 4 and 5 in) and the
 * provider (evaluates within the buyer's budget, sends the prepared rows) —
 * see protocols/lookup/index.ts for the protocol and docs/protocols/lookup.md.
 */
import { DataType, Schema, Table } from "apache-arrow";
import { InvalidArgumentError, InvalidPointError } from "../../engine/errors.js";
import { type KeyColumn } from "../../engine/columns/index.js";
import { createGroup, GroupId } from "../../engine/group/index.js";
import { distinctKeys, ElementIndex } from "../../engine/psi/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { isJobId, MAX_CHUNK_ELEMENTS, ProtocolId, type ElementBatch, type LookupHello, type LookupTableInfo, type ProtocolMessage, type SealedRows } from "../codec.js";
import { BelowMinimumError, BudgetExceededError, InvalidMessageError, RefusedError, ProtocolError, WrongSenderError, WrongStepError } from "../errors.js";
import { assertState } from "../state.js";
import { RoleName, type Outgoing, type Role } from "../role.js";
import { batches, checkBinding, chunkCount, expectStep, header, pointError } from "../steps.js";

import { aad, cellFromJson, checkProduct, DEFAULT_LOOKUP_CHUNK, deriveTagAndKey, ELEMENT, LOOKUP_VERSION, LookupStep, MAX_SEALED_BYTES, NONCE_BYTES, open, preparedTableInfo, schemaFromBytes, schemaToBytes, TAG_BYTES, AEAD_TAG_BYTES } from "./prepare.js";
// ------------------------------------------------------------ states

export interface LookupParams {
  readonly job: string;
  readonly product: string;
  readonly version: number;
  readonly chunkElements?: number;
  /** The buyer releases labels only when at least this many distinct keys matched; default 1 (nothing withheld). */
  readonly minIntersection?: number;
}

export interface LookupContext {
  readonly pool: CryptoPool;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

interface Common {
  readonly protocol: typeof ProtocolId.Lookup;
  readonly version: number;
  readonly job: string;
  readonly product: string;
  readonly productVersion: number;
  readonly chunkElements: number;
  /** The buyer's result is withheld below this many matched distinct keys (absent in older states: 1). */
  readonly minIntersection?: number;
}

export interface LookupBuyerState extends Common {
  readonly role: "buyer";
  readonly rows: number;
  readonly rowToDistinct: Int32Array;
  /** The buyer's distinct keys (it finalises with them). */
  readonly keyData: Uint8Array;
  readonly keyOffsets: Uint32Array;
  readonly queryCount: number;
  /** One blind per distinct key. */
  readonly blinds: Uint8Array;
  readonly infoReceived: boolean;
  readonly tableRows: number;
  readonly tableChunkRows: number;
  readonly labelSchema: Uint8Array;
  readonly evaluated: Uint8Array;
  readonly evaluatedReceived: number;
  /** After finalising: tag and AEAD key per distinct key. */
  readonly tags: Uint8Array;
  readonly aeadKeys: Uint8Array;
  readonly sealedReceived: number;
  /** Per distinct key, its opened label rows as JSON text ("" when none). */
  readonly opened: string[];
}

export interface LookupProviderState extends Common {
  readonly role: "provider";
  readonly secretKey: Uint8Array;
  /** Evaluations this buyer may still ask for. */
  readonly budgetRemaining: number;
  readonly helloReceived: boolean;
  readonly queryCount: number;
  readonly peerChunkElements: number;
  readonly received: number;
}

interface StepResult<S> {
  readonly state: S;
  readonly messages: ProtocolMessage[];
}

function resolve(p: LookupParams): Common {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  checkProduct(p.product, p.version);
  const chunkElements = p.chunkElements ?? DEFAULT_LOOKUP_CHUNK;
  if (!Number.isInteger(chunkElements) || chunkElements < 1 || chunkElements > MAX_CHUNK_ELEMENTS) throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
  const minIntersection = p.minIntersection ?? 1;
  if (!Number.isSafeInteger(minIntersection) || minIntersection < 1) throw new InvalidArgumentError("minIntersection must be a positive integer");
  return { protocol: ProtocolId.Lookup, version: LOOKUP_VERSION, job: p.job, product: p.product, productVersion: p.version, chunkElements, minIntersection };
}

// -------------------------------------------------------------- buyer

/** Starts the buyer: de-duplicates and blinds its keys; returns steps 1 and 2. */
async function lookupBuyerStart(params: LookupParams, keys: KeyColumn, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  const c = resolve(params);
  const d = distinctKeys(keys);
  const group = await createGroup({ group: GroupId.Ristretto255 });
  const blinds = new Uint8Array(d.count * 32);
  for (let i = 0; i < d.count; i++) blinds.set(group.randomScalar(), i * 32);
  const blinded = await ctx.pool.oprfBlind(d.distinct, blinds, { onProgress: (done, total) => ctx.onProgress?.("buyer: blind keys", done, total) });
  const state: LookupBuyerState = {
    ...c,
    role: "buyer",
    rows: keys.length,
    rowToDistinct: d.rowToDistinct,
    keyData: d.distinct.data,
    keyOffsets: d.distinct.offsets,
    queryCount: d.count,
    blinds,
    infoReceived: false,
    tableRows: 0,
    tableChunkRows: 0,
    labelSchema: new Uint8Array(0),
    evaluated: new Uint8Array(d.count * ELEMENT),
    evaluatedReceived: 0,
    tags: new Uint8Array(0),
    aeadKeys: new Uint8Array(0),
    sealedReceived: 0,
    opened: [],
  };
  const hello: LookupHello = {
    kind: "lookupHello",
    header: header(c, LookupStep.BuyerHello, 0, 1),
    product: c.product,
    productVersion: c.productVersion,
    queryCount: d.count,
    chunkElements: c.chunkElements,
  };
  return { state, messages: [hello, ...batches(c, LookupStep.BuyerBlinded, blinded, c.chunkElements, ELEMENT)] };
}

function lookupBuyerDone(s: LookupBuyerState): boolean {
  return s.infoReceived && s.evaluatedReceived === s.queryCount && s.sealedReceived === s.tableRows;
}

/** The buyer takes one message from the provider (steps 3, 4, 5). */
async function lookupBuyerReceive(s: LookupBuyerState, m: ProtocolMessage, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  // The provider's steps come in this order: the table's shape, the evaluated keys, the sealed rows.
  if (!s.infoReceived) return providerInfo(s, m, ctx);
  if (s.evaluatedReceived < s.queryCount) return providerEvaluated(s, m, ctx);
  if (s.sealedReceived < s.tableRows) return providerSealed(s, m);
  throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
}

/** Step 3, from the provider: the prepared table's shape (rows, tag size, label schema, chunk size). */
async function providerInfo(s: LookupBuyerState, m: ProtocolMessage, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  expectStep(m.header, LookupStep.ProviderInfo, 0, 1, "lookupTableInfo", m.kind);
  const info = m as LookupTableInfo;
  if (info.product !== s.product || info.productVersion !== s.productVersion) throw new ProtocolError("the provider answered for another product version");
  if (info.tagSize !== TAG_BYTES) throw new InvalidMessageError(`tags must be ${TAG_BYTES} bytes`);
  if (info.chunkRows < 1) throw new InvalidMessageError("chunk size must be positive");
  schemaFromBytes(info.labelSchema);
  const state: LookupBuyerState = {
    ...s,
    infoReceived: true,
    tableRows: info.rows,
    tableChunkRows: info.chunkRows,
    labelSchema: Uint8Array.from(info.labelSchema),
    opened: new Array<string>(s.queryCount).fill(""),
  };
  return { state: s.queryCount === 0 ? await finalise(state, ctx) : state, messages: [] };
}

/** Step 4, from the provider: a chunk of the buyer's blinded keys evaluated under its key; finalised once all are in. */
async function providerEvaluated(s: LookupBuyerState, m: ProtocolMessage, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  const per = s.chunkElements;
  const chunk = s.evaluatedReceived / per;
  expectStep(m.header, LookupStep.ProviderEvaluated, chunk, chunkCount(s.queryCount, per), "elementBatch", m.kind);
  const b = m as ElementBatch;
  const want = Math.min(per, s.queryCount - s.evaluatedReceived);
  if (b.elementSize !== ELEMENT || b.count !== want) throw new InvalidMessageError(`step 4 chunk ${chunk} must hold ${want} elements of ${ELEMENT} bytes`);
  const group = await createGroup({ group: GroupId.Ristretto255 });
  for (let i = 0; i < b.count; i++) {
    try {
      group.decode(b.elements.subarray(i * ELEMENT, (i + 1) * ELEMENT));
    } catch (e) {
      pointError(e instanceof InvalidPointError ? new InvalidPointError(e.message, i) : e, chunk, per);
    }
  }
  s.evaluated.set(b.elements, s.evaluatedReceived * ELEMENT);
  const state = { ...s, evaluatedReceived: s.evaluatedReceived + b.count };
  return { state: state.evaluatedReceived === s.queryCount ? await finalise(state, ctx) : state, messages: [] };
}

/** Step 5, from the provider: a chunk of the prepared table's (tag, sealed labels) rows; the buyer opens those whose tag it derived. */
function providerSealed(s: LookupBuyerState, m: ProtocolMessage): StepResult<LookupBuyerState> {
  const per = s.tableChunkRows;
  const chunk = s.sealedReceived / per;
  expectStep(m.header, LookupStep.ProviderSealed, chunk, chunkCount(s.tableRows, per), "sealedRows", m.kind);
  const r = m as SealedRows;
  const want = Math.min(per, s.tableRows - s.sealedReceived);
  if (r.count !== want) throw new InvalidMessageError(`step 5 chunk ${chunk} must hold ${want} rows`);
  if (r.tags.length !== r.count * TAG_BYTES) throw new InvalidMessageError("step 5: tags do not match the count");
  const offsets = new Uint32Array(r.count + 1);
  const dv = new DataView(r.offsets.buffer, r.offsets.byteOffset, r.offsets.byteLength);
  for (let i = 0; i <= r.count; i++) offsets[i] = dv.getUint32(i * 4, true);
  if (offsets[0] !== 0 || offsets[r.count] !== r.sealed.length) throw new InvalidMessageError("step 5: offsets do not cover the sealed bytes");
  for (let i = 0; i < r.count; i++) {
    const len = (offsets[i + 1] ?? 0) - (offsets[i] ?? 0);
    if (len < NONCE_BYTES + AEAD_TAG_BYTES || len > MAX_SEALED_BYTES) throw new InvalidMessageError("step 5: a sealed row has an invalid length");
  }
  // Open the rows whose tag the buyer derived; all checks passed, so state changes only now.
  const index = ElementIndex.build(s.tags, TAG_BYTES);
  const hits = index.matchAll(r.tags);
  const opened = s.opened.slice();
  const dec = new TextDecoder();
  for (let i = 0; i < r.count; i++) {
    const k = hits[i] ?? -1;
    if (k < 0) continue;
    const tag = r.tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES);
    const plain = open(s.aeadKeys.subarray(k * 32, k * 32 + 32), r.sealed.subarray(offsets[i], offsets[i + 1]), aad(s.product, s.productVersion, tag));
    if (plain === undefined) throw new InvalidMessageError("step 5: a sealed row for a matching tag does not authenticate");
    opened[k] = dec.decode(plain);
  }
  return { state: { ...s, sealedReceived: s.sealedReceived + r.count, opened }, messages: [] };
}

/** Finalize every evaluated element (in the pool) and derive tags and AEAD keys. */
async function finalise(s: LookupBuyerState, ctx: LookupContext): Promise<LookupBuyerState> {
  const n = s.queryCount;
  const outputs = await ctx.pool.oprfFinalize({ data: s.keyData, offsets: s.keyOffsets }, s.blinds, s.evaluated, {
    onProgress: (done, total) => ctx.onProgress?.("buyer: finalise", done, total),
  });
  const tags = new Uint8Array(n * TAG_BYTES);
  const aeadKeys = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) {
    const { tag, key } = deriveTagAndKey(outputs.subarray(i * 64, i * 64 + 64));
    tags.set(tag, i * TAG_BYTES);
    aeadKeys.set(key, i * 32);
  }
  // The blinds have served their purpose.
  return { ...s, tags, aeadKeys, blinds: new Uint8Array(0) };
}

/**
 * The buyer's output: the label schema and, per distinct key, its label rows (empty when none).
 * @throws BelowMinimumError when fewer distinct keys matched than the job's minIntersection.
 */
function lookupBuyerResult(s: LookupBuyerState): { labelSchema: Schema; rowToDistinct: Int32Array; labelsOf: (distinct: number) => unknown[][] } {
  assertRole(s, "buyer");
  if (!lookupBuyerDone(s)) throw new ProtocolError("the protocol has not finished");
  const min = s.minIntersection ?? 1;
  if (min > 1) {
    let matched = 0;
    for (const text of s.opened) if (text !== "") matched++;
    if (matched < min) throw new BelowMinimumError(min);
  }
  const labelSchema = schemaFromBytes(s.labelSchema);
  const types = labelSchema.fields.map((f) => f.type);
  return {
    labelSchema,
    rowToDistinct: s.rowToDistinct,
    labelsOf: (k: number) => {
      const text = s.opened[k] ?? "";
      if (text === "") return [];
      let rows: unknown;
      try {
        rows = JSON.parse(text);
      } catch {
        throw new InvalidMessageError("a label row does not parse");
      }
      if (!Array.isArray(rows)) throw new InvalidMessageError("a label row does not parse");
      return rows.map((row: unknown) => {
        if (!Array.isArray(row) || row.length !== types.length) throw new InvalidMessageError("a label row has the wrong shape");
        return row.map((v: unknown, j: number) => cellFromJson(v, types[j] as DataType));
      });
    },
  };
}

// ------------------------------------------------------------ provider

export interface LookupProviderOptions {
  readonly secretKey: Uint8Array;
  /** Evaluations this buyer may still ask for (the node persists the budget). */
  readonly budgetRemaining: number;
}

function lookupProviderStart(params: LookupParams, o: LookupProviderOptions): LookupProviderState {
  const c = resolve(params);
  if (!Number.isSafeInteger(o.budgetRemaining) || o.budgetRemaining < 0) throw new InvalidArgumentError("budgetRemaining must be a non-negative integer");
  return { ...c, role: "provider", secretKey: Uint8Array.from(o.secretKey), budgetRemaining: o.budgetRemaining, helloReceived: false, queryCount: 0, peerChunkElements: 0, received: 0 };
}

function lookupProviderDone(s: LookupProviderState): boolean {
  return s.helloReceived && s.received === s.queryCount;
}

/**
 * The provider takes one message from the buyer (steps 1, 2). `prepared` is
 * the prepared table of the state's product version.
 */
async function lookupProviderReceive(s: LookupProviderState, m: ProtocolMessage, prepared: Table, ctx: LookupContext): Promise<StepResult<LookupProviderState>> {
  assertRole(s, "provider");
  checkBinding(s, m.header);
  const info = preparedTableInfo(prepared);
  if (info.product !== s.product || info.version !== s.productVersion) throw new ProtocolError("the prepared table is for another product version");
  if (!s.helloReceived) return buyerHello(s, m, prepared, info);
  if (s.received >= s.queryCount) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  return buyerBlinded(s, m, prepared, ctx);
}

/** Step 1, from the buyer: its hello (product version, key count within the budget); answered with step 3 (and step 5 at once for no keys). */
function buyerHello(s: LookupProviderState, m: ProtocolMessage, prepared: Table, info: ReturnType<typeof preparedTableInfo>): StepResult<LookupProviderState> {
  expectStep(m.header, LookupStep.BuyerHello, 0, 1, "lookupHello", m.kind);
  const h = m as LookupHello;
  if (h.product !== s.product || h.productVersion !== s.productVersion) throw new ProtocolError("the buyer asks for another product version");
  if (h.queryCount > s.budgetRemaining) throw new BudgetExceededError(h.queryCount, s.budgetRemaining);
  if (h.chunkElements < 1) throw new InvalidMessageError("chunk size must be positive");
  const state: LookupProviderState = { ...s, helloReceived: true, queryCount: h.queryCount, peerChunkElements: h.chunkElements, budgetRemaining: s.budgetRemaining - h.queryCount };
  const tableInfo: LookupTableInfo = {
    kind: "lookupTableInfo",
    header: header(s, LookupStep.ProviderInfo, 0, 1),
    product: s.product,
    productVersion: s.productVersion,
    rows: info.rows,
    tagSize: TAG_BYTES,
    labelSchema: schemaToBytes(info.labelSchema),
    chunkRows: s.chunkElements,
  };
  const messages: ProtocolMessage[] = [tableInfo];
  if (h.queryCount === 0) messages.push(...sealedChunks(state, prepared));
  return { state, messages };
}

/** Step 2, from the buyer: a chunk of its blinded keys, evaluated under this provider's key (step 4); the sealed rows (step 5) follow the last chunk. */
async function buyerBlinded(s: LookupProviderState, m: ProtocolMessage, prepared: Table, ctx: LookupContext): Promise<StepResult<LookupProviderState>> {
  const per = s.peerChunkElements;
  const chunk = s.received / per;
  const chunks = chunkCount(s.queryCount, per);
  expectStep(m.header, LookupStep.BuyerBlinded, chunk, chunks, "elementBatch", m.kind);
  const b = m as ElementBatch;
  const want = Math.min(per, s.queryCount - s.received);
  if (b.elementSize !== ELEMENT || b.count !== want) throw new InvalidMessageError(`step 2 chunk ${chunk} must hold ${want} elements of ${ELEMENT} bytes`);
  let evaluated: Uint8Array;
  try {
    evaluated = await ctx.pool.multiply({ group: GroupId.Ristretto255 }, s.secretKey, b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
  const state = { ...s, received: s.received + b.count };
  ctx.onProgress?.("provider: blind-evaluate", state.received, s.queryCount);
  const messages: ProtocolMessage[] = [
    { kind: "elementBatch", header: header(s, LookupStep.ProviderEvaluated, chunk, chunks), elementSize: ELEMENT, count: b.count, elements: evaluated },
  ];
  if (state.received === s.queryCount) messages.push(...sealedChunks(state, prepared));
  return { state, messages };
}

/** Step 5: the prepared table in chunks of packed bytes. */
function sealedChunks(s: LookupProviderState, prepared: Table): SealedRows[] {
  const per = s.chunkElements;
  const { tags, offsets, data } = flatPrepared(prepared);
  const n = prepared.numRows;
  const chunks = chunkCount(n, per);
  const out: SealedRows[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c * per;
    const count = Math.min(per, n - start);
    const base = offsets[start] ?? 0;
    const chunkOffsets = new Uint8Array((count + 1) * 4);
    const dv = new DataView(chunkOffsets.buffer);
    for (let i = 0; i <= count; i++) dv.setUint32(i * 4, (offsets[start + i] ?? base) - base, true);
    out.push({
      kind: "sealedRows",
      header: header(s, LookupStep.ProviderSealed, c, chunks),
      count,
      tags: tags.subarray(start * TAG_BYTES, (start + count) * TAG_BYTES),
      offsets: chunkOffsets,
      sealed: data.subarray(base, offsets[start + count] ?? base),
    });
  }
  return out;
}

/** The prepared table's tag and sealed columns as flat buffers (straight from the Arrow buffers, batch by batch). */
function flatPrepared(prepared: Table): { tags: Uint8Array; offsets: Float64Array; data: Uint8Array } {
  const tagIndex = prepared.schema.fields.findIndex((f) => f.name === "tag");
  const sealedIndex = prepared.schema.fields.findIndex((f) => f.name === "sealed");
  if (tagIndex < 0 || sealedIndex < 0) throw new InvalidArgumentError("not a prepared lookup table");
  const n = prepared.numRows;
  const tags = new Uint8Array(n * TAG_BYTES);
  const offsets = new Float64Array(n + 1);
  let total = 0;
  for (const batch of prepared.batches) {
    const sd = batch.data.children[sealedIndex];
    const vo = sd?.valueOffsets as Int32Array | undefined;
    if (sd && vo) total += (vo[sd.offset + sd.length] ?? 0) - (vo[sd.offset] ?? 0);
  }
  const data = new Uint8Array(total);
  let row = 0;
  let at = 0;
  for (const batch of prepared.batches) {
    const td = batch.data.children[tagIndex];
    const sd = batch.data.children[sealedIndex];
    if (!td || !sd || batch.numRows === 0) continue;
    if (td.nullCount > 0 || sd.nullCount > 0) throw new InvalidArgumentError("prepared table: null tag or sealed row");
    const tv = td.values as Uint8Array;
    tags.set(tv.subarray(td.offset * TAG_BYTES, (td.offset + batch.numRows) * TAG_BYTES), row * TAG_BYTES);
    const vo = sd.valueOffsets as Int32Array;
    const first = vo[sd.offset] ?? 0;
    const last = vo[sd.offset + batch.numRows] ?? first;
    data.set((sd.values as Uint8Array).subarray(first, last), at);
    for (let i = 0; i < batch.numRows; i++) offsets[row + i] = at + (vo[sd.offset + i] ?? first) - first;
    at += last - first;
    row += batch.numRows;
    offsets[row] = at;
  }
  return { tags, offsets, data };
}

const assertRole = (s: LookupBuyerState | LookupProviderState, role: "buyer" | "provider"): void => assertState(s, { protocols: [ProtocolId.Lookup], role, version: LOOKUP_VERSION });


// ------------------------------------------------------------------ roles

/** What the buyer's result holds: its rows' distinct keys and each key's opened label rows. */
export type LookupBuyerResult = ReturnType<typeof lookupBuyerResult>;

/** What the lookup buyer starts from: the job's parameters and its own key column. */
export interface LookupBuyerInit {
  readonly params: LookupParams;
  readonly keys: KeyColumn;
}

/** What the lookup provider starts from: the job's parameters, its key for the product version and the buyer's budget. */
export interface LookupProviderInit extends LookupProviderOptions {
  readonly params: LookupParams;
}

/** The provider's local resources: besides the pool, the prepared table of the job's product version. */
export interface LookupProviderContext extends LookupContext {
  readonly prepared: Table;
}

const to = (r: RoleName, messages: readonly ProtocolMessage[]): Outgoing[] => messages.map((message) => ({ to: r, message }));

/** The lookup buyer: sends steps 1 and 2, takes 3, 4 and 5 from the provider; its result is the labels of its matched keys. */
export const lookupBuyer: Role<LookupBuyerState, LookupBuyerInit, LookupContext, LookupBuyerResult> = {
  async start(init, ctx) {
    const r = await lookupBuyerStart(init.params, init.keys, ctx);
    return { state: r.state, messages: to(RoleName.Provider, r.messages) };
  },
  async receive(state, from, message, ctx) {
    if (from !== RoleName.Provider) throw new WrongSenderError("a lookup buyer takes messages from the provider only");
    const r = await lookupBuyerReceive(state, message, ctx);
    return { state: r.state, messages: to(RoleName.Provider, r.messages) };
  },
  done: lookupBuyerDone,
  result: lookupBuyerResult,
};

/** The lookup provider: waits for the buyer's hello, evaluates its blinded keys within the budget and sends the sealed rows. */
export const lookupProvider: Role<LookupProviderState, LookupProviderInit, LookupProviderContext, undefined> = {
  async start(init) {
    return { state: lookupProviderStart(init.params, init), messages: [] };
  },
  async receive(state, from, message, ctx) {
    if (from !== RoleName.Buyer) throw new WrongSenderError("a lookup provider takes messages from the buyer only");
    const r = await lookupProviderReceive(state, message, ctx.prepared, ctx);
    return { state: r.state, messages: to(RoleName.Buyer, r.messages) };
  },
  done: lookupProviderDone,
  result: () => undefined,
};
