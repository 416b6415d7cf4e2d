/**
 * Usage policies and the check of a job against them.
 *
 * A provider registers a dataset (its descriptor: schema, row count, content
 * hash — never rows; see `catalog.ts`) with a {@link UsagePolicy}. A buyer
 * submits a {@link JobRequest}. The exchange runs {@link checkJob} before the
 * job starts, and the provider's own agent runs the same check again before
 * it answers anything (it does not trust the exchange blindly).
 *
 * ## The rules, in the order they are checked
 *
 * The first rule that fails is reported, as a {@link PolicyDeniedError}
 * whose `rule` is one of {@link PolicyRule}:
 *
 *   1. `dataset-mismatch`        the job names another provider dataset than the one the policy governs
 *                                (a multi-provider job: the dataset is not among its `providerDatasets`)
 *   2. `policy-expired`          `now >= expiresAt` (a policy is valid strictly before its expiry instant)
 *   3. `buyer-not-allowed`       the buyer is not in `allowedBuyers` (and that is not "any")
 *   4. `protocol-not-allowed`    the protocol is not in `allowedProtocols`
 *   5. `key-column-missing`      a key column is not in the dataset's schema (federated-aggregate
 *                                joins nothing: it may name none)
 *   6. `key-column-not-allowed`  the job's key (one column, or a composite of several) is not one of
 *                                the policy's `keyColumns`
 *   7. `column-not-allowed`      an output column is not in `outputColumns` (or not in the schema)
 *   8. `group-size-below-minimum` the job asks for a k below the policy's `minGroupSize`
 *                                (k-protocols only: join-aggregate, federated-aggregate, psi-cardinality)
 *   9. `intersection-below-minimum` the job asks for a minimum intersection below the policy's
 *                                `minIntersection` (psi, psi-cardinality, lookup)
 *  10. `query-count-missing`     the budget is counted in keys and the job does not declare `queryCount`
 *  11. `budget-exhausted`        the job's cost (1 job, or `queryCount` keys) exceeds what remains
 *
 * A key column discloses: whoever may join on it learns, for each value it
 * holds, whether the dataset holds it too (psi), and with it whatever the
 * other columns of the job release for that value. So a policy names the
 * keys a buyer may join on, each a column or a composite of columns
 * (`keyColumns: ["phone", ["first_name", "birth_date"]]`), and a job's key
 * must be exactly one of them: a composite that adds an unlisted column
 * (`phone` + `diagnosis`) is refused, because it would test that column's
 * values row by row.
 *
 * Why this order: a check against the wrong dataset means nothing, so it
 * comes first; an expired policy permits nothing; a buyer that may not use
 * the dataset learns nothing about the rest of its terms; then what the job
 * asks for (protocol, columns, k) before how much of it (budget), so that a
 * job the policy could never allow is not reported as a budget problem.
 *
 * A federated-aggregate job names every provider dataset (`providerDatasets`)
 * and its computation (`params.aggregate`); its `outputColumns` are every
 * column the computation reads — the aggregated columns, the histogram column
 * and the group-by column — so each provider's policy must allow all of them.
 * The exchange checks the job against every dataset's policy, and each
 * provider's agent checks it against its own.
 *
 * A join-aggregate job names the buyer's dataset, the provider's dataset and
 * the key columns, and its computation in `params.aggregate` (the older form
 * with `mode` still parses: the exchange turns it into that); its
 * `outputColumns` are the provider columns the aggregates read. Its group-by
 * column is the buyer's own, so no provider policy governs it.
 *
 * `minIntersection` is not checked here (nobody knows the intersection
 * before the protocol runs): the protocol runner withholds a result whose
 * intersection is smaller.
 *
 * Messages name the rule and the offending column or protocol names, never a
 * buyer or dataset identifier nor any value.
 */
import { InvalidArgumentError, UmbraError } from "../engine/errors.js";
import { FA_MAX_PROVIDERS, FA_MAX_SLOTS, ProtocolId } from "../protocols/index.js";
import type { DatasetDescriptor } from "./schemas/dataset.js";
import { duplicateIssues, inDocumentOrder, InvalidDocumentError, isPlainObject, schemaIssues, showKey, type FieldIssue } from "./schemas/check.js";
import { isRealDateTime, MAX_COLUMN_NAME_LENGTH, MAX_ID_LENGTH, MAX_LIST_LENGTH } from "./schemas/common.js";
import { BudgetUnit, MAX_KEY_PARTS, MAX_MIN_GROUP_SIZE, POLICY_FIELDS, PolicySchema, type PolicyDocument } from "./schemas/policy.js";
import { AGGREGATE_FNS, AggregateMode, JOB_REQUEST_FIELDS, JOIN_GROUPS, JobRequestSchema, MAX_JOIN_ROWS, type AggregateFn, type AggregateParamsDocument, type JobRequestDocument, type JoinGroup } from "./schemas/job-request.js";

