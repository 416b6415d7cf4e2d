/**
 * The exchange: registers parties, keeps the catalog and its policies, checks
 * every job against the provider's policy (refusing with the exact rule),
 * relays the parties' signed and encrypted protocol envelopes between their
 * mailboxes (it sees sizes and digests only), drives each job's state, and
 * appends every registration, decision, step and result digest to the signed
 * audit ledger.
 *
 * Job flow: buyer submits → exchange checks the policy → job.start to the
 * provider → the provider's agent checks its own copy of the policy and
 * accepts (or refuses with its rule) → running, job.start to the buyer →
 * protocol envelopes relayed → the buyer reports its result digest →
 * succeeded. A party that fails a job fails it for both; the buyer may cancel.
 *
 * A protocol with an exchange-side role (node/jobs/exchange-roles.ts:
 * federated-aggregate, whose aggregator the exchange plays; join-aggregate,
 * whose matcher and aggregator it plays) runs as: buyer
 * submits → the protocol fills the request's defaults → the exchange checks it
 * against every provider dataset's policy → job.start to every provider (its
 * index, the peers' mask keys) → each provider's agent checks its own policy
 * and accepts (or refuses: the job is refused and every other provider
 * stopped) → once all have accepted: running, job.start to the buyer and the
 * exchange starts its role, side by side → every protocol envelope goes to the
 * exchange, whose role answers with envelopes it seals to the parties (or,
 * where the protocol allows it, from one party straight to the other, relayed
 * as it is) → the buyer reports its result digest → succeeded. A role that
 * refuses a message fails the job; a job that goes silent fails naming the
 * parties the role still waits for.
 *
 * Hardening (security findings 8, 9, 10, 13, 15): a new party registers only
 * with an invitation for its name (node/admission.ts; open registration is a
 * development switch), never under a reserved name or one sharing another's
 * dataset namespace, and registers datasets in its own namespace only; a
 * party reads of the ledger its own entries in full and of the others only
 * the chain's public fields, and the exchange keeps no result summary; the
 * relay's queues are capped (node/server/mailbox.ts) and a refused relay
 * changes nothing; only an accepted relay, an event that changed the job, a
 * new progress report or the role's answer counts as a job's activity; and
 * nonces past the skew window are pruned.
 */
import { createHash, randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import { UmbraError } from "../../engine/errors.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { catalogView, parseDatasetDescriptor, type DatasetDescriptor } from "../catalog.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_SKEW_MS, openEnvelope, sealEnvelope } from "../envelope.js";
import { ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import { checkDatasetId, checkNewPartyName, InvalidInvitationError, InvitationRequiredError, invitationCodeHash } from "../admission.js";
import { ReplayError } from "../errors.js";
import { decodeMessage } from "../../protocols/index.js";
import { publicIdentity, type NodeIdentity } from "../identity.js";
import { appendEntry, LedgerKind, listEntries, requestDigest, type LedgerEntry } from "../ledger.js";
import { checkJob, InvalidJobRequestError, isMultiProvider, jobCost, jobDatasets, parseJobRequest, parsePolicy, PolicyDeniedError, putPolicyVersion, settlesByKeys, withThresholds, type JobRequest, type UsagePolicy } from "../policy.js";
import type { JobRecord, Store } from "../store.js";
import { exchangeProtocolFor, type ExchangeProtocol, type ExchangeRole, type MultiPartyJob } from "../jobs/exchange-roles.js";
import { jobLimitsOf } from "../jobs/roles.js";
import { scheduleNoncePruning, verifyRequest } from "./auth.js";
import { MailboxFullError, Mailboxes, mailboxLimits, packFrames, type MailboxLimits } from "./mailbox.js";
import { CONTROL_STEP, ControlType, lookupProduct, type ControlMessage, type JobEvent } from "./control.js";
import { errorHandler } from "./http-errors.js";

export interface ExchangeOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly logger?: boolean | object;
  readonly now?: () => number;
  /** A job with no step, event or progress for this long is failed (default 10 minutes). */
  readonly jobTimeoutMs?: number;
  /** The crypto pool of the exchange's own roles (default: the shared pool, created on first use). */
  readonly pool?: CryptoPool;
  /** Serve over TLS (PEM key and certificate). */
  readonly https?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * Admit any new party name without an invitation (a development switch;
   * default false: a new name registers only with an invitation, see
   * node/admission.ts). Logged as a warning when the exchange is built.
   */
  readonly openRegistration?: boolean;
  /** Byte caps of the relay's queues (node/server/mailbox.ts DEFAULT_MAILBOX_LIMITS). */
  readonly mailboxLimits?: Partial<MailboxLimits>;
  /** How long the exchange's own role waits for room in a recipient's mailbox before it fails the job (default jobTimeoutMs). */
  readonly deliveryWaitMs?: number;
  /** How often remembered nonces past the skew window are forgotten (default a minute). */
  readonly noncePruneIntervalMs?: number;
}

declare module "fastify" {
  interface FastifyRequest {
    rawBody?: Buffer;
    party?: string;
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fromHex = (s: unknown, bytes: number): Uint8Array | undefined =>
  typeof s === "string" && new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(s) ? Uint8Array.from(Buffer.from(s, "hex")) : undefined;

const errorSchema = {
  type: "object",
  properties: { error: { type: "object", properties: { code: { type: "string" }, message: { type: "string" }, rule: { type: "string" } }, required: ["code", "message"] } },
};
const jobSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    protocol: { type: "string" },
    buyer: { type: "string" },
    providers: { type: "array", items: { type: "string" } },
    state: { type: "string" },
    reason: { type: ["string", "null"] },
    progress: {},
    createdAt: { type: "number" },
    updatedAt: { type: "number" },
  },
};

/** A running job with an exchange-side role, as the exchange holds it in memory (jobs do not survive its restart). */
interface RoleJob {
  readonly protocol: ExchangeProtocol;
  readonly job: MultiPartyJob;
  readonly accepted: Set<string>;
  started: boolean;
  role?: ExchangeRole;
  /** The role's messages, one at a time. */
  chain: Promise<void>;
}

/**
 * A job as a party of it sees it. Progress is each party's phase and counts:
 * the buyer sees every party's (a provider's counts are its own set's, whose
 * size the catalog shows the buyer), a provider only its own — another
 * party's counts could tell it what it must not learn (how many matched,
 * another provider's rows).
 */
