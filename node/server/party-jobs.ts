/**
 * The party agent's job runner: takes every envelope from the mailbox, and
 * plays this party's role in every job it takes part in — the same way for
 * every protocol (node/jobs/registry.ts names the modules; node/jobs/run.ts
 * drives a role).
 *
 * job.start. The job as the exchange's signed ledger records it must verify
 * under the pinned key and name the request job.start carries. A provider
 * then checks its own copy of its dataset's policy again, reserves the job's
 * cost in the buyer's budget (and a federated-aggregate job's ρ in its copy of the
 * privacy budget, node/policy.ts spendPrivacy), says it accepted, and starts its role; a buyer
 * runs only a job it submitted, as it asked for it (the exchange may fill in
 * what it left out, never change it).
 *
 * Protocol frames. Each frame is opened (signature, seal, replay), bound to
 * the job, and fed to the role from the party that sent it — a party that
 * plays no role of the job is refused. What the role sends goes to the
 * parties that play the roles it addresses, sealed to each and relayed by the
 * exchange; in a job where the exchange plays a role, the buyer and the
 * provider also send each other frames straight where the protocol has them
 * (the exchange checks the route).
 *
 * Budgets count what was measured: once the buyer's hello names its distinct
 * keys, the reservation is settled to that count. The buyer writes its result
 * (or, under the job's minimum intersection, a withheld marker — the job ends
 * as any other, so no other party learns the intersection was small) with a
 * salted commitment the exchange records.
 *
 * Durable (docs/durability.md): every envelope is processed in one store
 * transaction — the role's new state (a checkpoint), what it sends (the
 * outbox, node/server/party-outbox.ts), the sender's watermark, a budget's
 * settlement, the result — and acknowledged to the exchange only after.
 * An envelope delivered again (at or below its sender's watermark) is
 * skipped. On start the agent takes up every open job from its checkpoint
 * (re-reading its input, which must not have changed: UMBRA_DATASET_CHANGED)
 * and sends what its outbox still holds.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { RecordBatchStreamWriter, Table } from "apache-arrow";
import type { FastifyBaseLogger } from "fastify";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { readTable } from "../../engine/columns/index.js";
import { InvalidInputError, UmbraError } from "../../engine/errors.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { BelowMinimumError, lookupKeyPair, prepareLookupTable, protocolDescription, type ProtocolId } from "../../protocols/index.js";
import { decodeEnvelope, ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import type { DatasetDescriptor } from "../catalog.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, openEnvelope, type OpenedEnvelope, type SenderKeys } from "../envelope.js";
import { maskKeyPair, type NodeIdentity } from "../identity.js";
import { LedgerKind, requestDigest, resultCommitment, verifiedEntry } from "../ledger.js";
import { checkJob, spendPrivacy, jobCost, jobDatasets, parsePolicy, PolicyDeniedError, requestExtends, settlesByKeys, type JobRequest, type UsagePolicy } from "../policy.js";
import { jobLimitsOf, type JobSpec, type NodeProtocol, type PartyResources, type PartyRole } from "../jobs/protocol.js";
import { nodeProtocolFor } from "../jobs/registry.js";
import { RoleRun, type RoleFrame } from "../jobs/run.js";
import type { Store } from "../store.js";
import { untilAvailable, type ExchangeClient } from "./client.js";
import { LogErrorCode } from "../errors.js";
import type { LogWatch } from "../log/watch.js";
import type { Delivery } from "./mailbox.js";
import { PartyOutbox } from "./party-outbox.js";
import { CONTROL_STEP, ControlType, lookupProduct, parseControl, type ControlMessage, type JobEvent } from "./control.js";
import { ContractDeniedError } from "../venue/contract.js";
import type { PartyVenue } from "../venue/party-venue.js";
import { lookupMatched, meteredUnits } from "../venue/buyer-metering.js";



/** Largest envelope the agent opens (the envelope layer's payload limit and its overhead). */
const MAX_ENVELOPE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/** Prepared lookup tables kept in memory (each can be large; the least recently used goes first). */
const PREPARED_CACHE_ENTRIES = 2;

/** Envelopes from the mailbox are opened however long they waited there (a restart may take minutes): their sequence numbers stop replays. */
const NO_FRESHNESS_LIMIT = Number.MAX_SAFE_INTEGER;

/** A checkpoint's role name for the agent's own role in a job (it plays one per job). */
const CHECKPOINT_ROLE = "party";

type StartMessage = Extract<ControlMessage, { type: "job.start" }>;

