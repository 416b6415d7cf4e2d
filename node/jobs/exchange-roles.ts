/**
 * The exchange's own roles, as the exchange server drives them: for a job
 * whose protocol module (node/jobs/registry.ts) has an exchange side, the
 * server
 *
 *   1. `prepare`s the buyer's request against the catalog (fills the
 *      defaults it leaves out: the filled request is what every party runs
 *      and what the ledger records), then checks it against every provider
 *      dataset's policy, then `finalise`s it;
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
 * This file is the same for every protocol: it maps party names to role
 * names and drives the module's exchange Role with RoleRun (node/jobs/run.ts).
 */
import { ProtocolError, type ProtocolId, type RoleName } from "../../protocols/index.js";
import type { ExchangeResources, ExchangeSide, MultiPartyJob, NodeProtocol } from "./protocol.js";
import { nodeProtocolFor } from "./registry.js";
import { RoleRun, type RoleFrame } from "./run.js";

export type { MultiPartyJob, PartyKeys } from "./protocol.js";
export type { RoleFrame } from "./run.js";

/** The exchange's role in one running job. It owns its resources (e.g. an HE context) until {@link dispose}. */
export interface ExchangeRole {
  /** Takes one encoded protocol message from party `from`; returns the frames to send. Throws a typed error when the message is refused (the job then fails). */
  receive(from: string, frame: Uint8Array): Promise<readonly RoleFrame[]>;
  /** Whether the role has sent all it will send. */
  readonly done: boolean;
  /** The role's state (plain data: what a checkpoint saves). */
  readonly state: unknown;
  /** The parties whose messages the role still waits for. */
  missing(): readonly string[];
  /** Frees what the role holds. Idempotent. */
  dispose(): void;
}

/** A protocol with an exchange-side role, as the exchange server drives it. */
export interface ExchangeProtocol extends Omit<ExchangeSide, "player" | "missing" | "directRoute"> {
  readonly protocol: ProtocolId;
  /** Starts the exchange's role, once every provider has accepted. */
  start(job: MultiPartyJob, resources: ExchangeResources): Promise<ExchangeRole>;
  /** Takes the exchange's role up again from a checkpointed state (after a restart). */
  resume(job: MultiPartyJob, resources: ExchangeResources, state: unknown): Promise<ExchangeRole>;
  /** Whether party `from` may send an envelope straight to party `to` (relayed as it is). */
  directRoute(job: MultiPartyJob, from: string, to: string): boolean;
}

/** The exchange's own name in a job's role map (no party may be named so: names are 1..64 of [A-Za-z0-9._-]). */
const SELF = "";

function partiesOf(m: NodeProtocol, job: MultiPartyJob): ReadonlyMap<RoleName, string> {
  return m.parties({ buyer: job.buyer, providers: job.providers, exchange: SELF });
}

function driven(m: NodeProtocol, side: ExchangeSide): ExchangeProtocol {
  const roleOf = (run: RoleRun, parties: ReadonlyMap<RoleName, string>): ExchangeRole => ({
    receive: (from, frame) => run.receive(from, frame),
    get done() {
      return run.done;
    },
    get state() {
      return run.state;
    },
    missing: () => side.missing(run.state).map((r) => parties.get(r) ?? r),
    dispose: () => run.dispose(),
  });
  return {
    protocol: m.protocol,
    prepare: (request, datasets, policies) => side.prepare(request, datasets, policies),
    finalise: (request, policies) => side.finalise(request, policies),
    ledgerParams: (request) => side.ledgerParams(request),
    providerStart: (index, providers) => side.providerStart(index, providers),
    async start(job, resources) {
      const parties = partiesOf(m, job);
      const { run, out } = await RoleRun.start(await side.player(job, resources), parties);
      if (out.length > 0) {
        run.dispose();
        throw new ProtocolError("the exchange's role sends nothing before a party has");
      }
      return roleOf(run, parties);
    },
    async resume(job, resources, state) {
      const parties = partiesOf(m, job);
      return roleOf(RoleRun.resume(await side.player(job, resources), parties, state), parties);
    },
    directRoute(job, from, to) {
      const roles = new Map([...partiesOf(m, job)].map(([role, party]) => [party, role]));
      const a = roles.get(from);
      const b = roles.get(to);
      return a !== undefined && b !== undefined && a !== "exchange" && b !== "exchange" && side.directRoute(a, b);
    },
  };
}

/** The exchange-side protocol of that name, if any (a two-party protocol has none: the exchange only relays). */
export function exchangeProtocolFor(protocol: string): ExchangeProtocol | undefined {
  const m = nodeProtocolFor(protocol);
  return m?.exchange ? driven(m, m.exchange) : undefined;
}
