/**
 * A job's result at its buyer's agent (the only agent that holds one; any
 * other job is answered 404): GET /v1/jobs/:id/result as the CLI reads it
 * (the stored bytes — an Arrow IPC stream, or JSON {count} / {withheld} —
 * with the salted digest the exchange recorded), as a file for the console
 * (?format=csv|arrow, written by the engine's own CSV writer, as
 * `umbra job result --out x.csv` writes it), and a preview of its first rows
 * (GET /v1/jobs/:id/result/preview?limit=N) as JSON.
 */
import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { tableFromArrays, tableFromIPC, tableToIPC, type Table } from "apache-arrow";
import { Type } from "typebox";
import { csvChunks } from "../../engine/columns/index.js";
import { NotFoundError } from "../errors.js";
import type { ResultRecord, Store } from "../store.js";
import { strictQueryValidator } from "./validation.js";

/** The most rows a preview shows, and how many when no limit is given. */
export const MAX_PREVIEW_ROWS = 1000;
export const DEFAULT_PREVIEW_ROWS = 200;

const JOB_ID = { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" } as const;
const ParamsSchema = { type: "object", required: ["id"], properties: { id: JOB_ID } } as const;

export const ResultQuerySchema = Type.Object({ format: Type.Optional(Type.Union([Type.Literal("csv"), Type.Literal("arrow")])) }, { additionalProperties: false });
export const PreviewQuerySchema = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PREVIEW_ROWS })) }, { additionalProperties: false });

/** A stored result, as the console shows it. */
export type ResultPreview =
  | { readonly kind: "table"; readonly columns: readonly { name: string; type: string }[]; readonly rows: readonly unknown[][]; readonly total: number }
  | { readonly kind: "count"; readonly count: number }
  | { readonly kind: "withheld"; readonly minIntersection: number };

type Parsed = { kind: "table"; table: Table } | { kind: "count"; count: number } | { kind: "withheld"; minIntersection: number };

/** What a stored result holds (as node/commands/jobs.ts jobResult reads it). */
function parseResult(bytes: Uint8Array): Parsed {
  if (bytes[0] === 0x7b /* { */) {
    const j = JSON.parse(Buffer.from(bytes).toString("utf8")) as { count?: unknown; withheld?: { minIntersection?: unknown } };
    if (typeof j.count === "number") return { kind: "count", count: j.count };
    if (j.withheld !== undefined) return { kind: "withheld", minIntersection: Number(j.withheld.minIntersection) };
  }
  return { kind: "table", table: tableFromIPC(bytes) };
}

/** A cell as JSON: big integers as numbers when exact (else as text), dates as ISO 8601, bytes as base64. */
function jsonCell(x: unknown): unknown {
  if (x === null || x === undefined) return null;
  if (typeof x === "bigint") return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();
  if (typeof x === "number") return Number.isFinite(x) ? x : String(x);
  if (x instanceof Date) return x.toISOString();
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64");
  if (typeof x === "string" || typeof x === "boolean") return x;
  return String(x);
}

/** The first `limit` rows of a result, or its count, or that it was withheld. */
export function previewOf(bytes: Uint8Array, limit: number): ResultPreview {
  const r = parseResult(bytes);
  if (r.kind !== "table") return r;
  const t = r.table;
  const fields = t.schema.fields;
  const columns = fields.map((f) => ({ name: f.name, type: String(f.type) }));
  const n = Math.min(limit, t.numRows);
  const vectors = fields.map((_, i) => t.getChildAt(i));
  const rows: unknown[][] = [];
  for (let row = 0; row < n; row++) rows.push(vectors.map((v) => jsonCell(v?.get(row))));
  return { kind: "table", columns, rows, total: t.numRows };
}

/** The result of a job this agent bought, or 404. */
function storedResult(store: Store, id: string): ResultRecord & { bytes: Uint8Array } {
  const r = store.getResult(id);
  if (!r || !r.bytes) throw new NotFoundError("no result for this job here");
  return r as ResultRecord & { bytes: Uint8Array };
}

export function registerResultRoutes(app: FastifyInstance, store: Store): void {
  app.get("/v1/jobs/:id/result", { schema: { params: ParamsSchema, querystring: ResultQuerySchema }, validatorCompiler: strictQueryValidator }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const format = (req.query as { format?: "csv" | "arrow" }).format;
    const r = storedResult(store, id);
    if (format === undefined) {
      // As the CLI reads it: the stored bytes and the commitment to open.
      store.releaseResult(id);
      return reply
        .header("x-umbra-digest", r.digest)
        .header("x-umbra-digest-salt", r.salt === null ? "" : Buffer.from(r.salt).toString("hex"))
        .type("application/octet-stream")
        .send(Buffer.from(r.bytes));
    }
    const parsed = parseResult(r.bytes);
    if (parsed.kind === "withheld") throw new NotFoundError(`this job's result was withheld (fewer than ${parsed.minIntersection} distinct keys matched, the job's minimum intersection): nothing is released`);
    // A count is a table of one row, so a download is always a table.
    const table = parsed.kind === "count" ? tableFromArrays({ count: Float64Array.of(parsed.count) }) : parsed.table;
    store.releaseResult(id);
    const name = id.replace(/[^A-Za-z0-9._-]/g, "_");
    void reply.header("cache-control", "no-store").header("x-content-type-options", "nosniff");
    if (format === "arrow") {
      const bytes = parsed.kind === "table" ? Buffer.from(r.bytes) : Buffer.from(tableToIPC(table, "stream"));
      return reply.header("content-disposition", `attachment; filename="${name}.arrows"`).type("application/vnd.apache.arrow.stream").send(bytes);
    }
    return reply.header("content-disposition", `attachment; filename="${name}.csv"`).type("text/csv; charset=utf-8").send(Readable.from(csvChunks(table)));
  });

  app.get("/v1/jobs/:id/result/preview", { schema: { params: ParamsSchema, querystring: PreviewQuerySchema }, validatorCompiler: strictQueryValidator }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const limit = (req.query as { limit?: number }).limit ?? DEFAULT_PREVIEW_ROWS;
    const r = storedResult(store, id);
    // Rows shown are rows released to the buyer.
    store.releaseResult(id);
    return reply.header("cache-control", "no-store").send(previewOf(r.bytes, limit));
  });
}
