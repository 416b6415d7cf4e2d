/**
 * psi and psi-cardinality: ECDH-PSI between a buyer and a provider.
 *
 * ## Flow (version 1)
 *
 * Both sides normalise their keys (engine/columns), drop nulls and
 * de-duplicate, draw a fresh secret scalar for the job (buyer a, provider b)
 * and hash with the job's domain separation tag
 * DST = "umbra/psi/v1/<group>/<job>".
 *
 *   step 1  buyer → provider   PsiHello {group, mode, n = distinct buyer keys}
 *   step 2  buyer → provider   H(x_i)^a, in the buyer's order, in chunks
 *   step 3  provider → buyer   PsiHello {group, mode, m = distinct provider keys}
 *   step 4  provider → buyer   H(y_j)^b, shuffled, in chunks
 *   step 5  provider → buyer   (H(x_i)^a)^b — in the buyer's order (intersection
 *                               mode) or shuffled (cardinality mode)
 *
 * The buyer raises the provider's elements to a and compares:
 * H(x)^ab = H(y)^ba iff x = y (with overwhelming probability).
 *
 * The provider learns n; the buyer learns which of its rows match (or, in
 * cardinality mode, only the count) and m; the exchange, relaying, sees
 * sizes. The job's limits come from the job, never from a message: the
 * provider refuses a hello announcing more than `maxPeerSetSize` keys (the
 * job's maxBuyerKeys, so the provider knows how many keys it evaluated), and
 * the buyer withholds a result under `minIntersection` (BelowMinimumError).
 * Every message is bound to its job, step and chunk and every multiplied
 * point strictly decoded; a refused message leaves the state unchanged.
 * The threat model, what each side learns, the limits and who enforces them,
 * and why it is secure: docs/protocols/psi.md.
 *
 * References: Huberman, Franklin, Hogg, "Enhancing privacy and trust in
 * electronic communities" (1999) — the DH-based PSI; RFC 9380 (hashing);
 * RFC 9496 (ristretto255).
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { checkComparedEncodings, createGroup, GroupId, type BackendId } from "../../engine/group/index.js";
import type { KeyColumn } from "../../engine/columns/index.js";
import { distinctKeys, permuteFixed, shuffledOrder } from "../../engine/psi/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { isJobId, MAX_CHUNK_ELEMENTS, ProtocolId, type ElementBatch, type ProtocolMessage, type PsiHello } from "../codec.js";
import { BelowMinimumError, InvalidMessageError, KeyLimitExceededError, ProtocolError, RefusedError, WrongSenderError, WrongStepError } from "../errors.js";
import { assertState } from "../state.js";
import { RoleName, type Outgoing, type Role, type Step } from "../role.js";
import { batches, checkBatch, checkBinding, chunkCount, expectStep, header, pointError, withRoom } from "../steps.js";

export const PSI_VERSION = 1;

export const PsiMode = { Intersection: "intersection", Cardinality: "cardinality" } as const;
export type PsiMode = (typeof PsiMode)[keyof typeof PsiMode];

export const PsiStep = { BuyerHello: 1, BuyerBlinded: 2, ProviderHello: 3, ProviderBlinded: 4, ProviderDoubled: 5 } as const;
export type PsiStep = (typeof PsiStep)[keyof typeof PsiStep];

const ELEMENT = 32;
export const DEFAULT_CHUNK_ELEMENTS = 16_384;
export const DEFAULT_MAX_SET_SIZE = 100_000_000;

/** What both roles of one job agree on (from the job, not from messages). */
export interface PsiParams {
  readonly job: string;
  readonly mode: PsiMode;
  /** Default x25519 (the fast bulk group). */
  readonly group?: GroupId;
  /** Elements per chunk this side sends (default 16,384; at most 65,536). */
  readonly chunkElements?: number;
  /** Largest set the other side may announce (default 10^8). On the provider: the job's maxBuyerKeys. */
  readonly maxPeerSetSize?: number;
  /**
   * The buyer releases its result only when at least this many distinct
   * buyer keys matched (cardinality: the count is at least this); default 1
   * (nothing withheld). Enforced by the buyer's role (see Job limits).
   */
  readonly minIntersection?: number;
}

