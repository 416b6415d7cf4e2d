/** The catalog: a provider registers its datasets with their policies; a party lists the datasets it may see. */
import { createHash } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { checkDatasetId } from "../../../admission.js";
import { catalogView, parseDatasetDescriptor } from "../../../catalog.js";
import { ForbiddenError } from "../../../errors.js";
import { LedgerKind } from "../../../ledger.js";
import { parsePolicy, putPolicyVersion } from "../../../policy.js";
import { DatasetRegistrationSchema } from "../../../schemas/routes.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";

export const datasetRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx }) => {
  const { store } = ctx;

  app.post("/v1/datasets", { preValidation: ctx.auth, schema: { body: DatasetRegistrationSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const b = req.body;
    const d = parseDatasetDescriptor(b.descriptor);
    if (d.owner !== req.party) throw new ForbiddenError("a party registers only its own datasets");
    // Its own namespace only (OWNER.…), never over another owner's id (finding 9).
    checkDatasetId(store, d.id, d.owner);
    const policy = parsePolicy(b.policy, d.schema);
    const out = store.transaction(() => {
      const existing = store.getDataset(d.id);
      store.putDataset({ id: d.id, owner: d.owner, name: d.name, schema: d.schema, rowCount: d.rowCount, contentHash: d.contentHash });
      // A new version; every buyer's budget rebased on it (what was spent stays spent).
      const p = putPolicyVersion(store, d.id, policy);
      if (!existing) ctx.ledger(LedgerKind.DatasetRegistered, { dataset: d.id, owner: d.owner, rows: d.rowCount, contentHash: d.contentHash });
      ctx.ledger(LedgerKind.PolicyChanged, { dataset: d.id, version: p.version, digest: createHash("sha256").update(JSON.stringify(policy)).digest("hex") });
      return p;
    });
    return reply.code(201).send({ id: d.id, policyVersion: out.version });
  });

  app.get("/v1/datasets", { preValidation: ctx.auth }, async (req) => {
    const views = [];
    for (const d of store.listDatasets()) {
      const policy = ctx.loadPolicy(d.id);
      const desc = ctx.descriptorOf(d.id);
      if (!policy || !desc) continue;
      if (!ctx.visibleTo(policy, req.party as string) && d.owner !== req.party) continue;
      views.push(catalogView(desc, policy));
    }
    return { datasets: views };
  });
};
