/**
 * Products (docs/venue.md): what a provider offers over one or more of its
 * own datasets — the protocols a buyer may run and the columns a job may
 * release (each within every dataset's policy), a price schedule in integer
 * minor units of one currency, how a multi-provider job's revenue is shared,
 * and the orders its agent approves on its own. A product is published in
 * its owner's namespace (`OWNER.slug`); publishing it again makes a new
 * version; withdrawing it stops new orders.
 *
 * {@link parseProduct} lists every problem of a document at once (its form
 * against node/schemas/venue.ts, then the rules a schema cannot say);
 * {@link catalogIssues} every term outside the datasets' policies, naming the
 * field. The document as parsed (defaults filled) is what is stored, digested
 * and cited by contracts.
 */
import { createHash } from "node:crypto";
import type { DatasetDescriptor } from "../schemas/dataset.js";
import { duplicateIssues, inDocumentOrder, InvalidDocumentError, isPlainObject, schemaIssues, type FieldIssue } from "../schemas/check.js";
import { PRODUCT_FIELDS, ProductSchema, ShareRule, type AutoApproveDocument, type ProductDocument } from "../schemas/venue.js";
import type { JobRequest, UsagePolicy } from "../policy.js";
import { canonicalJson } from "../store.js";
import type { ProtocolId } from "../../protocols/index.js";
import { MeteringRule, type Prices } from "./metering.js";

/** A product that is not well formed, or whose terms its datasets' policies do not allow (code UMBRA_INVALID_PRODUCT). */
export class InvalidProductError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("product", issues, "UMBRA_INVALID_PRODUCT");
  }
}

export type { Prices } from "./metering.js";

/** A product as parsed: every default filled (what is stored, digested and cited). */
export interface Product {
  readonly id: string;
  readonly title: string;
  readonly description?: string;
  readonly datasets: readonly string[];
  readonly protocols: readonly ProtocolId[];
  readonly outputColumns: readonly string[];
  readonly prices: Prices;
  readonly share: ShareRule;
  readonly autoApprove?: AutoApproveDocument;
}

/** Every problem of a product document, in document order; with `owner`, also an id outside its namespace. */
export function productIssues(json: unknown, owner?: string): FieldIssue[] {
  if (!isPlainObject(json)) return [{ field: "product", problem: "must be an object" }];
  const issues = schemaIssues(ProductSchema, json, "product");
  const failed = (f: string) => issues.some((i) => i.field === f || i.field.startsWith(`${f}[`) || i.field.startsWith(`${f}.`));
  const doc = json as ProductDocument;
  const more: FieldIssue[] = [];
  if (owner !== undefined && typeof doc.id === "string" && !failed("id") && !doc.id.startsWith(`${owner}.`)) {
    more.push({ field: "id", problem: "must be in the publisher's own namespace: its party name, a dot and a slug" });
  }
  for (const f of ["datasets", "protocols", "outputColumns"] as const) {
    const list = doc[f];
    if (Array.isArray(list)) more.push(...duplicateIssues(list as readonly string[], f, failed));
  }
  // A price per matched row tells the provider each job's matched count: for psi-cardinality that count IS the result.
  if (!failed("prices") && !failed("protocols") && Array.isArray(doc.protocols) && doc.protocols.includes("psi-cardinality" as never) && isPlainObject(doc.prices) && typeof doc.prices.perMatchedRow === "number" && doc.prices.perMatchedRow > 0) {
    more.push({ field: "prices.perMatchedRow", problem: `must be 0 when the protocols include psi-cardinality (${MeteringRule.MatchedRowsRevealCardinality}: the matched count metered is the job's result)` });
  }
  const a = doc.autoApprove;
  if (isPlainObject(a)) {
    if (Array.isArray(a.purposes)) more.push(...duplicateIssues(a.purposes, "autoApprove.purposes", failed));
    if (Array.isArray(a.buyers)) more.push(...duplicateIssues(a.buyers, "autoApprove.buyers", failed));
  }
  return inDocumentOrder([...issues, ...more], PRODUCT_FIELDS);
}

/**
 * A product document, checked, with its defaults filled (description left
 * out stays out; outputColumns []; perKey, perMatchedRow, perCell 0; share
 * "equal").
 *
 * @throws InvalidProductError listing every problem found.
 */
