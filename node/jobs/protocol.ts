/**
 * A protocol as a node job: the one interface every protocol module in
 * node/jobs/<protocol>.ts implements, and what the party agent and the
 * exchange give it. The modules are listed in node/jobs/registry.ts; the
 * party agent and the exchange drive every one the same way through
 * node/jobs/run.ts, with no case for any one protocol.
 *
 * A module says which Role of protocols/ a party plays in a job, what it
 * starts from (its keys, its table, the job's parameters from the request,
 * never from a message) and its local context; who plays each role of the
 * job (role name -> party name); how the buyer's final state becomes its
 * result; and, for a protocol where the exchange plays a role, the
 * exchange's side ({@link ExchangeSide}).
 */
import type { Table } from "apache-arrow";
import type { KeyOptions } from "../../engine/columns/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import type { Player, ProtocolId, ProtocolMessage, RoleName } from "../../protocols/index.js";
import type { DatasetDescriptor } from "../catalog.js";
import type { JobRequest, UsagePolicy } from "../policy.js";
import type { JsonValue } from "../store.js";

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
 *   provider's budget (PartyResources.lookup.budgetRemaining) instead.
 *
 * What the provider's role was actually told is {@link NodeProtocol.buyerKeysSeen}.
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

/** What the parties of a job are told by the exchange (job.start), as a party reads it. */
export interface JobSpec {
  readonly id: string;
  readonly protocol: ProtocolId;
  /** The full request as the exchange filled it in and the ledger records it. */
  readonly request: JobRequest;
  readonly buyer: string;
  /** The providers' party names, in provider order (index i owns the job's i-th provider dataset). */
  readonly providers: readonly string[];
  /** This party's index among the providers (providers only). */
  readonly providerIndex?: number;
  /** The exchange's party name (it plays a role in some protocols; it relays every frame). */
  readonly exchange: string;
  /** Absent in a job where the buyer brings no dataset (federated-aggregate). */
  readonly buyerDataset?: string;
  /** This provider's dataset (absent for the buyer of a multi-provider job). */
  readonly providerDataset?: string;
  readonly keyColumns: readonly string[];
  /** lookup: the label columns the buyer receives. */
  readonly outputColumns?: readonly string[];
  readonly normalise?: KeyOptions;
  /** The job's privacy limits (see {@link JobLimits}). */
  readonly limits?: JobLimits;
}

/** A party's side of a job: the buyer, or a provider. */
export type PartyRole = "buyer" | "provider";

/** A party's local resources for its role in a job (not state, never sent). */
export interface PartyResources {
  readonly pool: CryptoPool;
  /** The party's own table for this job (its dataset; empty for a buyer that brings none). */
  readonly table: Table;
  /** lookup provider: the prepared table and its secret key, and the buyer's remaining budget; lookup buyer: the product version. */
  readonly lookup?: { readonly prepared: Table; readonly secretKey: Uint8Array; readonly budgetRemaining: number; readonly product: string; readonly version: number };
  /** federated-aggregate provider: its mask key pair and every provider's mask public key, by index. */
  readonly mask?: { readonly keyPair: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }; readonly peers: readonly Uint8Array[] };
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

export type BuyerResult =
  | { readonly kind: "table"; readonly table: Table; /** Counts for the job's summary (never a value), when the protocol has its own. */ readonly summary?: Readonly<Record<string, number>> }
  | { readonly kind: "count"; readonly count: number };

/** A role bound to a job: the Role, what it starts from, its context; `dispose` frees what the context owns. */
export interface JobPlayer extends Player {
  /** The role's name in the job's messages. */
  readonly name: RoleName;
  /** The role a frame is from when its party plays several roles of the job (e.g. owns several of its datasets); default: the first. */
  senderRole?(candidates: readonly RoleName[], message: ProtocolMessage): RoleName;
  dispose?(): void;
}

/** A job with an exchange-side role, as the exchange knows it. */
export interface MultiPartyJob {
  readonly id: string;
  /** The filled request (see {@link ExchangeSide.prepare}). */
  readonly request: JobRequest;
  readonly buyer: string;
  /** The providers' party names, in provider order (index i owns the job's i-th provider dataset). */
  readonly providers: readonly string[];
  /** The job's privacy limits, as the parties' job specs carry them. */
  readonly limits?: JobLimits;
}

