/**
 * Job requests: what a buyer asks for (a {@link JobRequest}: its protocol,
 * datasets, key and output columns, thresholds and — for the aggregate
 * protocols — its computation), how a request is parsed (its schema,
 * node/schemas/job-request.ts, then the rules that tie its fields together),
 * and whether a request the exchange filled in is still the one the buyer
 * asked for ({@link requestExtends}). Checking a request against a dataset's
 * policy is node/policy.ts's.
 */
import { FA_MAX_PROVIDERS, FA_MAX_SLOTS, parseRho, PROTOCOLS, ProtocolId } from "../protocols/index.js";
import { duplicateIssues, inDocumentOrder, InvalidDocumentError, isPlainObject, PolicyErrorCode, schemaIssues, showKey, type FieldIssue } from "./schemas/check.js";
import { AggregateMode, JOB_REQUEST_FIELDS, JobRequestSchema, type AggregateFn, type AggregateParamsDocument, type JobRequestDocument, type JoinGroup } from "./schemas/job-request.js";
import { canonicalJson } from "./store.js";

export { AGGREGATE_FNS, AggregateMode, JOIN_GROUPS, JobRequestSchema, MAX_JOIN_ROWS, type AggregateFn, type JoinGroup } from "./schemas/job-request.js";

/** A job request that is not well formed (code UMBRA_INVALID_JOB_REQUEST). */
export class InvalidJobRequestError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("job request", issues, PolicyErrorCode.InvalidJobRequest);
  }
}

/** The protocols whose output is subject to the minimum group size k. */
export const K_PROTOCOLS: readonly ProtocolId[] = Object.freeze(PROTOCOLS.filter((p) => p.k).map((p) => p.id));

/** The modes each aggregate protocol offers (ARCHITECTURE.md, the protocols table). */
export const AGGREGATE_MODES: Readonly<Partial<Record<ProtocolId, readonly AggregateMode[]>>> = Object.freeze({
  [ProtocolId.JoinAggregate]: Object.freeze([AggregateMode.Count, AggregateMode.Sum, AggregateMode.Avg, AggregateMode.Var]),
  [ProtocolId.FederatedAggregate]: Object.freeze([AggregateMode.Count, AggregateMode.Sum, AggregateMode.Avg, AggregateMode.Histogram]),
});

/** One aggregate of a federated-aggregate or join-aggregate job: `count` (rows), or a function of a column. */
export type AggregateJobSpec = { fn: "count" } | { fn: Exclude<AggregateFn, "count">; column: string };

/**
 * What a federated-aggregate or join-aggregate job computes
 * (`params.aggregate`), as JSON. A field left out is filled by the exchange
 * when it accepts the job (the filled request is what every party runs and
 * what the ledger records). The fields each protocol takes are in
 * {@link AGGREGATE_FIELDS_OF}.
 */
export interface AggregateJobParams {
  /** The aggregates, in output order, none twice. */
  aggregates: AggregateJobSpec[];
  /**
   * federated-aggregate: the group-by column and its declared categories, the
   * cells (a row of another value goes to none); join-aggregate: a column of
   * the buyer's own table (no categories: its groups are the values it holds).
   */
  groupBy?: { column: string; categories?: string[] };
  /** A histogram: the column and its bin edges, strictly increasing (bins [e_i, e_i+1), the last closed). */
  histogram?: { column: string; edges: number[] };
  /** The job runs with no fewer providers (2 or more; default 2). */
  minProviders?: number;
  /** The largest |value| of an aggregated column, as a positive decimal ("1000000", "2.5"; default 2^40). */
  maxAbsValue?: string;
  /** Decimal digits kept (fixed point), 0..18 (default 0: integers). */
  scale?: number;
  /** federated-aggregate: the most rows one provider's table may have (default: the largest registered row count of the job's datasets). */
  maxRowsPerProvider?: number;
  /** join-aggregate: the most joined rows any one total may include (default 2^32). */
  maxJoinRows?: number;
  /** federated-aggregate: approximate arithmetic (CKKS, an error bound beside every result) instead of exact BFV (default false). */
  approximate?: boolean;
  /** join-aggregate: the group the keys are blinded in (default x25519). */
  group?: JoinGroup;
  /** federated-aggregate, join-aggregate: differential privacy, ρ-zCDP in all; ρ as "num/den" in lowest terms once parsed (protocols/federated-aggregate/dp.ts, protocols/join-aggregate/dp.ts). */
  dp?: { rho: string; maxRowsPerKey?: number };
}

