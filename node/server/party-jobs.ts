/**
 * The party agent's job runner: takes every envelope from the mailbox, and
 * plays this party's role in every job it takes part in — the same way for
 * every protocol (node/jobs/registry.ts names the modules; node/jobs/run.ts
 * drives a role).
 *
 * job.start. The job as the exchange's signed ledger records it must verify
 * under the pinned key and name the request job.start carries. A provider
 * then checks its own copy of its dataset's policy again, reserves the job's
 * cost in the buyer's budget, says it accepted, and starts its role; a buyer
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
 */
import { randomBytes } from "node:crypto";
import { RecordBatchStreamWriter, Table } from "apache-arrow";
import type { FastifyBaseLogger } from "fastify";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { readTable } from "../../engine/columns/index.js";
import { UmbraError } from "../../engine/errors.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { BelowMinimumError, lookupKeyPair, prepareLookupTable, type ProtocolId } from "../../protocols/index.js";
import { decodeEnvelope, ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import type { DatasetDescriptor } from "../catalog.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, openEnvelope, sealEnvelope, type SenderKeys } from "../envelope.js";
import { maskKeyPair, type NodeIdentity } from "../identity.js";
import { LedgerKind, requestDigest, resultCommitment, verifiedEntry } from "../ledger.js";
import { checkJob, jobCost, jobDatasets, parsePolicy, PolicyDeniedError, requestExtends, settlesByKeys, type JobRequest, type UsagePolicy } from "../policy.js";
import { jobLimitsOf, type JobSpec, type NodeProtocol, type PartyResources, type PartyRole } from "../jobs/protocol.js";
import { nodeProtocolFor } from "../jobs/registry.js";
import { RoleRun, type RoleFrame } from "../jobs/run.js";
import type { Store } from "../store.js";
import type { ExchangeClient } from "./client.js";
import { CONTROL_STEP, ControlType, lookupProduct, parseControl, type ControlMessage, type JobEvent } from "./control.js";

/** Largest envelope the agent opens (the envelope layer's payload limit and its overhead). */
const MAX_ENVELOPE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/** Prepared lookup tables kept in memory (each can be large; the least recently used goes first). */
const PREPARED_CACHE_ENTRIES = 2;

type StartMessage = Extract<ControlMessage, { type: "job.start" }>;

interface Running {
  readonly spec: JobSpec;
  readonly party: PartyRole;
  readonly module: NodeProtocol;
  readonly run: RoleRun;
  readonly table: Table;
  /**
   * A provider whose budget counts keys: the declared key count it reserved
   * when it accepted; settled to the measured count once the buyer's hello
   * names it (NodeProtocol.buyerKeysSeen), released in full when the job ends before.
   */
  charge?: { readonly dataset: string; readonly buyer: string; readonly reserved: number; settled: boolean };
  /**
   * Envelope sequence numbers. The role's state lives in memory only: nothing
   * could resume from it yet (a restarted party fails its open jobs), it holds
   * the job's secret scalars, and writing tens of MB blocked the agent's event
   * loop for up to a second (finding 14). The durable-jobs work brings state,
   * outbox and acknowledgements in one transaction instead.
   */
  sequence: number;
}

export interface PartyJobsOptions {
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
  /** Submissions on their way to the exchange (a job.start may overtake the answer that names its job). */
  readonly submitting: ReadonlySet<Promise<unknown>>;
}

export interface PartyJobs {
  /** Handles one envelope from the mailbox (jobs in parallel, each job's envelopes in order). */
  handle(frame: Uint8Array): void;
  /** Jobs this agent plays a role in now. */
  readonly running: number;
  /** Fails the jobs this party was in when it stopped (their data in flight is gone). */
  failInterrupted(): Promise<void>;
  /** Waits for the work in flight. */
  drain(): Promise<void>;
}

export function partyJobs(o: PartyJobsOptions): PartyJobs {
  const { store, identity, pool, client, log } = o;
  const running = new Map<string, Running>();
  const chains = new Map<string, Promise<void>>();
  /** The lookup key of this party for a dataset: derived from its identity, rotated by the policy version. */
  const masterSeed = hkdf(sha256, identity.signing.secretKey, undefined, new TextEncoder().encode("umbra/lookup/master-seed"), 32);
  const prepared = new Map<string, Table>();

  const event = (job: string, e: JobEvent) => client.json("POST", `/v1/jobs/${job}/events`, e);

  /** Seals each frame to the party it is for and sends it through the exchange's relay, in order. */
  const send = async (r: Running, frames: readonly RoleFrame[]): Promise<void> => {
    const x = o.exchange();
    for (const f of frames) {
      const keys = f.to === x.name ? x.keys : await o.senderKeys(f.to);
      if (!keys) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "the other party has no box key");
      const env = sealEnvelope({ job: r.spec.id, step: f.step, sender: identity, recipient: f.to, sequence: r.sequence++, payload: f.frame, encryptTo: keys.boxPublicKey });
      await client.sendRaw("/v1/relay", env);
    }
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

  /** Reports a job's progress to the exchange at most once a second (phase and counts, never data). */
  const progressReporter = (job: string) => {
    let last = 0;
    return (phase: string, done: number, total: number) => {
      const t = Date.now();
      if (t - last < 1000 && done !== total) return;
      last = t;
      void event(job, { kind: "progress", progress: { phase, done, total } }).catch(() => undefined);
    };
  };

  /** The provider's prepared lookup table for its dataset's product version (a few kept, least recently used out first). */
  const lookupResources = async (desc: DatasetDescriptor, spec: JobSpec, table: Table, m: StartMessage): Promise<NonNullable<PartyResources["lookup"]>> => {
    const version = store.latestPolicy(desc.id)?.version ?? 1;
    const labels = [...(spec.outputColumns ?? [])].sort();
    const product = lookupProduct(desc.id);
    const { secretKey } = lookupKeyPair(masterSeed, product, version);
    const cacheKey = `${desc.id}/${desc.contentHash}/${version}/${spec.keyColumns.join(",")}/${labels.join(",")}`;
    let p = prepared.get(cacheKey);
    if (p) prepared.delete(cacheKey); // re-inserted below: most recently used last
    else p = await prepareLookupTable({ table, keys: spec.keyColumns, labels, secretKey, product, version, pool });
    prepared.set(cacheKey, p);
    while (prepared.size > PREPARED_CACHE_ENTRIES) prepared.delete(prepared.keys().next().value as string);
    return { prepared: p, secretKey, budgetRemaining: m.request.params.queryCount ?? Number.MAX_SAFE_INTEGER, product, version };
  };

  /** Starts this party's role and sends what it sends first. */
  const startRole = async (spec: JobSpec, party: PartyRole, module: NodeProtocol, resources: PartyResources, charge?: Running["charge"]): Promise<void> => {
    const player = await module.player(spec, party, resources);
    const { run, out } = await RoleRun.start(player, module.parties(spec));
    const r: Running = { spec, party, module, run, table: resources.table, ...(charge ? { charge } : {}), sequence: 0 };
    running.set(spec.id, r);
    await send(r, out);
  };

  const onStart = async (m: StartMessage): Promise<void> => {
    const x = o.exchange();
    // The job as the exchange's signed ledger records it: its job.submitted entry, under the pinned key, names this request.
    const record = x.keys ? verifiedEntry(m.record, x.keys.signingPublicKey) : undefined;
    if (record === undefined || record.kind !== LedgerKind.JobSubmitted || record.job !== m.job || record.body["request"] !== requestDigest(m.request)) {
      log.warn({ job: m.job, code: "UMBRA_BAD_RECORD" }, "refused a job.start whose ledger record does not verify");
      await event(m.job, { kind: "failed", reason: "UMBRA_BAD_RECORD" }).catch(() => undefined);
      return;
    }
    // Kept as evidence; another entry at a seq seen before means the exchange shows two histories.
    if (store.noteExchangeHead(record) === "fork") {
      log.error({ job: m.job, seq: record.seq, code: "UMBRA_LEDGER_FORK" }, "the exchange's signed ledger entry at this seq differs from one seen before: it shows two histories; refusing its jobs");
      await event(m.job, { kind: "failed", reason: "UMBRA_LEDGER_FORK" }).catch(() => undefined);
      return;
    }
    const module = nodeProtocolFor(m.request.protocol);
    if (!module) {
      await event(m.job, { kind: "failed", reason: "UMBRA_UNKNOWN_PROTOCOL" }).catch(() => undefined);
      return;
    }
    const spec = specOf(m);
    const onProgress = progressReporter(m.job);
    const read = (party: PartyRole, path: string) => (module.readTable ? module.readTable(spec, party, path) : readTable(path));
    if (m.role === "provider") {
      // This party's own record of the job (its state, steps and result hang off it); the buyer's was made when it submitted.
      if (!store.getJob(m.job)) store.createJob({ id: m.job, protocol: spec.protocol, buyer: spec.buyer, providers: [...spec.providers], params: { request: m.request } as never });
      // The provider's own check, on its own copy of the policy, before it answers anything.
      const own = spec.providerDataset;
      const desc = own !== undefined ? ownDescriptor(own) : undefined;
      const policy = own !== undefined ? ownPolicy(own) : undefined;
      const mine = m.providers === undefined || m.providers[m.providerIndex ?? -1] === identity.name;
      if (!desc || !policy || !mine) {
        store.transitionJob(m.job, ["submitted"], "refused", "dataset-mismatch");
        await event(m.job, { kind: "refused", rule: "dataset-mismatch" });
        return;
      }
      try {
        checkJob(policy, desc, m.request, { now: new Date(), budgetRemaining: store.getBudget(desc.id, m.request.buyer)?.remaining ?? policy.queryBudget });
      } catch (err) {
        if (err instanceof PolicyDeniedError) {
          store.transitionJob(m.job, ["submitted"], "refused", err.rule);
          await event(m.job, { kind: "refused", rule: err.rule });
          return;
        }
        throw err;
      }
      const table = await read("provider", o.dataFile(desc.name));
      // What the protocol asks of the agent: its mask key and the peers' registered ones (from job.start), its lookup key and prepared table.
      let mask: PartyResources["mask"];
      if (module.resources?.includes("mask")) {
        if (!m.peerKeys) throw new UmbraError("UMBRA_NO_MASK_KEY", "job.start carries no mask keys");
        mask = { keyPair: maskKeyPair(identity), peers: m.peerKeys.map((k) => Uint8Array.from(Buffer.from(k, "hex"))) };
      }
      const lookup = module.resources?.includes("lookup") ? await lookupResources(desc, spec, table, m) : undefined;
      // Settled to the measured keys later; a job that evaluates no buyer keys costs one unit (jobCost).
      const cost = jobCost(policy, m.request) ?? 0;
      const byKeys = settlesByKeys(policy, m.request);
      store.transaction(() => {
        if (!store.getBudget(desc.id, m.request.buyer)) store.setBudget(desc.id, m.request.buyer, policy.queryBudget);
        store.consumeBudget(desc.id, m.request.buyer, cost);
      });
      const charge = byKeys ? { dataset: desc.id, buyer: m.request.buyer, reserved: cost, settled: false } : undefined;
      // Accepted: the exchange and the buyer get ready while this role starts (hashing its set
      // takes seconds). Their messages wait in this agent's queue until it has.
      store.transitionJob(m.job, ["submitted"], "running");
      await event(m.job, { kind: "accepted" });
      await startRole(spec, "provider", module, { pool, table, onProgress, ...(lookup ? { lookup } : {}), ...(mask ? { mask } : {}) }, charge);
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
      if (local !== undefined && (local.state === "submitted" || local.state === "running")) store.transitionJob(m.job, ["submitted", "running"], "failed", "UMBRA_NOT_SUBMITTED");
      await event(m.job, { kind: "failed", reason: "UMBRA_NOT_SUBMITTED" }).catch(() => undefined);
      return;
    }
    // Its own dataset, a registered one or a file in the data folder (none in a multi-provider job).
    const mine = m.request.buyerDataset;
    const own = mine !== undefined ? store.getDataset(mine) : undefined;
    const table = mine === undefined ? new Table() : await read("buyer", o.dataFile(own ? own.name : mine));
    let lookup: PartyResources["lookup"];
    if (module.resources?.includes("lookup")) {
      if (!m.lookup) throw new UmbraError("UMBRA_PROTOCOL", "a lookup job names its product version");
      // The buyer never holds the prepared table or the key: only the product version it asks for.
      lookup = { prepared: new Table(), secretKey: new Uint8Array(0), budgetRemaining: 0, product: m.lookup.product, version: m.lookup.version };
    }
    store.transitionJob(m.job, ["submitted"], "running");
    await startRole(spec, "buyer", module, { pool, table, onProgress, ...(lookup ? { lookup } : {}) });
  };

  /** The buyer's result: written with a salted commitment (the digest in the exchange's ledger says nothing of a count or of a withheld result). */
  const finish = async (job: string, r: Running): Promise<void> => {
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
    store.putResult(job, { digest, bytes, salt });
    store.deleteState(job);
    store.transitionJob(job, ["running"], "succeeded", withheld, summary);
    end(job);
    await event(job, { kind: "succeeded", digest });
    log.info({ job }, withheld === null ? "job succeeded" : "job ended, its result withheld under the job's minimum intersection");
  };

  const onProtocol = async (job: string, sender: string, payload: Uint8Array): Promise<void> => {
    const r = running.get(job);
    if (!r) return; // not (or no longer) ours: stop has been processed
    const out = await r.run.receive(sender, payload);
    await settleCharge(job, r);
    await send(r, out);
    if (r.party === "buyer" && r.run.done) await finish(job, r);
  };

  /**
   * Budgets count what was measured, not what was declared: once the buyer's
   * hello has named its distinct keys (never more than declared: the role
   * refuses more), the reservation is settled to that count and the exchange
   * told, so it settles its copy of the budget the same way.
   */
  const settleCharge = async (job: string, r: Running): Promise<void> => {
    const c = r.charge;
    if (c === undefined || c.settled) return;
    const seen = r.module.buyerKeysSeen?.(r.run.state);
    if (seen === undefined) return;
    c.settled = true;
    const units = Math.min(seen, c.reserved);
    if (c.reserved > units) store.refundBudget(c.dataset, c.buyer, c.reserved - units);
    await event(job, { kind: "charged", units });
  };

  /** A job that ends before the buyer's hello was measured evaluated none of its keys: its reservation goes back. */
  const releaseCharge = (r: Running | undefined): void => {
    const c = r?.charge;
    if (c === undefined || c.settled) return;
    c.settled = true;
    if (c.reserved > 0) store.refundBudget(c.dataset, c.buyer, c.reserved);
  };

  /** Forgets a job's role (and frees what its context holds). */
  const end = (job: string): void => {
    running.get(job)?.run.dispose();
    running.delete(job);
  };

  const onStop = (m: Extract<ControlMessage, { type: "job.stop" }>): void => {
    releaseCharge(running.get(m.job));
    end(m.job);
    const j = store.getJob(m.job);
    if (!j) return;
    store.deleteState(m.job);
    const to = m.reason === "succeeded" ? "succeeded" : m.reason === "cancelled" ? "cancelled" : m.reason === "refused" && j.state === "submitted" ? "refused" : "failed";
    if (j.state === "submitted" || j.state === "running") store.transitionJob(m.job, ["submitted", "running"], to === "succeeded" && j.state === "submitted" ? "cancelled" : to, m.reason);
  };

  /**
   * Handles one envelope from the mailbox. Envelopes of one job are handled
   * in order, one at a time; jobs do not wait for each other (one job's long
   * step does not stall another's). A frame that does not open (bad
   * signature, replay, not for this party) is dropped and logged: only an
   * authenticated envelope can fail a job.
   */
  const handle = (frame: Uint8Array): void => {
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
    let job: string | undefined;
    const work = async () => {
      const x = o.exchange();
      // Unknown senders' keys are fetched before opening.
      if (claimedSender !== x.name && o.cachedKeys(claimedSender) === undefined) await o.senderKeys(claimedSender).catch(() => undefined);
      const env = openEnvelope(frame, {
        self: identity,
        lookupSender: (name) => (name === x.name ? x.keys : o.cachedKeys(name)),
        replay: { seen: (s, n) => store.nonceSeen(s, n), remember: (s, n, t) => store.rememberNonce(s, n, t) },
      });
      job = env.job;
      if (env.step === CONTROL_STEP) {
        if (env.sender !== x.name) return;
        const m = parseControl(env.job, env.payload);
        if (m.type === ControlType.Start) await onStart(m);
        else if (m.type === ControlType.Stop) onStop(m);
        return;
      }
      await onProtocol(env.job, env.sender, env.payload);
    };
    const prev = chains.get(claimed) ?? Promise.resolve();
    const next = prev.then(work).catch(async (err: unknown) => {
      const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
      if (job === undefined) {
        log.warn({ job: claimed, code }, "dropped an envelope that does not open");
        return;
      }
      log.warn({ job, code }, "job step failed");
      releaseCharge(running.get(job));
      end(job);
      const local = store.getJob(job);
      if (local) {
        store.deleteState(job);
        if (local.state === "submitted" || local.state === "running") store.transitionJob(job, ["submitted", "running"], "failed", code);
      }
      await event(job, { kind: "failed", reason: code }).catch(() => undefined);
    });
    chains.set(claimed, next);
    // Forget a job's chain once it has drained (the map holds only jobs with work in flight).
    void next.then(() => {
      if (chains.get(claimed) === next) chains.delete(claimed);
    });
  };

  return {
    handle,
    get running() {
      return running.size;
    },
    async failInterrupted() {
      // Jobs this party was in when it stopped: their data in flight (envelopes already
      // taken from the mailbox, the tables in memory) is gone, so they cannot resume
      // mid-stream. Fail them cleanly, with a reason, so neither side waits forever.
      for (const j of store.listJobs({ state: ["submitted", "running"] })) {
        store.deleteState(j.id);
        store.transitionJob(j.id, ["submitted", "running"], "failed", "UMBRA_PARTY_RESTARTED");
        await event(j.id, { kind: "failed", reason: "UMBRA_PARTY_RESTARTED" }).catch(() => undefined);
      }
    },
    async drain() {
      await Promise.all([...chains.values()]);
      for (const job of [...running.keys()]) end(job);
    },
  };
}