/** Local resources for the crypto: not part of the state. */
export interface PsiContext {
  readonly pool: CryptoPool;
  /** Local backend choice; both sides may differ. */
  readonly backend?: BackendId;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

interface Common {
  readonly protocol: ProtocolId;
  readonly version: number;
  readonly job: string;
  readonly mode: PsiMode;
  readonly group: GroupId;
  readonly chunkElements: number;
  readonly maxPeerSetSize: number;
  /** The buyer's result is withheld below this many matched distinct keys (absent in older states: 1). */
  readonly minIntersection?: number;
  /** This side's secret scalar for the job. */
  readonly secret: Uint8Array;
}

/** The buyer's state: plain data (strings, numbers, typed arrays). */
export interface PsiBuyerState extends Common {
  readonly role: "buyer";
  readonly rows: number;
  /** Per buyer row, its distinct key index or −1 (null). Kept only in intersection mode. */
  readonly rowToDistinct: Int32Array;
  readonly setSize: number;
  readonly peerSetSize: number;
  readonly peerChunkElements: number;
  /** H(y)^ba, grown as step 4 arrives (peerReceived elements in use). */
  readonly peerElements: Uint8Array;
  readonly peerReceived: number;
  /** H(x)^ab, filled as step 5 arrives. */
  readonly doubled: Uint8Array;
  readonly doubledReceived: number;
  readonly helloReceived: boolean;
  /**
   * Per distinct key, the position of its match among peerElements or −1:
   * the match, made on the pool (partition by partition on a cluster) when
   * the last message arrives; peerElements and doubled are then let go.
   */
  readonly hit?: Int32Array;
}

/** The provider's state. */
export interface PsiProviderState extends Common {
  readonly role: "provider";
  readonly setSize: number;
  /** H(y)^b for its distinct keys, shuffled. */
  readonly blinded: Uint8Array;
  readonly helloReceived: boolean;
  readonly peerSetSize: number;
  readonly peerChunkElements: number;
  /** Cardinality mode: the (H(x)^a)^b collected before the shuffle, grown as step 2 arrives (received elements in use). */
  readonly doubled: Uint8Array;
  readonly received: number;
}

interface StepResult<S> {
  readonly state: S;
  readonly messages: ProtocolMessage[];
}

/** What a psi role starts from: the job's parameters and its own key column. */
export interface PsiInit {
  readonly params: PsiParams;
  readonly keys: KeyColumn;
}

export type PsiBuyerResult =
  | { readonly mode: "intersection"; readonly matchedRows: Uint32Array; readonly providerSetSize: number; readonly buyerSetSize: number }
  | { readonly mode: "cardinality"; readonly count: number; readonly providerSetSize: number; readonly buyerSetSize: number };

export function psiProtocolId(mode: PsiMode): ProtocolId {
  return mode === PsiMode.Cardinality ? ProtocolId.PsiCardinality : ProtocolId.Psi;
}

export function psiDst(group: GroupId, job: string): Uint8Array {
  return new TextEncoder().encode(`umbra/psi/v${PSI_VERSION}/${group}/${job}`);
}

function resolveParams(p: PsiParams) {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  if (p.mode !== PsiMode.Intersection && p.mode !== PsiMode.Cardinality) throw new InvalidArgumentError("mode must be intersection or cardinality");
  const group = p.group ?? GroupId.X25519;
  if (group !== GroupId.X25519 && group !== GroupId.Ristretto255) throw new InvalidArgumentError("unknown group");
  const chunkElements = p.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
  if (!Number.isInteger(chunkElements) || chunkElements < 1 || chunkElements > MAX_CHUNK_ELEMENTS) {
    throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
  }
  const maxPeerSetSize = p.maxPeerSetSize ?? DEFAULT_MAX_SET_SIZE;
  if (!Number.isSafeInteger(maxPeerSetSize) || maxPeerSetSize < 0) throw new InvalidArgumentError("maxPeerSetSize must be a non-negative integer");
  const minIntersection = p.minIntersection ?? 1;
  if (!Number.isSafeInteger(minIntersection) || minIntersection < 1) throw new InvalidArgumentError("minIntersection must be a positive integer");
  return { protocol: psiProtocolId(p.mode), version: PSI_VERSION, job: p.job, mode: p.mode, group, chunkElements, maxPeerSetSize, minIntersection };
}

function hello(s: Common, step: PsiStep, setSize: number): PsiHello {
  return { kind: "psiHello", header: header(s, step, 0, 1), group: s.group, mode: s.mode, setSize, chunkElements: s.chunkElements };
}

function checkHello(s: Common, m: ProtocolMessage, step: PsiStep): PsiHello {
  checkBinding(s, m.header);
  expectStep(m.header, step, 0, 1, "psiHello", m.kind);
  const h = m as PsiHello;
  if (h.group !== s.group) throw new ProtocolError(`the other side uses group ${h.group}, this job uses ${s.group}`);
  if (h.mode !== s.mode) throw new ProtocolError(`the other side runs mode ${h.mode}, this job runs ${s.mode}`);
  if (h.setSize > s.maxPeerSetSize) {
    if (step === PsiStep.BuyerHello) throw new KeyLimitExceededError("the buyer's hello", h.setSize, s.maxPeerSetSize);
    throw new InvalidMessageError(`announced set of ${h.setSize} exceeds the limit of ${s.maxPeerSetSize}`);
  }
  if (h.chunkElements < 1) throw new InvalidMessageError("chunk size must be positive");
  return h;
}

// ------------------------------------------------------------------ buyer

/** Starts the buyer: de-duplicates its keys, blinds them, returns steps 1 and 2. */
async function psiBuyerStart(params: PsiParams, keys: KeyColumn, ctx: PsiContext): Promise<StepResult<PsiBuyerState>> {
  const p = resolveParams(params);
  const group = await createGroup({ group: p.group, ...(ctx.backend ? { backend: ctx.backend } : {}) });
  const d = distinctKeys(keys);
  const secret = group.randomScalar();
  const blinded = await ctx.pool.hashToGroup({ group: p.group, ...(ctx.backend ? { backend: ctx.backend } : {}) }, d.distinct, psiDst(p.group, p.job), secret, {
    onProgress: (done, total) => ctx.onProgress?.("buyer: hash and blind", done, total),
  });
  const state: PsiBuyerState = {
    ...p,
    role: "buyer",
    secret,
    rows: keys.length,
    rowToDistinct: p.mode === PsiMode.Intersection ? d.rowToDistinct : new Int32Array(0),
    setSize: d.count,
    peerSetSize: 0,
    peerChunkElements: 0,
    peerElements: new Uint8Array(0),
    peerReceived: 0,
    doubled: new Uint8Array(0),
    doubledReceived: 0,
    helloReceived: false,
  };
  return { state, messages: [hello(state, PsiStep.BuyerHello, d.count), ...batches(state, PsiStep.BuyerBlinded, blinded, state.chunkElements, ELEMENT)] };
}

/** True once the buyer has everything it needs for its result. */
function psiBuyerDone(s: PsiBuyerState): boolean {
  return s.helloReceived && s.peerReceived === s.peerSetSize && s.doubledReceived === s.setSize;
}

/** The buyer takes one message from the provider (steps 3, 4, 5). */
async function psiBuyerReceive(s: PsiBuyerState, m: ProtocolMessage, ctx: PsiContext): Promise<StepResult<PsiBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  // The provider's steps come in this order: its hello, its blinded set, the buyer's elements raised.
  let step: StepResult<PsiBuyerState>;
  if (!s.helloReceived) step = providerHello(s, m);
  else if (s.peerReceived < s.peerSetSize) step = await providerBlinded(s, m, ctx);
  else if (s.doubledReceived < s.setSize) step = providerDoubled(s, m);
  else throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  const next = step.state;
  if (!psiBuyerDone(next) || next.hit !== undefined) return step;
  const hit = await ctx.pool.matchElements(next.peerElements.subarray(0, next.peerSetSize * ELEMENT), next.doubled);
  return { ...step, state: { ...next, hit, peerElements: new Uint8Array(0), doubled: new Uint8Array(0) } };
}

