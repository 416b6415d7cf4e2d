/** The catalog: a provider registers its datasets with their policies; a party lists the datasets it may see. */
import { createHash } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { checkDatasetId } from "../../../admission.js";
import { catalogView, parseDatasetDescriptor } from "../../../catalog.js";
import { ForbiddenError, NotFoundError } from "../../../errors.js";
import { LedgerKind, listEntries, requestDigest } from "../../../ledger.js";
import { issueCertificate, type CertificateSubject } from "../../../log/certificate.js";
import { parsePolicy, putPolicyVersion } from "../../../policy.js";
import { privacyBudgetView } from "../../../privacy-budget.js";
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
      // The data asset certificate's subject, logged with the registration it certifies.
      const subject: CertificateSubject = {
        dataset: d.id,
        owner: d.owner,
        name: d.name,
        schema: d.schema.map((f) => ({ name: f.name, type: f.type })),
        rows: d.rowCount,
        contentHash: d.contentHash,
        policyVersion: p.version,
        policyDigest: requestDigest(policy),
      };
      const entry = ctx.ledger(LedgerKind.DatasetCertified, subject as unknown as Record<string, unknown>);
      store.log.putCertificate({ datasetId: d.id, policyVersion: p.version, seq: entry.seq });
      return { version: p.version, entry };
    });
    const certificate = issueCertificate(store, ctx.identity.signing.secretKey, out.entry, ctx.now());
    return reply.code(201).send({ id: d.id, policyVersion: out.version, certificate });
  });

  /** A dataset's data asset certificate (its latest policy version's, or `?version=`), issued with a fresh head: to its owner and to the parties its catalog entry is shown to. */
  app.get(
    "/v1/datasets/:id/certificate",
    {
      preValidation: ctx.auth,
      schema: { querystring: { type: "object", additionalProperties: false, properties: { version: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } } } },
    },
    async (req) => {
      const id = (req.params as { id: string }).id;
      const party = req.party as string;
      const d = store.getDataset(id);
      const policy = d ? ctx.loadPolicy(id) : undefined;
      const missing = new NotFoundError("no such dataset, or it is not shown to this party");
      if (!d || !policy || (d.owner !== party && !ctx.visibleTo(policy, party))) throw missing;
      const rec = store.log.certificate(id, (req.query as { version?: number }).version);
      if (rec === undefined) throw new NotFoundError("this dataset has no certificate for that policy version (registered before certificates were issued: register it again with --update)");
      const entry = listEntries(store, { afterSeq: rec.seq - 1, limit: 1 })[0];
      if (entry === undefined || entry.seq !== rec.seq) throw missing;
      return { certificate: issueCertificate(store, ctx.identity.signing.secretKey, entry, ctx.now()) };
    },
  );

  /** A dataset's privacy budget (node/privacy-budget.ts): to its owner every buyer's line, to a buyer it is shown to its own. */
  app.get("/v1/datasets/:id/privacy-budget", { preValidation: ctx.auth, schema: { querystring: { type: "object", additionalProperties: false, properties: {} } } }, async (req) => {
    const id = (req.params as { id: string }).id;
    const party = req.party as string;
    const d = store.getDataset(id);
    const policy = d ? ctx.loadPolicy(id) : undefined;
    if (!d || !policy || (d.owner !== party && !ctx.visibleTo(policy, party))) throw new NotFoundError("no such dataset, or it is not shown to this party");
    return privacyBudgetView(store, id, policy, "exchange", d.owner === party ? undefined : party);
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
