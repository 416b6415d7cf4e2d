/**
 * The node's view of a party's protocol role: start it, feed it one message
 * at a time, persist its state as bytes between steps, and take the buyer's
 * result. One adapter per protocol over the transport-free state machines of
 * protocols/; messages cross as encoded protobuf frames, states as
 * stateToBytes bytes, so a node can store both and resume after a restart.
 *
 * The two-party protocols (psi, psi-cardinality, lookup) are here; a protocol
 * with more roles (federated-aggregate: buyer, N providers, the exchange;
 * join-aggregate: buyer, provider, the exchange) brings a {@link PartyProtocol}
 * from its own module, registered in {@link PARTY_PROTOCOLS}, and its
 * exchange-side role in node/jobs/exchange-roles.ts. In such a job a party's
 * counterpart is the exchange; where the protocol has the buyer and the
 * provider also talk to each other (join-aggregate's blinded sets), those
 * frames go straight to the other party ({@link StepOutput.direct}), sealed to
 * it, and the exchange relays them as they are.
 */
import type { Table } from "apache-arrow";
import { keysFromTable, takeRows, type KeyOptions } from "../../engine/columns/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";

import {
  decodeMessage,
  encodeMessage,
  joinLabels,
  lookupBuyer,
  lookupProvider,
  psiBuyer,
  psiProvider,
  stateFromBytes,
  stateToBytes,
  type FaBuyerState,
  type FaProviderState,
  type JaBuyerState,
  type JaProviderState,
  type LookupBuyerState,
  type LookupProviderState,
  type Outgoing,
  type PsiBuyerState,
  type PsiProviderState,
} from "../../protocols/index.js";
import { federatedAggregateParty, type FaJobInfo } from "./federated-aggregate.js";
import { joinAggregateParty, type JaJobInfo } from "./join-aggregate.js";

export const JobProtocol = { Psi: "psi", PsiCardinality: "psi-cardinality", Lookup: "lookup", FederatedAggregate: "federated-aggregate", JoinAggregate: "join-aggregate" } as const;
export type JobProtocol = (typeof JobProtocol)[keyof typeof JobProtocol];

/**
 * Privacy limits of a job, from the job (never from a message), each
 * enforced inside the protocol by the role it protects:
 *
 * - `minIntersection`: psi, psi-cardinality and lookup — the buyer's role
 *   withholds its result when fewer distinct keys matched (cardinality: the
 *   count is smaller); BelowMinimumError (UMBRA_BELOW_MINIMUM). Default 1:
 *   nothing withheld. (For psi-cardinality the node puts max(k, minIntersection) here.)
 * - `maxBuyerKeys`: psi, psi-cardinality and join-aggregate — the provider's
 *   role (and join-aggregate's exchange role) refuses a buyer announcing
 *   more distinct keys; KeyLimitExceededError (UMBRA_KEY_LIMIT_EXCEEDED).
 *   Default: the protocol's own bound (10^8). lookup bounds the keys by the
 *   provider's budget (RoleContext.lookup.budgetRemaining) instead.
 *
 * What the provider's role was actually told is {@link buyerKeysSeen}.
 */
export interface JobLimits {
  readonly minIntersection?: number;
  readonly maxBuyerKeys?: number;
}

/**
 * A job's limits, from its request as the exchange filled it in: the
 * minimum intersection (psi, psi-cardinality, lookup), and the buyer's
 * declared key count (`queryCount`) as the most keys the provider evaluates.
 */
export function jobLimitsOf(request: { readonly params: { readonly minIntersection?: number; readonly queryCount?: number } }): JobLimits {
  const { minIntersection, queryCount } = request.params;
  return { ...(minIntersection !== undefined ? { minIntersection } : {}), ...(queryCount !== undefined ? { maxBuyerKeys: queryCount } : {}) };
}

/** What the parties of a job are told by the exchange. */
export interface JobSpec {
  readonly id: string;
  readonly protocol: JobProtocol;
  readonly buyer: string;
  /** The provider (of a multi-provider job: this party when it is one, else the first). */
  readonly provider: string;
  /** Absent in a multi-provider job (the buyer brings no dataset). */
  readonly buyerDataset?: string;
  /** This provider's dataset (absent for the buyer of a multi-provider job). */
  readonly providerDataset?: string;
  readonly keyColumns: readonly string[];
  /** lookup: the label columns the buyer receives. */
  readonly outputColumns?: readonly string[];
  readonly normalise?: KeyOptions;
  /** federated-aggregate: the protocol parameters, the providers and this provider's index. */
  readonly fa?: FaJobInfo;
  /** join-aggregate: the protocol parameters and the buyer's group-by column. */
  readonly ja?: JaJobInfo;
  /** The job's privacy limits (see {@link JobLimits}). */
  readonly limits?: JobLimits;
}

