/**
 * Jobs: a buyer submits one (the exchange checks it against every provider
 * dataset's policy, charges the budgets and sends job.start to the
 * providers; a federated-aggregate job with dp spends its ρ of each
 * dataset's privacy budget in the same transaction, recorded in its
 * job.submitted entry), reads it, or cancels it. A refusal by a policy is recorded
 * (refused, with its rule) and answered 403 naming the rule; a dataset the
 * buyer may not use is answered as one that does not exist, before anything
 * about it is used or recorded.
 */
import { randomUUID } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { DatasetDescriptor } from "../../../schemas/dataset.js";
import { ForbiddenError, NotFoundError } from "../../../errors.js";
import { LedgerKind, requestDigest } from "../../../ledger.js";
import { checkJob, spendPrivacy, InvalidJobRequestError, JobRequestSchema, isMultiProvider, jobCost, jobDatasets, parseJobRequest, PolicyDeniedError, withThresholds, type JobRequest, type UsagePolicy } from "../../../policy.js";
import { exchangeProtocolFor, type ExchangeProtocol } from "../../../jobs/exchange-roles.js";
import { jobLimitsOf } from "../../../jobs/protocol.js";
import { ControlType } from "../../control.js";
import { MailboxFullError } from "../../mailbox.js";
import { errorBodySchema } from "../../http-errors.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";
import { jobOf, jobView, jobViewSchema } from "../views.js";
import { chattyLogLevel } from "../../log-level.js";
import { signedContractOf } from "../../../venue/contract.js";
import { contractsForJob, reserveContracts } from "../../../venue/job-contracts.js";
import type { ContractRow } from "../../../store.js";

const NO_ROOM = "a provider's mailbox has no room for another job: nothing was recorded; submit the job again later";