export function jobView(j: JobRecord, viewer?: string): Record<string, unknown> {
  let progress = j.progress;
  if (viewer !== undefined && viewer !== j.buyer) {
    const own = progress !== null && typeof progress === "object" && !Array.isArray(progress) ? (progress as Record<string, unknown>)[viewer] : undefined;
    progress = own === undefined ? null : ({ [viewer]: own } as never);
  }
  return { id: j.id, protocol: j.protocol, buyer: j.buyer, providers: j.providers, state: j.state, reason: j.reason, progress, createdAt: j.createdAt, updatedAt: j.updatedAt };
}

/** The largest envelope the relay takes (the envelope layer's payload limit and its overhead): every data cap holds at least one. */
const MAX_ENVELOPE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/** Room a job.start needs in its recipient's control reserve (a request, a ledger record and keys are far smaller). */
const MAX_START_BYTES = 256 * 1024;

const JOB_ID_PATTERN = "^[A-Za-z0-9._:-]{1,128}$";

/** The exchange's Fastify app, with its mailboxes and a count of what it holds in memory for open jobs. */
export type ExchangeApp = FastifyInstance & { mailboxes: Mailboxes; inMemory(): { readonly roleJobs: number; readonly activity: number } };

export async function buildExchange(o: ExchangeOptions): Promise<ExchangeApp> {
  const { store, identity } = o;
  const now = o.now ?? Date.now;
  // keepAliveTimeout: Node's default, not Fastify's 72 s — parties reuse a connection at once or not at all, and a
  // connection a stopped party left behind would otherwise hold the exchange's close for that long.
  const options = { logger: o.logger ?? false, bodyLimit: 1024 * 1024, requestTimeout: 120_000, connectionTimeout: 120_000, keepAliveTimeout: 5_000 };
  const app = (o.https ? Fastify({ ...options, https: { key: o.https.key, cert: o.https.cert } }) : Fastify(options)) as unknown as ExchangeApp;
  const mailboxes = new Mailboxes(mailboxLimits(o.mailboxLimits, MAX_ENVELOPE_BYTES));
  app.decorate("mailboxes", mailboxes);
  // What the exchange holds in memory per job (a health check, and the attack tests): bounded by the jobs still open.
  app.decorate("inMemory", () => ({ roleJobs: roleJobs.size, activity: activity.size }));
  let closing = false;
  // Answer every open long-poll (and every delivery waiting for room) before the server waits for in-flight requests to end.
  app.addHook("preClose", async () => {
    closing = true;
    mailboxes.close();
  });
  if (o.openRegistration === true) app.log.warn("open registration: any key may register any free party name without an invitation — for development only");
  await app.register(swagger, { openapi: { info: { title: "Umbra exchange", version: "1" } } });
  app.get("/documentation/json", { schema: { hide: true } }, async () => app.swagger());

  // Raw bodies: requests are signed over their exact bytes.
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body, done) => {
    (req as FastifyRequest).rawBody = body as Buffer;
    try {
      done(null, (body as Buffer).length === 0 ? {} : JSON.parse((body as Buffer).toString("utf8")));
    } catch {
      const e = new Error("request body is not JSON") as Error & { statusCode: number };
      e.statusCode = 400;
      done(e, undefined);
    }
  });
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer", bodyLimit: 16 * 1024 * 1024 }, (req, body, done) => {
    (req as FastifyRequest).rawBody = body as Buffer;
    done(null, body);
  });

  await app.register(errorHandler);

  /** Authenticates a party's signed request (not registration). */
  const auth = async (req: FastifyRequest): Promise<void> => {
    const body = req.rawBody ?? new Uint8Array(0);
    req.party = verifyRequest(req.headers, req.method, req.url, body, {
      lookup: (name) => store.getParty(name)?.signingPublicKey,
      remember: (name, nonce, time) => store.checkAndRememberNonce(name, nonce, time),
      now,
    });
  };

  const ledger = (kind: LedgerKind, body: Record<string, unknown>, job?: string) =>
    appendEntry(store, identity.signing, { kind, ...(job ? { job } : {}), body: body as never });

  /**
   * Budgets count what was measured: at submission the exchange takes each
   * dataset's cost (a job, or the declared keys); a provider whose budget
   * counts keys reports the buyer's measured key count once its role knows it
   * ("charged"), and the difference goes back. What the job took from each
   * dataset, by provider, and whether that provider has reported.
   */
  const reservations = (j: JobRecord): { provider: string; dataset: string; reserved: number; keys: boolean; charged: boolean }[] => {
    const entries = listEntries(store, { job: j.id });
    const submitted = entries.find((e) => e.kind === LedgerKind.JobSubmitted);
    if (submitted === undefined) return [];
    const request = (j.params as unknown as { request: JobRequest }).request;
    const ids = jobDatasets(request);
    const cost = submitted.body["cost"];
    return ids.map((dataset, i) => {
      const provider = j.providers[i] as string;
      const reserved = Array.isArray(cost) ? Number(cost[i] ?? 0) : Number(cost ?? 0);
      const policy = loadPolicy(dataset);
      const keys = policy !== undefined && settlesByKeys(policy, request);
      const charged = entries.some((e) => e.kind === LedgerKind.JobStep && e.body["step"] === "charged" && e.body["by"] === provider);
      return { provider, dataset, reserved, keys, charged };
    });
  };

  /** A job ending before a provider measured the buyer's keys evaluated none of them: that reservation goes back (call inside the ending transaction). */
  const releaseUncharged = (j: JobRecord): void => {
    for (const r of reservations(j)) if (r.keys && !r.charged && r.reserved > 0 && store.getBudget(r.dataset, j.buyer)) store.refundBudget(r.dataset, j.buyer, r.reserved);
  };

  /**
   * Ends a submitted or running job in `to`, in one transaction: its state,
   * the reservations no provider measured given back, and its ledger entry.
   * (Telling the parties and freeing memory is endJob's, after it.)
   */
  const closeJob = (j: JobRecord, to: "failed" | "cancelled", reason: string, kind: LedgerKind, body: Record<string, unknown>): JobRecord =>
    store.transaction(() => {
      const x = store.transitionJob(j.id, ["submitted", "running"], to, reason);
      releaseUncharged(j);
      ledger(kind, body, j.id);
      return x;
    });

  /** A job's signed job.submitted entry: every job.start carries it, so a party can check its job against the ledger. */
  const submittedRecord = (job: string): LedgerEntry => {
    const e = listEntries(store, { job }).find((x) => x.kind === LedgerKind.JobSubmitted);
    if (e === undefined) throw new UmbraError("UMBRA_INTERNAL", "a started job has no submission entry");
    return e;
  };

  /** A control envelope from the exchange to a party. */
  let sequence = 0;
  const sealControl = (to: string, message: ControlMessage): Uint8Array =>
    sealEnvelope({ job: message.job, step: CONTROL_STEP, sender: identity, recipient: to, sequence: sequence++, payload: new TextEncoder().encode(JSON.stringify(message)), now });
  /** Queues a job.start in the recipient's control reserve; false (nothing queued) when it has no room. */
  const sendStart = (to: string, message: Extract<ControlMessage, { type: "job.start" }>): boolean => mailboxes.offerStart(to, message.job, sealControl(to, message));
  /** Whether every one of `parties` has room for a job.start (checked before a submission records anything). */
  const startRoom = (parties: readonly string[]): boolean => parties.every((p) => mailboxes.controlRoom(p) >= MAX_START_BYTES);
  /** Queues a job.stop: always (at most one per job and party; node/server/mailbox.ts). Not tagged with its job, so releasing the job's frames never drops it. */
  const sendStop = (to: string, job: string, reason: string): void => mailboxes.put(to, sealControl(to, { type: ControlType.Stop, job, reason }), { kind: "stop" });

  // ------------------------------------------------ jobs with an exchange-side role

  const roleJobs = new Map<string, RoleJob>();

  /** Frees a job's exchange-side role (every way a job ends comes here). */
  const endRoleJob = (id: string): void => {
    const rj = roleJobs.get(id);
    if (!rj) return;
    roleJobs.delete(id);
    rj.role?.dispose();
  };

  /**
   * What the exchange keeps in memory for a job that has ended is freed here
   * (every way a job ends comes here, after its state changed): its role, its
   * activity time and its frames still queued. Then `notify` are told it
   * stopped — but a provider whose job.start was still queued never learned
   * of the job and needs no stop; the buyer always hears (its agent recorded
   * the job when it submitted it).
   */
  const endJob = (j: JobRecord, reason: string, notify: readonly string[]): void => {
    endRoleJob(j.id);
    activity.delete(j.id);
    const untaken = mailboxes.releaseJob(j.id);
    for (const p of notify) if (p === j.buyer || !untaken.has(p)) sendStop(p, j.id, reason);
  };

  /** Fails a running or submitted job from the exchange's side: ledger, state, every party stopped. */
  const failJob = (id: string, reason: string, extra: Record<string, unknown> = {}): void => {
    const j = store.getJob(id);
    if (!j || (j.state !== "submitted" && j.state !== "running")) {
      endRoleJob(id);
      activity.delete(id);
      return;
    }
    closeJob(j, "failed", reason, LedgerKind.JobFailed, { reason, by: identity.name, ...extra });
    endJob(j, "failed", [j.buyer, ...j.providers]);
  };

  const codeOf = (err: unknown): string => (err instanceof UmbraError && /^UMBRA_[A-Z_]{1,64}$/.test(err.code) ? err.code : "UMBRA_INTERNAL");

  /**
   * Seals the role's messages to their parties and records each step. The
   * exchange's own messages are never dropped and never grow a recipient's
   * queue past its cap: a recipient whose mailbox is full is waited for, up
   * to deliveryWaitMs (only the recipient's cap: the job's share holds the
   * role's unprocessed input, which waits behind this message). Meanwhile
   * the role takes no further message of this job, so the job's inbound
   * relays fill its share and their senders are answered 429. When the wait
   * runs out the job fails cleanly (UMBRA_MAILBOX_FULL); when the job ends
   * meanwhile nothing more is sent.
   */
  const deliver = async (rj: RoleJob, frames: readonly { to: string; frame: Uint8Array }[]): Promise<void> => {
    const id = rj.job.id;
    const ended = () => closing || roleJobs.get(id) !== rj;
    for (const { to, frame } of frames) {
      const party = store.getParty(to);
      if (!party?.boxPublicKey) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "a party of the job has no box key");
      const step = decodeMessage(frame).header.step;
      const env = sealEnvelope({ job: id, step, sender: identity, recipient: to, sequence: sequence++, payload: frame, encryptTo: party.boxPublicKey, now });
      const deadline = Date.now() + deliveryWaitMs;
      while (!ended() && !mailboxes.fitsRecipient(to, env.length)) {
        const left = deadline - Date.now();
        if (left <= 0 || !(await mailboxes.waitForRoom(() => ended() || mailboxes.fitsRecipient(to, env.length), left))) {
          if (ended()) break;
          throw new MailboxFullError("a party of the job has not taken the exchange's messages in time: the job cannot go on");
        }
      }
      if (ended()) return;
      const digest = createHash("sha256").update(env).digest("hex");
      store.transaction(() => {
        store.recordStep(id, { step: `step-${step}`, direction: "out", size: env.length, digest });
        ledger(LedgerKind.JobStep, { step, from: identity.name, to, size: env.length, digest }, id);
      });
      mailboxes.offerOwn(to, id, env); // fits: checked above, with no wait since
    }
  };

  /**
   * Feeds one protocol frame to a job's role, in order; a refusal fails the
   * job. The frame's bytes count against the job's share of the queues
   * (held) until the role has taken it.
   */
  const toRole = (rj: RoleJob, from: string, payload: Uint8Array, held: number): void => {
    const id = rj.job.id;
    rj.chain = rj.chain.then(async () => {
      try {
        if (roleJobs.get(id) !== rj || !rj.role) return; // ended meanwhile
        await deliver(rj, await rj.role.receive(from, payload));
        if (roleJobs.get(id) === rj) touch(id);
      } catch (err) {
        if (closing) return;
        app.log.warn({ job: id, code: codeOf(err) }, "the exchange's role refused a message");
        try {
          failJob(id, codeOf(err));
        } catch (e) {
          app.log.warn({ job: id, code: codeOf(e) }, "could not fail a job");
        }
      } finally {
        mailboxes.unhold(id, held);
      }
    });
  };

  /**
   * Every provider has accepted: start the buyer and the exchange's role side
   * by side (each may take seconds, e.g. an HE context). The role's messages
   * wait in its chain until it is up; if it cannot start, the job fails.
   */
  const startRoleJob = (rj: RoleJob): void => {
    const { job } = rj;
    if (!sendStart(job.buyer, { type: ControlType.Start, job: job.id, role: "buyer", request: job.request, counterpart: identity.name, providers: job.providers, record: submittedRecord(job.id) })) {
      failJob(job.id, "UMBRA_MAILBOX_FULL");
      return;
    }
    const ready = (async () => {
      // Let the buyer's job.start go out before the role's setup takes the event loop.
      await new Promise((r) => setImmediate(r));
      if (roleJobs.get(job.id) !== rj) return; // ended meanwhile
      let role: ExchangeRole;
      try {
        role = await rj.protocol.start(job, { pool: () => o.pool ?? getPool() });
      } catch (err) {
        failJob(job.id, codeOf(err));
        return;
      }
      if (closing || roleJobs.get(job.id) !== rj) role.dispose(); // the job ended while the role started
      else {
        rj.role = role;
        touch(job.id);
      }
    })();
    rj.chain = rj.chain.then(() => ready);
  };

  /** Whether a buyer may see a dataset at all (its catalog lists it): the policy's allowed buyers. */
  const visibleTo = (policy: UsagePolicy, buyer: string): boolean => policy.allowedBuyers === "any" || policy.allowedBuyers.includes(buyer);

  const loadPolicy = (datasetId: string): UsagePolicy | undefined => {
    const p = store.latestPolicy(datasetId);
    return p ? parsePolicy(p.policy) : undefined;
  };
  const descriptorOf = (datasetId: string): DatasetDescriptor | undefined => {
    const d = store.getDataset(datasetId);
    if (!d) return undefined;
    return { id: d.id, owner: d.owner, name: d.name, schema: d.schema as DatasetDescriptor["schema"], rowCount: d.rowCount, contentHash: d.contentHash, createdAt: new Date(d.createdAt).toISOString() };
  };

  // Jobs that go silent (a party gone and not back) are failed, so nobody waits forever.
  // Activity is a job's last accepted relay, valid event (one that changed something) or stored progress report,
  // or its role's answer: nothing a party can send without moving the job on keeps it alive (finding 13).
  const jobTimeoutMs = o.jobTimeoutMs ?? 10 * 60 * 1000;
  const deliveryWaitMs = o.deliveryWaitMs ?? jobTimeoutMs;
  const activity = new Map<string, number>();
  const touch = (id: string) => activity.set(id, now());
  const sweep = setInterval(() => {
    const active = store.listJobs({ state: ["submitted", "running"] });
    // Only active jobs keep an activity time (each ending deletes its own; this catches any left behind).
    const ids = new Set(active.map((j) => j.id));
    for (const id of activity.keys()) if (!ids.has(id)) activity.delete(id);
    for (const j of active) {
      const last = activity.get(j.id) ?? j.updatedAt;
      if (now() - last <= jobTimeoutMs) continue;
      // A job with an exchange-side role names who it still waits for: providers that never
      // accepted, or the parties whose messages the role lacks.
      const rj = roleJobs.get(j.id);
      const missing = rj ? (rj.started ? [...(rj.role?.missing() ?? [])] : rj.job.providers.filter((p) => !rj.accepted.has(p))) : [];
      const reason = missing.length > 0 ? "UMBRA_MISSING_PARTY" : "UMBRA_JOB_TIMEOUT";
      endRoleJob(j.id);
      try {
        closeJob(j, "failed", reason, LedgerKind.JobFailed, { reason, ...(missing.length > 0 ? { missing } : {}) });
      } catch (err) {
        app.log.warn({ job: j.id, code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not time out a job");
        continue;
      }
      endJob(j, "failed", [j.buyer, ...j.providers]);
    }
  }, Math.min(5000, Math.max(50, Math.floor(jobTimeoutMs / 4))));
  sweep.unref();
  // Nonces past the skew window are forgotten (a replay of one is refused by its timestamp; finding 15).
  const pruning = scheduleNoncePruning(store, { now, ...(o.noncePruneIntervalMs !== undefined ? { everyMs: o.noncePruneIntervalMs } : {}), onError: (err) => app.log.warn({ code: codeOf(err) }, "could not prune nonces") });
  app.addHook("onClose", async () => {
    clearInterval(sweep);
    pruning.stop();
  });

  // On start, jobs that were running when the exchange stopped cannot resume here (the
  // mailboxes were in memory): fail them cleanly, with a reason, so nobody waits forever.
  for (const j of store.listJobs({ state: ["submitted", "running"] })) {
    closeJob(j, "failed", "UMBRA_EXCHANGE_RESTARTED", LedgerKind.JobFailed, { reason: "UMBRA_EXCHANGE_RESTARTED" });
  }

  app.get("/v1/identity", { schema: { response: { 200: { type: "object", properties: { name: { type: "string" }, signingPublicKey: { type: "string" }, boxPublicKey: { type: "string" } } } } } }, async () => {
    const p = publicIdentity(identity);
    return { name: p.name, signingPublicKey: hex(p.signingPublicKey), boxPublicKey: hex(p.boxPublicKey) };
  });

  /**
   * Registration: the party proves it holds its signing key by signing this
   * request with it. A name registered already re-registers with the same key
   * (a restart; its box and mask keys may change) and needs no invitation; a
   * new name must be one a new party may take (node/admission.ts) and, unless
   * registration is open, present an unused, unexpired invitation for that
   * name, used up in the same transaction that registers it. A refused
   * registration changes nothing (its request's nonce included).
   */
  app.post(
    "/v1/parties",
    {
      schema: {
        body: {
          type: "object",
          required: ["name", "signingPublicKey", "boxPublicKey"],
          additionalProperties: false,
          properties: {
            name: { type: "string", pattern: "^[A-Za-z0-9._-]{1,64}$" },
            signingPublicKey: { type: "string", maxLength: 64 },
            boxPublicKey: { type: "string", maxLength: 64 },
            maskPublicKey: { type: "string", maxLength: 64 },
            endpoint: { type: ["string", "null"], maxLength: 2048 },
            role: { type: "string", enum: ["provider", "buyer"] },
            invite: { type: "string", minLength: 1, maxLength: 128 },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; signingPublicKey: string; boxPublicKey: string; maskPublicKey?: string; endpoint?: string | null; role?: "provider" | "buyer"; invite?: string };
      const signing = fromHex(b.signingPublicKey, 32);
      const box = fromHex(b.boxPublicKey, 32);
      const mask = b.maskPublicKey === undefined ? null : fromHex(b.maskPublicKey, 32);
      if (!signing || !box || mask === undefined) return reply.code(400).send({ error: { code: "UMBRA_BAD_REQUEST", message: "keys must be 32-byte hex" } });
      // The signature is checked now; its nonce is remembered only with the registration itself.
      let nonce: { name: string; nonce: Uint8Array; time: number } | undefined;
      verifyRequest(req.headers, req.method, req.url, req.rawBody ?? new Uint8Array(0), {
        lookup: (name) => (name === b.name ? signing : undefined),
        remember: (name, n, time) => {
          if (store.nonceSeen(name, n)) return false;
          nonce = { name, nonce: Uint8Array.from(n), time };
          return true;
        },
        now,
      });
      const existing = store.getParty(b.name);
      if (existing && hex(existing.signingPublicKey) !== b.signingPublicKey) {
        return reply.code(409).send({ error: { code: "UMBRA_ALREADY_EXISTS", message: "a party of that name is registered with another key" } });
      }
      if (!existing) {
        checkNewPartyName(store, b.name, identity.name);
        if (b.invite === undefined && o.openRegistration !== true) throw new InvitationRequiredError();
      }
      const at = now();
      const party = store.transaction(() => {
        if (nonce === undefined || !store.checkAndRememberNonce(nonce.name, nonce.nonce, nonce.time)) throw new ReplayError();
        let admission: "invitation" | "open" | undefined;
        if (!existing) {
          if (b.invite !== undefined) {
            if (!store.consumeInvitation(b.name, invitationCodeHash(b.invite), signing, at)) throw new InvalidInvitationError();
            admission = "invitation";
          } else admission = "open";
        }
        const p = store.putParty({ name: b.name, role: b.role ?? "provider", signingPublicKey: signing, boxPublicKey: box, maskPublicKey: mask, endpoint: b.endpoint ?? null });
        if (admission !== undefined) ledger(LedgerKind.PartyRegistered, { name: b.name, signingKey: b.signingPublicKey.slice(0, 16), admission });
        return p;
      });
      return reply.code(existing ? 200 : 201).send({ name: party.name, registeredAt: party.registeredAt });
    },
  );

  app.get("/v1/parties/:name", { preHandler: auth }, async (req, reply) => {
    const p = store.getParty((req.params as { name: string }).name);
    if (!p) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such party" } });
    return { name: p.name, signingPublicKey: hex(p.signingPublicKey), boxPublicKey: p.boxPublicKey ? hex(p.boxPublicKey) : null, maskPublicKey: p.maskPublicKey ? hex(p.maskPublicKey) : null };
  });

  app.post("/v1/datasets", { preHandler: auth, schema: { body: { type: "object", required: ["descriptor", "policy"], additionalProperties: false, properties: { descriptor: { type: "object" }, policy: { type: "object" } } } } }, async (req, reply) => {
    const b = req.body as { descriptor: unknown; policy: unknown };
    const d = parseDatasetDescriptor(b.descriptor);
    if (d.owner !== req.party) return reply.code(403).send({ error: { code: "UMBRA_FORBIDDEN", message: "a party registers only its own datasets" } });
    // Its own namespace only (OWNER.…), never over another owner's id (finding 9).
    checkDatasetId(store, d.id, d.owner);
    const policy = parsePolicy(b.policy, d.schema);
    const out = store.transaction(() => {
      const existing = store.getDataset(d.id);
      store.putDataset({ id: d.id, owner: d.owner, name: d.name, schema: d.schema, rowCount: d.rowCount, contentHash: d.contentHash });
      // A new version; every buyer's budget rebased on it (what was spent stays spent).
      const p = putPolicyVersion(store, d.id, policy);
      if (!existing) ledger(LedgerKind.DatasetRegistered, { dataset: d.id, owner: d.owner, rows: d.rowCount, contentHash: d.contentHash });
      ledger(LedgerKind.PolicyChanged, { dataset: d.id, version: p.version, digest: createHash("sha256").update(JSON.stringify(policy)).digest("hex") });
      return p;
    });
    return reply.code(201).send({ id: d.id, policyVersion: out.version });
  });

  app.get("/v1/datasets", { preHandler: auth }, async (req) => {
    const views = [];
    for (const d of store.listDatasets()) {
      const policy = loadPolicy(d.id);
      const desc = descriptorOf(d.id);
      if (!policy || !desc) continue;
      if (policy.allowedBuyers !== "any" && !policy.allowedBuyers.includes(req.party as string) && d.owner !== req.party) continue;
      views.push(catalogView(desc, policy));
    }
    return { datasets: views };
  });

  app.post("/v1/jobs", { preHandler: auth, schema: { response: { 201: jobSchema, 403: errorSchema, 404: errorSchema } } }, async (req, reply) => {
    const request: JobRequest = parseJobRequest(req.body);
    if (request.buyer !== req.party) return reply.code(403).send({ error: { code: "UMBRA_FORBIDDEN", message: "a job is submitted by its buyer" } });
    const withRole = exchangeProtocolFor(request.protocol);
    if (withRole) return submitWithRole(request, withRole, reply);
    if (isMultiProvider(request) || request.providerDataset === undefined) {
      throw new InvalidJobRequestError([{ field: "providerDatasets", problem: `protocol ${request.protocol} runs against one provider dataset` }]);
    }
    const dataset = descriptorOf(request.providerDataset);
    const policy = loadPolicy(request.providerDataset);
    // A dataset the buyer may not use is answered as one that does not exist: nothing tells it apart, nothing is recorded.
    if (!dataset || !policy || !visibleTo(policy, request.buyer)) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such provider dataset" } });
    const id = `job-${randomUUID()}`;
    const providers = [dataset.owner];
    const budget = store.getBudget(dataset.id, request.buyer)?.remaining ?? policy.queryBudget;
    try {
      checkJob(policy, dataset, request, { now: new Date(now()), budgetRemaining: budget });
    } catch (err) {
      if (!(err instanceof PolicyDeniedError)) throw err;
      store.transaction(() => {
        store.createJob({ id, protocol: request.protocol, buyer: request.buyer, providers, params: { request } as never });
        store.transitionJob(id, ["submitted"], "refused", err.rule);
        ledger(LedgerKind.JobRefused, { rule: err.rule, by: "exchange", dataset: dataset.id }, id);
      });
      return reply.code(403).send({ error: { code: err.code, message: err.message, rule: err.rule } });
    }
    // Nothing is recorded for a job whose provider has no room for its job.start (finding 10): send it again later.
    if (!startRoom(providers)) throw new MailboxFullError("the provider's mailbox has no room for another job: nothing was recorded; submit the job again later");
    // The job as it runs: with the thresholds the buyer's agent enforces (psi, psi-cardinality, lookup).
    const runs = withThresholds(policy, request);
    const { job, record } = store.transaction(() => {
      const cost = jobCost(policy, runs) ?? 1;
      if (!store.getBudget(dataset.id, runs.buyer)) store.setBudget(dataset.id, runs.buyer, policy.queryBudget);
      store.consumeBudget(dataset.id, runs.buyer, cost);
      const j = store.createJob({ id, protocol: runs.protocol, buyer: runs.buyer, providers, params: { request: runs } as never });
      const e = ledger(LedgerKind.JobSubmitted, { protocol: runs.protocol, buyer: runs.buyer, dataset: dataset.id, cost, request: requestDigest(runs) }, id);
      return { job: j, record: e };
    });
    touch(id);
    if (!sendStart(dataset.owner, { type: ControlType.Start, job: id, role: "provider", request: runs, counterpart: runs.buyer, record })) failJob(id, "UMBRA_MAILBOX_FULL");
    return reply.code(201).send(jobView(store.getJob(id) ?? job, runs.buyer));
  });

  /**
   * Submits a job whose protocol has an exchange-side role: every dataset's
   * policy is checked (the first refusal refuses the job, naming its rule and
   * dataset), every dataset's budget charged, and job.start sent to every provider.
   */
  const submitWithRole = async (asked: JobRequest, protocol: ExchangeProtocol, reply: FastifyReply) => {
    const ids = jobDatasets(asked);
    const datasets = ids.map((d) => descriptorOf(d));
    const policies = ids.map((d) => loadPolicy(d));
    // As for one dataset: one the buyer may not use is answered as missing, before anything about it (its row count) is used.
    if (datasets.some((d) => !d) || policies.some((p) => !p || !visibleTo(p, asked.buyer))) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such provider dataset" } });
    const ds = datasets as DatasetDescriptor[];
    const ps = policies as UsagePolicy[];
    const providers = ds.map((d) => d.owner);
    if (new Set(providers).size !== providers.length || providers.includes(asked.buyer)) {
      throw new InvalidJobRequestError([{ field: "providerDatasets", problem: "each dataset must belong to a different provider, none of them the buyer" }]);
    }
    const prepared = await protocol.prepare(asked, ds, ps);
    // The keys job.start carries, before anything is recorded (a provider without one fails the submission).
    const keys = providers.map((name) => ({ name, maskPublicKey: store.getParty(name)?.maskPublicKey ?? null }));
    const starts = providers.map((_, i) => protocol.providerStart(i, keys));
    const id = `job-${randomUUID()}`;
    const budgets = ds.map((d, i) => store.getBudget(d.id, asked.buyer)?.remaining ?? (ps[i] as UsagePolicy).queryBudget);
    for (let i = 0; i < ds.length; i++) {
      try {
        checkJob(ps[i] as UsagePolicy, ds[i] as DatasetDescriptor, prepared, { now: new Date(now()), budgetRemaining: budgets[i] as number });
      } catch (err) {
        if (!(err instanceof PolicyDeniedError)) throw err;
        store.transaction(() => {
          store.createJob({ id, protocol: asked.protocol, buyer: asked.buyer, providers, params: { request: prepared } as never });
          store.transitionJob(id, ["submitted"], "refused", err.rule);
          ledger(LedgerKind.JobRefused, { rule: err.rule, by: "exchange", dataset: (ds[i] as DatasetDescriptor).id }, id);
        });
        return reply.code(403).send({ error: { code: err.code, message: err.message, rule: err.rule } });
      }
    }
    if (!startRoom(providers)) throw new MailboxFullError("a provider's mailbox has no room for another job: nothing was recorded; submit the job again later");
    const request = protocol.finalise(prepared, ps);
    const { job, record } = store.transaction(() => {
      const costs = ds.map((d, i) => {
        const policy = ps[i] as UsagePolicy;
        const cost = jobCost(policy, request) ?? 1;
        if (!store.getBudget(d.id, request.buyer)) store.setBudget(d.id, request.buyer, policy.queryBudget);
        store.consumeBudget(d.id, request.buyer, cost);
        return cost;
      });
      const j = store.createJob({ id, protocol: request.protocol, buyer: request.buyer, providers, params: { request } as never });
      const e = ledger(LedgerKind.JobSubmitted, { protocol: request.protocol, buyer: request.buyer, datasets: ids, providers, cost: costs, params: protocol.ledgerParams(request) as never, request: requestDigest(request) }, id);
      return { job: j, record: e };
    });
    roleJobs.set(id, { protocol, job: { id, request, buyer: request.buyer, providers, limits: jobLimitsOf(request) }, accepted: new Set(), started: false, chain: Promise.resolve() });
    touch(id);
    const sent = providers.map((p, i) => sendStart(p, { type: ControlType.Start, job: id, role: "provider", request, counterpart: identity.name, providers, providerIndex: i, ...starts[i], record }));
    if (sent.includes(false)) failJob(id, "UMBRA_MAILBOX_FULL");
    return reply.code(201).send(jobView(store.getJob(id) ?? job, request.buyer));
  };

  const jobFor = (req: FastifyRequest, reply: FastifyReply): JobRecord | undefined => {
    const j = store.getJob((req.params as { id: string }).id);
    if (!j || (j.buyer !== req.party && !j.providers.includes(req.party as string))) {
      void reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such job" } });
      return undefined;
    }
    return j;
  };

  app.get("/v1/jobs/:id", { preHandler: auth, schema: { response: { 200: jobSchema } } }, async (req, reply) => {
    const j = jobFor(req, reply);
    return j ? jobView(j, req.party) : reply;
  });

  app.post("/v1/jobs/:id/cancel", { preHandler: auth }, async (req, reply) => {
    const j = jobFor(req, reply);
    if (!j) return reply;
    if (j.buyer !== req.party) return reply.code(403).send({ error: { code: "UMBRA_FORBIDDEN", message: "only the buyer cancels a job" } });
    const done = closeJob(j, "cancelled", "cancelled by the buyer", LedgerKind.JobCancelled, { by: "buyer" });
    endJob(j, "cancelled", [j.buyer, ...j.providers]);
    return jobView(done, req.party);
  });

  /** A job event's shape: kind, and only the fields an event carries, each bounded. Anything else is removed before it is read. */
  const eventSchema = {
    type: "object",
    required: ["kind"],
    additionalProperties: false,
    properties: {
      kind: { type: "string", enum: ["accepted", "refused", "progress", "succeeded", "failed", "charged"] },
      rule: { type: "string", minLength: 1, maxLength: 64 },
      reason: { type: "string", minLength: 1, maxLength: 80 },
      digest: { type: "string", pattern: "^[0-9a-f]{64}$" },
      units: { type: "integer", minimum: 0 },
      progress: {
        type: "object",
        required: ["phase", "done", "total"],
        additionalProperties: false,
        properties: { phase: { type: "string", pattern: "^[ -~]{1,64}$" }, done: { type: "integer", minimum: 0 }, total: { type: "integer", minimum: 0 } },
      },
    },
  };

  /**
   * A party reports on a job: accepted / refused (provider), progress,
   * succeeded (buyer), failed, charged (provider). Only an event that changes
   * the job (or stores a new progress report) counts as the job's activity:
   * a party cannot keep a job open by sending events that do nothing
   * (finding 13). The buyer's result summary is not the exchange's to keep:
   * succeeded records the result's digest only (finding 8).
   */
  app.post("/v1/jobs/:id/events", { preHandler: auth, schema: { body: eventSchema } }, async (req, reply) => {
    const j = jobFor(req, reply);
    if (!j) return reply;
    const e = req.body as JobEvent;
    const party = req.party as string;
    const isBuyer = j.buyer === party;
    const request = (j.params as unknown as { request: JobRequest }).request;
    switch (e.kind) {
      case "accepted": {
        if (isBuyer) break;
        const rj = roleJobs.get(j.id);
        if (rj) {
          if (j.state !== "submitted" || rj.accepted.has(party)) return jobView(j, party);
          rj.accepted.add(party);
          ledger(LedgerKind.JobStep, { step: "accepted", by: party }, j.id);
          touch(j.id);
          if (rj.accepted.size < rj.job.providers.length || rj.started) return jobView(j, party);
          rj.started = true;
          const r = store.transaction(() => store.transitionJob(j.id, ["submitted"], "running"));
          startRoleJob(rj);
          return jobView(r, party);
        }
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["submitted"], "running");
          ledger(LedgerKind.JobStep, { step: "accepted", by: party }, j.id);
          return x;
        });
        touch(j.id);
        const pd = request.providerDataset;
        const lookup = request.protocol === "lookup" && pd !== undefined ? { product: lookupProduct(pd), version: store.latestPolicy(pd)?.version ?? 1 } : undefined;
        if (!sendStart(j.buyer, { type: ControlType.Start, job: j.id, role: "buyer", request, counterpart: j.providers[0] as string, ...(lookup ? { lookup } : {}), record: submittedRecord(j.id) })) {
          failJob(j.id, "UMBRA_MAILBOX_FULL");
          return jobView(store.getJob(j.id) ?? r, party);
        }
        return jobView(r, party);
      }
      case "refused": {
        if (isBuyer) break;
        const rule = e.rule ?? "refused";
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["submitted"], "refused", rule);
          // Nothing ran: every dataset's charge goes back, whatever its unit.
          for (const r of reservations(j)) if (r.reserved > 0 && store.getBudget(r.dataset, j.buyer)) store.refundBudget(r.dataset, j.buyer, r.reserved);
          ledger(LedgerKind.JobRefused, { rule, by: "provider", party }, j.id);
          return x;
        });
        // The other providers (of a job with an exchange-side role) may have accepted already: they stop, and
        // nothing reaches the buyer. The buyer's agent recorded the job when it submitted it: it learns the job ends here.
        endJob(j, "refused", [...j.providers.filter((p) => p !== party), j.buyer]);
        return jobView(r, party);
      }
      case "progress": {
        const p = e.progress as { phase: string; done: number; total: number } | undefined;
        if (p === undefined) break;
        if (j.state !== "running" && j.state !== "submitted") return jobView(j, party);
        // Only a phase name and two counts are kept: progress carries no data. A report that repeats the stored one changes nothing.
        const before = (j.progress as Record<string, { phase?: unknown; done?: unknown; total?: unknown }> | null)?.[party];
        if (before && before.phase === p.phase && before.done === p.done && before.total === p.total) return jobView(j, party);
        const r = store.setJobProgress(j.id, { ...(j.progress as object | null), [party]: { phase: p.phase, done: p.done, total: p.total } });
        touch(j.id);
        return jobView(r, party);
      }
      case "succeeded": {
        if (!isBuyer || e.digest === undefined) break;
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["running"], "succeeded", null);
          ledger(LedgerKind.JobResult, { digest: e.digest as string }, j.id);
          return x;
        });
        endJob(j, "succeeded", j.providers);
        return jobView(r, party);
      }
      case "failed": {
        const reason = typeof e.reason === "string" && /^UMBRA_[A-Z_]{1,64}$/.test(e.reason) ? e.reason : "UMBRA_FAILED";
        if (j.state !== "submitted" && j.state !== "running") return jobView(j, party);
        const r = closeJob(j, "failed", reason, LedgerKind.JobFailed, { reason, by: party });
        endJob(j, "failed", [j.buyer, ...j.providers].filter((p) => p !== party));
        return jobView(r, party);
      }
      case "charged": {
        // A provider whose budget counts keys: the buyer's distinct keys as its role measured them, once.
        if (isBuyer || (j.state !== "submitted" && j.state !== "running")) break;
        const mine = reservations(j).find((r) => r.provider === party);
        const units = e.units; // an integer of at least 0 (eventSchema)
        if (mine === undefined || !mine.keys || mine.charged || units === undefined || units > mine.reserved) break;
        store.transaction(() => {
          if (mine.reserved > units) store.refundBudget(mine.dataset, j.buyer, mine.reserved - units);
          ledger(LedgerKind.JobStep, { step: "charged", by: party, dataset: mine.dataset, units }, j.id);
        });
        touch(j.id);
        return jobView(j, party);
      }
      default:
        break;
    }
    return reply.code(400).send({ error: { code: "UMBRA_BAD_REQUEST", message: "not an event this party may report" } });
  });

  /**
   * Relay: verify the sender's signature and freshness (not the payload,
   * which may be sealed to the recipient), check both ends belong to the
   * running job, check there is room (finding 10: the recipient's queue, the
   * job's share, the exchange's total), then record the step and queue it.
   * Every refusal — 429 with Retry-After when there is no room — changes
   * nothing: no step, no ledger entry, no activity, and not even the
   * envelope's nonce, so its sender can send the same bytes again.
   */
  app.post("/v1/relay", { preHandler: auth, bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
    const frame = req.rawBody ?? Buffer.alloc(0);
    let nonce: { sender: string; nonce: Uint8Array; time: number } | undefined;
    const env = openEnvelope(frame, {
      self: identity,
      relay: true,
      lookupSender: (name) => {
        const p = store.getParty(name);
        return p && p.boxPublicKey ? { signingPublicKey: p.signingPublicKey, boxPublicKey: p.boxPublicKey } : undefined;
      },
      // Checked now, remembered only with the accepted step below.
      replay: { seen: (s, n) => store.nonceSeen(s, n), remember: (s, n, t) => void (nonce = { sender: s, nonce: Uint8Array.from(n), time: t }) },
      // The nonce table keeps nonces for NONCE_RETENTION_MS (node/server/auth.ts), which covers this window.
      maxSkewMs: DEFAULT_MAX_SKEW_MS,
      now,
    });
    if (env.sender !== req.party) return reply.code(403).send({ error: { code: "UMBRA_FORBIDDEN", message: "the envelope's sender is not the requesting party" } });
    const j = store.getJob(env.job);
    const parties = j ? [j.buyer, ...j.providers] : [];
    const rj = j ? roleJobs.get(j.id) : undefined;
    // In a job with an exchange-side role, a party sends to the exchange, or straight to another
    // party only where the protocol allows it; the exchange itself is a recipient of no other job.
    const toExchange = env.recipient === identity.name;
    const routed = rj ? (toExchange ? rj.started : rj.protocol.directRoute(rj.job, env.sender, env.recipient)) : !toExchange;
    if (!j || j.state !== "running" || !parties.includes(env.sender) || (!toExchange && !parties.includes(env.recipient)) || env.sender === env.recipient || !routed) {
      return reply.code(409).send({ error: { code: "UMBRA_WRONG_JOB", message: "the envelope does not belong to a running job between these parties" } });
    }
    const size = frame.length;
    const room = toExchange && rj ? mailboxes.canHold(j.id, size) : mailboxes.fits(env.recipient, j.id, size);
    if (!room) throw new MailboxFullError();
    const digest = createHash("sha256").update(frame).digest("hex");
    store.transaction(() => {
      if (nonce === undefined || !store.checkAndRememberNonce(nonce.sender, nonce.nonce, nonce.time)) throw new ReplayError();
      store.recordStep(j.id, { step: `step-${env.step}`, direction: "in", size, digest });
      ledger(LedgerKind.JobStep, { step: env.step, from: env.sender, to: env.recipient, size, digest }, j.id);
    });
    touch(j.id);
    // No wait since the room was checked: it is still there.
    if (toExchange && rj) {
      mailboxes.hold(j.id, size);
      toRole(rj, env.sender, env.payload, size);
    } else mailboxes.offer(env.recipient, j.id, Uint8Array.from(frame));
    return reply.code(202).send({ queued: true });
  });

  app.get("/v1/mailbox", { preHandler: auth }, async (req, reply) => {
    const wait = Math.min(30_000, Math.max(0, Number((req.query as { wait?: string }).wait ?? 0) || 0));
    const frames = await mailboxes.take(req.party as string, wait);
    return reply.type("application/octet-stream").send(packFrames(frames));
  });

  /**
   * Whether a ledger entry is about `party`: an entry of one of its jobs (as
   * buyer or provider), its own registration, or the registration or a
   * policy change of one of its datasets.
   */
  const entryConcerns = (party: string, e: LedgerEntry, jobs: Map<string, boolean>): boolean => {
    if (e.job !== null) {
      let mine = jobs.get(e.job);
      if (mine === undefined) {
        const j = store.getJob(e.job);
        mine = j !== undefined && (j.buyer === party || j.providers.includes(party));
        jobs.set(e.job, mine);
      }
      return mine;
    }
    if (e.kind === LedgerKind.PartyRegistered) return e.body["name"] === party;
    if (e.kind === LedgerKind.DatasetRegistered) return e.body["owner"] === party;
    if (e.kind === LedgerKind.PolicyChanged) return typeof e.body["dataset"] === "string" && store.getDataset(e.body["dataset"])?.owner === party;
    return false;
  };

  /**
   * The ledger as a party may read it (finding 8): the entries about it in
   * full, and of every other entry only what the log's design makes public —
   * {seq, prevHash, hash, signature} — so it can check every link and
   * signature of the chain without reading another party's business. At most
   * `limit` entries (default and most 1,000) after `after`; `next` is the
   * seq to ask after for more. With `job`, one of its own jobs' entries.
   */
  app.get(
    "/v1/audit",
    {
      preHandler: auth,
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { job: { type: "string", pattern: JOB_ID_PATTERN }, after: { type: "integer", minimum: 0 }, limit: { type: "integer", minimum: 1, maximum: 1000 } },
        },
      },
    },
    async (req, reply) => {
      const party = req.party as string;
      const q = req.query as { job?: string; after?: number; limit?: number };
      if (q.job !== undefined) {
        const j = store.getJob(q.job);
        if (!j || (j.buyer !== party && !j.providers.includes(party))) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such job" } });
      }
      const limit = q.limit ?? 1000;
      const rows = listEntries(store, { ...(q.job !== undefined ? { job: q.job } : {}), ...(q.after !== undefined ? { afterSeq: q.after } : {}), limit: limit + 1 });
      const page = rows.slice(0, limit);
      const jobs = new Map<string, boolean>();
      const entries = page.map((e) => (entryConcerns(party, e, jobs) ? e : { seq: e.seq, prevHash: e.prevHash, hash: e.hash, signature: e.signature }));
      return { publicKey: hex(identity.signing.publicKey), entries, ...(rows.length > limit ? { next: (page.at(-1) as LedgerEntry).seq } : {}) };
    },
  );

  /** The ledger's signed head: {seq, hash, signature, at} of its latest entry (a party keeps the latest it saw). */
  app.get("/v1/audit/head", { preHandler: auth }, async (_req, reply) => {
    const head = store.ledgerHead();
    if (head === undefined) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "the ledger is empty" } });
    return { seq: head.seq, hash: head.hash, signature: head.signature, at: head.at };
  });

  return app;
}