/**
 * A buyer's job: against one provider dataset (`providerDataset`, with the
 * buyer's own `buyerDataset`), or — federated-aggregate — against several
 * (`providerDatasets`, one per provider, in provider order; the buyer brings
 * no dataset, so the two single-dataset fields are absent).
 */
export interface JobRequest {
  protocol: ProtocolId;
  /** The buyer's identity. */
  buyer: string;
  /** The buyer's own dataset (held by its agent); absent in a multi-provider job. */
  buyerDataset?: string;
  /** The provider's dataset id, whose policy governs the job; absent in a multi-provider job. */
  providerDataset?: string;
  /** A multi-provider job's provider datasets, in provider order (2 or more, distinct). */
  providerDatasets?: string[];
  params: {
    /** Join key columns (composite keys: several), which the provider dataset must have. */
    keyColumns: string[];
    /** Provider columns in the output: lookup labels (required for lookup), aggregate inputs (sum/avg/var/histogram). */
    outputColumns?: string[];
    /** A k above the policy's (k-protocols only); the job runs with {@link effectiveMinGroupSize}. */
    minGroupSize?: number;
    /** psi, psi-cardinality, lookup: the fewest distinct matched keys a released result may have (the exchange fills the policy's; a job may ask for more). */
    minIntersection?: number;
    /** The aggregate (join-aggregate, federated-aggregate only): the older single-dataset form of a computation. */
    mode?: AggregateMode;
    /** Upper bound on the keys the buyer will query (its distinct keys); required when the budget is in keys. */
    queryCount?: number;
    /** federated-aggregate over `providerDatasets`, or join-aggregate: the computation (then `mode` is absent). */
    aggregate?: AggregateJobParams;
    /** psi, psi-cardinality, lookup, join-aggregate: the key normalisation both sides apply to their own key columns (beyond trim and NFC). */
    normalise?: KeyNormalise;
  };
  /** The contracts the job runs under (docs/venue.md): one per product whose datasets it touches. */
  contracts?: string[];
}

/** A job's key normalisation beyond trim and NFC (engine/columns KeyOptions' flags). */
export interface KeyNormalise {
  digitsOnly?: boolean;
  caseFold?: boolean;
}

/** The protocols that join on keys, so take a key normalisation. */
export const KEYED_PROTOCOLS: readonly ProtocolId[] = Object.freeze([ProtocolId.Psi, ProtocolId.PsiCardinality, ProtocolId.PsiOt, ProtocolId.Lookup, ProtocolId.JoinAggregate]);

/** The protocols whose buyer result is withheld below a minimum intersection. */
export const INTERSECTION_PROTOCOLS: readonly ProtocolId[] = Object.freeze(PROTOCOLS.filter((p) => p.minIntersection).map((p) => p.id));
/** The fields of `params.aggregate` each protocol takes. */
export const AGGREGATE_FIELDS_OF: Readonly<Partial<Record<ProtocolId, readonly string[]>>> = Object.freeze({
  [ProtocolId.FederatedAggregate]: Object.freeze(["aggregates", "groupBy", "histogram", "minProviders", "maxAbsValue", "scale", "maxRowsPerProvider", "approximate", "dp"]),
  [ProtocolId.JoinAggregate]: Object.freeze(["aggregates", "groupBy", "maxAbsValue", "scale", "maxJoinRows", "group", "dp"]),
});

/** Whether a job runs against several provider datasets (federated-aggregate). */
export function isMultiProvider(request: JobRequest): request is JobRequest & { providerDatasets: string[] } {
  return request.providerDatasets !== undefined;
}

/** Every provider dataset a job names, in provider order. */
export function jobDatasets(request: JobRequest): string[] {
  return request.providerDatasets ?? (request.providerDataset !== undefined ? [request.providerDataset] : []);
}

/** The provider columns a join-aggregate computation reads (its `outputColumns`): the aggregated ones, each once (the group-by column is the buyer's). */
export function joinAggregateColumns(a: AggregateJobParams): string[] {
  return [...new Set(a.aggregates.flatMap((x) => (x.fn === "count" ? [] : [x.column])))];
}

