/** The party agent's answers the pages read (docs/console.md; node/server/party.ts, node/catalog.ts, node/venue). */
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
export interface ProductView {
  readonly id: string;
  readonly title: string;
  readonly owner: string;
  readonly datasets: readonly string[];
  readonly protocols: readonly string[];
  readonly state: string;
  readonly version: number;
  readonly prices: unknown;
}
export interface ContractView {
  readonly id: string;
  readonly state: string;
  readonly product: { id: string; version: number };
  readonly buyer: string;
  readonly provider: string;
  readonly quotaJobs: number;
  readonly jobsUsed: number;
  readonly notAfter: string;
  readonly reason: string | null;
}
export const PROTOCOLS = ["psi", "psi-cardinality", "lookup", "join-aggregate", "federated-aggregate"] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** The protocols each threshold applies to (protocols/index.ts: k and minIntersection). */
export const K_PROTOCOLS: readonly string[] = ["psi-cardinality", "join-aggregate", "federated-aggregate"];
export const INTERSECTION_PROTOCOLS: readonly string[] = ["psi", "psi-cardinality", "lookup"];
export const keyLabel = (k: string | readonly string[]): string => (typeof k === "string" ? k : `(${k.join(" + ")})`);