export { AGGREGATE_FNS, AggregateMode, JOIN_GROUPS, JobRequestSchema, MAX_JOIN_ROWS, type AggregateFn, type JoinGroup };

export { InvalidDocumentError, MAX_COLUMN_NAME_LENGTH, MAX_ID_LENGTH, MAX_LIST_LENGTH, BudgetUnit, MAX_KEY_PARTS, MAX_MIN_GROUP_SIZE, PolicySchema, type FieldIssue, type PolicyDocument };
import { canonicalJson, type PolicyRecord, type Store } from "./store.js";

// ---------------------------------------------------------------------------
// Errors

export const PolicyErrorCode = {
  InvalidPolicy: "UMBRA_INVALID_POLICY",
  InvalidJobRequest: "UMBRA_INVALID_JOB_REQUEST",
  InvalidDataset: "UMBRA_INVALID_DATASET",
  PolicyDenied: "UMBRA_POLICY_DENIED",
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** A usage policy that is not well formed (code UMBRA_INVALID_POLICY). */
export class InvalidPolicyError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("policy", issues, PolicyErrorCode.InvalidPolicy);
  }
}

/** A job request that is not well formed (code UMBRA_INVALID_JOB_REQUEST). */
export class InvalidJobRequestError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("job request", issues, PolicyErrorCode.InvalidJobRequest);
  }
}

/** The stable identifiers of the policy rules, in the order {@link checkJob} checks them. */
export const PolicyRule = {
  DatasetMismatch: "dataset-mismatch",
  PolicyExpired: "policy-expired",
  BuyerNotAllowed: "buyer-not-allowed",
  ProtocolNotAllowed: "protocol-not-allowed",
  KeyColumnMissing: "key-column-missing",
  KeyColumnNotAllowed: "key-column-not-allowed",
  ColumnNotAllowed: "column-not-allowed",
  GroupSizeBelowMinimum: "group-size-below-minimum",
  IntersectionBelowMinimum: "intersection-below-minimum",
  QueryCountMissing: "query-count-missing",
  BudgetExhausted: "budget-exhausted",
} as const;
export type PolicyRule = (typeof PolicyRule)[keyof typeof PolicyRule];

/** The rules in check order (the first failing one is reported). */
export const POLICY_RULE_ORDER: readonly PolicyRule[] = Object.freeze(Object.values(PolicyRule));

/**
 * A well-formed job that the dataset's policy does not allow (code
 * UMBRA_POLICY_DENIED). `rule` says which rule failed; `columns` and
 * `protocol` name what offended it, when that is a column or a protocol.
 */
export class PolicyDeniedError extends UmbraError {
  readonly rule: PolicyRule;
  readonly columns: readonly string[];
  readonly protocol: ProtocolId | undefined;
  constructor(rule: PolicyRule, reason: string, details: { columns?: readonly string[]; protocol?: ProtocolId } = {}) {
    super(PolicyErrorCode.PolicyDenied, `policy denied (${rule}): ${reason}`);
    this.rule = rule;
    this.columns = Object.freeze([...(details.columns ?? [])]);
    this.protocol = details.protocol;
  }
}

// ---------------------------------------------------------------------------
// Policies

/** The protocols whose output is subject to the minimum group size k. */
export const K_PROTOCOLS: readonly ProtocolId[] = Object.freeze([ProtocolId.JoinAggregate, ProtocolId.FederatedAggregate, ProtocolId.PsiCardinality]);