/** What a provider whose budget counts keys reserved when it accepted; settled to the measured count once the buyer's hello names it (NodeProtocol.buyerKeysSeen), released in full when the job ends before. */
interface Charge {
  readonly dataset: string;
  readonly buyer: string;
  readonly reserved: number;
  /** Whether the dataset's budget counts keys (what was reserved beyond the measured count goes back); false: measured only for a contract's price per key. Absent (a run recorded before receipts): true. */
  readonly budget?: boolean;
  settled: boolean;
}

interface Running {
  readonly spec: JobSpec;
  readonly party: PartyRole;
  readonly module: NodeProtocol;
  readonly run: RoleRun;
  readonly table: Table;
  readonly start: StartMessage;
  readonly inputHash: string | null;
  charge?: Charge;
}

/** A job's role as the agent sets it up (at start, and again after a restart). */
interface Setup {
  readonly spec: JobSpec;
  readonly module: NodeProtocol;
  readonly resources: PartyResources;
  readonly inputHash: string | null;
}

/** The dataset file a job reads changed after the job started: resuming would compute on other data. */
class DatasetChangedError extends UmbraError {
  constructor() {
    super("UMBRA_DATASET_CHANGED", "the job's dataset file changed after the job started; the job cannot resume on other data (run it again)");
  }
}

