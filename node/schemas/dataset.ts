/**
 * A dataset descriptor's shape: what a provider registers about a dataset it
 * holds (name, schema, row count, content hash — never rows). Its own module
 * so that node/policy.ts (which checks jobs against a dataset) and
 * node/catalog.ts (which describes datasets and lists them under their
 * policies) both read it without importing each other.
 */

/** A dataset as the catalog records it: what it is, never what it holds. */
export interface DatasetDescriptor {
  id: string;
  /** The provider's identity. */
  owner: string;
  name: string;
  /** Column names and Arrow type names (`Utf8`, `Int64`, `Float64`, …), in order. */
  schema: { name: string; type: string }[];
  rowCount: number;
  /** Hex SHA-256 (lower case) of the canonical Arrow IPC stream of the rows (node/catalog.ts's header). */
  contentHash: string;
  /** ISO 8601 instant of the description. */
  createdAt: string;
}
