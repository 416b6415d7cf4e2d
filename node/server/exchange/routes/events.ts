/**
 * A party reports on a job: accepted / refused (provider), progress,
 * succeeded (buyer), failed, charged (provider). Only an event that changes
 * the job (or stores a new progress report) counts as the job's activity: a
 * party cannot keep a job open by sending events that do nothing (finding
 * 13). The buyer's result summary is not the exchange's to keep: succeeded
 * records the result's digest only (finding 8).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { BadRequestError } from "../../../errors.js";
import { ControlType, lookupProduct } from "../../control.js";
import { requestOf } from "../lifecycle.js";
import { JobEventSchema } from "../../../schemas/routes.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";
import { jobOf, jobView } from "../views.js";
import { chattyLogLevel } from "../../log-level.js";
import { checkReportedKeys, checkSucceededUnits, metersKeys } from "../../../venue/billing.js";
import { MeteringRefusedError, MeteringRule } from "../../../venue/metering.js";

export const eventRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx, jobs, roles }) => {
  const { store } = ctx;

  app.post("/v1/jobs/:id/events", { preValidation: ctx.auth, logLevel: chattyLogLevel(app), schema: { body: JobEventSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    const party = req.party as string;
    const j = jobOf(store, (req.params as { id: string }).id, party);
    const e = req.body;
    const isBuyer = j.buyer === party;
    const request = requestOf(j);
    switch (e.kind) {
      case "accepted": {
        if (isBuyer) break;
        const rj = jobs.roleJobs.get(j.id);
        if (rj) {
          const startBuyer = () => ctx.sendStart(j.buyer, { type: ControlType.Start, job: j.id, role: "buyer", request: rj.job.request, counterpart: ctx.identity.name, providers: rj.job.providers, record: ctx.submittedRecord(j.id) });
          const { job, start } = jobs.acceptWithRole(j, rj, party, startBuyer);
          if (start) roles.run(rj);
          return jobView(job, party);
        }
        const pd = request.providerDataset;
        const lookup = request.protocol === "lookup" && pd !== undefined ? { product: lookupProduct(pd), version: store.latestPolicy(pd)?.version ?? 1 } : undefined;
        const startBuyer = () => ctx.sendStart(j.buyer, { type: ControlType.Start, job: j.id, role: "buyer", request, counterpart: j.providers[0] as string, ...(lookup ? { lookup } : {}), record: ctx.submittedRecord(j.id) });
        return jobView(jobs.acceptTwoParty(j, party, startBuyer), party);
      }
      case "refused": {
        if (isBuyer) break;
        if (j.state === "refused") return jobView(j, party); // said again: nothing changes
        return jobView(jobs.refuse(j, e.rule ?? "refused", party), party);
      }
      case "progress": {
        const p = e.progress as { phase: string; done: number; total: number } | undefined;
        if (p === undefined) break;
        if (j.state !== "running" && j.state !== "submitted") return jobView(j, party);
        // Only a phase name and two counts are kept: progress carries no data. A report that repeats the stored one changes nothing.
        const before = (j.progress as Record<string, { phase?: unknown; done?: unknown; total?: unknown }> | null)?.[party];
        if (before && before.phase === p.phase && before.done === p.done && before.total === p.total) return jobView(j, party);
        const r = store.setJobProgress(j.id, { ...(j.progress as object | null), [party]: { phase: p.phase, done: p.done, total: p.total } });
        jobs.touch(j.id);
        return jobView(r, party);
      }
      case "succeeded": {
        if (!isBuyer || e.digest === undefined) break;
        // Said again (the buyer's agent resent it after a restart): one result entry, nothing changes.
        if (j.state === "succeeded") return jobView(j, party);
        // The units it measured, present exactly when a contract of the job prices them (docs/venue.md): checked before anything is recorded.
        const units = checkSucceededUnits(store, request, { matchedRows: e.matchedRows, cells: e.cells });
        return jobView(jobs.succeed(j, e.digest, units), party);
      }
      case "failed": {
        const reason = typeof e.reason === "string" && /^UMBRA_[A-Z_]{1,64}$/.test(e.reason) ? e.reason : "UMBRA_FAILED";
        if (j.state !== "submitted" && j.state !== "running") return jobView(j, party);
        return jobView(jobs.failedBy(j, party, reason), party);
      }
      case "charged": {
        // A provider whose budget counts keys: the buyer's distinct keys as its role measured them, once.
        if (isBuyer || (j.state !== "submitted" && j.state !== "running")) break;
        const mine = jobs.reservations(j).find((r) => r.provider === party);
        const units = e.units; // an integer of at least 0 (JobEventSchema)
        // Said again (resent after a restart): charged once, nothing changes.
        if (mine?.charged === true) return jobView(j, party);
        // …or one of whose contracts prices each key (docs/venue.md, metering): the same report, for the receipt.
        if (mine === undefined || units === undefined || (!mine.keys && !metersKeys(store, request, party))) break;
        checkReportedKeys(request, units);
        if (mine.keys && units > mine.reserved) throw new MeteringRefusedError(MeteringRule.KeysOverDeclared, "a provider reported more distinct keys than the job declared");
        jobs.charge(j, mine, units);
        return jobView(j, party);
      }
      default:
        break;
    }
    throw new BadRequestError("not an event this party may report");
  });
};