/** The registered keys of a party the exchange passes to a protocol. */
export interface PartyKeys {
  readonly name: string;
  /** Its X25519 mask key (node/identity maskKeyPair), when registered. */
  readonly maskPublicKey: Uint8Array | null;
}

/** The exchange's local resources a role may use. */
export interface ExchangeResources {
  /** The exchange's crypto pool (created on first use). */
  pool(): CryptoPool;
}

/** What a protocol with an exchange-side role tells the exchange (the server drives it through node/jobs/exchange-roles.ts). */
export interface ExchangeSide {
  /**
   * Fills what the request leaves to the exchange, from the catalog and the
   * policies (one descriptor and policy per provider dataset, in order), and
   * checks that the result can run. Throws InvalidJobRequestError (or another
   * typed input error) when it cannot. Policies are checked afterwards on the
   * filled request, and `finalise` runs last.
   */
  prepare(request: JobRequest, datasets: readonly DatasetDescriptor[], policies: readonly UsagePolicy[]): Promise<JobRequest>;
  /** The request once every policy has passed (e.g. the k the job runs with: the largest asked for). */
  finalise(request: JobRequest, policies: readonly UsagePolicy[]): JobRequest;
  /** The job's parameters as the ledger records them (no key, no value). */
  ledgerParams(request: JobRequest): { readonly [key: string]: JsonValue };
  /** What job.start tells provider `index` beyond the request (e.g. every provider's mask key); throws a typed error when a provider lacks a key the protocol needs. */
  providerStart(index: number, providers: readonly PartyKeys[]): { readonly peerKeys?: readonly string[] };
  /** The exchange's role in the job, once every provider has accepted. */
  player(job: MultiPartyJob, resources: ExchangeResources): Promise<JobPlayer>;
  /** The roles the exchange's role still waits for, from its state. */
  missing(state: unknown): readonly RoleName[];
  /** Whether role `from` may send straight to role `to` (the exchange relays the envelope as it is). */
  directRoute(from: RoleName, to: RoleName): boolean;
}

/** One protocol as a node job. */
export interface NodeProtocol {
  readonly protocol: ProtocolId;
  /** Who plays each role of the job: role name -> party name (the exchange by its name). */
  parties(job: { readonly buyer: string; readonly providers: readonly string[]; readonly exchange: string }): ReadonlyMap<RoleName, string>;
  /**
   * What the party agent must give a provider's role beyond its table:
   * "mask", its mask key pair and the other providers' registered mask keys
   * (job.start carries them); "lookup", its key for the dataset's product
   * version and the table prepared with it (the buyer gets the product version).
   */
  readonly resources?: readonly ("mask" | "lookup")[];
  /** Reads this party's table for the job from its file (only the columns the job uses); default: the whole file. */
  readTable?(spec: JobSpec, party: PartyRole, path: string): Promise<Table>;
  /** The role this party plays in the job, what it starts from and its context. */
  player(spec: JobSpec, party: PartyRole, resources: PartyResources): Promise<JobPlayer>;
  /** The buyer's result once its role is done. May throw BelowMinimumError (the result is withheld). */
  result(spec: JobSpec, state: unknown, table: Table): BuyerResult;
  /**
   * The number of distinct buyer keys the provider's role has been told —
   * what a budget counted in keys is charged by, instead of what the job
   * declared. Every protocol refuses chunks beyond what the hello announced,
   * so the buyer cannot evaluate more keys than this. undefined before the
   * hello, and for a protocol without buyer keys.
   */
  buyerKeysSeen?(providerState: unknown): number | undefined;
  /** The exchange's side, for a protocol where it plays a role. */
  readonly exchange?: ExchangeSide;
}

/** Two-party jobs: the buyer and the provider; the exchange only relays. */
export function twoParties(job: { readonly buyer: string; readonly providers: readonly string[] }): ReadonlyMap<RoleName, string> {
  return new Map<RoleName, string>([
    ["buyer", job.buyer],
    ["provider", job.providers[0] ?? ""],
  ]);
}