/** The columns a federated-aggregate computation reads (its `outputColumns`): aggregated, histogram, group-by; each once. */
export function aggregateColumns(a: AggregateJobParams): string[] {
  const cols = a.aggregates.flatMap((x) => (x.fn === "count" ? [] : [x.column]));
  if (a.histogram) cols.push(a.histogram.column);
  if (a.groupBy) cols.push(a.groupBy.column);
  return [...new Set(cols)];
}

/**
 * The rules of `params.aggregate` (already checked against its schema) that
 * depend on `protocol` or tie its fields together: the fields the protocol
 * takes, a column for every function but count, no aggregate twice, the
 * group-by's categories (federated-aggregate declares them, join-aggregate's
 * groups are the buyer's own values), histogram edges strictly increasing.
 * (The protocol checks the rest, e.g. the vector's size, when the exchange
 * resolves it.)
 */
function aggregateParams(issues: FieldIssue[], a: AggregateParamsDocument, field: string, protocol: ProtocolId): AggregateJobParams | undefined {
  const before = issues.length;
  const add = (f: string, problem: string) => void issues.push({ field: f, problem });
  const join = protocol === ProtocolId.JoinAggregate;
  const takes = AGGREGATE_FIELDS_OF[protocol] ?? [];
  for (const key of Object.keys(a)) if (!takes.includes(key)) add(`${field}.${showKey(key)}`, `unknown field (protocol ${protocol} takes ${takes.join(", ")})`);
  const seen = new Set<string>();
  const aggregates: AggregateJobSpec[] = [];
  a.aggregates.forEach((x, i) => {
    const f = `${field}.aggregates[${i}]`;
    if (x.fn === "count" && x.column !== undefined) return add(`${f}.column`, "count takes no column");
    if (x.fn !== "count" && x.column === undefined) return add(`${f}.column`, `is required for ${x.fn}`);
    const id = x.fn === "count" ? "count" : `${x.fn}(${x.column as string})`;
    if (seen.has(id)) return add(f, "duplicate entry");
    seen.add(id);
    aggregates.push(x.fn === "count" ? { fn: "count" } : { fn: x.fn, column: x.column as string });
  });
  const out: AggregateJobParams = { aggregates };
  if (a.groupBy !== undefined && join) {
    // The buyer's own column: its groups are the values it holds, declared nowhere.
    if (a.groupBy.categories !== undefined) add(`${field}.groupBy.${showKey("categories")}`, "unknown field (join-aggregate's groups are the buyer's own values, declared nowhere)");
    out.groupBy = { column: a.groupBy.column };
  } else if (a.groupBy !== undefined) {
    if (a.groupBy.categories === undefined) add(`${field}.groupBy.categories`, `is required for protocol ${protocol}: an array of 1 to ${FA_MAX_SLOTS} categories`);
    else {
      issues.push(...duplicateIssues(a.groupBy.categories, `${field}.groupBy.categories`));
      out.groupBy = { column: a.groupBy.column, categories: [...a.groupBy.categories] };
    }
  }
  if (a.histogram !== undefined) {
    const edges = a.histogram.edges;
    if (!edges.every((e, i) => i === 0 || e > (edges[i - 1] as number))) add(`${field}.histogram.edges`, "must be strictly increasing");
    else out.histogram = { column: a.histogram.column, edges: [...edges] };
  }
  if (a.minProviders !== undefined) out.minProviders = a.minProviders;
  if (a.maxAbsValue !== undefined) out.maxAbsValue = a.maxAbsValue;
  if (a.scale !== undefined) out.scale = a.scale;
  if (a.maxRowsPerProvider !== undefined) out.maxRowsPerProvider = a.maxRowsPerProvider;
  if (a.maxJoinRows !== undefined) out.maxJoinRows = a.maxJoinRows;
  if (a.group !== undefined) out.group = a.group;
  if (a.approximate !== undefined) out.approximate = a.approximate;
  if (a.dp !== undefined) {
    try {
      const r = parseRho(a.dp.rho);
      out.dp = { rho: `${r.num}/${r.den}`, ...(a.dp.maxRowsPerKey !== undefined ? { maxRowsPerKey: a.dp.maxRowsPerKey } : {}) };
    } catch {
      add(`${field}.dp.rho`, 'must be a positive rational: "num/den", a decimal such as "0.1", or a positive number');
    }
    if (a.dp.maxRowsPerKey !== undefined && protocol !== "join-aggregate") add(`${field}.dp.maxRowsPerKey`, "applies to join-aggregate only (a cap on the buyer's rows per key)");
    if (a.approximate === true) add(`${field}.dp`, "differential privacy needs exact arithmetic: drop approximate");
  }
  return issues.length === before ? out : undefined;
}

