/**
 * When a job needs a contract, and whether the contracts it cites let it run
 * (docs/venue.md, "How a job cites a contract"). The exchange runs
 * {@link contractsForJob} at submission, before anything is recorded, and
 * reserves one job of each contract it returns in the transaction that
 * records the job ({@link reserveContracts}); a provider's agent runs
 * {@link providerContracts} on its own copies when the job reaches it.
 *
 * The rule: a job touching a dataset that is in an active product needs a
 * contract for a product that holds that dataset; an exchange started with
 * `requireContracts` needs one for every dataset of every job. A job that
 * cites a contract is held to it whether it needed one or not.
 */
import type { JobRequest } from "../job-request.js";
import type { ContractRow, Store } from "../store.js";
import { checkContractStatus, ContractDeniedError, ContractRule, type ContractDocument } from "./contract.js";
import { outsideProduct, type Product } from "./product.js";

/** A product version as the store holds it, parsed. */
export function productOf(store: Store, id: string, version: number): Product | undefined {
  return store.venue.getProduct(id, version)?.document as unknown as Product | undefined;
}

/** The datasets of every active product (their current version). */
export function productDatasets(store: Store, owner?: string): Set<string> {
  const out = new Set<string>();
  for (const p of store.venue.listProducts(owner !== undefined ? { owner } : {})) {
    if (p.state === "active") for (const d of (p.document as unknown as Product).datasets) out.add(d);
  }
  return out;
}

/**
 * Checks one cited contract against a job: its status (active, the buyer's,
 * in its window, a job left), that its product covers one of `datasets`, and
 * that the job's protocol and output columns are within the product. Returns
 * the datasets it covers.
 */
export function checkCitedContract(row: ContractRow, product: Product | undefined, request: JobRequest, datasets: readonly string[], now: number): string[] {
  checkContractStatus(row, request.buyer, now);
  const covered = datasets.filter((d) => product?.datasets.includes(d));
  if (product === undefined || covered.length === 0) throw new ContractDeniedError(ContractRule.NotApplicable, "the contract's product holds none of the job's datasets");
  const outside = outsideProduct(product, request);
  if (outside !== undefined) throw new ContractDeniedError(ContractRule.Terms, `the job's ${outside} are outside the contract's product`);
  return covered;
}

/**
 * The contracts a job runs under, at the exchange: every contract it cites,
 * checked ({@link checkCitedContract}); and every dataset that needs one
 * (in an active product, or any with `requireContracts`) covered.
 *
 * @throws ContractDeniedError naming the first rule that fails (nothing recorded).
 */
export function contractsForJob(store: Store, request: JobRequest, datasets: readonly string[], now: number, requireContracts: boolean): ContractRow[] {
  const rows: ContractRow[] = [];
  const covered = new Set<string>();
  for (const id of request.contracts ?? []) {
    const row = store.venue.getContract(id);
    // Another buyer's contract is answered as one that does not exist.
    if (row === undefined || (row.buyer !== request.buyer && row.provider !== request.buyer)) throw new ContractDeniedError(ContractRule.Unknown, "no such contract");
    for (const d of checkCitedContract(row, productOf(store, row.productId, row.productVersion), request, datasets, now)) covered.add(d);
    rows.push(row);
  }
  const currencies = new Set(rows.map((r) => (r.document as unknown as Partial<ContractDocument>).prices?.currency));
  if (currencies.size > 1) throw new ContractDeniedError(ContractRule.Currency, "the job's contracts are priced in more than one currency: one job has one receipt, in one currency");
  const inProducts = productDatasets(store);
  if (datasets.some((d) => (requireContracts || inProducts.has(d)) && !covered.has(d))) {
    throw new ContractDeniedError(ContractRule.Required, requireContracts ? "this exchange runs a job only under a contract covering each of its datasets" : "a dataset of the job is sold as a product: cite a contract for it (umbra order create)");
  }
  return rows;
}

/**
 * Takes one job of each contract's quota (inside the caller's transaction, the
 * one that records the job): a contract whose quota another submission took
 * meanwhile refuses the job, and the transaction rolls back.
 */
export function reserveContracts(store: Store, rows: readonly ContractRow[]): void {
  for (const r of rows) {
    if (!store.venue.reserveJob(r.id)) throw new ContractDeniedError(ContractRule.QuotaExhausted, "the contract's quota of jobs is used up");
  }
}
