/**
 * umbra/protocols: the multi-party protocols as transport-free state
 * machines (state is plain data; a step is (state, message) -> (state,
 * messages)), their protobuf messages, and runners that play every role in
 * this process over a transport that serialises every message.
 *
 *   import { runPsi, runPsiOt, runLookup, prepareLookupTable, runJoinAggregate, runFederatedAggregate } from "umbra/protocols";
 *
 * The runners take one set of option names (each side's `keys` and
 * `normalise`, k as `minGroupSize`, default 10 as on the CLI), refuse an
 * option they do not take (UnknownOptionError, options.ts), and return typed
 * results that JSON.stringify (results.ts).
 */
export * from "./errors.js";
import { ProtocolId } from "./codec.js";
import { ProtocolError } from "./errors.js";
export { decodeMessage, encodeMessage, isJobId, MAX_CHUNK_ELEMENTS, MAX_MATRIX_CHUNK_BYTES, MAX_MESSAGE_BYTES, OT_NONCE_BYTES, ProtocolId } from "./codec.js";
export type {
  AggregateCiphertext,
  AggregateKey,
  ElementBatch,
  JoinCiphertext,
  JoinCounts,
  JoinHello,
  JoinResult,
  JoinWeights,
  Header,
  LookupHello,
  LookupTableInfo,
  MessageKind,
  OtBaseMessage,
  OtMatrixChunk,
  OtPsiHello,
  OtPsiReveal,
  ProtocolMessage,
  PsiHello,
  Refusal,
  SealedRows,
} from "./codec.js";
export { MemoryTransport, type TransportStats } from "./transport.js";
export { refusalFor } from "./refusal.js";
export { stateFromBytes, stateToBytes, type PersistableState } from "./state.js";
export { player, providerIndex, providerRole, RoleName, runRoles, type Outgoing, type Player, type Role, type RolesRun, type RunRolesOptions, type Step } from "./role.js";
export * from "./psi/index.js";
export * from "./psi-ot/index.js";
export {
  LOOKUP_VERSION,
  LookupStep,
  TAG_BYTES,
  assertPreparedKey,
  deriveTagAndKey,
  lookupBuyer,
  lookupKeyPair,
  lookupProvider,
  preparedTableInfo,
  prepareLookupTable,
  type LookupBuyerInit,
  type LookupBuyerResult,
  type LookupBuyerState,
  type LookupContext,
  type LookupParams,
  type LookupProviderContext,
  type LookupProviderInit,
  type LookupProviderOptions,
  type LookupProviderState,
  type PrepareOptions,
} from "./lookup/index.js";
export { joinLabels, runLookup, RUN_LOOKUP_OPTIONS, PREPARE_LOOKUP_OPTIONS, type LookupRunResult, type RunLookupOptions } from "./lookup/index.js";
export { type OptionShape } from "./options.js";
export { tableRows, toJsonValue, type Cell, type JsonResult, type Row } from "./results.js";
export * from "./federated-aggregate/index.js";
export {
  JA_MAX_GROUPS,
  JA_VERSION,
  JaStep,
  jaBuyer,
  jaDst,
  jaExchange,
  jaHeOptions,
  jaProvider,
  paddedSize,
  resolveJaParams,
  type JaBuyerInit,
  type JaBuyerInput,
  type JaBuyerState,
  type JaColumnResult,
  type JaContext,
  type JaExchangeInit,
  type JaExchangeState,
  type JaGroupResult,
  type JaProviderInit,
  type JaProviderInput,
  type JaProviderState,
  type JaResolved,
  type JaResult,
  type JaStat,
  type JoinAggregateParams,
} from "./join-aggregate/index.js";
export {
  JA_DP_DEFAULT_MAX_ROWS_PER_KEY,
  JA_DP_MAX_ROWS_PER_KEY,
  JA_NOISE_SLOTS,
  jaDpPlan,
  jaExchangeNoise,
  jaProviderNoise,
  type JaDpParams,
  type JaDpResolved,
  type JaDpSummary,
  type JaNoiseGroup,
  type JaNoisyValue,
} from "./join-aggregate/index.js";
export { groupLabels, groupLabelsAsync, jaResultTable, runJoinAggregate, RUN_JOIN_AGGREGATE_OPTIONS, type JaRunResult, type JaSide, type RunJoinAggregateOptions } from "./join-aggregate/index.js";