/** A role's state: plain data (stateToBytes gives the bytes to persist). */
export type RoleState = PsiBuyerState | PsiProviderState | LookupBuyerState | LookupProviderState | FaBuyerState | FaProviderState | JaBuyerState | JaProviderState;

/** A party's role in a job: the buyer, or a provider. */
export type PartyRole = "buyer" | "provider";

export interface StepOutput {
  /** The role's new state (persist it with stateToBytes). */
  readonly state: RoleState;
  /** Encoded protocol messages to send to the counterpart: the other party, or the exchange in a job where it plays a role. */
  readonly out: Uint8Array[];
  /**
   * In a job where the exchange plays a role: encoded messages for the other
   * party (buyer ↔ provider), sent straight to it and relayed by the exchange
   * as they are (only where the protocol allows it, see
   * node/jobs/exchange-roles.ts `directRoute`). Sent before `out`.
   */
  readonly direct?: Uint8Array[];
  readonly done: boolean;
}

/** Where a received frame came from: the job's counterpart, or (a job where the exchange plays a role) the other party directly. */
export type FrameSource = "counterpart" | "peer";

export type BuyerResult =
  | { readonly kind: "table"; readonly table: Table; /** Counts for the job's summary (never a value), when the protocol has its own. */ readonly summary?: Readonly<Record<string, number>> }
  | { readonly kind: "count"; readonly count: number };

/** Local resources a role needs besides its state. */
export interface RoleContext {
  readonly pool: CryptoPool;
  /** The party's own table for this job (its dataset). */
  readonly table: Table;
  /** lookup provider: the prepared table and its secret key, and the buyer's remaining budget. */
  readonly lookup?: { readonly prepared: Table; readonly secretKey: Uint8Array; readonly budgetRemaining: number; readonly product: string; readonly version: number };
  /** federated-aggregate provider: its mask key pair and every provider's mask public key, by index. */
  readonly mask?: { readonly keyPair: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }; readonly peers: readonly Uint8Array[] };
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

/** The party side of a protocol with more than two roles: one module per protocol (node/jobs/<protocol>.ts). */
export interface PartyProtocol {
  start(spec: JobSpec, role: PartyRole, ctx: RoleContext): Promise<StepOutput>;
  /** `from`: the counterpart (the exchange), or the other party straight (only a protocol with {@link direct} frames gets those). */
  receive(spec: JobSpec, role: PartyRole, state: RoleState, frame: Uint8Array, ctx: RoleContext, from: FrameSource): Promise<StepOutput>;
  result(spec: JobSpec, state: RoleState): BuyerResult;
  /** Whether the buyer and the provider also send each other frames straight ({@link StepOutput.direct}). */
  readonly direct?: boolean;
  /** Reads this party's table for the job from its file (only the columns the job uses); default: the whole file. */
  readTable?(spec: JobSpec, role: PartyRole, path: string): Promise<Table>;
}

/** The protocols whose party roles live in their own module, by protocol name. */
export const PARTY_PROTOCOLS: ReadonlyMap<string, PartyProtocol> = new Map<string, PartyProtocol>([
  [JobProtocol.FederatedAggregate, federatedAggregateParty],
  [JobProtocol.JoinAggregate, joinAggregateParty],
]);

/** The party side of the job's protocol, when it has its own module (a protocol with an exchange-side role). */
export function partyProtocolFor(protocol: string): PartyProtocol | undefined {
  return PARTY_PROTOCOLS.get(protocol);
}

const encodeAll = (ms: readonly Outgoing[]): Uint8Array[] => ms.map((o) => encodeMessage(o.message));

function keys(spec: JobSpec, table: Table, role: string) {
  return keysFromTable(table, spec.keyColumns, { ...spec.normalise, source: `${role} dataset` });
}

/** Starts this party's role of the job. */
export async function startRole(spec: JobSpec, role: PartyRole, ctx: RoleContext): Promise<StepOutput> {
  const multi = PARTY_PROTOCOLS.get(spec.protocol);
  if (multi) return multi.start(spec, role, ctx);
  const pctx = { pool: ctx.pool, ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}) };
  const limits = spec.limits ?? {};
  const minIntersection = limits.minIntersection !== undefined ? { minIntersection: limits.minIntersection } : {};
  if (spec.protocol === JobProtocol.Psi || spec.protocol === JobProtocol.PsiCardinality) {
    const params = { job: spec.id, mode: spec.protocol === JobProtocol.Psi ? ("intersection" as const) : ("cardinality" as const), ...minIntersection };
    if (role === "buyer") {
      const r = await psiBuyer.start({ params, keys: keys(spec, ctx.table, role) }, pctx);
      return { state: r.state, out: encodeAll(r.messages), done: psiBuyer.done(r.state) };
    }
    // The provider refuses a buyer hello announcing more distinct keys than the job allows.
    const r = await psiProvider.start({ params: { ...params, ...(limits.maxBuyerKeys !== undefined ? { maxPeerSetSize: limits.maxBuyerKeys } : {}) }, keys: keys(spec, ctx.table, role) }, pctx);
    return { state: r.state, out: encodeAll(r.messages), done: false };
  }
  const lk = ctx.lookup;
  if (role === "buyer") {
    if (!lk) throw new Error("lookup buyer needs the product and version");
    const r = await lookupBuyer.start({ params: { job: spec.id, product: lk.product, version: lk.version, ...minIntersection }, keys: keys(spec, ctx.table, role) }, pctx);
    return { state: r.state, out: encodeAll(r.messages), done: false };
  }
  if (!lk) throw new Error("lookup provider needs its prepared table");
  const r = await lookupProvider.start({ params: { job: spec.id, product: lk.product, version: lk.version, ...minIntersection }, secretKey: lk.secretKey, budgetRemaining: lk.budgetRemaining }, { ...pctx, prepared: lk.prepared });
  return { state: r.state, out: encodeAll(r.messages), done: false };
}