/**
 * Validates a job request (a parsed JSON value): unknown fields, wrong
 * types, values out of range, duplicates, and parameters that do not fit
 * the protocol (`mode` outside the aggregate protocols or missing there,
 * `outputColumns` for psi / psi-cardinality or missing for lookup and for
 * aggregates other than count, `minGroupSize` outside the k-protocols) are
 * refused. A multi-provider job (`providerDatasets`, federated-aggregate
 * only) names no buyer or single provider dataset, no key column and no
 * `mode`, and carries `params.aggregate`; its `outputColumns` are filled
 * with the columns the computation reads (or, when given, must be them).
 * The single-dataset form of federated-aggregate (`mode`) still parses — it
 * is what a policy is checked against alone — but the exchange runs only the
 * multi-provider form. A join-aggregate job carries its computation in
 * `params.aggregate` beside `buyerDataset`, `providerDataset` and its key
 * columns (its `outputColumns`: the aggregated provider columns), or — the
 * older form — a `mode` over its `outputColumns`.
 *
 * @throws InvalidJobRequestError listing every field found wrong.
 */
export function parseJobRequest(json: unknown): JobRequest {
  if (!isPlainObject(json)) {
    const objectLike = typeof json === "object" && json !== null && !Array.isArray(json);
    throw new InvalidJobRequestError([{ field: "request", problem: objectLike ? "must be a plain object" : "must be an object" }]);
  }
  // Each field's type and bounds: the schema's (node/schemas/job-request.ts); the rules that tie fields together: below.
  const structural = schemaIssues(JobRequestSchema, json, "request");
  if (structural.length > 0) throw new InvalidJobRequestError(inDocumentOrder(structural, JOB_REQUEST_FIELDS));
  const rec = json as JobRequestDocument;
  const issues: FieldIssue[] = [];
  const add = (field: string, problem: string) => void issues.push({ field, problem });
  const protocol = rec.protocol;
  const p = rec.params;
  const hasAggregate = p.aggregate !== undefined;
  // join-aggregate's computation: params.aggregate beside the two datasets and the key columns.
  const joinForm = protocol === ProtocolId.JoinAggregate && rec.providerDatasets === undefined && hasAggregate;
  // The multi-provider form: providerDatasets and params.aggregate (federated-aggregate only).
  const multi = !joinForm && (rec.providerDatasets !== undefined || hasAggregate);
  if (!multi) {
    if (rec.buyerDataset === undefined) add("buyerDataset", "is required (the buyer's own dataset)");
    if (rec.providerDataset === undefined) add("providerDataset", "is required (or, for federated-aggregate, providerDatasets)");
  } else if (protocol !== ProtocolId.FederatedAggregate) {
    add(rec.providerDatasets !== undefined ? "providerDatasets" : "params.aggregate", `does not apply to protocol ${protocol}`);
  } else {
    if (rec.buyerDataset !== undefined) add("buyerDataset", "does not apply to a multi-provider job (the buyer brings no dataset)");
    if (rec.providerDataset !== undefined) add("providerDataset", "does not apply to a multi-provider job (its datasets are in providerDatasets)");
    if (rec.providerDatasets === undefined) add("providerDatasets", `is required for a multi-provider job: an array of 2 to ${FA_MAX_PROVIDERS} provider datasets`);
    else issues.push(...duplicateIssues(rec.providerDatasets, "providerDatasets"));
  }
  const params: JobRequest["params"] = { keyColumns: [] };
  if (!multi || p.keyColumns !== undefined) {
    const keys = p.keyColumns;
    if (keys === undefined) add("params.keyColumns", "is required: an array of 1 or more key columns");
    else if (keys.length === 0 && !multi) add("params.keyColumns", "must have at least 1 entry");
    else {
      const dup = duplicateIssues(keys, "params.keyColumns");
      issues.push(...dup);
      if (dup.length === 0) params.keyColumns = [...keys];
      if (multi && keys.length > 0) add("params.keyColumns", "federated-aggregate joins nothing (a group-by column goes in params.aggregate.groupBy)");
    }
  }
  if (p.outputColumns !== undefined) {
    const dup = duplicateIssues(p.outputColumns, "params.outputColumns");
    issues.push(...dup);
    if (dup.length === 0) params.outputColumns = [...p.outputColumns];
  }
  if (p.minGroupSize !== undefined) params.minGroupSize = p.minGroupSize;
  if (p.minIntersection !== undefined) {
    params.minIntersection = p.minIntersection;
    if (!INTERSECTION_PROTOCOLS.includes(protocol)) add("params.minIntersection", `does not apply to protocol ${protocol}`);
  }
  if (p.mode !== undefined) params.mode = p.mode;
  if (p.queryCount !== undefined) params.queryCount = p.queryCount;
  if (p.normalise !== undefined) {
    if (!KEYED_PROTOCOLS.includes(protocol)) add("params.normalise", `does not apply to protocol ${protocol} (it joins no keys)`);
    // Only the flags that are on: { digitsOnly: false } and {} ask for the same.
    const n: KeyNormalise = { ...(p.normalise.digitsOnly === true ? { digitsOnly: true } : {}), ...(p.normalise.caseFold === true ? { caseFold: true } : {}) };
    if (n.digitsOnly || n.caseFold) params.normalise = n;
  }
  if (multi || joinForm) {
    if (p.mode !== undefined) add("params.mode", "does not apply with params.aggregate");
    const aggregate =
      p.aggregate === undefined ? void add("params.aggregate", "is required for a multi-provider job") : aggregateParams(issues, p.aggregate, "params.aggregate", joinForm ? ProtocolId.JoinAggregate : ProtocolId.FederatedAggregate);
    if (aggregate !== undefined) {
      params.aggregate = aggregate;
      // The columns the computation reads are its output columns (so every policy must allow them).
      const reads = joinForm ? joinAggregateColumns(aggregate) : aggregateColumns(aggregate);
      if (params.outputColumns === undefined) params.outputColumns = reads;
      else if (params.outputColumns.length !== reads.length || !reads.every((col) => params.outputColumns?.includes(col))) {
        add("params.outputColumns", "must list exactly the columns params.aggregate reads (or be left out)");
      }
    }
  } else checkParamsFitProtocol(issues, protocol, p, params);
  if (rec.contracts !== undefined) issues.push(...duplicateIssues(rec.contracts, "contracts"));
  if (issues.length > 0) throw new InvalidJobRequestError(issues);
  return {
    protocol,
    buyer: rec.buyer,
    ...(multi ? { providerDatasets: [...(rec.providerDatasets as string[])] } : { buyerDataset: rec.buyerDataset as string, providerDataset: rec.providerDataset as string }),
    params,
    ...(rec.contracts !== undefined ? { contracts: [...rec.contracts] } : {}),
  };
}

