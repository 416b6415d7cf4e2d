/**
 * The dataset catalog's records: what a provider registers about a dataset
 * it holds (a {@link DatasetDescriptor}: name, schema, row count and a
 * content hash — never rows), and what the exchange lists to buyers
 * ({@link catalogView}).
 *
 * ## The content hash
 *
 * `contentHash` is the hex SHA-256 of the Arrow IPC *stream* encoding of the
 * dataset in a canonical form, so that the same rows give the same hash
 * whatever file format or batching they came in:
 *
 * - the schema keeps each field's name and type, with every field nullable
 *   and no field or schema metadata; a dictionary-encoded column is decoded
 *   to its value type (the encoding is not content);
 * - the rows are re-cut into record batches of {@link CONTENT_HASH_BATCH_ROWS}
 *   rows (the last one shorter; no batch for an empty dataset), each column
 *   rebuilt with Arrow's builders so that padding, slack and the bytes under
 *   null slots are canonical;
 * - the stream is the schema message, the batches, and the end-of-stream
 *   marker, as `RecordBatchStreamWriter` writes them.
 *
 * The hash is fed batch by batch while the stream is written, so memory
 * stays flat (one source batch and one canonical batch) however large the
 * file. It commits to the data without revealing it — except that anyone who
 * already holds a candidate table can test it against the hash; a dataset
 * small or guessable enough for that to matter should not be listed.
 */
import { createHash } from "node:crypto";
import {
  DataType,
  Field,
  makeBuilder,
  makeData,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  type Builder,
} from "apache-arrow";
import { openBatches, type ReadOptions } from "../engine/columns/index.js";
import { PolicyErrorCode, type BudgetUnit, type UsagePolicy } from "./policy.js";
import type { ProtocolId } from "../protocols/index.js";
import { inDocumentOrder, InvalidDocumentError, isPlainObject, schemaIssues, type FieldIssue } from "./schemas/check.js";
import { isRealDateTime } from "./schemas/common.js";
import { DatasetDescriptorSchema, DESCRIPTOR_FIELDS, DescriptorNamesSchema, MAX_DATASET_NAME_LENGTH, type DatasetDescriptor, type KeyShape } from "./schemas/dataset.js";

export { DatasetDescriptorSchema, MAX_DATASET_NAME_LENGTH, type DatasetDescriptor };

/** A descriptor that is not well formed (code UMBRA_INVALID_DATASET). */
export class InvalidDatasetError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("dataset descriptor", issues, PolicyErrorCode.InvalidDataset);
  }
}

/** Rows per canonical record batch of the content hash. Part of the hash's definition: never change it. */
export const CONTENT_HASH_BATCH_ROWS = 65_536;

/**
 * Validates a dataset descriptor (a parsed JSON value): unknown fields,
 * wrong types, an empty or duplicate column name, a negative or fractional
 * row count, a hash that is not 64 lower-case hex digits, an invalid date.
 *
 * @throws InvalidDatasetError listing every field found wrong.
 */
export function parseDatasetDescriptor(json: unknown): DatasetDescriptor {
  if (!isPlainObject(json)) {
    const objectLike = typeof json === "object" && json !== null && !Array.isArray(json);
    throw new InvalidDatasetError([{ field: "descriptor", problem: objectLike ? "must be a plain object" : "must be an object" }]);
  }
  const issues = schemaIssues(DatasetDescriptorSchema, json, "descriptor");
  const more: FieldIssue[] = [];
  const clean = (field: string) => !issues.some((i) => i.field === field || i.field.startsWith(`${field}[`) || i.field.startsWith(`${field}.`));
  const d = json as DatasetDescriptor;
  if (Array.isArray(d.schema)) {
    const seen = new Set<string>();
    d.schema.forEach((f, i) => {
      if (!clean(`schema[${i}]`)) return;
      if (seen.has(f.name)) more.push({ field: `schema[${i}].name`, problem: `duplicate column "${f.name}"` });
      seen.add(f.name);
    });
  }
  if (typeof d.createdAt === "string" && clean("createdAt") && !isRealDateTime(d.createdAt)) more.push({ field: "createdAt", problem: "is not a valid date-time" });
  if (issues.length + more.length > 0) throw new InvalidDatasetError(inDocumentOrder([...issues, ...more], DESCRIPTOR_FIELDS));
  return {
    id: d.id,
    owner: d.owner,
    name: d.name,
    schema: d.schema.map((f) => ({ name: f.name, type: f.type, ...(f.keyShape !== undefined ? { keyShape: f.keyShape } : {}) })),
    rowCount: d.rowCount,
    contentHash: d.contentHash,
    createdAt: d.createdAt,
  };
}

/** What {@link describeDataset} describes. */
export interface DescribeOptions {
  readonly id: string;
  readonly owner: string;
  readonly name: string;
  /** The rows: an Arrow table, or a file (Arrow IPC, CSV, Parquet; format by extension) streamed batch by batch. */
  readonly table: Table | string;
  /** Options of the file reader (CSV `columnTypes`, a column projection, …). Files only. */
  readonly read?: ReadOptions;
  /** The descriptor's `createdAt` (default: now). */
  readonly createdAt?: Date;
}

/**
 * Describes a dataset: its schema, row count and content hash (this file's
 * header), computed from a table or streamed from a file.
 *
 * @throws InvalidDatasetError when the id, owner or name is not valid, or a column name is empty or repeated.
 * @throws the errors of `openBatches` (UnreadableFileError, MalformedCsvError, …) for a file.
 */
