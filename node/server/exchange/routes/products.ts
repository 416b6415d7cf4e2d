/**
 * Products (docs/venue.md): a provider publishes one over its own datasets
 * (a new version each time) or withdraws it; a party lists and reads the
 * products it may see — those whose every dataset the catalog shows it (its
 * own always). Each publication and withdrawal is recorded with its ledger
 * entry in one transaction: ids, version, digest and prices, never data.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ForbiddenError, NotFoundError } from "../../../errors.js";
import { LedgerKind } from "../../../ledger.js";
import { ProductPublicationSchema } from "../../../schemas/venue.js";
import type { ProductRow } from "../../../store.js";
import { checkProductCatalog, parseProduct, productDigest, type Product } from "../../../venue/product.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeContext } from "../context.js";
import type { ExchangeServices } from "../services.js";

/**
 * A product as `party` reads it: its terms and prices, never data. Its
 * auto-approve rule's list of buyers (other parties' names) is its owner's
 * alone: another party reads whether it is on it.
 */
export function productView(r: ProductRow, party: string): Record<string, unknown> {
  const doc = r.document as unknown as Product;
  const rule = doc.autoApprove;
  const shown = rule === undefined || rule.buyers === undefined || r.owner === party ? rule : { ...rule, buyers: rule.buyers.includes(party) ? [party] : [] };
  return { ...doc, ...(shown !== undefined ? { autoApprove: shown } : {}), version: r.version, owner: r.owner, state: r.state, digest: r.digest, publishedAt: new Date(r.createdAt).toISOString() };
}

/** Whether `party` may see a product: its owner, or a party the catalog shows every one of its datasets. */
export function productVisible(ctx: ExchangeContext, r: ProductRow, party: string): boolean {
  if (r.owner === party) return true;
  return (r.document as unknown as Product).datasets.every((id) => {
    const policy = ctx.loadPolicy(id);
    return policy !== undefined && ctx.visibleTo(policy, party);
  });
}

export const productRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx }) => {
  const { store } = ctx;

  app.post("/v1/products", { preValidation: ctx.auth, schema: { body: ProductPublicationSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const owner = req.party as string;
    const product = parseProduct(req.body.product, owner);
    checkProductCatalog(product, owner, (id) => {
      const descriptor = ctx.descriptorOf(id);
      const policy = ctx.loadPolicy(id);
      return descriptor && policy ? { descriptor, policy } : undefined;
    });
    const digest = productDigest(product);
    const row = store.transaction(() => {
      const latest = store.venue.latestProduct(product.id);
      if (latest !== undefined && latest.owner !== owner) throw new ForbiddenError("a party publishes products in its own namespace only");
      const r = store.venue.putProduct({ id: product.id, owner, document: product, digest });
      ctx.ledger(LedgerKind.ProductPublished, { product: product.id, version: r.version, owner, digest, datasets: [...product.datasets], prices: { ...product.prices }, share: product.share });
      return r;
    });
    return reply.code(201).send({ id: row.id, version: row.version, digest: row.digest });
  });

  app.post("/v1/products/:id/withdraw", { preValidation: ctx.auth }, async (req) => {
    const id = (req.params as { id: string }).id;
    const owner = req.party as string;
    const latest = store.venue.latestProduct(id);
    if (latest === undefined || !productVisible(ctx, latest, req.party as string)) throw new NotFoundError("no such product");
    if (latest.owner !== req.party) throw new ForbiddenError("only its provider withdraws a product");
    if (latest.state === "withdrawn") return productView(latest, owner);
    const r = store.transaction(() => {
      const w = store.venue.setProductState(id, latest.version, "withdrawn");
      ctx.ledger(LedgerKind.ProductWithdrawn, { product: id, version: latest.version, digest: latest.digest });
      return w;
    });
    return productView(r, owner);
  });

  app.get("/v1/products", { preValidation: ctx.auth }, async (req) => ({
    products: store.venue
      .listProducts()
      .filter((r) => productVisible(ctx, r, req.party as string))
      .map((r) => productView(r, req.party as string)),
  }));

  app.get("/v1/products/:id", { preValidation: ctx.auth }, async (req) => {
    const r = store.venue.latestProduct((req.params as { id: string }).id);
    if (r === undefined || !productVisible(ctx, r, req.party as string)) throw new NotFoundError("no such product");
    return productView(r, req.party as string);
  });
};
