/**
 * The party agent: runs next to its owner's data (files in its data folder),
 * registers with the exchange, registers datasets (descriptor and policy,
 * never rows), submits jobs as a buyer, and plays its role in every job it
 * takes part in. As a provider it checks its own copy of the policy again
 * before it answers anything. It reaches only the exchange: it long-polls its
 * mailbox there and sends every protocol message as an envelope signed by it
 * and sealed to the other party, relayed by the exchange.
 *
 * In a job where the exchange plays a role of its own (federated-aggregate:
 * the aggregator; join-aggregate: the matcher and aggregator), the agent's
 * counterpart is the exchange: it sends its protocol messages to it, sealed to
 * the exchange's key — except, where the protocol has the buyer and the
 * provider talk directly (join-aggregate's key, set sizes and blinded sets),
 * those, which go to the other party sealed to it. A provider there takes its
 * index, the other providers and their mask keys from job.start, and its
 * protocol parameters from the job's request, never from a message.
 *
 * Its local API (JSON, for the CLI) listens on loopback only.
 */
import { randomBytes } from "node:crypto";
import { constants, openSync, closeSync, fstatSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, normalize, relative, sep } from "node:path";
import { RecordBatchStreamWriter, Table } from "apache-arrow";
import Fastify, { type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { readTable } from "../../engine/columns/index.js";
import { UmbraError } from "../../engine/errors.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { decodeMessage, lookupKeyPair, prepareLookupTable } from "../../protocols/index.js";
import { describeDataset, type DatasetDescriptor } from "../catalog.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, openEnvelope, sealEnvelope, type SenderKeys } from "../envelope.js";
import { WrongSenderError } from "../errors.js";
import { fingerprint, isNodeName, maskKeyPair, publicIdentity, type NodeIdentity } from "../identity.js";
import { faParamsOf } from "../jobs/federated-aggregate.js";
import { LedgerKind, requestDigest, resultCommitment, verifiedEntry, type LedgerHead } from "../ledger.js";
import { BelowMinimumError } from "../../protocols/errors.js";
import { jaJobInfo } from "../jobs/join-aggregate.js";
import { checkJob, jobCost, jobDatasets, parseJobRequest, parsePolicy, PolicyDeniedError, putPolicyVersion, requestExtends, settlesByKeys, type JobRequest, type UsagePolicy } from "../policy.js";
import { parseControl } from "./control.js";
import type { Store } from "../store.js";
import { buyerKeysSeen, buyerResult, jobLimitsOf, partyProtocolFor, receiveRole, startRole, type JobSpec, type RoleContext, type RoleState } from "../jobs/roles.js";
import { ExchangeClient } from "./client.js";
import { CONTROL_STEP, ControlType, lookupProduct, type ControlMessage, type JobEvent } from "./control.js";
import { unpackFrames } from "./mailbox.js";
import { decodeEnvelope, ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import { errorHandler } from "./http-errors.js";
import { LocalDatasetRegistrationSchema, LocalJobRequestSchema } from "../schemas/routes.js";
import { documentBodyValidator } from "./validation.js";
import { generateApiToken, guardLocalApi } from "./local-api.js";
import { scheduleNoncePruning, type NoncePruning } from "./auth.js";

export interface PartyOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly exchangeUrl: string;
  readonly dataDir: string;
  readonly pool?: CryptoPool;
  readonly logger?: boolean | object;
  /** The local API's bearer token (default: a fresh random one, see {@link PartyAgent.token}). */
  readonly apiToken?: string;
  /** Host names the local API answers to besides its loopback names (node/server/local-api.ts). */
  readonly allowedHosts?: readonly string[];
  /** Serve the local API over TLS (PEM key and certificate). */
  readonly https?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * The exchange's signing key to expect: 64 hex digits (the key) or 16 (its
   * fingerprint, as `umbra exchange start` prints it). Without it the key the
   * exchange presents on first contact is pinned (trust on first use); either
   * way a later contact presenting another key is refused.
   */
  readonly exchangeKey?: string;
  /** The invitation code the exchange's operator issued for this party's name: presented when it registers (a registered party restarts without one). */
  readonly invite?: string;
}