/** SHA-256 (hex) of a file, streamed. */
async function fileHash(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

export interface PartyJobsOptions {
  /** The venue: a provider's check of the contracts a job cites (node/venue/party-venue.ts). */
  readonly venue?: Pick<PartyVenue, "checkJob">;
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly pool: CryptoPool;
  readonly client: ExchangeClient;
  readonly log: FastifyBaseLogger;
  /** A data file inside the data folder (checked: no way out of it). */
  readonly dataFile: (name: string) => string;
  /** A party's keys (fetched from the exchange, cached). */
  readonly senderKeys: (name: string) => Promise<SenderKeys | undefined>;
  readonly cachedKeys: (name: string) => SenderKeys | undefined;
  /** The pinned exchange: its name and keys (set once the agent started). */
  readonly exchange: () => { readonly name: string; readonly keys: SenderKeys | undefined };
  /** The party's watch on the exchange's log: a job's ledger record must be in the log as this party holds it. */
  readonly logWatch: LogWatch;
  /** Submissions on their way to the exchange (a job.start may overtake the answer that names its job). */
  readonly submitting: ReadonlySet<Promise<unknown>>;
}

export interface PartyJobs {
  /** Handles one delivery from the mailbox (jobs in parallel, each job's envelopes in order). */
  handle(delivery: Delivery): void;
  /** Jobs this agent plays a role in now. */
  readonly running: number;
  /** Takes up every open job where it stopped, and sends what the outbox holds (at start; the jobs are set up in the background, each job's envelopes waiting until it is). */
  resume(): Promise<void>;
  /** Waits for the work in flight, and stops sending. */
  drain(): Promise<void>;
}

export function partyJobs(o: PartyJobsOptions): PartyJobs {
  const { store, identity, pool, client, log } = o;
  const running = new Map<string, Running>();
  const chains = new Map<string, Promise<void>>();
  /** The lookup key of this party for a dataset: derived from its identity, rotated by the policy version. */
  const masterSeed = hkdf(sha256, identity.signing.secretKey, undefined, new TextEncoder().encode("umbra/lookup/master-seed"), 32);
  const prepared = new Map<string, Table>();
  const outbox = new PartyOutbox({ store, identity, client, log, senderKeys: o.senderKeys, exchange: o.exchange });
  const durable = store.durable;

  /** Puts a job event in the outbox (inside the caller's transaction): sent after the commit, in order with the job's envelopes. */
  const queueEvent = (job: string, e: JobEvent): void => {
    durable.outboxPut({ job, kind: "event", body: new TextEncoder().encode(JSON.stringify(e)) });
  };
  /** Puts the role's envelopes in the outbox, each with its sequence number (inside the caller's transaction). */
  const queueFrames = (job: string, frames: readonly RoleFrame[]): void => {
    for (const f of frames) durable.outboxPut({ job, kind: "frame", recipient: f.to, step: f.step, sequence: durable.takeSequence(job, identity.name), body: f.frame });
  };
  /** Forgets what was kept to go on with a job that has ended here: its rows and its checkpoints (inside the caller's transaction). */
  const forget = (job: string): void => {
    durable.forgetJob(job);
    store.checkpoints.delete(job);
  };
  /** Commits, then sends what the commit queued. */
  const commit = <T>(job: string, fn: () => T): T => {
    const out = store.transaction(fn);
    outbox.kick(job);
    return out;
  };

  const specOf = (m: StartMessage): JobSpec => {
    const { job, request, counterpart, role, providers, providerIndex } = m;
    const providerDataset = providers !== undefined ? (providerIndex !== undefined ? jobDatasets(request)[providerIndex] : undefined) : request.providerDataset;
    return {
      id: job,
      protocol: request.protocol as ProtocolId,
      request,
      buyer: role === "buyer" ? identity.name : providers !== undefined ? request.buyer : counterpart,
      providers: providers ?? [role === "provider" ? identity.name : counterpart],
      ...(providerIndex !== undefined ? { providerIndex } : {}),
      exchange: o.exchange().name,
      ...(request.buyerDataset !== undefined ? { buyerDataset: request.buyerDataset } : {}),
      ...(providerDataset !== undefined ? { providerDataset } : {}),
      keyColumns: request.params.keyColumns,
      // Both sides apply the request's normalisation, each to its own file: the buyer's choice, recorded with the job.
      ...(request.params.normalise ? { normalise: request.params.normalise } : {}),
      limits: jobLimitsOf(request),
      ...(request.params.outputColumns ? { outputColumns: request.params.outputColumns } : {}),
    };
  };

  const ownPolicy = (id: string): UsagePolicy | undefined => {
    const p = store.latestPolicy(id);
    return p ? parsePolicy(p.policy) : undefined;
  };
  const ownDescriptor = (id: string): DatasetDescriptor | undefined => {
    const d = store.getDataset(id);
    return d ? { id: d.id, owner: d.owner, name: d.name, schema: d.schema as DatasetDescriptor["schema"], rowCount: d.rowCount, contentHash: d.contentHash, createdAt: new Date(d.createdAt).toISOString() } : undefined;
  };

  /** Reports a job's progress to the exchange at most once a second (phase and counts, never data; not kept: a lost report is replaced by the next). */
  const progressReporter = (job: string) => {
    let last = 0;
    return (phase: string, done: number, total: number) => {
      const t = Date.now();
      if (t - last < 1000 && done !== total) return;
      last = t;
      void client.json("POST", `/v1/jobs/${job}/events`, { kind: "progress", progress: { phase, done, total } } satisfies JobEvent).catch(() => undefined);
    };
  };

  /** The provider's prepared lookup table for its dataset's product version (a few kept, least recently used out first; derived again from the dataset after a restart). */
  const lookupResources = async (desc: DatasetDescriptor, spec: JobSpec, table: Table, m: StartMessage): Promise<NonNullable<PartyResources["lookup"]>> => {
    const version = m.lookup?.version ?? store.latestPolicy(desc.id)?.version ?? 1;
    const labels = [...(spec.outputColumns ?? [])].sort();
    const product = lookupProduct(desc.id);
    const { secretKey } = lookupKeyPair(masterSeed, product, version);
    const norm = spec.normalise ?? {};
    const cacheKey = `${desc.id}/${desc.contentHash}/${version}/${spec.keyColumns.join(",")}/${labels.join(",")}/${norm.digitsOnly ? "d" : ""}${norm.caseFold ? "c" : ""}`;
    let p = prepared.get(cacheKey);
    if (p) prepared.delete(cacheKey); // re-inserted below: most recently used last
    else p = await prepareLookupTable({ table, keys: spec.keyColumns, labels, secretKey, product, version, pool, normalise: norm });
    prepared.set(cacheKey, p);
    while (prepared.size > PREPARED_CACHE_ENTRIES) prepared.delete(prepared.keys().next().value as string);
    return { prepared: p, secretKey, budgetRemaining: m.request.params.queryCount ?? Number.MAX_SAFE_INTEGER, product, version };
  };

  /**
   * What this party's role in a job reads and is given: its input file (and
   * that file's hash, which must be `expectHash` when resuming), its mask or
   * lookup keys. The same at start and after a restart.
   */
  const setUp = async (m: StartMessage, expectHash?: string | null): Promise<Setup> => {
    const module = nodeProtocolFor(m.request.protocol);
    if (!module) throw new UmbraError("UMBRA_UNKNOWN_PROTOCOL", "a job of a protocol this agent does not know");
    const spec = specOf(m);
    const onProgress = progressReporter(m.job);
    // The file is hashed while it is read (one pass each, side by side); on resume the hash must be the one recorded at start.
    const read = async (party: PartyRole, path: string): Promise<{ table: Table; hash: string }> => {
      const [hash, table] = await Promise.all([fileHash(path), module.readTable ? module.readTable(spec, party, path) : readTable(path)]);
      if (expectHash !== undefined && hash !== expectHash) throw new DatasetChangedError();
      return { table, hash };
    };
    if (m.role === "provider") {
      const desc = spec.providerDataset !== undefined ? ownDescriptor(spec.providerDataset) : undefined;
      if (!desc) throw new UmbraError("UMBRA_NOT_FOUND", "the job's dataset is not registered here");
      const { table, hash } = await read("provider", o.dataFile(desc.name));
      // What the protocol asks of the agent: its mask key and the peers' registered ones (from job.start), its lookup key and prepared table.
      let mask: PartyResources["mask"];
      if (module.resources?.includes("mask")) {
        if (!m.peerKeys) throw new UmbraError("UMBRA_NO_MASK_KEY", "job.start carries no mask keys");
        mask = { keyPair: maskKeyPair(identity), peers: m.peerKeys.map((k) => Uint8Array.from(Buffer.from(k, "hex"))) };
      }
      const lookup = module.resources?.includes("lookup") ? await lookupResources(desc, spec, table, m) : undefined;
      return { spec, module, inputHash: hash, resources: { pool, table, onProgress, ...(lookup ? { lookup } : {}), ...(mask ? { mask } : {}) } };
    }
    // Its own dataset, a registered one or a file in the data folder (none in a multi-provider job).
    const mine = m.request.buyerDataset;
    const own = mine !== undefined ? store.getDataset(mine) : undefined;
    const input = mine === undefined ? { table: new Table(), hash: null } : await read("buyer", o.dataFile(own ? own.name : mine));
    let lookup: PartyResources["lookup"];
    if (module.resources?.includes("lookup")) {
      if (!m.lookup) throw new UmbraError("UMBRA_PROTOCOL", "a lookup job names its product version");
      // The buyer never holds the prepared table or the key: only the product version it asks for.
      lookup = { prepared: new Table(), secretKey: new Uint8Array(0), budgetRemaining: 0, product: m.lookup.product, version: m.lookup.version };
    }
    return { spec, module, inputHash: input.hash, resources: { pool, table: input.table, onProgress, ...(lookup ? { lookup } : {}) } };
  };

  /**
   * Starts this party's role (or starts it again after a restart that came
   * before its first checkpoint) and commits its first state with what it
   * sends first and, when given, the envelope that started it.
   */
  const startRole = async (m: StartMessage, setup: Setup, charge: Charge | undefined, started?: OpenedEnvelope): Promise<void> => {
    const player = await setup.module.player(setup.spec, m.role, setup.resources);
    const { run, out } = await RoleRun.start(player, setup.module.parties(setup.spec));
    const r: Running = { spec: setup.spec, party: m.role, module: setup.module, run, table: setup.resources.table, start: m, inputHash: setup.inputHash, ...(charge ? { charge } : {}) };
    running.set(m.job, r);
    commit(m.job, () => {
      store.checkpoints.save(m.job, CHECKPOINT_ROLE, run.state as never);
      queueFrames(m.job, out);
      if (started) durable.markProcessed(m.job, started.sender, started.sequence);
    });
  };

  /** Ends a job here before it ran (refused, or failed before its role started), in one transaction with its event and its job.start's watermark. */
  const endBeforeRun = (m: StartMessage, env: OpenedEnvelope, to: "refused" | "failed", event: JobEvent): void => {
    commit(m.job, () => {
      const local = store.getJob(m.job);
      if (local && (local.state === "submitted" || local.state === "running")) store.transitionJob(m.job, ["submitted", "running"], to, event.rule ?? event.reason ?? null);
      durable.markProcessed(m.job, env.sender, env.sequence);
      queueEvent(m.job, event);
    });
  };

  const onStart = async (m: StartMessage, env: OpenedEnvelope): Promise<void> => {
    // Delivered again after a restart: the job is under way here (or over) already.
    if (durable.getRun(m.job) !== undefined) return;
    const x = o.exchange();
    // The job as the exchange's signed ledger records it: its job.submitted entry, under the pinned key, names this request.
    const record = x.keys ? verifiedEntry(m.record, x.keys.signingPublicKey) : undefined;
    if (record === undefined || record.kind !== LedgerKind.JobSubmitted || record.job !== m.job || record.body["request"] !== requestDigest(m.request)) {
      log.warn({ job: m.job, code: "UMBRA_BAD_RECORD" }, "refused a job.start whose ledger record does not verify");
      endBeforeRun(m, env, "failed", { kind: "failed", reason: "UMBRA_BAD_RECORD" });
      return;
    }
    // The record must be in the exchange's log as this party holds it (an inclusion proof in its signed head): a job
    // the exchange recorded in a history it shows this party differently, or not at all, is refused (evidence kept).
    // An exchange that is restarting (unreachable, 5xx, 429) is asked again for up to a minute: the job.start is not
    // delivered again to this process (its mailbox poll has moved past it), so giving up here would fail the job.
    try {
      await untilAvailable(() =>
        o.logWatch.checkIncluded(
          record,
          async (seq, size) => (await o.client.json<{ proof: unknown }>("GET", `/v1/log/inclusion?seq=${seq}&size=${size}`)).proof,
          // Any answer to a request sent now carries the head and the proof from the size held (node/log/watch.ts).
          async () => void (await o.client.json("GET", "/v1/log/head")),
        ),
      );
    } catch (err) {
      const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
      // Any other error (the exchange still unreachable after a minute) fails the job as a step's error does; it is no verdict on the log.
      if (code !== LogErrorCode.Inconsistent && code !== LogErrorCode.BadHead) throw err;
      log.error({ job: m.job, code }, "refused a job.start whose ledger record is not in the exchange's log as this party holds it");
      endBeforeRun(m, env, "failed", { kind: "failed", reason: code });
      return;
    }
    if (!nodeProtocolFor(m.request.protocol)) {
      endBeforeRun(m, env, "failed", { kind: "failed", reason: "UMBRA_UNKNOWN_PROTOCOL" });
      return;
    }
    const spec = specOf(m);
    if (m.role === "provider") {
      // This party's own record of the job (its state, steps and result hang off it); the buyer's was made when it submitted.
      const local = store.getJob(m.job);
      if (local !== undefined && local.state !== "submitted") return; // a job.start for a job that has ended here already
      if (!local) store.createJob({ id: m.job, protocol: spec.protocol, buyer: spec.buyer, providers: [...spec.providers], params: { request: m.request } as never });
      // The provider's own check, on its own copy of the policy, before it answers anything.
      const own = spec.providerDataset;
      const desc = own !== undefined ? ownDescriptor(own) : undefined;
      const policy = own !== undefined ? ownPolicy(own) : undefined;
      const mine = m.providers === undefined || m.providers[m.providerIndex ?? -1] === identity.name;
      if (!desc || !policy || !mine) {
        endBeforeRun(m, env, "refused", { kind: "refused", rule: "dataset-mismatch" });
        return;
      }
      try {
        checkJob(policy, desc, m.request, { now: new Date(), budgetRemaining: store.getBudget(desc.id, m.request.buyer)?.remaining ?? policy.queryBudget, privacySpent: store.getPrivacySpent(desc.id, m.request.buyer) });
      } catch (err) {
        if (err instanceof PolicyDeniedError) {
          endBeforeRun(m, env, "refused", { kind: "refused", rule: err.rule });
          return;
        }
        throw err;
      }
      // The contracts the job cites, checked on this provider's own copies (docs/venue.md), like the policy.
      const venue = o.venue ? await o.venue.checkJob(m.request, desc.id, m.contracts) : { contracts: [] };
      if ("rule" in venue) {
        endBeforeRun(m, env, "refused", { kind: "refused", rule: venue.rule });
        return;
      }
      const setup = await setUp(m);
      // Settled to the measured keys later; a job that evaluates no buyer keys costs one unit (jobCost).
      const cost = jobCost(policy, m.request) ?? 0;
      // Measured keys are reported for the budget (in keys) and for a contract of the job that prices each key (docs/venue.md, metering).
      const byBudget = settlesByKeys(policy, m.request);
      const byPrice = !byBudget && protocolDescription(m.request.protocol).buyerKeys && venue.contracts.some((c) => ((store.venue.getContract(c)?.document as { prices?: { perKey?: number } } | undefined)?.prices?.perKey ?? 0) > 0);
      const charge: Charge | undefined = byBudget
        ? { dataset: desc.id, buyer: m.request.buyer, reserved: cost, settled: false }
        : byPrice
          ? { dataset: desc.id, buyer: m.request.buyer, reserved: m.request.params.queryCount ?? Number.MAX_SAFE_INTEGER, budget: false, settled: false }
          : undefined;
      // Accepted, in one transaction with the budget it reserves and what resumes the job: the exchange and the
      // buyer get ready while this role starts (hashing its set takes seconds). Their messages wait in this
      // agent's queue until it has.
      try {
        commit(m.job, () => {
          // One job of each contract's quota, as this provider counts them: another job that took the last one meanwhile refuses this one.
          for (const c of venue.contracts) if (!store.venue.reserveJob(c)) throw new ContractDeniedError("contract-quota-exhausted", "the contract's quota of jobs is used up");
          if (!store.getBudget(desc.id, m.request.buyer)) store.setBudget(desc.id, m.request.buyer, policy.queryBudget);
          store.consumeBudget(desc.id, m.request.buyer, cost);
          // Its own copy of the privacy budget, checked again and spent with the acceptance (a racing job that took the last of it refuses this one).
          spendPrivacy(store, desc.id, policy, m.request);
          store.transitionJob(m.job, ["submitted"], "running");
          durable.putRun({ job: m.job, role: "provider", start: m, inputHash: setup.inputHash, charge: charge ?? null });
          queueEvent(m.job, { kind: "accepted" });
        });
      } catch (err) {
        if (!(err instanceof ContractDeniedError) && !(err instanceof PolicyDeniedError)) throw err;
        endBeforeRun(m, env, "refused", { kind: "refused", rule: err.rule });
        return;
      }
      await startRole(m, setup, charge, env);
      return;
    }
    // Buyer: only a job this agent submitted, and only as it asked for it: nobody can make it
    // read a file or join on a key it did not choose.
    let local = store.getJob(m.job);
    if (local === undefined && o.submitting.size > 0) {
      await Promise.allSettled([...o.submitting]);
      local = store.getJob(m.job);
    }
    const asked = (local?.params as { request?: JobRequest; submitted?: boolean } | undefined) ?? {};
    if (local === undefined || asked.submitted !== true || asked.request === undefined || !requestExtends(asked.request, m.request)) {
      log.warn({ job: m.job, code: "UMBRA_NOT_SUBMITTED" }, "refused a job.start for a job this party did not submit (or not as it asked)");
      endBeforeRun(m, env, "failed", { kind: "failed", reason: "UMBRA_NOT_SUBMITTED" });
      return;
    }
    if (local.state !== "submitted") return; // a job.start for a job that has ended here already
    const setup = await setUp(m);
    commit(m.job, () => {
      store.transitionJob(m.job, ["submitted"], "running");
      durable.putRun({ job: m.job, role: "buyer", start: m, inputHash: setup.inputHash, charge: null });
    });
    await startRole(m, setup, undefined, env);
  };

  /** The buyer's result: written with a salted commitment (the digest in the exchange's ledger says nothing of a count or of a withheld result), in one transaction with the job's end and its event. */
  const finish = (job: string, r: Running): void => {
    let bytes: Uint8Array;
    let summary: Record<string, number>;
    let withheld: string | null = null;
    try {
      const result = r.module.result(r.spec, r.run.state, r.table);
      bytes = result.kind === "table" ? RecordBatchStreamWriter.writeAll(result.table).toUint8Array(true) : new TextEncoder().encode(JSON.stringify({ count: result.count }));
      // The result's summary (a count, rows, groups) is the buyer's: kept in its own record of the job, never sent.
      summary = result.kind === "count" ? { count: result.count } : (result.summary ?? { rows: result.table.numRows });
    } catch (err) {
      if (!(err instanceof BelowMinimumError)) throw err;
      withheld = err.code;
      bytes = new TextEncoder().encode(JSON.stringify({ withheld: { code: err.code, rule: "minIntersection", minIntersection: err.threshold } }));
      summary = { withheld: 1 };
    }
    const salt = new Uint8Array(randomBytes(32));
    const digest = resultCommitment(salt, bytes);
    // The units a contract of the job prices, measured here and reported with the result's digest — only those priced (docs/venue.md, metering).
    // A lookup's matched rows (those a label was found for) are kept in its summary: its receipt is checked against them.
    if (withheld === null && r.spec.protocol === "lookup") summary = { ...summary, matched: lookupMatched(bytes, r.spec.request.params.outputColumns ?? []) };
    const metered = meteredUnits(store, r.spec.request, summary);
    commit(job, () => {
      store.putResult(job, { digest, bytes, salt });
      store.transitionJob(job, ["running"], "succeeded", withheld, summary);
      forget(job);
      queueEvent(job, { kind: "succeeded", digest, ...metered });
    });
    end(job);
    log.info({ job }, withheld === null ? "job succeeded" : "job ended, its result withheld under the job's minimum intersection");
  };

  const onProtocol = async (env: OpenedEnvelope): Promise<void> => {
    const job = env.job;
    const r = running.get(job);
    if (!r) return; // not (or no longer) ours: stop has been processed
    const out = await r.run.receive(env.sender, env.payload);
    if (r.party === "buyer" && r.run.done) {
      finish(job, r);
      return;
    }
    // Budgets count what was measured, not what was declared: once the buyer's hello has named its distinct
    // keys (never more than declared: the role refuses more), the reservation is settled to that count, and
    // the exchange told, so it settles its copy of the budget the same way.
    const c = r.charge;
    const seen = c !== undefined && !c.settled ? r.module.buyerKeysSeen?.(r.run.state) : undefined;
    commit(job, () => {
      store.checkpoints.save(job, CHECKPOINT_ROLE, r.run.state as never);
      // The charge goes out before the frames (each job's outbox rows leave in order): the exchange has the measured keys before the buyer can finish and its receipt is issued.
      if (c !== undefined && seen !== undefined) {
        const units = Math.min(seen, c.reserved);
        if (c.budget !== false && c.reserved > units) store.refundBudget(c.dataset, c.buyer, c.reserved - units);
        durable.putRun({ job, role: r.party, start: r.start, inputHash: r.inputHash, charge: { ...c, settled: true } });
        queueEvent(job, { kind: "charged", units });
      }
      queueFrames(job, out);
      durable.markProcessed(job, env.sender, env.sequence);
    });
    if (c !== undefined && seen !== undefined) c.settled = true;
  };

  /** A job that ends before the buyer's hello was measured evaluated none of its keys: its reservation goes back (inside the caller's transaction). */
  const releaseCharge = (c: Charge | undefined): void => {
    if (c === undefined || c.settled) return;
    c.settled = true;
    if (c.budget !== false && c.reserved > 0) store.refundBudget(c.dataset, c.buyer, c.reserved);
  };

  /** The charge of a job, in memory or (a job not taken up again) as its run recorded it. */
  const chargeOf = (job: string): Charge | undefined => {
    const r = running.get(job);
    if (r) return r.charge;
    const c = durable.getRun(job)?.charge as Charge | null | undefined;
    return c ?? undefined;
  };

  /** Forgets a job's role (and frees what its context holds). */
  const end = (job: string): void => {
    running.get(job)?.run.dispose();
    running.delete(job);
  };

  const onStop = (m: Extract<ControlMessage, { type: "job.stop" }>): void => {
    const charge = chargeOf(m.job);
    end(m.job);
    commit(m.job, () => {
      releaseCharge(charge);
      forget(m.job);
      const j = store.getJob(m.job);
      if (!j) return;
      const to = m.reason === "succeeded" ? "succeeded" : m.reason === "cancelled" ? "cancelled" : m.reason === "refused" && j.state === "submitted" ? "refused" : "failed";
      if (j.state === "submitted" || j.state === "running") store.transitionJob(m.job, ["submitted", "running"], to === "succeeded" && j.state === "submitted" ? "cancelled" : to, m.reason);
    });
  };

  /** A job fails here: its state, its charge back, what resumes it forgotten, and the exchange told — in one transaction. */
  const failJob = (job: string, code: string): void => {
    const charge = chargeOf(job);
    end(job);
    commit(job, () => {
      releaseCharge(charge);
      forget(job);
      const local = store.getJob(job);
      if (local && (local.state === "submitted" || local.state === "running")) store.transitionJob(job, ["submitted", "running"], "failed", code);
      queueEvent(job, { kind: "failed", reason: code });
    });
  };

  /** Opens an envelope from the mailbox: signed by its sender, sealed to this party; not checked for freshness or nonce (see NO_FRESHNESS_LIMIT). */
  const open = async (frame: Uint8Array, claimedSender: string): Promise<OpenedEnvelope> => {
    const x = o.exchange();
    // Unknown senders' keys are fetched before opening.
    if (claimedSender !== x.name && o.cachedKeys(claimedSender) === undefined) await o.senderKeys(claimedSender).catch(() => undefined);
    return openEnvelope(frame, {
      self: identity,
      lookupSender: (name) => (name === x.name ? x.keys : o.cachedKeys(name)),
      replay: { seen: () => false, remember: () => undefined },
      maxSkewMs: NO_FRESHNESS_LIMIT,
    });
  };

  /**
   * Handles one delivery from the mailbox. Envelopes of one job are handled
   * in order, one at a time; jobs do not wait for each other (one job's long
   * step does not stall another's). An envelope that does not open (bad
   * signature, not for this party) is dropped and logged: only an
   * authenticated envelope can fail a job. Each is acknowledged once what it
   * caused has committed (or it was dropped).
   */
  const handle = (delivery: Delivery): void => {
    const frame = delivery.frame;
    let claimed: string;
    let claimedSender: string;
    try {
      const e = decodeEnvelope(frame, MAX_ENVELOPE_BYTES);
      claimed = e.job;
      claimedSender = e.sender;
    } catch (err) {
      log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INVALID_MESSAGE" }, "dropped a malformed envelope");
      return;
    }
    let opened: OpenedEnvelope | undefined;
    const work = async () => {
      const env = await open(frame, claimedSender);
      opened = env;
      if (env.step === CONTROL_STEP) {
        if (env.sender !== o.exchange().name) return;
        const m = parseControl(env.job, env.payload);
        if (m.type === ControlType.Stop) onStop(m);
        else if (env.sequence > durable.processed(env.job, env.sender)) await onStart(m, env);
        return;
      }
      // Processed before (delivered again after a restart): nothing changes.
      if (env.sequence <= durable.processed(env.job, env.sender)) return;
      await onProtocol(env);
    };
    const prev = chains.get(claimed) ?? Promise.resolve();
    const next = prev
      .then(work)
      .catch((err: unknown) => {
        const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
        if (opened === undefined) {
          log.warn({ job: claimed, code }, "dropped an envelope that does not open");
          return;
        }
        // A problem in the data (InvalidInputError: a value, a column, a file, a malformed CSV): its message says where (file, column, row) and the fix, never a value; for this party's operator only (the other parties see the code).
        log.warn({ job: opened.job, code, ...(err instanceof InvalidInputError || err instanceof DatasetChangedError ? { detail: err.message } : {}) }, "job step failed");
        failJob(opened.job, code);
      })
      .then(() => outbox.ack(claimed, delivery.id))
      .catch((err: unknown) => log.error({ job: claimed, code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not record a job's failure"));
    chains.set(claimed, next);
    // Forget a job's chain once it has drained (the map holds only jobs with work in flight).
    void next.then(() => {
      if (chains.get(claimed) === next) chains.delete(claimed);
    });
  };

  /**
   * Takes up one job after a restart: its input read again (unchanged), its
   * role from its last checkpoint — or started again when it stopped before
   * its first one (nothing it sent had left).
   */
  const resumeJob = async (job: string): Promise<void> => {
    const saved = durable.getRun(job);
    if (saved === undefined) return;
    const m = saved.start as StartMessage;
    const charge = (saved.charge as Charge | null) ?? undefined;
    const setup = await setUp(m, saved.inputHash);
    const state = store.checkpoints.load(job, CHECKPOINT_ROLE, { protocols: [setup.spec.protocol] });
    if (state === undefined) {
      await startRole(m, setup, charge);
      return;
    }
    const player = await setup.module.player(setup.spec, m.role, setup.resources);
    const run = RoleRun.resume(player, setup.module.parties(setup.spec), state);
    running.set(job, { spec: setup.spec, party: m.role, module: setup.module, run, table: setup.resources.table, start: m, inputHash: setup.inputHash, ...(charge ? { charge } : {}) });
  };

  return {
    handle,
    get running() {
      return running.size;
    },
    async resume() {
      const runs = new Set(durable.listRuns().map((r) => r.job));
      for (const job of runs) {
        // In the job's chain: envelopes delivered meanwhile wait until it is taken up.
        const next = (chains.get(job) ?? Promise.resolve()).then(() => resumeJob(job)).catch((err: unknown) => {
          const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
          log.warn({ job, code }, "could not take a job up again after a restart; it fails");
          failJob(job, code);
        });
        chains.set(job, next);
        void next.then(() => {
          if (chains.get(job) === next) chains.delete(job);
        });
      }
      // Jobs open here with nothing to resume them from (a store from before durable jobs) cannot go on.
      for (const j of store.listJobs({ state: ["running"] })) if (!runs.has(j.id)) failJob(j.id, "UMBRA_PARTY_RESTARTED");
      outbox.kickAll();
    },
    async drain() {
      await Promise.all([...chains.values()]);
      await outbox.stop();
      for (const job of [...running.keys()]) end(job);
    },
  };
}
