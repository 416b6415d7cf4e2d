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
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../envelope.js";
import { ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import { scheduleNoncePruning } from "./auth.js";
import { BadRequestError } from "../errors.js";
import { errorHandler } from "./http-errors.js";
import { Mailboxes, mailboxLimits } from "./mailbox.js";
import { codeOf, ExchangeContext, type ExchangeOptions } from "./exchange/context.js";
import { JobLifecycle } from "./exchange/lifecycle.js";
import { RoleRunner } from "./exchange/roles.js";
import type { ExchangeServices } from "./exchange/services.js";
import { auditRoutes } from "./exchange/routes/audit.js";
import { logRoutes } from "./exchange/routes/log.js";
import { syncLogTree } from "../ledger.js";
import { LOG_HEAD_HEADER, LOG_KNOWN_HEADER } from "../log/watch.js";
import { datasetRoutes } from "./exchange/routes/datasets.js";
import { eventRoutes } from "./exchange/routes/events.js";
import { jobRoutes } from "./exchange/routes/jobs.js";
import { partyRoutes } from "./exchange/routes/parties.js";
import { relayRoutes } from "./exchange/routes/relay.js";
import { contractRoutes } from "./exchange/routes/contracts.js";
import { productRoutes } from "./exchange/routes/products.js";
import { receiptRoutes } from "./exchange/routes/receipts.js";
import { registerConsole } from "./console-assets.js";
import { adminRoutes } from "./exchange/routes/admin.js";
import { checkTokenFormat, generateApiToken } from "./local-api.js";

export type { ExchangeOptions } from "./exchange/context.js";
export { jobView } from "./exchange/views.js";

/** The largest envelope the relay takes (the envelope layer's payload limit and its overhead): every data cap holds at least one. */
const MAX_ENVELOPE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/**
 * The exchange's Fastify app, with its mailboxes, a count of what it holds in
 * memory for open jobs, and the operator's admin token (every admin API
 * request needs `Authorization: Bearer <adminToken>`).
 */
export type ExchangeApp = FastifyInstance & { mailboxes: Mailboxes; inMemory(): { readonly roleJobs: number; readonly activity: number }; readonly adminToken: string };

/**
 * The exchange as one Fastify app: the shared context, the job lifecycle and
 * the exchange's roles (node/server/exchange/), and one route plugin per
 * resource — parties, datasets, jobs, job events, the relay, the audit
 * ledger — under the shared error handler (node/server/http-errors.ts).
 */
export async function buildExchange(o: ExchangeOptions): Promise<ExchangeApp> {
  // keepAliveTimeout: Node's default, not Fastify's 72 s — parties reuse a connection at once or not at all, and a
  // connection a stopped party left behind would otherwise hold the exchange's close for that long.
  const options = { logger: o.logger ?? false, bodyLimit: 1024 * 1024, requestTimeout: 120_000, connectionTimeout: 120_000, keepAliveTimeout: 5_000 };
  const app = (o.https ? Fastify({ ...options, https: { key: o.https.key, cert: o.https.cert } }) : Fastify(options)) as unknown as ExchangeApp;
  const mailboxes = new Mailboxes(o.store, o.identity.name, mailboxLimits(o.mailboxLimits, MAX_ENVELOPE_BYTES));
  const ctx = new ExchangeContext(o, mailboxes, app.log);
  const jobTimeoutMs = o.jobTimeoutMs ?? 10 * 60 * 1000;
  const jobs = new JobLifecycle(ctx, jobTimeoutMs);
  const roles = new RoleRunner(ctx, jobs, o.deliveryWaitMs ?? jobTimeoutMs);
  app.decorate("mailboxes", mailboxes);
  const adminToken = o.adminToken ?? generateApiToken();
  checkTokenFormat(adminToken, "the exchange's admin token");
  app.decorate("adminToken", adminToken);
  // What the exchange holds in memory per job (a health check, and the attack tests): bounded by the jobs still open.
  app.decorate("inMemory", () => jobs.inMemory());
  // Answer every open long-poll (and every delivery waiting for room) before the server waits for in-flight requests to end.
  app.addHook("preClose", async () => {
    ctx.closing = true;
    mailboxes.close();
  });
  if (o.openRegistration === true) app.log.warn("open registration: any key may register any free party name without an invitation — for development only");
  await app.register(errorHandler);
  await app.register(swagger, { openapi: { info: { title: "Umbra exchange", version: "1" } } });
  app.get("/documentation/json", { schema: { hide: true } }, async () => app.swagger());

  // Raw bodies: requests are signed over their exact bytes.
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body, done) => {
    (req as FastifyRequest).rawBody = body as Buffer;
    try {
      done(null, (body as Buffer).length === 0 ? {} : JSON.parse((body as Buffer).toString("utf8")));
    } catch {
      done(new BadRequestError("request body is not JSON"), undefined);
    }
  });
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer", bodyLimit: 16 * 1024 * 1024 }, (req, body, done) => {
    (req as FastifyRequest).rawBody = body as Buffer;
    done(null, body);
  });

  // Jobs that go silent are failed; nonces past the skew window are forgotten (a replay of one is refused by its timestamp; finding 15).
  const stopSweeper = jobs.startSweeper();
  const pruning = scheduleNoncePruning(ctx.store, { now: ctx.now, ...(o.noncePruneIntervalMs !== undefined ? { everyMs: o.noncePruneIntervalMs } : {}), onError: (err) => app.log.warn({ code: codeOf(err) }, "could not prune nonces") });
  app.addHook("onClose", async () => {
    stopSweeper();
    pruning.stop();
  });
  const services: ExchangeServices = { ctx, jobs, roles };
  // On start, every job open when the exchange stopped goes on (docs/durability.md): its envelopes are in
  // the relay table, and the exchange's own roles come back from their checkpoints and read on.
  for (const rj of jobs.resumeOpen()) if (rj.started) roles.run(rj);

  // The log's tree level with the ledger (a store from before it was kept gets its leaves now); then every
  // answer to a party carries the signed tree head and the proof that it extends the one the party holds.
  syncLogTree(ctx.store);
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.party !== undefined) {
      try {
        reply.header(LOG_HEAD_HEADER, ctx.logHeadHeader(req.headers[LOG_KNOWN_HEADER]));
      } catch (err) {
        app.log.error({ code: codeOf(err) }, "could not sign the log's head for an answer");
      }
    }
    return payload;
  });

  for (const routes of [partyRoutes, datasetRoutes, productRoutes, contractRoutes, receiptRoutes, jobRoutes, eventRoutes, relayRoutes, auditRoutes, logRoutes]) await app.register(routes, services);
  // The operator's web console (docs/console.md): its API, the admin routes (the admin token, never a party's signature), its page and assets.
  await app.register(adminRoutes, { ...services, adminToken });
  await registerConsole(app, { page: "exchange", ...(o.consoleDir !== undefined ? { dir: o.consoleDir } : {}) });
  return app;
}