/** How the agent knows the exchange's key. */
export interface ExchangePin {
  readonly name: string;
  readonly fingerprint: string;
  /** "configured": given and matched; "pinned": as pinned before; "first-use": pinned now, on first contact. */
  readonly how: "configured" | "pinned" | "first-use";
}

/** The exchange presents another key than the one this agent pinned or was given. */
export class ExchangeKeyMismatchError extends UmbraError {
  constructor(message: string) {
    super("UMBRA_EXCHANGE_KEY_MISMATCH", message);
  }
}

interface Running {
  readonly spec: JobSpec;
  readonly role: "buyer" | "provider";
  readonly counterpart: string;
  /** The other party, when the protocol has the buyer and the provider send each other frames straight (the counterpart is then the exchange). */
  readonly peer?: string;
  readonly table: Table;
  readonly lookup?: RoleContext["lookup"];
  readonly mask?: RoleContext["mask"];
  /**
   * A provider whose budget counts keys: the declared key count it reserved
   * when it accepted; settled to the measured count once the buyer's hello
   * names it (buyerKeysSeen), released in full when the job ends before.
   */
  charge?: { readonly dataset: string; readonly buyer: string; readonly reserved: number; settled: boolean };
  sequence: number;
  /**
   * The role's state between messages, in memory only. It is not written to
   * the store: nothing could resume from it yet (a restarted party fails its
   * open jobs), it holds the job's secret scalars, and writing tens of MB
   * blocked the agent's event loop for up to a second (finding 14). The
   * durable-jobs work brings state, outbox and acknowledgements in one
   * transaction instead.
   */
  state: RoleState;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Largest envelope the agent opens (the envelope layer's payload limit and its overhead). */
const MAX_ENVELOPE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/** Prepared lookup tables kept in memory (each can be large; the least recently used goes first). */
const PREPARED_CACHE_ENTRIES = 2;

export interface PartyAgent {
  readonly app: FastifyInstance;
  readonly client: ExchangeClient;
  /** The local API's bearer token: every request to it needs `Authorization: Bearer <token>`. */
  readonly token: string;
  /** The exchange's key as pinned by start(). */
  readonly exchangePin: ExchangePin | undefined;
  /** The latest head of the exchange's ledger this agent has seen signed (from the records its jobs start with; kept in its store). */
  readonly exchangeHead: LedgerHead | undefined;
  /** Registers with the exchange and starts polling the mailbox. */
  start(): Promise<void>;
  /** Stops polling and closes the API. */
  stop(): Promise<void>;
}

export async function buildParty(o: PartyOptions): Promise<PartyAgent> {
  const { store, identity } = o;
  const pool = o.pool ?? getPool();
  const client = new ExchangeClient(o.exchangeUrl, identity);
  const token = o.apiToken ?? generateApiToken();
  const options = { logger: o.logger ?? false, bodyLimit: 1024 * 1024, requestTimeout: 600_000, connectionTimeout: 600_000 };
  const app = (o.https ? Fastify({ ...options, https: { key: o.https.key, cert: o.https.cert } }) : Fastify(options)) as unknown as FastifyInstance;
  // Every route, the OpenAPI document included, needs this machine's Host and the token.
  guardLocalApi(app, { token, ...(o.allowedHosts ? { allowedHosts: o.allowedHosts } : {}) });
  await app.register(swagger, { openapi: { info: { title: "Umbra party agent (local API)", version: "1" } } });
  app.get("/documentation/json", { schema: { hide: true } }, async () => app.swagger());
  const running = new Map<string, Running>();
  const chains = new Map<string, Promise<void>>();
  const keyCache = new Map<string, SenderKeys>();
  let exchangeName = "";
  let polling = false;
  const stopping = new AbortController();
  let pollLoop: Promise<void> | undefined;

  const log = (msg: string, extra: Record<string, unknown> = {}) => app.log.info(extra, msg);

  await app.register(errorHandler);

  /**
   * A data file inside the data folder: the name is checked lexically (no
   * "..", no absolute path), then resolved with every symbolic link followed
   * and checked again, so a link cannot lead out of the folder; only a
   * regular file is accepted (no FIFO, device or folder).
   */
  const dataRoot = (() => {
    try {
      return realpathSync(o.dataDir);
    } catch {
      return normalize(o.dataDir);
    }
  })();
  const dataFile = (name: string): string => {
    if (isAbsolute(name) || name.includes("\0")) throw new UmbraError("UMBRA_FORBIDDEN", "dataset files are named relative to the data folder");
    const p = normalize(join(o.dataDir, name));
    const rel = relative(o.dataDir, p);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) throw new UmbraError("UMBRA_FORBIDDEN", "dataset files must be inside the data folder");
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      throw new UmbraError("UMBRA_NOT_FOUND", `no file "${name}" in the data folder`);
    }
    if (!real.startsWith(dataRoot + sep)) throw new UmbraError("UMBRA_FORBIDDEN", `"${name}" leads out of the data folder (a symbolic link); dataset files must be inside it`);
    // The check above and the read that follows are two steps: whoever could rename or replace something on
    // the way between them could swap in a link out of the folder. So every folder from the data folder down to
    // the file must be writable by this user alone (as ssh asks of its own folders).
    for (let dir = dirname(real); ; dir = dirname(dir)) {
      const st = statSync(dir);
      const uid = process.getuid?.();
      if ((st.mode & 0o022) !== 0 || (uid !== undefined && st.uid !== uid && st.uid !== 0)) {
        const shown = dir === dataRoot ? "the data folder" : `the folder "${relative(dataRoot, dir)}" of the data folder`;
        throw new UmbraError("UMBRA_FORBIDDEN", `${shown} can be written by other users, who could swap a file for a link out of it while it is read; run chmod go-w on it`);
      }
      if (dir === dataRoot || dir === dirname(dir)) break;
    }
    let fd: number | undefined;
    try {
      fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK);
      if (!fstatSync(fd).isFile()) throw new UmbraError("UMBRA_FORBIDDEN", `"${name}" is not a regular file`);
    } catch (err) {
      if (err instanceof UmbraError) throw err;
      throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read "${name}" in the data folder`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return real;
  };
  const datasetId = (file: string) => `${identity.name}.${file.replace(/[^A-Za-z0-9._-]/g, "_")}`.slice(0, 128);

  const senderKeys = async (name: string): Promise<SenderKeys | undefined> => {
    const cached = keyCache.get(name);
    if (cached) return cached;
    const p = await client.json<{ signingPublicKey: string; boxPublicKey: string | null }>("GET", `/v1/parties/${encodeURIComponent(name)}`);
    if (!p.boxPublicKey) return undefined;
    const keys = { signingPublicKey: Uint8Array.from(Buffer.from(p.signingPublicKey, "hex")), boxPublicKey: Uint8Array.from(Buffer.from(p.boxPublicKey, "hex")) };
    keyCache.set(name, keys);
    return keys;
  };

  const event = (job: string, e: JobEvent) => client.json("POST", `/v1/jobs/${job}/events`, e);

  /** The lookup key of this party for a dataset: derived from its identity, rotated by the policy version. */
  const masterSeed = hkdf(sha256, identity.signing.secretKey, undefined, new TextEncoder().encode("umbra/lookup/master-seed"), 32);
  const prepared = new Map<string, Table>();

  /** Seals frames to `to` (the counterpart by default) and sends them through the exchange's relay, in order. */
  const send = async (r: Running, frames: readonly Uint8Array[], to: string = r.counterpart): Promise<void> => {
    if (frames.length === 0) return;
    const keys = to === exchangeName ? exchangeKeys : await senderKeys(to);
    if (!keys) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "the other party has no box key");
    for (const f of frames) {
      const step = decodeMessage(f).header.step;
      const env = sealEnvelope({ job: r.spec.id, step, sender: identity, recipient: to, sequence: r.sequence++, payload: f, encryptTo: keys.boxPublicKey });
      await client.sendRaw("/v1/relay", env);
    }
  };

  /** A step's output: first the frames for the other party (straight, where the protocol has them), then those for the counterpart. */
  const sendOutput = async (r: Running, out: { readonly out: readonly Uint8Array[]; readonly direct?: readonly Uint8Array[] }): Promise<void> => {
    if (out.direct && out.direct.length > 0) {
      if (r.peer === undefined) throw new UmbraError("UMBRA_PROTOCOL", "frames for the other party in a job without a direct route");
      await send(r, out.direct, r.peer);
    }
    await send(r, out.out);
  };

  const specOf = (m: Extract<ControlMessage, { type: "job.start" }>): JobSpec => {
    const { job, request, counterpart, role, providers, providerIndex } = m;
    const providerDataset = providers !== undefined ? (providerIndex !== undefined ? jobDatasets(request)[providerIndex] : undefined) : request.providerDataset;
    return {
      id: job,
      protocol: request.protocol as JobSpec["protocol"],
      buyer: role === "buyer" ? identity.name : providers !== undefined ? request.buyer : counterpart,
      provider: role === "provider" ? identity.name : (providers?.[0] ?? counterpart),
      ...(request.buyerDataset !== undefined ? { buyerDataset: request.buyerDataset } : {}),
      ...(providerDataset !== undefined ? { providerDataset } : {}),
      keyColumns: request.params.keyColumns,
      limits: jobLimitsOf(request),
      ...(request.params.outputColumns ? { outputColumns: request.params.outputColumns } : {}),
      // federated-aggregate, join-aggregate: the protocol parameters, from the job's request alone.
      ...(request.protocol === "federated-aggregate" ? { fa: { params: faParamsOf(job, request), providers: providers ?? [], ...(providerIndex !== undefined ? { index: providerIndex } : {}) } } : {}),
      ...(request.protocol === "join-aggregate" && providers !== undefined ? { ja: jaJobInfo(job, request) } : {}),
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

  const onStart = async (m: Extract<ControlMessage, { type: "job.start" }>): Promise<void> => {
    // The job as the exchange's signed ledger records it: its job.submitted entry, under the pinned key, names this request.
    const record = exchangeKeys ? verifiedEntry(m.record, exchangeKeys.signingPublicKey) : undefined;
    if (record === undefined || record.kind !== LedgerKind.JobSubmitted || record.job !== m.job || record.body["request"] !== requestDigest(m.request)) {
      app.log.warn({ job: m.job, code: "UMBRA_BAD_RECORD" }, "refused a job.start whose ledger record does not verify");
      await event(m.job, { kind: "failed", reason: "UMBRA_BAD_RECORD" }).catch(() => undefined);
      return;
    }
    // Kept as evidence; another entry at a seq seen before means the exchange shows two histories.
    if (store.noteExchangeHead(record) === "fork") {
      app.log.error({ job: m.job, seq: record.seq, code: "UMBRA_LEDGER_FORK" }, "the exchange's signed ledger entry at this seq differs from one seen before: it shows two histories; refusing its jobs");
      await event(m.job, { kind: "failed", reason: "UMBRA_LEDGER_FORK" }).catch(() => undefined);
      return;
    }
    const spec = specOf(m);
    const progress = progressReporter(m.job);
    if (m.role === "provider") {
      // This party's own record of the job (its state, steps and result hang off it); the buyer's was made when it submitted.
      if (!store.getJob(m.job)) store.createJob({ id: m.job, protocol: spec.protocol, buyer: spec.buyer, providers: m.providers ? [...m.providers] : [spec.provider], params: { request: m.request } as never });
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
      const proto = partyProtocolFor(spec.protocol);
      const table = proto?.readTable ? await proto.readTable(spec, "provider", dataFile(desc.name)) : await readTable(dataFile(desc.name));
      // federated-aggregate: this party's mask key and the peers' registered ones (from job.start).
      let mask: RoleContext["mask"];
      if (spec.fa) {
        if (!m.peerKeys) throw new UmbraError("UMBRA_NO_MASK_KEY", "job.start carries no mask keys");
        mask = { keyPair: maskKeyPair(identity), peers: m.peerKeys.map((k) => Uint8Array.from(Buffer.from(k, "hex"))) };
      }
      let lookup: RoleContext["lookup"];
      if (spec.protocol === "lookup") {
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
        lookup = { prepared: p, secretKey, budgetRemaining: m.request.params.queryCount ?? Number.MAX_SAFE_INTEGER, product, version };
      }
      // Settled to the measured keys later; a federated-aggregate job evaluates none and costs one unit (jobCost).
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
      const out = await startRole(spec, "provider", { pool, table, onProgress: progress, ...(lookup ? { lookup } : {}), ...(mask ? { mask } : {}) });
      const peer = proto?.direct && m.providers !== undefined ? spec.buyer : undefined;
      const r: Running = { spec, role: "provider", counterpart: m.counterpart, ...(peer !== undefined ? { peer } : {}), table, ...(lookup ? { lookup } : {}), ...(mask ? { mask } : {}), ...(charge ? { charge } : {}), sequence: 0, state: out.state };
      running.set(m.job, r);
      await sendOutput(r, out);
      return;
    }
    // Buyer: only a job this agent submitted, and only as it asked for it (the exchange may fill in
    // what it left out, never change it): nobody can make it read a file or join on a key it did not choose.
    let local = store.getJob(m.job);
    if (local === undefined && submitting.size > 0) {
      await Promise.allSettled([...submitting]);
      local = store.getJob(m.job);
    }
    const asked = (local?.params as { request?: JobRequest; submitted?: boolean } | undefined) ?? {};
    if (local === undefined || asked.submitted !== true || asked.request === undefined || !requestExtends(asked.request, m.request)) {
      app.log.warn({ job: m.job, code: "UMBRA_NOT_SUBMITTED" }, "refused a job.start for a job this party did not submit (or not as it asked)");
      if (local !== undefined && (local.state === "submitted" || local.state === "running")) store.transitionJob(m.job, ["submitted", "running"], "failed", "UMBRA_NOT_SUBMITTED");
      await event(m.job, { kind: "failed", reason: "UMBRA_NOT_SUBMITTED" }).catch(() => undefined);
      return;
    }
    // Its own dataset, a registered one or a file in the data folder (none in a multi-provider job).
    const mine = m.request.buyerDataset;
    const own = mine !== undefined ? store.getDataset(mine) : undefined;
    const proto = partyProtocolFor(spec.protocol);
    const path = mine !== undefined ? dataFile(own ? own.name : mine) : undefined;
    const table = path === undefined ? new Table() : proto?.readTable ? await proto.readTable(spec, "buyer", path) : await readTable(path);
    let lookup: RoleContext["lookup"];
    if (spec.protocol === "lookup") {
      if (!m.lookup) throw new UmbraError("UMBRA_PROTOCOL", "a lookup job names its product version");
      // The buyer never holds the prepared table or the key: only the product version it asks for.
      lookup = { prepared: undefined as never, secretKey: new Uint8Array(0), budgetRemaining: 0, product: m.lookup.product, version: m.lookup.version };
    }
    const out = await startRole(spec, "buyer", { pool, table, onProgress: progress, ...(lookup ? { lookup } : {}) });
    const peer = proto?.direct && m.providers !== undefined ? spec.provider : undefined;
    const r: Running = { spec, role: "buyer", counterpart: m.counterpart, ...(peer !== undefined ? { peer } : {}), table, ...(lookup ? { lookup } : {}), sequence: 0, state: out.state };
    store.transitionJob(m.job, ["submitted"], "running");
    running.set(m.job, r);
    await sendOutput(r, out);
  };

  const onProtocol = async (job: string, sender: string, payload: Uint8Array): Promise<void> => {
    const r = running.get(job);
    if (!r) return; // not (or no longer) ours: stop has been processed
    const from = sender === r.counterpart ? "counterpart" : r.peer !== undefined && sender === r.peer ? "peer" : undefined;
    if (from === undefined) throw new WrongSenderError("a protocol message from a party that is not this job's counterpart");
    const ctx: RoleContext = { pool, table: r.table, onProgress: progressReporter(job), ...(r.lookup ? { lookup: r.lookup } : {}), ...(r.mask ? { mask: r.mask } : {}) };
    const out = await receiveRole(r.spec, r.role, r.state, payload, ctx, from);
    r.state = out.state;
    await settleCharge(job, r);
    await sendOutput(r, out);
    if (out.done && r.role === "buyer") {
      // A result under the job's minimum intersection is withheld here — and the job still ends as any
      // other does, so neither the provider nor the exchange learns that the intersection was small.
      let bytes: Uint8Array;
      let summary: Record<string, number>;
      let withheld: string | null = null;
      try {
        const result = buyerResult(r.spec, r.state, r.table);
        bytes = result.kind === "table" ? RecordBatchStreamWriter.writeAll(result.table).toUint8Array(true) : new TextEncoder().encode(JSON.stringify({ count: result.count }));
        // The result's summary (a count, rows, groups) is the buyer's: kept in its own record of the job, never sent.
        summary = result.kind === "count" ? { count: result.count } : (result.summary ?? { rows: result.table.numRows });
      } catch (err) {
        if (!(err instanceof BelowMinimumError)) throw err;
        withheld = err.code;
        bytes = new TextEncoder().encode(JSON.stringify({ withheld: { code: err.code, rule: "minIntersection", minIntersection: err.threshold } }));
        summary = { withheld: 1 };
      }
      // A salted commitment: the digest in the exchange's ledger says nothing of a count or of a withheld result.
      const salt = new Uint8Array(randomBytes(32));
      const digest = resultCommitment(salt, bytes);
      store.putResult(job, { digest, bytes, salt });
      store.deleteState(job);
      store.transitionJob(job, ["running"], "succeeded", withheld, summary);
      running.delete(job);
      await event(job, { kind: "succeeded", digest });
      log(withheld === null ? "job succeeded" : "job ended, its result withheld under the job's minimum intersection", { job });
    }
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
    const seen = buyerKeysSeen(r.spec, r.role, r.state);
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

  const onStop = (m: Extract<ControlMessage, { type: "job.stop" }>): void => {
    releaseCharge(running.get(m.job));
    running.delete(m.job);
    const j = store.getJob(m.job);
    if (!j) return;
    store.deleteState(m.job);
    const to = m.reason === "succeeded" ? "succeeded" : m.reason === "cancelled" ? "cancelled" : m.reason === "refused" && j.state === "submitted" ? "refused" : "failed";
    if (j.state === "submitted" || j.state === "running") store.transitionJob(m.job, ["submitted", "running"], to === "succeeded" && j.state === "submitted" ? "cancelled" : to, m.reason);
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
      app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INVALID_MESSAGE" }, "dropped a malformed envelope");
      return;
    }
    let job: string | undefined;
    const work = async () => {
      // Unknown senders' keys are fetched before opening.
      if (claimedSender !== exchangeName && !keyCache.has(claimedSender)) await senderKeys(claimedSender).catch(() => undefined);
      const env = openEnvelope(frame, {
        self: identity,
        lookupSender: (name) => (name === exchangeName ? exchangeKeys : keyCache.get(name)),
        replay: { seen: (s, n) => store.nonceSeen(s, n), remember: (s, n, t) => store.rememberNonce(s, n, t) },
      });
      job = env.job;
      if (env.step === CONTROL_STEP) {
        if (env.sender !== exchangeName) return;
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
        app.log.warn({ job: claimed, code }, "dropped an envelope that does not open");
        return;
      }
      app.log.warn({ job, code }, "job step failed");
      releaseCharge(running.get(job));
      running.delete(job);
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

  let exchangeKeys: SenderKeys | undefined;
  let pin: ExchangePin | undefined;
  let pruning: NoncePruning | undefined;

  /**
   * Checks the identity the exchange presents against the pinned one (kept in
   * this agent's store as its party of role "exchange") or the configured
   * key, pins it on first use, and takes its keys for every envelope.
   */
  const pinExchange = (body: unknown): ExchangePin => {
    const b = (body ?? {}) as Record<string, unknown>;
    const name = b["name"];
    const signing = typeof b["signingPublicKey"] === "string" && /^[0-9a-f]{64}$/.test(b["signingPublicKey"]) ? b["signingPublicKey"] : undefined;
    const box = typeof b["boxPublicKey"] === "string" && /^[0-9a-f]{64}$/.test(b["boxPublicKey"]) ? b["boxPublicKey"] : undefined;
    if (typeof name !== "string" || !isNodeName(name) || signing === undefined || box === undefined) {
      throw new UmbraError("UMBRA_EXCHANGE", "the exchange's identity answer is malformed");
    }
    const keys = { signingPublicKey: Uint8Array.from(Buffer.from(signing, "hex")), boxPublicKey: Uint8Array.from(Buffer.from(box, "hex")) };
    const fp = fingerprint(keys.signingPublicKey);
    const pinned = store.listParties({ role: "exchange" })[0];
    let how: ExchangePin["how"];
    if (o.exchangeKey !== undefined) {
      const want = o.exchangeKey.toLowerCase();
      if (want !== signing && want !== fp) {
        throw new ExchangeKeyMismatchError(`the exchange at ${client.url} presents the key with fingerprint ${fp}, not the one given with --exchange-key; check the URL and the fingerprint its operator published`);
      }
      how = "configured";
    } else if (pinned !== undefined) {
      if (pinned.name !== name || hex(pinned.signingPublicKey) !== signing || (pinned.boxPublicKey !== null && hex(pinned.boxPublicKey) !== box)) {
        throw new ExchangeKeyMismatchError(
          `the exchange at ${client.url} presents the key with fingerprint ${fp}, not the one this party pinned (${fingerprint(pinned.signingPublicKey)}); if its operator rotated the key, confirm the new fingerprint with them and start with --exchange-key ${fp}`,
        );
      }
      how = "pinned";
    } else how = "first-use";
    store.transaction(() => {
      // One pinned exchange: a configured key replaces an older pin.
      for (const p of store.listParties({ role: "exchange" })) if (p.name !== name) store.deleteParty(p.name);
      store.putParty({ name, role: "exchange", signingPublicKey: keys.signingPublicKey, boxPublicKey: keys.boxPublicKey, maskPublicKey: null, endpoint: client.url });
    });
    if (how === "first-use") log("pinned the exchange's key on first use", { fingerprint: fp });
    exchangeName = name;
    exchangeKeys = keys;
    return { name, fingerprint: fp, how };
  };

  const poll = async (): Promise<void> => {
    while (polling) {
      try {
        const body = await client.binary("GET", "/v1/mailbox?wait=20000", undefined, 40_000, stopping.signal);
        for (const f of unpackFrames(body)) handle(Uint8Array.from(f));
      } catch (err) {
        if (!polling) break;
        app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_NETWORK" }, "mailbox poll failed; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };

  // --------------------------------------------------------------- local API

  // The latest signed entry of the exchange's ledger this party holds: give it to `umbra audit verify --head`.
  app.get("/v1/exchange/head", async (_req, reply) => {
    const h = store.latestExchangeHead();
    if (h === undefined) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "this party has seen no signed entry of the exchange's ledger yet (it keeps one from every job it takes part in)" } });
    return { seq: h.seq, hash: h.hash, signature: h.signature, exchange: pin?.fingerprint ?? null };
  });

  app.get("/v1/status", async () => ({ name: identity.name, exchange: client.url, runningJobs: running.size }));

  app.post(
    "/v1/datasets",
    { schema: { body: LocalDatasetRegistrationSchema }, validatorCompiler: documentBodyValidator },
    async (req, reply) => {
      const b = req.body as { file: string; policy: unknown; update?: boolean };
      const path = dataFile(b.file);
      const id = datasetId(b.file);
      const existing = store.getDataset(id);
      // Changing a policy is a deliberate act: it needs the flag, and it is logged here and in the exchange's ledger.
      if (existing && b.update !== true) {
        const v = store.latestPolicy(id)?.version ?? 1;
        return reply.code(409).send({ error: { code: "UMBRA_ALREADY_EXISTS", message: `this file is registered already (policy version ${v}); to change its policy or content register it again with update (CLI: --update), which makes version ${v + 1}` } });
      }
      if (!existing && b.update === true) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "this file is not registered yet: register it without update first" } });
      const descriptor = await describeDataset({ id, owner: identity.name, name: b.file, table: path });
      const policy = parsePolicy(b.policy, descriptor.schema);
      const r = await client.json<{ id: string; policyVersion: number }>("POST", "/v1/datasets", { descriptor, policy });
      store.transaction(() => {
        store.putDataset({ id, owner: identity.name, name: b.file, schema: descriptor.schema, rowCount: descriptor.rowCount, contentHash: descriptor.contentHash });
        putPolicyVersion(store, id, policy);
      });
      if (existing) log("dataset policy changed", { dataset: id, policyVersion: r.policyVersion });
      else log("dataset registered", { dataset: id, policyVersion: r.policyVersion });
      return reply.code(existing ? 200 : 201).send({ id: r.id, policyVersion: r.policyVersion, rows: descriptor.rowCount, contentHash: descriptor.contentHash, updated: existing !== undefined });
    },
  );

  app.get("/v1/datasets", async () => client.json("GET", "/v1/datasets"));

  /** Submissions on their way to the exchange (a job.start may overtake the answer that names its job). */
  const submitting = new Set<Promise<unknown>>();

  app.post("/v1/jobs", { schema: { body: LocalJobRequestSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const b = req.body as Record<string, unknown>;
    // Parsed here first: this agent records what it asked for, and runs only a job that is that one.
    const asked = parseJobRequest({ ...b, buyer: identity.name });
    const sent = client.json<{ id: string; protocol: string; providers: string[] }>("POST", "/v1/jobs", asked);
    submitting.add(sent);
    try {
      const job = await sent;
      if (typeof job.id === "string" && !store.getJob(job.id)) {
        store.createJob({ id: job.id, protocol: asked.protocol, buyer: identity.name, providers: Array.isArray(job.providers) ? job.providers : [], params: { request: asked, submitted: true } as never });
      }
      return reply.code(201).send(job);
    } finally {
      submitting.delete(sent);
    }
  });

  app.get("/v1/jobs/:id", async (req) => {
    const id = (req.params as { id: string }).id;
    const view = await client.json<Record<string, unknown>>("GET", `/v1/jobs/${encodeURIComponent(id)}`);
    // The exchange does not keep the result's summary: a job this party bought and finished shows its own.
    const local = store.getJob(id);
    // A result withheld here (below the job's minimum intersection) says so only to its buyer.
    if (local === undefined || local.buyer !== identity.name || local.state !== "succeeded" || view["state"] !== "succeeded") return view;
    return { ...view, ...(local.progress !== null ? { progress: local.progress } : {}), ...(local.reason !== null ? { reason: local.reason } : {}) };
  });

  app.post("/v1/jobs/:id/cancel", async (req) => client.json("POST", `/v1/jobs/${encodeURIComponent((req.params as { id: string }).id)}/cancel`));

  app.get("/v1/jobs/:id/result", async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const r = store.getResult(id);
    if (!r || !r.bytes) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no result for this job here" } });
    store.releaseResult(id);
    return reply
      .header("x-umbra-digest", r.digest)
      .header("x-umbra-digest-salt", r.salt === null ? "" : Buffer.from(r.salt).toString("hex"))
      .type("application/octet-stream")
      .send(Buffer.from(r.bytes));
  });

  return {
    app,
    client,
    token,
    get exchangePin() {
      return pin;
    },
    get exchangeHead() {
      const h = store.latestExchangeHead();
      return h === undefined ? undefined : { seq: h.seq, hash: h.hash };
    },
    async start() {
      // The exchange's keys first: checked against the pinned (or given) key before anything is sent to it.
      pin = pinExchange(await client.json<unknown>("GET", "/v1/identity"));
      pruning ??= scheduleNoncePruning(store, { onError: (err) => app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not prune nonces") });
      const me = publicIdentity(identity);
      await client.json("POST", "/v1/parties", { name: me.name, signingPublicKey: hex(me.signingPublicKey), boxPublicKey: hex(me.boxPublicKey), maskPublicKey: hex(maskKeyPair(identity).publicKey), ...(o.invite !== undefined ? { invite: o.invite } : {}) });
      // Jobs this party was in when it stopped: their data in flight (envelopes already
      // taken from the mailbox, the tables in memory) is gone, so they cannot resume
      // mid-stream. Fail them cleanly, with a reason, so neither side waits forever.
      for (const j of store.listJobs({ state: ["submitted", "running"] })) {
        store.deleteState(j.id);
        store.transitionJob(j.id, ["submitted", "running"], "failed", "UMBRA_PARTY_RESTARTED");
        await event(j.id, { kind: "failed", reason: "UMBRA_PARTY_RESTARTED" }).catch(() => undefined);
      }
      polling = true;
      pollLoop = poll();
    },
    async stop() {
      pruning?.stop();
      polling = false;
      stopping.abort();
      await pollLoop;
      await Promise.all([...chains.values()]);
      await app.close();
    },
  };
}