/** A dataset's usage policy: what a buyer may run on it, and how much. */
export interface UsagePolicy {
  /** Protocols a buyer may run on the dataset. */
  allowedProtocols: ProtocolId[];
  /** Columns allowed in outputs: lookup labels, aggregate inputs. Key columns need not be listed. */
  outputColumns: string[];
  /**
   * The keys a buyer may join on: each a column name, or a composite key as
   * an array of two or more column names. A job's key columns must be exactly
   * one entry (a composite compared as a set). Empty: no job that joins.
   */
  keyColumns: (string | string[])[];
  /** Buyer identities allowed to use the dataset, or "any". */
  allowedBuyers: string[] | "any";
  /** k: smallest group an output may describe (join-aggregate, federated-aggregate, psi-cardinality). */
  minGroupSize: number;
  /** Total budget per buyer, in `budgetUnit`. */
  queryBudget: number;
  /** "keys": evaluations (lookup keys, the buyer's distinct keys); "jobs": whole jobs. */
  budgetUnit: BudgetUnit;
  /** ISO 8601 instant from which the policy permits nothing; null for never. */
  expiresAt: string | null;
  /** psi, psi-cardinality, lookup: the buyer's agent withholds a result matching fewer distinct keys (the job runs with the larger of this and the job's own). */
  minIntersection?: number;
}

/**
 * The default policy, which fails closed: no protocol, no output column, no
 * key column and no buyer until the provider names them; k = 10; a budget of
 * 100 jobs per buyer; no expiry. Each call returns a fresh object.
 */
export function defaultPolicy(): UsagePolicy {
  return {
    allowedProtocols: [],
    outputColumns: [],
    keyColumns: [],
    allowedBuyers: [],
    minGroupSize: 10,
    queryBudget: 100,
    budgetUnit: BudgetUnit.Jobs,
    expiresAt: null,
  };
}

/**
 * Validates a policy (a parsed JSON value) against its schema
 * (node/schemas/policy.ts) and the rules a schema cannot say. A field left
 * out takes its {@link defaultPolicy} value; an unknown field (the problem
 * lists the valid ones), a wrong type, a value out of range, a duplicate
 * entry, an invalid date, or — when `schema` is given — a column that is not
 * in the dataset's schema is refused.
 *
 * @throws InvalidPolicyError listing every field found wrong.
 */
export function parsePolicy(json: unknown, schema?: readonly { readonly name: string }[]): UsagePolicy {
  if (!isPlainObject(json)) {
    const objectLike = typeof json === "object" && json !== null && !Array.isArray(json);
    throw new InvalidPolicyError([{ field: "policy", problem: objectLike ? "must be a plain object" : "must be an object" }]);
  }
  const issues = schemaIssues(PolicySchema, json, "policy");
  const clean = (field: string) => !issues.some((i) => i.field === field || i.field.startsWith(`${field}[`) || i.field.startsWith(`${field}.`));
  const doc = json as PolicyDocument;
  const columnNames = schema === undefined ? undefined : new Set(schema.map((f) => f.name));
  const more: FieldIssue[] = [];
  const notInSchema = (name: string, field: string): boolean => {
    if (columnNames === undefined || columnNames.has(name)) return false;
    more.push({ field, problem: `column "${name}" is not in the dataset's schema` });
    return true;
  };

  const failed = (field: string) => !clean(field);
  // An entry that failed its schema is not compared with the others.
  if (Array.isArray(doc.allowedProtocols)) more.push(...duplicateIssues(doc.allowedProtocols, "allowedProtocols", failed));
  if (Array.isArray(doc.outputColumns)) {
    const seen = new Set<string>();
    doc.outputColumns.forEach((name, i) => {
      const f = `outputColumns[${i}]`;
      if (failed(f) || notInSchema(name, f)) return;
      if (seen.has(name)) more.push({ field: f, problem: "duplicate entry" });
      seen.add(name);
    });
  }
  if (doc.keyColumns !== undefined && Array.isArray(doc.keyColumns)) {
    // No key twice: a composite compared as a set.
    const seen = new Set<string>();
    doc.keyColumns.forEach((entry, i) => {
      const f = `keyColumns[${i}]`;
      if (!clean(f)) return;
      if (typeof entry !== "string") {
        const dup = duplicateIssues(entry, f, failed);
        if (dup.length > 0) return void more.push(...dup);
        if (entry.map((name, j) => notInSchema(name, `${f}[${j}]`)).some((x) => x)) return;
      } else if (notInSchema(entry, f)) return;
      const id = keySetId(typeof entry === "string" ? [entry] : entry);
      if (seen.has(id)) return void more.push({ field: f, problem: "duplicate entry" });
      seen.add(id);
    });
  }
  if (Array.isArray(doc.allowedBuyers)) more.push(...duplicateIssues(doc.allowedBuyers, "allowedBuyers", failed));
  if (typeof doc.expiresAt === "string" && clean("expiresAt") && !isRealDateTime(doc.expiresAt)) more.push({ field: "expiresAt", problem: "is not a valid date-time" });

  if (issues.length + more.length > 0) throw new InvalidPolicyError(inDocumentOrder([...issues, ...more], POLICY_FIELDS));
  const d = defaultPolicy();
  const policy: UsagePolicy = {
    allowedProtocols: doc.allowedProtocols ? [...doc.allowedProtocols] : d.allowedProtocols,
    outputColumns: doc.outputColumns ? [...doc.outputColumns] : d.outputColumns,
    keyColumns: doc.keyColumns ? doc.keyColumns.map((k) => (typeof k === "string" ? k : [...k])) : d.keyColumns,
    allowedBuyers: Array.isArray(doc.allowedBuyers) ? [...doc.allowedBuyers] : (doc.allowedBuyers ?? d.allowedBuyers),
    minGroupSize: doc.minGroupSize ?? d.minGroupSize,
    queryBudget: doc.queryBudget ?? d.queryBudget,
    budgetUnit: doc.budgetUnit ?? d.budgetUnit,
    expiresAt: doc.expiresAt ?? null,
  };
  if (doc.minIntersection !== undefined) policy.minIntersection = doc.minIntersection;
  return policy;
}