export async function describeDataset(options: DescribeOptions): Promise<DatasetDescriptor> {
  const named = schemaIssues(DescriptorNamesSchema, { id: options.id, owner: options.owner, name: options.name }, "descriptor");
  if (named.length > 0) throw new InvalidDatasetError(named);

  let schema: Schema;
  let batches: AsyncIterable<RecordBatch> | Iterable<RecordBatch>;
  if (options.table instanceof Table) {
    schema = options.table.schema;
    batches = options.table.batches;
  } else {
    const source = await openBatches(options.table, options.read);
    schema = source.schema;
    batches = source.batches;
  }
  const { contentHash, rowCount, canonical } = await hashBatches(schema, batches);
  return parseDatasetDescriptor({
    id: options.id,
    owner: options.owner,
    name: options.name,
    schema: canonical.fields.map((f) => ({ name: f.name, type: String(f.type) })),
    rowCount,
    contentHash,
    createdAt: (options.createdAt ?? new Date()).toISOString(),
  });
}

/** The canonical form of a type: dictionaries decoded to their value type. */
function canonicalType(type: DataType): DataType {
  return DataType.isDictionary(type) ? canonicalType(type.dictionary) : type;
}

/** The canonical schema of the content hash: names and (decoded) types, all nullable, no metadata. */
export function canonicalSchema(schema: Schema): Schema {
  return new Schema(schema.fields.map((f) => new Field(f.name, canonicalType(f.type), true)));
}

/**
 * SHA-256 of the canonical Arrow IPC stream of `batches` (this file's
 * header), fed as the stream is written.
 */
export async function hashBatches(
  schema: Schema,
  batches: AsyncIterable<RecordBatch> | Iterable<RecordBatch>,
): Promise<{ contentHash: string; rowCount: number; canonical: Schema }> {
  const canonical = canonicalSchema(schema);
  const structType = new Struct(canonical.fields);
  const builders: Builder[] = canonical.fields.map((f) => makeBuilder({ type: f.type, nullValues: [null, undefined] }));
  const hash = createHash("sha256");
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, canonical);
  // The consumer runs beside the producer: each chunk the writer queues is
  // hashed, then dropped, before the next canonical batch is built.
  const consumed = (async () => {
    for await (const chunk of writer) hash.update(chunk);
  })();
  let pending = 0;
  let rowCount = 0;

  const flush = async (): Promise<void> => {
    if (pending === 0) return;
    const children = builders.map((b) => b.flush());
    const data = makeData({ type: structType, length: pending, nullCount: 0, children });
    writer.write(new RecordBatch(canonical, data));
    pending = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  };

  try {
    for await (const batch of batches) {
      if (batch.schema.fields.length !== builders.length) throw new InvalidDatasetError([{ field: "table", problem: "a record batch does not match the schema" }]);
      const columns = builders.map((_, i) => batch.getChildAt(i));
      let row = 0;
      while (row < batch.numRows) {
        const n = Math.min(CONTENT_HASH_BATCH_ROWS - pending, batch.numRows - row);
        columns.forEach((vector, i) => {
          const builder = builders[i] as Builder;
          for (let r = row; r < row + n; r++) builder.append(vector?.get(r) ?? null);
        });
        row += n;
        pending += n;
        rowCount += n;
        if (pending === CONTENT_HASH_BATCH_ROWS) await flush();
      }
    }
    await flush();
    writer.close();
  } catch (err) {
    writer.abort();
    await consumed.catch(() => undefined);
    throw err;
  }
  await consumed;
  return { contentHash: hash.digest("hex"), rowCount, canonical };
}

/** What the exchange lists to a buyer about a dataset: its description and the terms of its policy, never who else may use it. */
export interface CatalogEntry {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  /** The columns; a key column with its shape (node/key-shape.ts), a class, never a value. */
  readonly schema: readonly { readonly name: string; readonly type: string; readonly keyShape?: KeyShape }[];
  readonly rowCount: number;
  /** Commits to the rows without revealing them. */
  readonly contentHash: string;
  readonly createdAt: string;
  readonly allowedProtocols: readonly ProtocolId[];
  readonly outputColumns: readonly string[];
  /** The keys a buyer may join on: a column, or a composite of columns. */
  readonly keyColumns: readonly (string | readonly string[])[];
  /** k, the smallest group an output may describe. */
  readonly minGroupSize: number;
  readonly minIntersection: number | null;
  readonly queryBudget: number;
  readonly budgetUnit: BudgetUnit;
  readonly expiresAt: string | null;
}

/**
 * The catalog entry a buyer sees for a dataset under its policy. The list of
 * allowed buyers is left out (a buyer does not learn who else may buy); the
 * output columns are those of the policy that the dataset has.
 */
export function catalogView(descriptor: DatasetDescriptor, policy: UsagePolicy): CatalogEntry {
  const names = new Set(descriptor.schema.map((f) => f.name));
  return {
    id: descriptor.id,
    name: descriptor.name,
    owner: descriptor.owner,
    schema: descriptor.schema.map((f) => ({ name: f.name, type: f.type, ...(f.keyShape !== undefined ? { keyShape: f.keyShape } : {}) })),
    rowCount: descriptor.rowCount,
    contentHash: descriptor.contentHash,
    createdAt: descriptor.createdAt,
    allowedProtocols: [...policy.allowedProtocols],
    outputColumns: policy.outputColumns.filter((col) => names.has(col)),
    keyColumns: policy.keyColumns.map((k) => (typeof k === "string" ? k : [...k])),
    minGroupSize: policy.minGroupSize,
    minIntersection: policy.minIntersection ?? null,
    queryBudget: policy.queryBudget,
    budgetUnit: policy.budgetUnit,
    expiresAt: policy.expiresAt,
  };
}