function checkParamsFitProtocol(issues: FieldIssue[], protocol: ProtocolId, raw: JobRequestDocument["params"], params: JobRequest["params"]): void {
  const add = (field: string, problem: string) => void issues.push({ field, problem });
  const modes = AGGREGATE_MODES[protocol];
  const outputs = params.outputColumns ?? [];
  if (raw.minGroupSize !== undefined && !K_PROTOCOLS.includes(protocol)) {
    add("params.minGroupSize", `does not apply to protocol ${protocol}`);
  }
  if (modes === undefined) {
    if (raw.mode !== undefined) add("params.mode", `does not apply to protocol ${protocol}`);
  } else if (raw.mode === undefined) {
    add("params.mode", `is required for protocol ${protocol}`);
  } else if (params.mode !== undefined && !modes.includes(params.mode)) {
    add("params.mode", `protocol ${protocol} offers ${modes.join(", ")}`);
  } else if (params.mode !== undefined && params.mode !== AggregateMode.Count && outputs.length === 0) {
    add("params.outputColumns", `mode ${params.mode} needs at least one column`);
  }
  if ((protocol === ProtocolId.Psi || protocol === ProtocolId.PsiCardinality || protocol === ProtocolId.PsiOt) && outputs.length > 0) {
    add("params.outputColumns", `protocol ${protocol} outputs no provider column`);
  }
  if (protocol === ProtocolId.Lookup && outputs.length === 0) add("params.outputColumns", "protocol lookup needs at least one column");
}