/** The canonical form of a key (a set of columns): its names sorted, as JSON. Two keys are the same key when these are equal. */
export function keySetId(columns: readonly string[]): string {
  return JSON.stringify([...new Set(columns)].sort());
}

// ---------------------------------------------------------------------------
// Job requests


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
  };
}


/** The protocols whose buyer result is withheld below a minimum intersection. */
export const INTERSECTION_PROTOCOLS: readonly ProtocolId[] = Object.freeze([ProtocolId.Psi, ProtocolId.PsiCardinality, ProtocolId.Lookup]);
/** The fields of `params.aggregate` each protocol takes. */
export const AGGREGATE_FIELDS_OF: Readonly<Partial<Record<ProtocolId, readonly string[]>>> = Object.freeze({
  [ProtocolId.FederatedAggregate]: Object.freeze(["aggregates", "groupBy", "histogram", "minProviders", "maxAbsValue", "scale", "maxRowsPerProvider", "approximate"]),
  [ProtocolId.JoinAggregate]: Object.freeze(["aggregates", "groupBy", "maxAbsValue", "scale", "maxJoinRows", "group"]),
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
  if (issues.length > 0) throw new InvalidJobRequestError(issues);
  return {
    protocol,
    buyer: rec.buyer,
    ...(multi ? { providerDatasets: [...(rec.providerDatasets as string[])] } : { buyerDataset: rec.buyerDataset as string, providerDataset: rec.providerDataset as string }),
    params,
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
  if ((protocol === ProtocolId.Psi || protocol === ProtocolId.PsiCardinality) && outputs.length > 0) {
    add("params.outputColumns", `protocol ${protocol} outputs no provider column`);
  }
  if (protocol === ProtocolId.Lookup && outputs.length === 0) add("params.outputColumns", "protocol lookup needs at least one column");
}

// ---------------------------------------------------------------------------
// The check

/** What {@link checkJob} needs besides the policy: the time, and the buyer's remaining budget in the policy's unit. */
export interface PolicyContext {
  readonly now: Date;
  /** What remains of this buyer's budget on this dataset, in `policy.budgetUnit` (never above `policy.queryBudget`). */
  readonly budgetRemaining: number;
}

/** The k a job runs with: the larger of the policy's and the job's own. */
export function effectiveMinGroupSize(policy: UsagePolicy, request: JobRequest): number {
  return Math.max(policy.minGroupSize, request.params.minGroupSize ?? 0);
}

/**
 * The fewest distinct matched keys a psi, psi-cardinality or lookup result
 * may have, as the job runs with it: the largest of the policy's
 * minIntersection, the job's own and — psi-cardinality, whose count is a
 * group of that size — k (undefined for the other protocols).
 */
export function effectiveMinIntersection(policy: UsagePolicy, request: JobRequest): number | undefined {
  if (!INTERSECTION_PROTOCOLS.includes(request.protocol)) return undefined;
  const k = request.protocol === ProtocolId.PsiCardinality ? effectiveMinGroupSize(policy, request) : 1;
  return Math.max(policy.minIntersection ?? 1, request.params.minIntersection ?? 1, k);
}

/**
 * The request as a two-party job runs: psi / psi-cardinality / lookup carry
 * the minimum intersection their buyer's agent enforces (and psi-cardinality
 * its k), filled from the policy, so the provider's agent and the buyer's
 * agent read the same thresholds from the job.
 */
export function withThresholds(policy: UsagePolicy, request: JobRequest): JobRequest {
  const t = effectiveMinIntersection(policy, request);
  if (t === undefined) return request;
  const params = { ...request.params, minIntersection: t };
  if (request.protocol === ProtocolId.PsiCardinality) params.minGroupSize = effectiveMinGroupSize(policy, request);
  return { ...request, params };
}

/**
 * What a job costs against the budget, in the policy's unit: 1 for "jobs";
 * the declared `queryCount` for "keys" (undefined when it is not declared) —
 * settled to the keys measured once the provider knows them; 1 for a
 * federated-aggregate job whatever the unit (it evaluates no buyer keys).
 */
export function jobCost(policy: UsagePolicy, request: JobRequest): number | undefined {
  // federated-aggregate evaluates no buyer keys: it costs one unit whatever the budget counts.
  if (policy.budgetUnit === BudgetUnit.Jobs || request.protocol === ProtocolId.FederatedAggregate) return 1;
  return request.params.queryCount;
}

/**
 * Whether a job's charge on this policy's budget is settled to the buyer's
 * measured distinct keys (a budget in keys, a protocol with buyer keys): the
 * provider reports them ("charged") and both it and the exchange give back
 * what the declared count reserved beyond them.
 */
export function settlesByKeys(policy: UsagePolicy, request: JobRequest): boolean {
  return policy.budgetUnit === BudgetUnit.Keys && request.protocol !== ProtocolId.FederatedAggregate;
}

/**
 * A buyer's remaining budget once a dataset's policy changes from `old` to
 * `next`: what it has spent stays spent (lower the budget below it and
 * nothing remains); when the budget's unit changes, spent amounts are not
 * comparable and the remainder is capped at the new budget.
 */
export function rebasedBudget(old: UsagePolicy, next: UsagePolicy, remaining: number): number {
  if (old.budgetUnit !== next.budgetUnit) return Math.min(remaining, next.queryBudget);
  const spent = Math.max(0, old.queryBudget - remaining);
  return Math.max(0, next.queryBudget - spent);
}

/**
 * Records a dataset's new policy version, and rebases every buyer's budget
 * row on it ({@link rebasedBudget}) in the same transaction.
 */
export function putPolicyVersion(store: Store, datasetId: string, policy: UsagePolicy): PolicyRecord {
  return store.transaction(() => {
    const prev = store.latestPolicy(datasetId);
    if (prev !== undefined) {
      const old = parsePolicy(prev.policy);
      for (const b of store.listBudgets(datasetId)) store.setBudget(datasetId, b.buyer, rebasedBudget(old, policy, b.remaining));
    }
    return store.putPolicy(datasetId, policy);
  });
}

/** Whether the policy has expired at `now`: it permits nothing from its `expiresAt` instant on. */
export function isPolicyExpired(policy: UsagePolicy, now: Date): boolean {
  return policy.expiresAt !== null && now.getTime() >= Date.parse(policy.expiresAt);
}

function list(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
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
    same(ap.keyColumns, fp.keyColumns) &&
    ap.queryCount === fp.queryCount &&
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
    if (COMPUTATION_FIELDS.includes(key)) {
      if (!same(w[key], g[key])) return false; // what is computed and how it is grouped: never changed, never added
    } else if (FILLABLE_FIELDS.includes(key)) {
      if (w[key] !== undefined && !same(w[key], g[key])) return false; // bounds the buyer gave: kept; those it left out: filled
    } else return false;
  }
  return true;
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

/**
 * Checks a job against a dataset's policy; returns when every rule passes.
 * The rules and their order are in this file's header.
 *
 * @throws PolicyDeniedError for the first rule that fails (code UMBRA_POLICY_DENIED).
 * @throws InvalidArgumentError when `ctx` is not a valid date and a non-negative budget.
 */
export function checkJob(policy: UsagePolicy, dataset: DatasetDescriptor, request: JobRequest, ctx: PolicyContext): void {
  if (!(ctx.now instanceof Date) || Number.isNaN(ctx.now.getTime())) throw new InvalidArgumentError("ctx.now must be a valid Date");
  if (typeof ctx.budgetRemaining !== "number" || Number.isNaN(ctx.budgetRemaining) || ctx.budgetRemaining < 0) {
    throw new InvalidArgumentError("ctx.budgetRemaining must be a non-negative number");
  }
  const protocol = request.protocol;

  if (request.providerDatasets !== undefined ? !request.providerDatasets.includes(dataset.id) : request.providerDataset !== dataset.id) {
    throw new PolicyDeniedError(PolicyRule.DatasetMismatch, "the job names another provider dataset than the one this policy governs");
  }
  if (isPolicyExpired(policy, ctx.now)) {
    throw new PolicyDeniedError(PolicyRule.PolicyExpired, "the dataset's policy has expired");
  }
  if (policy.allowedBuyers !== "any" && !policy.allowedBuyers.includes(request.buyer)) {
    throw new PolicyDeniedError(PolicyRule.BuyerNotAllowed, "the buyer is not allowed to use this dataset");
  }
  if (!policy.allowedProtocols.includes(protocol)) {
    throw new PolicyDeniedError(PolicyRule.ProtocolNotAllowed, `protocol ${protocol} is not allowed on this dataset`, { protocol });
  }

  const schema = new Set(dataset.schema.map((f) => f.name));
  const missingKeys = request.params.keyColumns.filter((k) => !schema.has(k));
  const needsKeys = protocol !== ProtocolId.FederatedAggregate;
  if ((needsKeys && request.params.keyColumns.length === 0) || missingKeys.length > 0) {
    throw new PolicyDeniedError(
      PolicyRule.KeyColumnMissing,
      missingKeys.length > 0 ? `key columns not in the dataset: ${list(missingKeys)}` : "the job names no key column",
      { columns: missingKeys, protocol },
    );
  }

  if (needsKeys) {
    const asked = keySetId(request.params.keyColumns);
    if (!policy.keyColumns.some((k) => keySetId(typeof k === "string" ? [k] : k) === asked)) {
      const offered = policy.keyColumns.length === 0 ? "the policy allows no key column" : `the policy's keys are ${policy.keyColumns.map((k) => (typeof k === "string" ? `"${k}"` : `(${list(k)})`)).join(", ")}`;
      throw new PolicyDeniedError(PolicyRule.KeyColumnNotAllowed, `the key ${list(request.params.keyColumns)} is not one the policy allows (${offered})`, {
        columns: request.params.keyColumns.filter((col) => !policy.keyColumns.some((k) => (typeof k === "string" ? k === col : k.includes(col)))),
        protocol,
      });
    }
  }

  const allowed = new Set(policy.outputColumns.filter((col) => schema.has(col)));
  const refused = (request.params.outputColumns ?? []).filter((col) => !allowed.has(col));
  if (refused.length > 0) {
    throw new PolicyDeniedError(PolicyRule.ColumnNotAllowed, `output columns not allowed by the policy: ${list(refused)}`, { columns: refused, protocol });
  }

  const asked = request.params.minGroupSize;
  if (K_PROTOCOLS.includes(protocol) && asked !== undefined && asked < policy.minGroupSize) {
    throw new PolicyDeniedError(
      PolicyRule.GroupSizeBelowMinimum,
      `protocol ${protocol} asks for a minimum group size of ${asked}, below the policy's ${policy.minGroupSize}`,
      { protocol },
    );
  }

  const minIntersection = request.params.minIntersection;
  if (INTERSECTION_PROTOCOLS.includes(protocol) && minIntersection !== undefined && policy.minIntersection !== undefined && minIntersection < policy.minIntersection) {
    throw new PolicyDeniedError(
      PolicyRule.IntersectionBelowMinimum,
      `protocol ${protocol} asks for a minimum intersection of ${minIntersection}, below the policy's ${policy.minIntersection}`,
      { protocol },
    );
  }

  const cost = jobCost(policy, request);
  if (cost === undefined) {
    throw new PolicyDeniedError(PolicyRule.QueryCountMissing, "the budget is counted in keys and the job declares no queryCount", { protocol });
  }
  const remaining = Math.min(ctx.budgetRemaining, policy.queryBudget);
  if (cost > remaining) {
    throw new PolicyDeniedError(
      PolicyRule.BudgetExhausted,
      `the job needs ${cost} ${policy.budgetUnit === BudgetUnit.Jobs ? (cost === 1 ? "job" : "jobs") : "keys"} of budget, ${remaining} remain`,
      { protocol },
    );
  }
}
