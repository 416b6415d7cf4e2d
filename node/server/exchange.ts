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
 */
import { createHash, randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import { UmbraError } from "../../engine/errors.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { catalogView, parseDatasetDescriptor, type DatasetDescriptor } from "../catalog.js";
import { openEnvelope, sealEnvelope } from "../envelope.js";
import { decodeMessage } from "../../protocols/index.js";
import { publicIdentity, type NodeIdentity } from "../identity.js";
import { appendEntry, LedgerKind, listEntries, requestDigest, type LedgerEntry } from "../ledger.js";
import { checkJob, InvalidJobRequestError, isMultiProvider, jobCost, jobDatasets, parseJobRequest, parsePolicy, PolicyDeniedError, putPolicyVersion, withThresholds, type JobRequest, type UsagePolicy } from "../policy.js";
import type { JobRecord, Store } from "../store.js";
import { exchangeProtocolFor, type ExchangeProtocol, type ExchangeRole, type MultiPartyJob } from "../jobs/exchange-roles.js";
import { jobLimitsOf } from "../jobs/roles.js";
import { verifyRequest } from "./auth.js";
import { Mailboxes, packFrames } from "./mailbox.js";
import { CONTROL_STEP, ControlType, lookupProduct, type ControlMessage, type JobEvent } from "./control.js";
import { httpStatusOf } from "./http-errors.js";

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

export function jobView(j: JobRecord): Record<string, unknown> {
  return { id: j.id, protocol: j.protocol, buyer: j.buyer, providers: j.providers, state: j.state, reason: j.reason, progress: j.progress, createdAt: j.createdAt, updatedAt: j.updatedAt };
}

export async function buildExchange(o: ExchangeOptions): Promise<FastifyInstance & { mailboxes: Mailboxes }> {
  const { store, identity } = o;
  const now = o.now ?? Date.now;
  // keepAliveTimeout: Node's default, not Fastify's 72 s — parties reuse a connection at once or not at all, and a
  // connection a stopped party left behind would otherwise hold the exchange's close for that long.
  const options = { logger: o.logger ?? false, bodyLimit: 1024 * 1024, requestTimeout: 120_000, connectionTimeout: 120_000, keepAliveTimeout: 5_000 };
  const app = (o.https ? Fastify({ ...options, https: { key: o.https.key, cert: o.https.cert } }) : Fastify(options)) as unknown as FastifyInstance & { mailboxes: Mailboxes };
  const mailboxes = new Mailboxes();
  app.decorate("mailboxes", mailboxes);
  // Answer every open long-poll before the server waits for in-flight requests to end.
  app.addHook("preClose", async () => mailboxes.close());
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

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof UmbraError) {
      const rule = err instanceof PolicyDeniedError ? { rule: err.rule } : {};
      return reply.code(httpStatusOf(err)).send({ error: { code: err.code, message: err.message, ...rule } });
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ error: { code: status === 500 ? "UMBRA_INTERNAL" : "UMBRA_BAD_REQUEST", message: status === 500 ? "internal error" : (err as Error).message } });
  });

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
      const keys = loadPolicy(dataset)?.budgetUnit === "keys";
      const charged = entries.some((e) => e.kind === LedgerKind.JobStep && e.body["step"] === "charged" && e.body["by"] === provider);
      return { provider, dataset, reserved, keys, charged };
    });
  };

  /** A job ending before a provider measured the buyer's keys evaluated none of them: that reservation goes back (call inside the ending transaction). */
  const releaseUncharged = (j: JobRecord): void => {
    for (const r of reservations(j)) if (r.keys && !r.charged && r.reserved > 0 && store.getBudget(r.dataset, j.buyer)) store.refundBudget(r.dataset, j.buyer, r.reserved);
  };

  /** A job's signed job.submitted entry: every job.start carries it, so a party can check its job against the ledger. */
  const submittedRecord = (job: string): LedgerEntry => {
    const e = listEntries(store, { job }).find((x) => x.kind === LedgerKind.JobSubmitted);
    if (e === undefined) throw new UmbraError("UMBRA_INTERNAL", "a started job has no submission entry");
    return e;
  };

  /** A control envelope from the exchange to a party's mailbox. */
  let sequence = 0;
  const control = (to: string, message: ControlMessage) => {
    const frame = sealEnvelope({ job: message.job, step: CONTROL_STEP, sender: identity, recipient: to, sequence: sequence++, payload: new TextEncoder().encode(JSON.stringify(message)), now });
    mailboxes.put(to, frame);
  };

  // ------------------------------------------------ jobs with an exchange-side role

  const roleJobs = new Map<string, RoleJob>();

  /** Frees a job's exchange-side role (every way a job ends comes here). */
  const endRoleJob = (id: string): void => {
    const rj = roleJobs.get(id);
    if (!rj) return;
    roleJobs.delete(id);
    rj.role?.dispose();
  };

  /** Fails a running or submitted job from the exchange's side: ledger, state, every party stopped. */
  const failJob = (id: string, reason: string, extra: Record<string, unknown> = {}): void => {
    const j = store.getJob(id);
    endRoleJob(id);
    if (!j || (j.state !== "submitted" && j.state !== "running")) return;
    store.transaction(() => {
      store.transitionJob(id, ["submitted", "running"], "failed", reason);
      releaseUncharged(j);
      ledger(LedgerKind.JobFailed, { reason, by: identity.name, ...extra }, id);
    });
    activity.delete(id);
    for (const p of [j.buyer, ...j.providers]) control(p, { type: ControlType.Stop, job: id, reason: "failed" });
  };

  const codeOf = (err: unknown): string => (err instanceof UmbraError && /^UMBRA_[A-Z_]{1,64}$/.test(err.code) ? err.code : "UMBRA_INTERNAL");

  /** Seals the role's messages to their parties and records each step. */
  const deliver = (id: string, frames: readonly { to: string; frame: Uint8Array }[]): void => {
    for (const { to, frame } of frames) {
      const party = store.getParty(to);
      if (!party?.boxPublicKey) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "a party of the job has no box key");
      const step = decodeMessage(frame).header.step;
      const env = sealEnvelope({ job: id, step, sender: identity, recipient: to, sequence: sequence++, payload: frame, encryptTo: party.boxPublicKey, now });
      const digest = createHash("sha256").update(env).digest("hex");
      store.transaction(() => {
        store.recordStep(id, { step: `step-${step}`, direction: "out", size: env.length, digest });
        ledger(LedgerKind.JobStep, { step, from: identity.name, to, size: env.length, digest }, id);
      });
      mailboxes.put(to, env);
    }
  };

  /** Feeds one protocol frame to a job's role, in order; a refusal fails the job. */
  const toRole = (rj: RoleJob, from: string, payload: Uint8Array): void => {
    const id = rj.job.id;
    rj.chain = rj.chain.then(async () => {
      if (roleJobs.get(id) !== rj || !rj.role) return; // ended meanwhile
      try {
        deliver(id, await rj.role.receive(from, payload));
        touch(id);
      } catch (err) {
        app.log.warn({ job: id, code: codeOf(err) }, "the exchange's role refused a message");
        failJob(id, codeOf(err));
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
    control(job.buyer, { type: ControlType.Start, job: job.id, role: "buyer", request: job.request, counterpart: identity.name, providers: job.providers, record: submittedRecord(job.id) });
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
      if (roleJobs.get(job.id) !== rj) role.dispose(); // the job ended while the role started
      else {
        rj.role = role;
        touch(job.id);
      }
    })();
    rj.chain = rj.chain.then(() => ready);
  };

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
  const jobTimeoutMs = o.jobTimeoutMs ?? 10 * 60 * 1000;
  const activity = new Map<string, number>();
  const touch = (id: string) => activity.set(id, now());
  const sweep = setInterval(() => {
    for (const j of store.listJobs({ state: ["submitted", "running"] })) {
      const last = activity.get(j.id) ?? j.updatedAt;
      if (now() - last <= jobTimeoutMs) continue;
      // A job with an exchange-side role names who it still waits for: providers that never
      // accepted, or the parties whose messages the role lacks.
      const rj = roleJobs.get(j.id);
      const missing = rj ? (rj.started ? [...(rj.role?.missing() ?? [])] : rj.job.providers.filter((p) => !rj.accepted.has(p))) : [];
      const reason = missing.length > 0 ? "UMBRA_MISSING_PARTY" : "UMBRA_JOB_TIMEOUT";
      endRoleJob(j.id);
      try {
        store.transaction(() => {
          store.transitionJob(j.id, ["submitted", "running"], "failed", reason);
          releaseUncharged(j);
          ledger(LedgerKind.JobFailed, { reason, ...(missing.length > 0 ? { missing } : {}) }, j.id);
        });
      } catch (err) {
        app.log.warn({ job: j.id, code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not time out a job");
        continue;
      }
      activity.delete(j.id);
      for (const p of [j.buyer, ...j.providers]) control(p, { type: ControlType.Stop, job: j.id, reason: "failed" });
    }
  }, Math.min(5000, Math.max(50, Math.floor(jobTimeoutMs / 4))));
  sweep.unref();
  app.addHook("onClose", async () => clearInterval(sweep));

  // On start, jobs that were running when the exchange stopped cannot resume here (the
  // mailboxes were in memory): fail them cleanly, with a reason, so nobody waits forever.
  for (const j of store.listJobs({ state: ["submitted", "running"] })) {
    store.transaction(() => {
      store.transitionJob(j.id, ["submitted", "running"], "failed", "UMBRA_EXCHANGE_RESTARTED");
      releaseUncharged(j);
      ledger(LedgerKind.JobFailed, { reason: "UMBRA_EXCHANGE_RESTARTED" }, j.id);
    });
  }

  app.get("/v1/identity", { schema: { response: { 200: { type: "object", properties: { name: { type: "string" }, signingPublicKey: { type: "string" }, boxPublicKey: { type: "string" } } } } } }, async () => {
    const p = publicIdentity(identity);
    return { name: p.name, signingPublicKey: hex(p.signingPublicKey), boxPublicKey: hex(p.boxPublicKey) };
  });

  // Registration: the party proves it holds its signing key by signing this request with it.
  app.post(
    "/v1/parties",
    {
      schema: {
        body: {
          type: "object",
          required: ["name", "signingPublicKey", "boxPublicKey"],
          additionalProperties: false,
          properties: {
            name: { type: "string" },
            signingPublicKey: { type: "string" },
            boxPublicKey: { type: "string" },
            maskPublicKey: { type: "string" },
            endpoint: { type: ["string", "null"] },
            role: { type: "string", enum: ["provider", "buyer"] },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; signingPublicKey: string; boxPublicKey: string; maskPublicKey?: string; endpoint?: string | null; role?: "provider" | "buyer" };
      const signing = fromHex(b.signingPublicKey, 32);
      const box = fromHex(b.boxPublicKey, 32);
      const mask = b.maskPublicKey === undefined ? null : fromHex(b.maskPublicKey, 32);
      if (!signing || !box || mask === undefined) return reply.code(400).send({ error: { code: "UMBRA_BAD_REQUEST", message: "keys must be 32-byte hex" } });
      verifyRequest(req.headers, req.method, req.url, req.rawBody ?? new Uint8Array(0), {
        lookup: (name) => (name === b.name ? signing : undefined),
        remember: (name, nonce, time) => store.checkAndRememberNonce(name, nonce, time),
        now,
      });
      const existing = store.getParty(b.name);
      if (existing && hex(existing.signingPublicKey) !== b.signingPublicKey) {
        return reply.code(409).send({ error: { code: "UMBRA_ALREADY_EXISTS", message: "a party of that name is registered with another key" } });
      }
      const party = store.transaction(() => {
        const p = store.putParty({ name: b.name, role: b.role ?? "provider", signingPublicKey: signing, boxPublicKey: box, maskPublicKey: mask, endpoint: b.endpoint ?? null });
        if (!existing) ledger(LedgerKind.PartyRegistered, { name: b.name, signingKey: b.signingPublicKey.slice(0, 16) });
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
    if (!dataset || !policy) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such provider dataset" } });
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
    control(dataset.owner, { type: ControlType.Start, job: id, role: "provider", request: runs, counterpart: runs.buyer, record });
    return reply.code(201).send(jobView(job));
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
    if (datasets.some((d) => !d) || policies.some((p) => !p)) return reply.code(404).send({ error: { code: "UMBRA_NOT_FOUND", message: "no such provider dataset" } });
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
    providers.forEach((p, i) => control(p, { type: ControlType.Start, job: id, role: "provider", request, counterpart: identity.name, providers, providerIndex: i, ...starts[i], record }));
    return reply.code(201).send(jobView(job));
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
    return j ? jobView(j) : reply;
  });

  app.post("/v1/jobs/:id/cancel", { preHandler: auth }, async (req, reply) => {
    const j = jobFor(req, reply);
    if (!j) return reply;
    if (j.buyer !== req.party) return reply.code(403).send({ error: { code: "UMBRA_FORBIDDEN", message: "only the buyer cancels a job" } });
    const done = store.transaction(() => {
      const r = store.transitionJob(j.id, ["submitted", "running"], "cancelled", "cancelled by the buyer");
      releaseUncharged(j);
      ledger(LedgerKind.JobCancelled, { by: "buyer" }, j.id);
      return r;
    });
    endRoleJob(j.id);
    for (const p of [j.buyer, ...j.providers]) control(p, { type: ControlType.Stop, job: j.id, reason: "cancelled" });
    return jobView(done);
  });

  // A party reports on a job: accepted / refused (provider), progress, succeeded (buyer), failed.
  app.post("/v1/jobs/:id/events", { preHandler: auth }, async (req, reply) => {
    const j = jobFor(req, reply);
    if (!j) return reply;
    const e = req.body as JobEvent;
    const isBuyer = j.buyer === req.party;
    touch(j.id);
    const request = (j.params as unknown as { request: JobRequest }).request;
    switch (e?.kind) {
      case "accepted": {
        if (isBuyer) break;
        const rj = roleJobs.get(j.id);
        if (rj) {
          if (j.state !== "submitted" || rj.accepted.has(req.party as string)) return jobView(j);
          rj.accepted.add(req.party as string);
          ledger(LedgerKind.JobStep, { step: "accepted", by: req.party as string }, j.id);
          if (rj.accepted.size < rj.job.providers.length || rj.started) return jobView(j);
          rj.started = true;
          const r = store.transaction(() => store.transitionJob(j.id, ["submitted"], "running"));
          startRoleJob(rj);
          return jobView(r);
        }
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["submitted"], "running");
          ledger(LedgerKind.JobStep, { step: "accepted", by: req.party as string }, j.id);
          return x;
        });
        const pd = request.providerDataset;
        const lookup = request.protocol === "lookup" && pd !== undefined ? { product: lookupProduct(pd), version: store.latestPolicy(pd)?.version ?? 1 } : undefined;
        control(j.buyer, { type: ControlType.Start, job: j.id, role: "buyer", request, counterpart: j.providers[0] as string, ...(lookup ? { lookup } : {}), record: submittedRecord(j.id) });
        return jobView(r);
      }
      case "refused": {
        if (isBuyer) break;
        const rule = typeof e.rule === "string" ? e.rule.slice(0, 64) : "refused";
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["submitted"], "refused", rule);
          // Nothing ran: every dataset's charge goes back, whatever its unit.
          for (const r of reservations(j)) if (r.reserved > 0 && store.getBudget(r.dataset, j.buyer)) store.refundBudget(r.dataset, j.buyer, r.reserved);
          ledger(LedgerKind.JobRefused, { rule, by: "provider", party: req.party as string }, j.id);
          return x;
        });
        if (roleJobs.has(j.id)) {
          // The other providers may have accepted already: they stop, and nothing reaches the buyer.
          endRoleJob(j.id);
          for (const p of j.providers) if (p !== req.party) control(p, { type: ControlType.Stop, job: j.id, reason: "refused" });
        }
        // The buyer's agent recorded the job when it submitted it: it learns the job ends here (never started).
        control(j.buyer, { type: ControlType.Stop, job: j.id, reason: "refused" });
        return jobView(r);
      }
      case "progress":
        touch(j.id);
        if (j.state === "running" || j.state === "submitted") {
          // Only a phase name and two counts are kept: progress carries no data.
          const p = e.progress as { phase?: unknown; done?: unknown; total?: unknown } | undefined;
          const ok = p && typeof p.phase === "string" && p.phase.length <= 64 && Number.isSafeInteger(p.done) && Number.isSafeInteger(p.total);
          if (!ok) break;
          return jobView(store.setJobProgress(j.id, { ...(j.progress as object | null), [req.party as string]: { phase: p.phase, done: p.done, total: p.total } as never }));
        }
        return jobView(j);
      case "succeeded": {
        if (!isBuyer || typeof e.digest !== "string" || !/^[0-9a-f]{64}$/.test(e.digest)) break;
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["running"], "succeeded", null, e.summary ?? null);
          ledger(LedgerKind.JobResult, { digest: e.digest as string, summary: (e.summary ?? null) as never }, j.id);
          return x;
        });
        endRoleJob(j.id);
        for (const p of j.providers) control(p, { type: ControlType.Stop, job: j.id, reason: "succeeded" });
        return jobView(r);
      }
      case "failed": {
        const reason = typeof e.reason === "string" && /^UMBRA_[A-Z_]{1,64}$/.test(e.reason) ? e.reason : "UMBRA_FAILED";
        if (j.state !== "submitted" && j.state !== "running") return jobView(j);
        const r = store.transaction(() => {
          const x = store.transitionJob(j.id, ["submitted", "running"], "failed", reason);
          releaseUncharged(j);
          ledger(LedgerKind.JobFailed, { reason, by: req.party as string }, j.id);
          return x;
        });
        endRoleJob(j.id);
        for (const p of [j.buyer, ...j.providers]) if (p !== req.party) control(p, { type: ControlType.Stop, job: j.id, reason: "failed" });
        return jobView(r);
      }
      case "charged": {
        // A provider whose budget counts keys: the buyer's distinct keys as its role measured them, once.
        if (isBuyer || (j.state !== "submitted" && j.state !== "running")) break;
        const mine = reservations(j).find((r) => r.provider === req.party);
        const units = e.units;
        if (mine === undefined || !mine.keys || mine.charged || typeof units !== "number" || !Number.isSafeInteger(units) || units < 0 || units > mine.reserved) break;
        store.transaction(() => {
          if (mine.reserved > units) store.refundBudget(mine.dataset, j.buyer, mine.reserved - units);
          ledger(LedgerKind.JobStep, { step: "charged", by: req.party as string, dataset: mine.dataset, units }, j.id);
        });
        touch(j.id);
        return jobView(j);
      }
      default:
        break;
    }
    return reply.code(400).send({ error: { code: "UMBRA_BAD_REQUEST", message: "not an event this party may report" } });
  });

  // Relay: verify the sender's signature and freshness (not the payload, which may be sealed
  // to the recipient), check both ends belong to the running job, record the step, queue it.
  app.post("/v1/relay", { preHandler: auth, bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
    const frame = req.rawBody ?? Buffer.alloc(0);
    const env = openEnvelope(frame, {
      self: identity,
      relay: true,
      lookupSender: (name) => {
        const p = store.getParty(name);
        return p && p.boxPublicKey ? { signingPublicKey: p.signingPublicKey, boxPublicKey: p.boxPublicKey } : undefined;
      },
      replay: { seen: (s, n) => store.nonceSeen(s, n), remember: (s, n, t) => store.rememberNonce(s, n, t) },
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
    const digest = createHash("sha256").update(frame).digest("hex");
    store.transaction(() => {
      store.recordStep(j.id, { step: `step-${env.step}`, direction: "in", size: frame.length, digest });
      ledger(LedgerKind.JobStep, { step: env.step, from: env.sender, to: env.recipient, size: frame.length, digest }, j.id);
    });
    touch(j.id);
    if (toExchange && rj) toRole(rj, env.sender, env.payload);
    else mailboxes.put(env.recipient, Uint8Array.from(frame));
    return reply.code(202).send({ queued: true });
  });

  app.get("/v1/mailbox", { preHandler: auth }, async (req, reply) => {
    const wait = Math.min(30_000, Math.max(0, Number((req.query as { wait?: string }).wait ?? 0) || 0));
    const frames = await mailboxes.take(req.party as string, wait);
    return reply.type("application/octet-stream").send(packFrames(frames));
  });

  app.get("/v1/audit", { preHandler: auth }, async (req) => {
    const q = req.query as { job?: string; after?: string };
    const entries = listEntries(store, { ...(q.job ? { job: q.job } : {}), ...(q.after ? { afterSeq: Number(q.after) } : {}) });
    return { publicKey: hex(identity.signing.publicKey), entries };
  });

  return app;
}
