/**
 * What a chaos trial runs, per protocol: the parties' files, the datasets
 * the providers register with their policies, the `umbra job submit`
 * options, and the plaintext answer the buyer's result must equal. The
 * psi family is in cases-psi.ts, the aggregates in cases-aggregate.ts.
 */
import type { Table } from "apache-arrow";

export const CHAOS_PROTOCOLS = ["psi", "psi-cardinality", "lookup", "join-aggregate", "federated-aggregate"] as const;
export type ChaosProtocol = (typeof CHAOS_PROTOCOLS)[number];

/** The buyer's party name; the providers are PROVIDERS[0], PROVIDERS[1], … */
export const BUYER = "bank";
export const PROVIDERS = ["telco", "retailer"] as const;

export interface DatasetSpec {
  readonly party: string;
  readonly file: string;
  readonly policy: Readonly<Record<string, unknown>>;
}

export interface ChaosCase {
  readonly protocol: ChaosProtocol;
  /** The providers taking part, in order (the first is the "provider" victim). */
  readonly providers: readonly string[];
  /** Each party's data files: party → file name → CSV text. */
  readonly files: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly datasets: readonly DatasetSpec[];
  /** The `umbra job submit` options after --party and --token-file. */
  readonly submit: readonly string[];
  /** A table (written by `job result --out FILE`) or a count (printed by `job result`). */
  readonly result: "table" | "count";
  /** "" when the buyer's result equals the plaintext answer, else what differs (no key or value). */
  compare(result: Table | number): string;
  /** One line on the data: sizes, duplicates, the answer's size. */
  readonly summary: string;
}

/** A dataset's id in the catalog: OWNER.FILE. */
export const datasetId = (d: { party: string; file: string }): string => `${d.party}.${d.file}`;

/** A cell as text for comparing multisets: null as ∅. */
export const cellText = (v: unknown): string => (v === null || v === undefined ? "∅" : String(v));

/** The rows of `t` as "a|b|c" strings of the given columns. */
export function rowTexts(t: Table, columns: readonly string[]): string[] {
  const cols = columns.map((c) => t.getChild(c));
  if (cols.some((c) => c === null)) return [`(missing column: have ${t.schema.fields.map((f) => f.name).join(", ")})`];
  return Array.from({ length: t.numRows }, (_, i) => cols.map((c) => cellText(c?.get(i))).join("|"));
}

/** "" when two multisets of row texts are equal, else the counts that differ. */
export function compareRows(got: readonly string[], want: readonly string[]): string {
  const count = new Map<string, number>();
  for (const g of got) count.set(g, (count.get(g) ?? 0) + 1);
  for (const w of want) count.set(w, (count.get(w) ?? 0) - 1);
  let extra = 0;
  let missing = 0;
  for (const n of count.values()) {
    if (n > 0) extra += n;
    else missing -= n;
  }
  return extra === 0 && missing === 0 ? "" : `${got.length} rows, expected ${want.length}: ${extra} unexpected, ${missing} missing`;
}