/**
 * One protocol as the rest of the system sees it: who takes part, what each
 * learns, and the traits the policy check and the job request follow. The
 * one list a new protocol adds itself to (with its folder, its node module
 * and its docs page).
 */
export interface ProtocolDescription {
  readonly id: ProtocolId;
  readonly parties: readonly string[];
  /** What the buyer learns is a group (a count, per-group totals) under the minimum group size k. */
  readonly k: boolean;
  /** The buyer's result is withheld below a minimum number of matched distinct keys (minIntersection). */
  readonly minIntersection: boolean;
  /** The buyer brings keys the provider evaluates: the job names key columns, and a budget may count them. */
  readonly buyerKeys: boolean;
  readonly buyerLearns: string;
  readonly providerLearns: string;
  readonly exchangeLearns: string;
}

export const PROTOCOLS: readonly ProtocolDescription[] = [
  {
    id: ProtocolId.Psi,
    k: false,
    minIntersection: true,
    buyerKeys: true,
    parties: ["buyer", "provider"],
    buyerLearns: "which of its rows match",
    providerLearns: "the buyer's set size",
    exchangeLearns: "sizes",
  },
  {
    id: ProtocolId.PsiCardinality,
    k: true,
    minIntersection: true,
    buyerKeys: true,
    parties: ["buyer", "provider"],
    buyerLearns: "the intersection size",
    providerLearns: "the buyer's set size",
    exchangeLearns: "sizes",
  },
  {
    // Semi-honest: a buyer that deviates may test up to its OT rows' worth of keys (≈ 1.2·n + stash), so a policy opts in by name.
    id: ProtocolId.PsiOt,
    k: false,
    minIntersection: true,
    buyerKeys: true,
    parties: ["buyer", "provider"],
    buyerLearns: "which of its rows match, and the provider's set size",
    providerLearns: "the buyer's set size (its cuckoo table's size), nothing else",
    exchangeLearns: "sizes (it relays opaque envelopes)",
  },
  {
    id: ProtocolId.Lookup,
    k: false,
    minIntersection: true,
    buyerKeys: true,
    parties: ["buyer", "provider"],
    buyerLearns: "the provider's allowed columns for its matched keys",
    providerLearns: "the number of buyer queries",
    exchangeLearns: "sizes",
  },
  {
    id: ProtocolId.JoinAggregate,
    k: true,
    minIntersection: false,
    buyerKeys: true,
    parties: ["buyer", "provider", "exchange"],
    buyerLearns: "COUNT/SUM/AVG/VAR of provider columns over the join, per group, groups under k distinct matched keys or k joined rows suppressed",
    providerLearns: "the buyer's set size",
    exchangeLearns: "the intersection size (and the size of each pseudonymous group)",
  },
  {
    id: ProtocolId.FederatedAggregate,
    k: true,
    minIntersection: false,
    buyerKeys: false,
    parties: ["buyer", "providers (N >= 2)", "exchange"],
    buyerLearns: "COUNT/SUM/AVG/histogram across all providers, per public category",
    providerLearns: "nothing",
    exchangeLearns: "nothing",
  },
];

/** The description of a protocol (every ProtocolId has one). */
export function protocolDescription(id: ProtocolId): ProtocolDescription {
  const d = PROTOCOLS.find((p) => p.id === id);
  if (d === undefined) throw new ProtocolError(`unknown protocol ${id}`);
  return d;
}
