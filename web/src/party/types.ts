/** The party agent's answers the pages read (docs/console.md; node/server/party.ts, node/catalog.ts, node/venue). */
import type { Prices } from "./money.js";

export interface Field {
  readonly name: string;
  readonly type: string;
}
export interface MyDataset {
  readonly id: string;
  readonly name: string;
  readonly schema: readonly Field[];
  readonly rowCount: number;
  readonly contentHash: string;
  readonly policyVersion: number;
  readonly policy: Record<string, unknown>;
  readonly certificateSeq: number | null;
  readonly budgets: readonly { buyer: string; remaining: number }[];
}
export interface CatalogEntry {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly schema: readonly Field[];
  readonly rowCount: number;
  readonly allowedProtocols: readonly string[];
  readonly outputColumns: readonly string[];
  readonly keyColumns: readonly (string | string[])[];
  readonly minGroupSize?: number;
  readonly minIntersection?: number;
}
/** A product as the exchange shows it (node/server/exchange/routes/products.ts productView). */
export interface ProductView {
  readonly id: string;
  readonly title: string;
  readonly description?: string;
  readonly owner: string;
  readonly datasets: readonly string[];
  readonly protocols: readonly string[];
  readonly outputColumns: readonly string[];
  readonly prices: Prices;
  readonly share: string;
  /** Another party reads of `buyers` only whether it is on it ([name] or []). */
  readonly autoApprove?: { readonly maxQuotaJobs?: number; readonly purposes?: readonly string[]; readonly buyers?: readonly string[] };
  readonly state: string;
  readonly version: number;
  readonly digest: string;
  readonly publishedAt: string;
}
/** A contract (an order while pending) as the exchange shows it to its buyer and provider (routes/contracts.ts contractView). */
export interface ContractView {
  readonly id: string;
  readonly state: string;
  readonly product: { id: string; version: number };
  readonly buyer: string;
  readonly provider: string;
  readonly quotaJobs: number;
  readonly jobsUsed: number;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly reason: string | null;
  readonly digest: string;
  /** The signed document: its purpose and the prices copied from the product version. */
  readonly contract: { readonly purpose: string; readonly prices: Prices; readonly share: string; readonly quota: { readonly jobs: number } };
  readonly signatures: { readonly buyer: string; readonly provider: string | null; readonly exchange: string | null };
  /** Per dataset of the product with a privacy budget: the buyer's ρ budget, spent and remaining (the exchange's record). */
  readonly privacy?: readonly { readonly dataset: string; readonly budget: string | null; readonly buyers: readonly { readonly buyer: string; readonly spent: string; readonly remaining: string }[] }[];
}
export const PROTOCOLS = ["psi", "psi-ot", "psi-cardinality", "lookup", "join-aggregate", "federated-aggregate"] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** The protocols each threshold applies to (protocols/index.ts: k and minIntersection). */
export const K_PROTOCOLS: readonly string[] = ["psi-cardinality", "join-aggregate", "federated-aggregate"];
export const INTERSECTION_PROTOCOLS: readonly string[] = ["psi", "psi-ot", "psi-cardinality", "lookup"];
export const keyLabel = (k: string | readonly string[]): string => (typeof k === "string" ? k : `(${k.join(" + ")})`);