/** The other side's chunk raised to this side's secret: every element strictly decoded (a bad one refused with its index in the step). */
async function raise(s: Common, b: ElementBatch, chunk: number, per: number, ctx: PsiContext): Promise<Uint8Array> {
  try {
    return await ctx.pool.multiply({ group: s.group, ...(ctx.backend ? { backend: ctx.backend } : {}) }, s.secret, b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
}

/** Step 3, from the provider: its hello (group, mode, its distinct-key count and chunk size). */
function providerHello(s: PsiBuyerState, m: ProtocolMessage): StepResult<PsiBuyerState> {
  const h = checkHello(s, m, PsiStep.ProviderHello);
  return {
    // The provider's elements are collected as they arrive (withRoom), not sized from its announcement.
    state: { ...s, helloReceived: true, peerSetSize: h.setSize, peerChunkElements: h.chunkElements, peerElements: new Uint8Array(0), doubled: new Uint8Array(s.setSize * ELEMENT) },
    messages: [],
  };
}

/** Step 4, from the provider: a chunk of its blinded set H(y)^b, raised here to a. */
async function providerBlinded(s: PsiBuyerState, m: ProtocolMessage, ctx: PsiContext): Promise<StepResult<PsiBuyerState>> {
  const per = s.peerChunkElements;
  const chunk = s.peerReceived / per;
  expectStep(m.header, PsiStep.ProviderBlinded, chunk, chunkCount(s.peerSetSize, per), "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, s.peerSetSize, per, PsiStep.ProviderBlinded, ELEMENT);
  const raised = await raise(s, b, chunk, per, ctx);
  const peerElements = withRoom(s.peerElements, s.peerReceived * ELEMENT, raised.length, s.peerSetSize * ELEMENT);
  peerElements.set(raised, s.peerReceived * ELEMENT);
  ctx.onProgress?.("buyer: raise provider elements", s.peerReceived + b.count, s.peerSetSize);
  return { state: { ...s, peerElements, peerReceived: s.peerReceived + b.count }, messages: [] };
}

/** Step 5, from the provider: a chunk of the buyer's own elements raised to b, (H(x)^a)^b. */
function providerDoubled(s: PsiBuyerState, m: ProtocolMessage): StepResult<PsiBuyerState> {
  const per = s.chunkElements;
  const chunk = s.doubledReceived / per;
  expectStep(m.header, PsiStep.ProviderDoubled, chunk, chunkCount(s.setSize, per), "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, s.setSize, per, PsiStep.ProviderDoubled, ELEMENT);
  try {
    checkComparedEncodings(b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
  s.doubled.set(b.elements, s.doubledReceived * ELEMENT);
  return { state: { ...s, doubledReceived: s.doubledReceived + b.count }, messages: [] };
}

/**
 * The buyer's output once {@link psiBuyerDone}.
 * @throws BelowMinimumError when fewer distinct keys matched than the job's minIntersection (see Job limits).
 */
function psiBuyerResult(s: PsiBuyerState): PsiBuyerResult {
  assertRole(s, "buyer");
  const hit = s.hit;
  if (!psiBuyerDone(s) || hit === undefined) throw new ProtocolError("the protocol has not finished");
  const sizes = { providerSetSize: s.peerSetSize, buyerSetSize: s.setSize };
  const min = s.minIntersection ?? 1;
  let distinct = 0;
  for (let d = 0; d < s.setSize; d++) if ((hit[d] ?? -1) >= 0) distinct++;
  if (min > 1 && distinct < min) throw new BelowMinimumError(min);
  if (s.mode === PsiMode.Cardinality) return { mode: "cardinality", count: distinct, ...sizes };
  let count = 0;
  for (let r = 0; r < s.rows; r++) {
    const d = s.rowToDistinct[r] ?? -1;
    if (d >= 0 && (hit[d] ?? -1) >= 0) count++;
  }
  const matchedRows = new Uint32Array(count);
  let k = 0;
  for (let r = 0; r < s.rows; r++) {
    const d = s.rowToDistinct[r] ?? -1;
    if (d >= 0 && (hit[d] ?? -1) >= 0) matchedRows[k++] = r;
  }
  return { mode: "intersection", matchedRows, ...sizes };
}

// --------------------------------------------------------------- provider

/** Starts the provider: de-duplicates, blinds and shuffles its keys. Sends nothing until the buyer's hello. */
async function psiProviderStart(params: PsiParams, keys: KeyColumn, ctx: PsiContext): Promise<StepResult<PsiProviderState>> {
  const p = resolveParams(params);
  const spec = { group: p.group, ...(ctx.backend ? { backend: ctx.backend } : {}) };
  const group = await createGroup(spec);
  const d = distinctKeys(keys);
  const secret = group.randomScalar();
  const blinded = await ctx.pool.hashToGroup(spec, d.distinct, psiDst(p.group, p.job), secret, {
    onProgress: (done, total) => ctx.onProgress?.("provider: hash and blind", done, total),
  });
  const state: PsiProviderState = {
    ...p,
    role: "provider",
    secret,
    setSize: d.count,
    blinded: permuteFixed(blinded, ELEMENT, shuffledOrder(d.count)),
    helloReceived: false,
    peerSetSize: 0,
    peerChunkElements: 0,
    doubled: new Uint8Array(0),
    received: 0,
  };
  return { state, messages: [] };
}

function psiProviderDone(s: PsiProviderState): boolean {
  return s.helloReceived && s.received === s.peerSetSize;
}

/** The provider takes one message from the buyer (steps 1, 2). */
async function psiProviderReceive(s: PsiProviderState, m: ProtocolMessage, ctx: PsiContext): Promise<StepResult<PsiProviderState>> {
  assertRole(s, "provider");
  checkBinding(s, m.header);
  if (!s.helloReceived) return buyerHello(s, m);
  if (s.received >= s.peerSetSize) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  return buyerBlinded(s, m, ctx);
}

/** Step 1, from the buyer: its hello; answered with steps 3 and 4 (this provider's hello and blinded set). */
function buyerHello(s: PsiProviderState, m: ProtocolMessage): StepResult<PsiProviderState> {
  const h = checkHello(s, m, PsiStep.BuyerHello);
  const state: PsiProviderState = {
    ...s,
    helloReceived: true,
    peerSetSize: h.setSize,
    peerChunkElements: h.chunkElements,
    // Cardinality mode collects the raised elements as they arrive (withRoom), not sized from the announcement.
    doubled: new Uint8Array(0),
  };
  const messages: ProtocolMessage[] = [hello(state, PsiStep.ProviderHello, s.setSize), ...batches(state, PsiStep.ProviderBlinded, s.blinded, state.chunkElements, ELEMENT)];
  return { state, messages };
}

/** Step 2, from the buyer: a chunk of its blinded set H(x)^a, raised here to b; answered with step 5 (intersection: chunk by chunk; cardinality: once all are in, shuffled). */
async function buyerBlinded(s: PsiProviderState, m: ProtocolMessage, ctx: PsiContext): Promise<StepResult<PsiProviderState>> {
  const per = s.peerChunkElements;
  const chunk = s.received / per;
  expectStep(m.header, PsiStep.BuyerBlinded, chunk, chunkCount(s.peerSetSize, per), "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, s.peerSetSize, per, PsiStep.BuyerBlinded, ELEMENT);
  const raised = await raise(s, b, chunk, per, ctx);
  const received = s.received + b.count;
  ctx.onProgress?.("provider: raise buyer elements", received, s.peerSetSize);
  if (s.mode === PsiMode.Intersection) {
    // Same order and chunking as received: step 5 chunk c answers step 2 chunk c.
    const state = { ...s, received };
    const reply: ElementBatch = {
      kind: "elementBatch",
      header: header(s, PsiStep.ProviderDoubled, chunk, chunkCount(s.peerSetSize, per)),
      elementSize: ELEMENT,
      count: b.count,
      elements: raised,
    };
    return { state, messages: [reply] };
  }
  const doubled = withRoom(s.doubled, s.received * ELEMENT, raised.length, s.peerSetSize * ELEMENT);
  doubled.set(raised, s.received * ELEMENT);
  const state = { ...s, doubled, received };
  if (received < s.peerSetSize) return { state, messages: [] };
  // Cardinality: everything is in; shuffle so the buyer cannot map any element to its rows.
  const shuffled = permuteFixed(doubled.subarray(0, s.peerSetSize * ELEMENT), ELEMENT, shuffledOrder(s.peerSetSize));
  // Step 5 uses the buyer's chunk size, as in intersection mode.
  return { state: { ...state, doubled: new Uint8Array(0) }, messages: batches(state, PsiStep.ProviderDoubled, shuffled, per, ELEMENT) };
}

const assertRole = (s: PsiBuyerState | PsiProviderState, role: "buyer" | "provider"): void => assertState(s, { protocols: [ProtocolId.Psi, ProtocolId.PsiCardinality], role, version: PSI_VERSION });

// ------------------------------------------------------------------ roles

const to = (r: RoleName, messages: readonly ProtocolMessage[]): Outgoing[] => messages.map((message) => ({ to: r, message }));
const addressed = <S>(r: RoleName, step: StepResult<S>): Step<S> => ({ state: step.state, messages: to(r, step.messages) });

function expectFrom(from: RoleName, want: RoleName): void {
  if (from !== want) throw new WrongSenderError(`a psi ${want === RoleName.Provider ? "buyer" : "provider"} takes messages from the ${want} only`);
}

/**
 * The buyer of psi / psi-cardinality: sends steps 1 and 2 at start, takes
 * 3, 4 and 5 from the provider; its result is its matching rows or the count.
 */
export const psiBuyer: Role<PsiBuyerState, PsiInit, PsiContext, PsiBuyerResult> = {
  start: async (init, ctx) => addressed(RoleName.Provider, await psiBuyerStart(init.params, init.keys, ctx)),
  receive: async (state, from, message, ctx) => {
    expectFrom(from, RoleName.Provider);
    return addressed(RoleName.Provider, await psiBuyerReceive(state, message, ctx));
  },
  done: psiBuyerDone,
  result: psiBuyerResult,
};

/** The provider of psi / psi-cardinality: waits for the buyer's hello, answers steps 3, 4 and 5; learns the buyer's set size. */
export const psiProvider: Role<PsiProviderState, PsiInit, PsiContext, undefined> = {
  start: async (init, ctx) => addressed(RoleName.Buyer, await psiProviderStart(init.params, init.keys, ctx)),
  receive: async (state, from, message, ctx) => {
    expectFrom(from, RoleName.Buyer);
    return addressed(RoleName.Buyer, await psiProviderReceive(state, message, ctx));
  },
  done: psiProviderDone,
  result: () => undefined,
};