export function parseProduct(json: unknown, owner?: string): Product {
  const issues = productIssues(json, owner);
  if (issues.length > 0) throw new InvalidProductError(issues);
  const d = json as ProductDocument;
  const a = d.autoApprove;
  return {
    id: d.id,
    title: d.title,
    ...(d.description !== undefined ? { description: d.description } : {}),
    datasets: [...d.datasets],
    protocols: [...d.protocols],
    outputColumns: [...(d.outputColumns ?? [])],
    prices: { currency: d.prices.currency, perJob: d.prices.perJob, perKey: d.prices.perKey ?? 0, perMatchedRow: d.prices.perMatchedRow ?? 0, perCell: d.prices.perCell ?? 0 },
    share: d.share ?? ShareRule.Equal,
    ...(a !== undefined ? { autoApprove: { ...(a.maxQuotaJobs !== undefined ? { maxQuotaJobs: a.maxQuotaJobs } : {}), ...(a.purposes ? { purposes: [...a.purposes] } : {}), ...(a.buyers ? { buyers: [...a.buyers] } : {}) } } : {}),
  };
}

const PRODUCT_TAG = "umbra.v1.product\n";

/** A product version's digest: hex SHA-256 of "umbra.v1.product\n" and the product's RFC 8785 canonical JSON. */
export function productDigest(p: Product): string {
  return createHash("sha256").update(PRODUCT_TAG).update(canonicalJson(p)).digest("hex");
}

/** A dataset of the catalog as a product's check sees it. */
export interface CatalogDataset {
  readonly descriptor: DatasetDescriptor;
  readonly policy: UsagePolicy;
}

/**
 * The terms of a product that its datasets do not allow, each naming its
 * field: a dataset that is not the publisher's (or not registered); a
 * protocol that some dataset's policy does not allow; an output column that
 * no dataset has, or that the policy of a dataset that has it does not allow.
 * A dataset is named by its place in the product (`datasets[0]`), never by its id.
 */
export function catalogIssues(p: Product, owner: string, lookup: (id: string) => CatalogDataset | undefined): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const found: { d: CatalogDataset; at: string }[] = [];
  p.datasets.forEach((id, i) => {
    const d = lookup(id);
    if (d === undefined || d.descriptor.owner !== owner) issues.push({ field: `datasets[${i}]`, problem: "is not a dataset this party registered" });
    else found.push({ d, at: `datasets[${i}]` });
  });
  const named = (list: readonly { at: string }[]) => list.map((x) => x.at).join(", ");
  p.protocols.forEach((protocol, i) => {
    const refusing = found.filter((x) => !x.d.policy.allowedProtocols.includes(protocol));
    if (refusing.length > 0) issues.push({ field: `protocols[${i}]`, problem: `protocol ${protocol} is not allowed by the policy of ${named(refusing)}` });
  });
  p.outputColumns.forEach((column, i) => {
    const having = found.filter((x) => x.d.descriptor.schema.some((f) => f.name === column));
    if (found.length > 0 && having.length === 0) return void issues.push({ field: `outputColumns[${i}]`, problem: `column "${column}" is in none of the product's datasets` });
    const refusing = having.filter((x) => !x.d.policy.outputColumns.includes(column));
    if (refusing.length > 0) issues.push({ field: `outputColumns[${i}]`, problem: `column "${column}" is not an output column of the policy of ${named(refusing)}` });
  });
  return issues;
}

/** Checks a product against the catalog. @throws InvalidProductError listing every term outside it. */
export function checkProductCatalog(p: Product, owner: string, lookup: (id: string) => CatalogDataset | undefined): void {
  const issues = catalogIssues(p, owner, lookup);
  if (issues.length > 0) throw new InvalidProductError(issues);
}

/**
 * Why a job is outside a product's terms (undefined when it is within): its
 * protocol is not one of the product's, or it releases a column the product
 * does not. Which of the job's datasets the product covers is the caller's.
 */
export function outsideProduct(p: Product, request: JobRequest): string | undefined {
  if (!p.protocols.includes(request.protocol)) return "protocol";
  const cols = request.params.outputColumns ?? [];
  if (cols.some((c) => !p.outputColumns.includes(c))) return "outputColumns";
  return undefined;
}

/** Whether an order (buyer, purpose, quota) fits a product's auto-approve rule: the product has one, and every field it gives holds. */
export function autoApproves(p: Product, order: { readonly buyer: string; readonly purpose: string; readonly quotaJobs: number }): boolean {
  const a = p.autoApprove;
  if (a === undefined) return false;
  if (a.maxQuotaJobs !== undefined && order.quotaJobs > a.maxQuotaJobs) return false;
  if (a.purposes !== undefined && !a.purposes.includes(order.purpose)) return false;
  if (a.buyers !== undefined && !a.buyers.includes(order.buyer)) return false;
  return true;
}