/** Feeds one received frame to this party's role. A refused frame throws and the state stays as it was. */
export async function receiveRole(spec: JobSpec, role: PartyRole, state: RoleState, frame: Uint8Array, ctx: RoleContext, from: FrameSource = "counterpart"): Promise<StepOutput> {
  const multi = PARTY_PROTOCOLS.get(spec.protocol);
  if (multi) return multi.receive(spec, role, state, frame, ctx, from);
  const m = decodeMessage(frame);
  const pctx = { pool: ctx.pool, ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}) };
  if (spec.protocol === JobProtocol.Psi || spec.protocol === JobProtocol.PsiCardinality) {
    if (role === "buyer") {
      const r = await psiBuyer.receive(state as PsiBuyerState, "provider", m, pctx);
      return { state: r.state, out: encodeAll(r.messages), done: psiBuyer.done(r.state) };
    }
    const r = await psiProvider.receive(state as PsiProviderState, "buyer", m, pctx);
    return { state: r.state, out: encodeAll(r.messages), done: psiProvider.done(r.state) };
  }
  if (role === "buyer") {
    const r = await lookupBuyer.receive(state as LookupBuyerState, "provider", m, pctx);
    return { state: r.state, out: encodeAll(r.messages), done: lookupBuyer.done(r.state) };
  }
  if (!ctx.lookup) throw new Error("lookup provider needs its prepared table");
  const r = await lookupProvider.receive(state as LookupProviderState, "buyer", m, { ...pctx, prepared: ctx.lookup.prepared });
  return { state: r.state, out: encodeAll(r.messages), done: lookupProvider.done(r.state) };
}

/** The bytes to persist for a state, and back (checked against the job's protocol and role). */
export function roleStateToBytes(state: RoleState): Uint8Array {
  return stateToBytes(state);
}
export function roleStateFromBytes(spec: JobSpec, role: PartyRole, bytes: Uint8Array): RoleState {
  return stateFromBytes<RoleState>(bytes, { protocols: [spec.protocol], role });
}

/** The buyer's result once its role is done: its matching rows, the count, or its enriched rows. */
export function buyerResult(spec: JobSpec, state: RoleState, table: Table): BuyerResult {
  const multi = PARTY_PROTOCOLS.get(spec.protocol);
  if (multi) return multi.result(spec, state);
  if (spec.protocol === JobProtocol.Psi || spec.protocol === JobProtocol.PsiCardinality) {
    const r = psiBuyer.result(state as PsiBuyerState);
    return r.mode === "cardinality" ? { kind: "count", count: r.count } : { kind: "table", table: takeRows(table, r.matchedRows) };
  }
  const r = lookupBuyer.result(state as LookupBuyerState);
  return { kind: "table", table: joinLabels(table, r).table };
}

/**
 * The number of distinct buyer keys the provider's role of this job has
 * been told — what a node charges a budget counted in keys by, instead of
 * what the job declared: psi and psi-cardinality, the set size of the
 * buyer's hello; lookup, the hello's queryCount; join-aggregate, the buyer's
 * set size (its hello). Every protocol refuses chunks beyond what the hello
 * announced, so the buyer cannot evaluate more keys than this. undefined
 * before the hello, for the buyer's role, and for federated-aggregate (no
 * buyer keys).
 */
export function buyerKeysSeen(spec: JobSpec, role: PartyRole, state: RoleState): number | undefined {
  if (role !== "provider" || (state as { role?: unknown }).role !== "provider") return undefined;
  switch (spec.protocol) {
    case JobProtocol.Psi:
    case JobProtocol.PsiCardinality: {
      const s = state as PsiProviderState;
      return s.helloReceived ? s.peerSetSize : undefined;
    }
    case JobProtocol.Lookup: {
      const s = state as LookupProviderState;
      return s.helloReceived ? s.queryCount : undefined;
    }
    case JobProtocol.JoinAggregate: {
      const s = state as JaProviderState;
      return s.buyerHello ? s.peerSetSize : undefined;
    }
    default:
      return undefined;
  }
}