export const jobRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx, jobs }) => {
  const { store, identity } = ctx;
  const requireContracts = ctx.options.requireContracts === true;
  /** What job.start carries to a provider and the ledger records of a job's contracts (nothing for a job under none). */
  const contractFields = (rows: readonly ContractRow[], provider: string) => {
    const own = rows.filter((r) => r.provider === provider).map(signedContractOf);
    return own.length > 0 ? { contracts: own } : {};
  };
  const contractIds = (rows: readonly ContractRow[]) => (rows.length > 0 ? { contracts: rows.map((r) => r.id) } : {});

  /** Checks a job against one dataset's policy; a denial is recorded (the job refused, naming the rule and dataset) and thrown. */
  const check = (job: { id: string; request: JobRequest; providers: string[] }, policy: UsagePolicy, dataset: DatasetDescriptor, checked: JobRequest, budget: number): void => {
    try {
      checkJob(policy, dataset, checked, { now: new Date(ctx.now()), budgetRemaining: budget, privacySpent: store.getPrivacySpent(dataset.id, checked.buyer) });
    } catch (err) {
      if (err instanceof PolicyDeniedError) jobs.refuseSubmission(job, err.rule, dataset.id);
      throw err;
    }
  };

  /** A job against one provider dataset, whose provider's agent plays the other role. */
  const submitTwoParty = (request: JobRequest) => {
    if (isMultiProvider(request) || request.providerDataset === undefined) {
      throw new InvalidJobRequestError([{ field: "providerDatasets", problem: `protocol ${request.protocol} runs against one provider dataset` }]);
    }
    const dataset = ctx.descriptorOf(request.providerDataset);
    const policy = ctx.loadPolicy(request.providerDataset);
    // A dataset the buyer may not use is answered as one that does not exist: nothing tells it apart, nothing is recorded.
    if (!dataset || !policy || !ctx.visibleTo(policy, request.buyer)) throw new NotFoundError("no such provider dataset");
    // The contracts it runs under (docs/venue.md), before anything is recorded: a refusal names its rule and changes nothing.
    const contracts = contractsForJob(store, request, [dataset.id], ctx.now(), requireContracts);
    const id = `job-${randomUUID()}`;
    const providers = [dataset.owner];
    const budget = store.getBudget(dataset.id, request.buyer)?.remaining ?? policy.queryBudget;
    check({ id, request, providers }, policy, dataset, request, budget);
    // Nothing is recorded for a job whose provider has no room for its job.start (finding 10): send it again later.
    if (!ctx.startRoom(providers)) throw new MailboxFullError("the provider's mailbox has no room for another job: nothing was recorded; submit the job again later");
    // The job as it runs: with the thresholds the buyer's agent enforces (psi, psi-cardinality, lookup).
    const runs = withThresholds(policy, request);
    // One commit with the job.starts it queues (the mailboxes count them once it has committed).
    const job = ctx.mailboxes.commit(() => {
      const cost = jobCost(policy, runs) ?? 1;
      if (!store.getBudget(dataset.id, runs.buyer)) store.setBudget(dataset.id, runs.buyer, policy.queryBudget);
      store.consumeBudget(dataset.id, runs.buyer, cost);
      // One job of each contract's quota, taken in this transaction: concurrent submissions never exceed it.
      reserveContracts(store, contracts);
      const j = store.createJob({ id, protocol: runs.protocol, buyer: runs.buyer, providers, params: { request: runs } as never });
      const e = ctx.ledger(LedgerKind.JobSubmitted, { protocol: runs.protocol, buyer: runs.buyer, dataset: dataset.id, cost, request: requestDigest(runs), ...contractIds(contracts) }, id);
      // Queued with the job, in the same transaction: a job is never recorded without its start.
      if (!ctx.sendStart(dataset.owner, { type: ControlType.Start, job: id, role: "provider", request: runs, counterpart: runs.buyer, record: e, ...contractFields(contracts, dataset.owner) })) throw new MailboxFullError(NO_ROOM);
      return j;
    });
    jobs.touch(id);
    return jobView(store.getJob(id) ?? job, runs.buyer);
  };

  /**
   * Submits a job whose protocol has an exchange-side role: every dataset's
   * policy is checked (the first refusal refuses the job, naming its rule and
   * dataset), every dataset's budget charged, and job.start sent to every provider.
   */
  const submitWithRole = async (asked: JobRequest, protocol: ExchangeProtocol) => {
    const ids = jobDatasets(asked);
    const datasets = ids.map((d) => ctx.descriptorOf(d));
    const policies = ids.map((d) => ctx.loadPolicy(d));
    // As for one dataset: one the buyer may not use is answered as missing, before anything about it (its row count) is used.
    if (datasets.some((d) => !d) || policies.some((p) => !p || !ctx.visibleTo(p, asked.buyer))) throw new NotFoundError("no such provider dataset");
    const ds = datasets as DatasetDescriptor[];
    const ps = policies as UsagePolicy[];
    const providers = ds.map((d) => d.owner);
    if (new Set(providers).size !== providers.length || providers.includes(asked.buyer)) {
      throw new InvalidJobRequestError([{ field: "providerDatasets", problem: "each dataset must belong to a different provider, none of them the buyer" }]);
    }
    const contracts = contractsForJob(store, asked, ids, ctx.now(), requireContracts);
    const prepared = await protocol.prepare(asked, ds, ps);
    // The keys job.start carries, before anything is recorded (a provider without one fails the submission).
    const keys = providers.map((name) => ({ name, maskPublicKey: store.getParty(name)?.maskPublicKey ?? null }));
    const starts = providers.map((_, i) => protocol.providerStart(i, keys));
    const id = `job-${randomUUID()}`;
    const budgets = ds.map((d, i) => store.getBudget(d.id, asked.buyer)?.remaining ?? (ps[i] as UsagePolicy).queryBudget);
    for (let i = 0; i < ds.length; i++) check({ id, request: prepared, providers }, ps[i] as UsagePolicy, ds[i] as DatasetDescriptor, prepared, budgets[i] as number);
    if (!ctx.startRoom(providers)) throw new MailboxFullError("a provider's mailbox has no room for another job: nothing was recorded; submit the job again later");
    const request = protocol.finalise(prepared, ps);
    // One commit with the job.starts it queues (the mailboxes count them once it has committed).
    let denied: { err: PolicyDeniedError; dataset: string } | undefined;
    const commitJob = () => ctx.mailboxes.commit(() => {
      const costs = ds.map((d, i) => {
        const policy = ps[i] as UsagePolicy;
        const cost = jobCost(policy, request) ?? 1;
        if (!store.getBudget(d.id, request.buyer)) store.setBudget(d.id, request.buyer, policy.queryBudget);
        store.consumeBudget(d.id, request.buyer, cost);
        return cost;
      });
      // The privacy budgets, checked again and spent in this transaction: of two jobs racing for the last of one, the second is refused here.
      const privacy = ds.flatMap((d, i) => {
        try {
          const spend = spendPrivacy(store, d.id, ps[i] as UsagePolicy, request);
          return spend ? [spend] : [];
        } catch (err) {
          if (err instanceof PolicyDeniedError) denied = { err, dataset: d.id };
          throw err;
        }
      });
      reserveContracts(store, contracts);
      // The ρ it spent is kept with the job, to be given back if a provider refuses it (nothing runs then).
      const j = store.createJob({ id, protocol: request.protocol, buyer: request.buyer, providers, params: { request, ...(privacy.length > 0 ? { privacy: privacy.map((p) => ({ dataset: p.dataset, rho: p.rho })) } : {}) } as never });
      const e = ctx.ledger(LedgerKind.JobSubmitted, { protocol: request.protocol, buyer: request.buyer, datasets: ids, providers, cost: costs, params: protocol.ledgerParams(request) as never, request: requestDigest(request), ...(privacy.length > 0 ? { privacy } : {}), ...contractIds(contracts) }, id);
      // Queued with the job, in the same transaction: a job is never recorded without its starts.
      providers.forEach((p, i) => {
        if (!ctx.sendStart(p, { type: ControlType.Start, job: id, role: "provider", request, counterpart: identity.name, providers, providerIndex: i, ...starts[i], record: e, ...contractFields(contracts, p) })) throw new MailboxFullError(NO_ROOM);
      });
      return j;
    });
    let job: ReturnType<typeof commitJob>;
    try {
      job = commitJob();
    } catch (err) {
      // Rolled back whole (no budget, job or entry written); the refusal is recorded as a policy check's is.
      if (denied !== undefined && err === denied.err) jobs.refuseSubmission({ id, request: prepared, providers }, denied.err.rule, denied.dataset);
      throw err;
    }
    jobs.addRoleJob(protocol, { id, request, buyer: request.buyer, providers, limits: jobLimitsOf(request) });
    jobs.touch(id);
    return jobView(store.getJob(id) ?? job, request.buyer);
  };

  app.post("/v1/jobs", { preValidation: ctx.auth, schema: { body: JobRequestSchema, response: { 201: jobViewSchema, 403: errorBodySchema, 404: errorBodySchema } }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const request: JobRequest = parseJobRequest(req.body);
    if (request.buyer !== req.party) throw new ForbiddenError("a job is submitted by its buyer");
    const withRole = exchangeProtocolFor(request.protocol);
    const view = withRole ? await submitWithRole(request, withRole) : submitTwoParty(request);
    return reply.code(201).send(view);
  });

  app.get("/v1/jobs/:id", { preValidation: ctx.auth, logLevel: chattyLogLevel(app), schema: { response: { 200: jobViewSchema } } }, async (req) => jobView(jobOf(store, (req.params as { id: string }).id, req.party), req.party));

  app.post("/v1/jobs/:id/cancel", { preValidation: ctx.auth }, async (req) => {
    const j = jobOf(store, (req.params as { id: string }).id, req.party);
    if (j.buyer !== req.party) throw new ForbiddenError("only the buyer cancels a job");
    return jobView(jobs.cancel(j), req.party);
  });
};