/**
 * Whether `filled` is the job the buyer asked for (`asked`), as the exchange
 * may fill it in: the same protocol, buyer, datasets, key columns and
 * declared key count, exactly; every output column and aggregate field the
 * buyer gave, unchanged (the exchange fills only what it left out); k and the
 * minimum intersection equal or raised, never lowered. A buyer's agent runs a
 * job only when this holds, so nobody between it and the exchange — nor the
 * exchange — can make it read another file, join on another key or run with
 * weaker thresholds than it asked for.
 */
export function requestExtends(asked: JobRequest, filled: JobRequest): boolean {
  // Canonical JSON (sorted keys): a request read back from a store compares equal to the one sent.
  const same = (a: unknown, b: unknown): boolean => a === b || (a !== undefined && b !== undefined && canonicalJson(a as never) === canonicalJson(b as never));
  const raised = (a: number | undefined, b: number | undefined): boolean => a === undefined || (b !== undefined && b >= a);
  const ap = asked.params;
  const fp = filled.params;
  const top =
    asked.protocol === filled.protocol &&
    asked.buyer === filled.buyer &&
    asked.buyerDataset === filled.buyerDataset &&
    asked.providerDataset === filled.providerDataset &&
    same(asked.providerDatasets, filled.providerDatasets) &&
    same(asked.contracts, filled.contracts) &&
    same(ap.keyColumns, fp.keyColumns) &&
    ap.queryCount === fp.queryCount &&
    same(ap.normalise ?? {}, fp.normalise ?? {}) &&
    raised(ap.minGroupSize, fp.minGroupSize) &&
    raised(ap.minIntersection, fp.minIntersection);
  if (!top) return false;
  // The computation: what the buyer asked for (join-aggregate's older form is a mode over its output columns).
  const want = ap.aggregate ?? (asked.protocol === ProtocolId.JoinAggregate && ap.mode !== undefined ? computationOfMode(ap.mode, ap.outputColumns ?? []) : undefined);
  if (want === undefined) return fp.aggregate === undefined && ap.mode === fp.mode && (ap.outputColumns === undefined || same(ap.outputColumns, fp.outputColumns));
  const got = fp.aggregate;
  if (got === undefined || fp.mode !== undefined) return false;
  const w = want as unknown as Record<string, unknown>;
  const g = got as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(w), ...Object.keys(g)])) {
    if (key === "dp") {
      if (!sameDp(w[key], g[key])) return false; // the privacy asked for: never changed, never added or dropped
    } else if (COMPUTATION_FIELDS.includes(key)) {
      if (!same(w[key], g[key])) return false; // what is computed and how it is grouped: never changed, never added
    } else if (FILLABLE_FIELDS.includes(key)) {
      if (w[key] !== undefined && !same(w[key], g[key])) return false; // bounds the buyer gave: kept; those it left out: filled
    } else return false;
  }
  return true;
}

/** Two dp fields ask for the same ρ (compared exactly: "0.125" is "1/8"); both absent is the same. */
function sameDp(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  try {
    const x = parseRho((a as { rho?: unknown }).rho);
    const y = parseRho((b as { rho?: unknown }).rho);
    return x.num === y.num && x.den === y.den;
  } catch {
    return false;
  }
}

/** The fields of a computation the exchange may never change or add: what is computed, over what, grouped how. */
const COMPUTATION_FIELDS: readonly string[] = ["aggregates", "groupBy", "histogram", "approximate"];
/** The fields the exchange fills in when the buyer leaves them out (bounds and defaults). */
const FILLABLE_FIELDS: readonly string[] = ["maxAbsValue", "scale", "maxJoinRows", "group", "maxRowsPerProvider", "minProviders"];

/** join-aggregate's older form as a computation: count, or the mode's function of each output column. */
function computationOfMode(mode: AggregateMode, columns: readonly string[]): AggregateJobParams {
  if (mode === AggregateMode.Count) return { aggregates: [{ fn: "count" }] };
  return { aggregates: columns.map((column) => ({ fn: mode as Exclude<AggregateFn, "count">, column })) };
}

