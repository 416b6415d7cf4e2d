/**
 * The exchange's own roles in protocols that have one (federated-aggregate:
 * the aggregator; join-aggregate: the matcher and aggregator), behind
 * one small interface and a registry keyed by protocol name. The exchange
 * server (node/server/exchange.ts) knows nothing of any one protocol: for a
 * job whose protocol is registered here it
 *
 *   1. `prepare`s the buyer's request against the catalog (fills the
 *      defaults it leaves out: the filled request is what every party runs
 *      and what the ledger records), then checks it against every provider
 *      dataset's policy;
 *   2. sends job.start to every provider (with its index and what
 *      `providerStart` adds, e.g. the peers' mask keys), and once every one
 *      has accepted, sends job.start to the buyer and `start`s its own role
 *      meanwhile (messages for the role wait until it is up);
 *   3. feeds the role every protocol envelope addressed to the exchange, in
 *      order per job, and seals what the role returns to the parties it
 *      names; a party may send straight to another party only where
 *      `directRoute` says so (the envelope is then relayed as it is);
 *   4. fails the job (nothing released) when the role throws, and names the
 *      parties the role still waits for (`missing`) when the job goes silent.
 *
 * A new exchange-side protocol plugs in by implementing {@link ExchangeProtocol}
 * in its own node/jobs/<protocol>.ts and adding it to {@link EXCHANGE_PROTOCOLS}
 * (or, from outside, with {@link registerExchangeProtocol}); the party side
 * plugs into node/jobs/roles.ts.
 */
import type { CryptoPool } from "../../engine/pool/index.js";
import type { ProtocolId } from "../../protocols/index.js";
import type { DatasetDescriptor } from "../catalog.js";
import type { JobRequest, UsagePolicy } from "../policy.js";
import type { JsonValue } from "../store.js";
import type { JobLimits } from "./roles.js";
import { federatedAggregateExchange } from "./federated-aggregate.js";
import { joinAggregateExchange } from "./join-aggregate.js";

/** A job with an exchange-side role, as the exchange knows it. */
export interface MultiPartyJob {
  readonly id: string;
  /** The filled request (see {@link ExchangeProtocol.prepare}). */
  readonly request: JobRequest;
  readonly buyer: string;
  /** The providers' party names, in provider order (index i owns request.providerDatasets[i]). */
  readonly providers: readonly string[];
  /** The job's privacy limits, as the parties' job specs carry them (join-aggregate's exchange role enforces maxBuyerKeys too). */
  readonly limits?: JobLimits;
}

/** An encoded protocol message for one party of the job. */
export interface RoleFrame {
  readonly to: string;
  readonly frame: Uint8Array;
}

/** The exchange's role in one running job. It owns its resources (e.g. an HE context) until {@link dispose}. */
export interface ExchangeRole {
  /**
   * Takes one encoded protocol message from party `from` of the job and
   * returns the messages to send. Throws a typed error when the message is
   * refused (the job then fails); the role is then unusable.
   */
  receive(from: string, frame: Uint8Array): Promise<readonly RoleFrame[]>;
  /** Whether the role has sent all it will send. */
  readonly done: boolean;
  /** The parties whose messages the role still waits for. */
  missing(): readonly string[];
  /** Frees what the role holds. Idempotent. */
  dispose(): void;
}

/** The registered keys of a party the exchange passes to a protocol. */
export interface PartyKeys {
  readonly name: string;
  /** Its X25519 mask key (node/identity maskKeyPair), when registered. */
  readonly maskPublicKey: Uint8Array | null;
}

/** The exchange's local resources a role may use. */
export interface ExchangeRoleContext {
  /** The exchange's crypto pool (created on first use). */
  pool(): CryptoPool;
}

/** What one protocol with an exchange-side role tells the exchange. */
export interface ExchangeProtocol {
  readonly protocol: ProtocolId;
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
  /**
   * What job.start tells provider `index` beyond the request (e.g. every
   * provider's mask key). Throws a typed error when a provider lacks a key
   * the protocol needs.
   */
  providerStart(index: number, providers: readonly PartyKeys[]): { readonly peerKeys?: readonly string[] };
  /** Starts the exchange's role, once every provider has accepted. */
  start(job: MultiPartyJob, ctx: ExchangeRoleContext): Promise<ExchangeRole>;
  /** Whether party `from` may send an envelope straight to party `to` (relayed as it is). */
  directRoute(job: MultiPartyJob, from: string, to: string): boolean;
}

/** The built-in protocols with an exchange-side role. */
export const EXCHANGE_PROTOCOLS: ReadonlyMap<string, ExchangeProtocol> = new Map<string, ExchangeProtocol>([
  [federatedAggregateExchange.protocol, federatedAggregateExchange],
  [joinAggregateExchange.protocol, joinAggregateExchange],
]);

const extra = new Map<string, ExchangeProtocol>();

/** Adds (or replaces) a protocol with an exchange-side role, e.g. from a test or an extension. */
export function registerExchangeProtocol(p: ExchangeProtocol): void {
  extra.set(p.protocol, p);
}

/** The exchange-side protocol of that name, if any (a two-party protocol has none: the exchange only relays). */
export function exchangeProtocolFor(protocol: string): ExchangeProtocol | undefined {
  return extra.get(protocol) ?? EXCHANGE_PROTOCOLS.get(protocol);
}
