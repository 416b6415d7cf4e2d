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
 *  12. `dp-required`             the policy sets a `privacyBudget` and a federated-aggregate or
 *                                join-aggregate job declares no `params.aggregate.dp`
 *  13. `privacy-budget-exhausted` the job's ρ exceeds what remains of the buyer's `privacyBudget`
 *                                (spent ρ adds up exactly, as rationals: node/rho.ts)
 *  14. `normalise-merges-keys`   the job asks for digitsOnly on a key column whose recorded shape
 *                                (node/key-shape.ts) is not digits or formatted digits: keeping only
 *                                the digits of "US100" and "UK100" would make them one key, and one
 *                                key evaluated (and charged) would reveal the rows of many
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
 *
 * ## A policy's own checks
 *
 * A policy is registered on a dataset (the party agent, then the exchange:
 * {@link parsePolicy} with the dataset's schema); every problem is listed at
 * once ({@link policyIssues}, what `umbra policy check` prints), and one that
 * allows no protocol is refused. Every field, its default and an example per
 * protocol: docs/policy.md.
 */
import { InvalidArgumentError, UmbraError } from "../engine/errors.js";
import { protocolDescription, ProtocolId } from "../protocols/index.js";
import { KeyShape, type DatasetDescriptor } from "./schemas/dataset.js";
import { duplicateIssues, inDocumentOrder, InvalidDocumentError, isPlainObject, PolicyErrorCode, schemaIssues, type FieldIssue } from "./schemas/check.js";
import { isRealDateTime, MAX_COLUMN_NAME_LENGTH, MAX_ID_LENGTH, MAX_LIST_LENGTH } from "./schemas/common.js";
import { BudgetUnit, MAX_KEY_PARTS, MAX_MIN_GROUP_SIZE, POLICY_FIELDS, PolicySchema, type PolicyDocument } from "./schemas/policy.js";
import { INTERSECTION_PROTOCOLS, K_PROTOCOLS, type JobRequest } from "./job-request.js";

// Job requests are node/job-request.ts's; re-exported here, where the node's modules have always read them.
export * from "./job-request.js";

import type { PolicyRecord, Store } from "./store.js";
import { addRho, DP_PROTOCOLS, jobRho, rhoExceeds, rhoOf, rhoText, storedRho, subtractRho } from "./rho.js";

export { InvalidDocumentError, PolicyErrorCode, MAX_COLUMN_NAME_LENGTH, MAX_ID_LENGTH, MAX_LIST_LENGTH, BudgetUnit, MAX_KEY_PARTS, MAX_MIN_GROUP_SIZE, PolicySchema, type FieldIssue, type PolicyDocument };

// ---------------------------------------------------------------------------
// Errors

/** A usage policy that is not well formed (code UMBRA_INVALID_POLICY). */
export class InvalidPolicyError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("policy", issues, PolicyErrorCode.InvalidPolicy);
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
  DpRequired: "dp-required",
  PrivacyBudgetExhausted: "privacy-budget-exhausted",
  NormaliseMergesKeys: "normalise-merges-keys",
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
  /** The zCDP ρ each buyer may spend in all, "num/den" in lowest terms; absent: no privacy budget (federated-aggregate's dp is then optional and not charged). */
  privacyBudget?: { rho: string };
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
 * Everything wrong with a policy (a parsed JSON value), every problem at
 * once, in document order: its form against its schema
 * (node/schemas/policy.ts: an unknown field — the problem lists the valid
 * ones and the nearest —, a wrong type, a value out of range), a duplicate
 * entry, an invalid date, a column not in the dataset's `schema` (when
 * given), and a policy that allows nothing (no protocol). Empty when the
 * policy is good. What `umbra policy check` reports.
 */
export function policyIssues(json: unknown, schema?: readonly { readonly name: string }[]): FieldIssue[] {
  return formIssues(json, schema, true);
}

/**
 * Validates a policy (a parsed JSON value) and fills its defaults: a field
 * left out takes its {@link defaultPolicy} value. With the dataset's
 * `schema` — a policy being registered on that dataset, as the party agent
 * and the exchange do — every problem {@link policyIssues} finds is refused,
 * a policy that allows nothing among them. Without one — a policy read back
 * from the store, checked when it was registered — only its form is.
 *
 * @throws InvalidPolicyError listing every problem found.
 */
export function parsePolicy(json: unknown, schema?: readonly { readonly name: string }[]): UsagePolicy {
  const issues = formIssues(json, schema, schema !== undefined);
  if (issues.length > 0) throw new InvalidPolicyError(issues);
  const doc = json as PolicyDocument;
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
  if (doc.privacyBudget !== undefined) policy.privacyBudget = { rho: rhoText(rhoOf(doc.privacyBudget.rho)) };
  return policy;
}

/** The problem of a policy that allows no protocol: nothing could ever run on its dataset. */
export const ALLOWS_NOTHING = `the policy allows nothing: add at least one protocol under allowedProtocols (${Object.values(ProtocolId).join(", ")}), e.g. "allowedProtocols": ["psi"]; umbra policy init --protocol psi writes an example`;

function formIssues(json: unknown, schema: readonly { readonly name: string }[] | undefined, mustAllow: boolean): FieldIssue[] {
  if (!isPlainObject(json)) {
    const objectLike = typeof json === "object" && json !== null && !Array.isArray(json);
    return [{ field: "policy", problem: objectLike ? "must be a plain object" : "must be an object" }];
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
  if (mustAllow && clean("allowedProtocols") && (doc.allowedProtocols ?? []).length === 0) more.push({ field: "allowedProtocols", problem: ALLOWS_NOTHING });
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
  if (isPlainObject(doc.privacyBudget) && clean("privacyBudget")) {
    try {
      rhoOf(doc.privacyBudget.rho);
    } catch {
      more.push({ field: "privacyBudget.rho", problem: 'must be a positive rational: "num/den", a decimal such as "0.5", or a positive number' });
    }
  }
  return inDocumentOrder([...issues, ...more], POLICY_FIELDS);
}

/**
 * What a well-formed policy permits less of than its author likely meant,
 * each a field and what to do: no buyer; a protocol that joins on a key and
 * no key column; lookup or federated-aggregate and no output column; k or
 * minIntersection set and no protocol they apply to; an expiry already
 * past at `now`. Not refusals (a provider may mean them): `umbra policy
 * check` prints them.
 */
export function policyWarnings(json: PolicyDocument, now: Date = new Date()): FieldIssue[] {
  const p = parsePolicy(json);
  const out: FieldIssue[] = [];
  const allowed = (f: (d: ReturnType<typeof protocolDescription>) => boolean) => p.allowedProtocols.filter((id) => f(protocolDescription(id)));
  if (p.allowedBuyers !== "any" && p.allowedBuyers.length === 0) {
    out.push({ field: "allowedBuyers", problem: 'no buyer may use the dataset: list the buyers\' party names (e.g. ["bank"]), or "any"' });
  }
  const joining = allowed((d) => d.buyerKeys);
  if (joining.length > 0 && p.keyColumns.length === 0) {
    out.push({ field: "keyColumns", problem: `${joining.join(", ")} join${joining.length === 1 ? "s" : ""} on a key and the policy names none: list the column(s) a buyer may join on, e.g. ["phone"]` });
  }
  const reading = p.allowedProtocols.filter((id) => id === ProtocolId.Lookup || id === ProtocolId.FederatedAggregate);
  if (reading.length > 0 && p.outputColumns.length === 0) {
    out.push({ field: "outputColumns", problem: `${reading.join(", ")} release${reading.length === 1 ? "s" : ""} columns and the policy allows none: list the columns a buyer may receive or aggregate` });
  }
  if (json.minGroupSize !== undefined && allowed((d) => d.k).length === 0) out.push({ field: "minGroupSize", problem: `applies to none of the allowed protocols (only to ${K_PROTOCOLS.join(", ")})` });
  if (json.minIntersection !== undefined && allowed((d) => d.minIntersection).length === 0) {
    out.push({ field: "minIntersection", problem: `applies to none of the allowed protocols (only to ${INTERSECTION_PROTOCOLS.join(", ")})` });
  }
  if (isPolicyExpired(p, now)) out.push({ field: "expiresAt", problem: "is past: the policy permits nothing; set a later date-time, or null for never" });
  return out;
}

/** The canonical form of a key (a set of columns): its names sorted, as JSON. Two keys are the same key when these are equal. */
export function keySetId(columns: readonly string[]): string {
  return JSON.stringify([...new Set(columns)].sort());
}

// ---------------------------------------------------------------------------
// The check

/** What {@link checkJob} needs besides the policy: the time, and the buyer's remaining budget in the policy's unit. */
export interface PolicyContext {
  readonly now: Date;
  /** What remains of this buyer's budget on this dataset, in `policy.budgetUnit` (never above `policy.queryBudget`). */
  readonly budgetRemaining: number;
  /** The zCDP ρ this buyer has spent on this dataset, "num/den" (default none: "0/1"). */
  readonly privacySpent?: string;
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
  // A count released under k (psi-cardinality) is a group of that size: k is a floor on it too.
  const k = protocolDescription(request.protocol).k ? effectiveMinGroupSize(policy, request) : 1;
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
  if (protocolDescription(request.protocol).k) params.minGroupSize = effectiveMinGroupSize(policy, request);
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
  if (policy.budgetUnit === BudgetUnit.Jobs || !protocolDescription(request.protocol).buyerKeys) return 1;
  return request.params.queryCount;
}

/**
 * Whether a job's charge on this policy's budget is settled to the buyer's
 * measured distinct keys (a budget in keys, a protocol with buyer keys): the
 * provider reports them ("charged") and both it and the exchange give back
 * what the declared count reserved beyond them.
 */
export function settlesByKeys(policy: UsagePolicy, request: JobRequest): boolean {
  return policy.budgetUnit === BudgetUnit.Keys && protocolDescription(request.protocol).buyerKeys;
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
  const needsKeys = protocolDescription(protocol).buyerKeys;
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

  checkPrivacy(policy, request, ctx.privacySpent ?? "0/1");

  if (request.params.normalise?.digitsOnly === true) {
    // Only digits (formatted or not) keep their meaning when reduced to their digits; an unrecorded shape fails closed.
    const digitsOnly = (f: DatasetDescriptor["schema"][number] | undefined) => f?.keyShape === KeyShape.Digits || f?.keyShape === KeyShape.FormattedDigits;
    const merging = request.params.keyColumns.filter((k) => !digitsOnly(dataset.schema.find((f) => f.name === k)));
    if (merging.length > 0) {
      throw new PolicyDeniedError(
        PolicyRule.NormaliseMergesKeys,
        `digitsOnly would merge distinct keys of ${list(merging)}: its recorded key shape is not digits or formatted digits (two keys that differ only in letters would become one; a dataset registered before key shapes has none until its provider registers it again with --update); submit without --digits-only`,
        { columns: merging, protocol },
      );
    }
  }
}

/**
 * Rules 12 and 13: a dataset with a privacy budget takes federated-aggregate
 * and join-aggregate jobs (DP_PROTOCOLS) only with dp, each within what
 * remains of the buyer's ρ.
 * @throws PolicyDeniedError (dp-required, privacy-budget-exhausted)
 */
export function checkPrivacy(policy: UsagePolicy, request: JobRequest, spent: string): void {
  if (policy.privacyBudget === undefined || !DP_PROTOCOLS.has(request.protocol)) return;
  const rho = jobRho(request);
  if (rho === undefined) {
    throw new PolicyDeniedError(PolicyRule.DpRequired, "the dataset's policy sets a privacy budget: the job must declare differential privacy (params.aggregate.dp, --rho)", { protocol: request.protocol });
  }
  const remaining = subtractRho(storedRho(policy.privacyBudget.rho), storedRho(spent));
  if (rhoExceeds(rho, remaining)) {
    throw new PolicyDeniedError(PolicyRule.PrivacyBudgetExhausted, `the job's ρ ${rhoText(rho)} exceeds the ${rhoText(remaining)} that remains of the privacy budget`, { protocol: request.protocol });
  }
}

/** One dataset's privacy spend by a job, as the ledger records it. */
export interface PrivacySpend {
  readonly dataset: string;
  readonly rho: string;
  readonly spent: string;
  readonly remaining: string;
}

/**
 * Gives a job's ρ back to a dataset's privacy budget (a job refused before
 * it ran: nothing was released); the spend after it, "num/den". Call it in
 * the transaction that records the refusal.
 */
export function refundPrivacy(store: Store, datasetId: string, buyer: string, rho: string): string {
  const spent = rhoText(subtractRho(storedRho(store.getPrivacySpent(datasetId, buyer)), storedRho(rho)));
  store.setPrivacySpent(datasetId, buyer, spent);
  return spent;
}

/**
 * Spends a job's ρ on a dataset's privacy budget, checked again against
 * the store (call it inside the transaction that records the job, so two
 * jobs racing for the last of a budget cannot both pass); undefined when
 * the policy has no privacy budget or the job no dp (nothing is spent).
 * @throws PolicyDeniedError (privacy-budget-exhausted, dp-required) with nothing written
 */
export function spendPrivacy(store: Store, datasetId: string, policy: UsagePolicy, request: JobRequest): PrivacySpend | undefined {
  if (policy.privacyBudget === undefined || !DP_PROTOCOLS.has(request.protocol)) return undefined;
  const before = store.getPrivacySpent(datasetId, request.buyer);
  checkPrivacy(policy, request, before);
  const rho = jobRho(request);
  if (rho === undefined) return undefined;
  const spent = addRho(storedRho(before), rho);
  store.setPrivacySpent(datasetId, request.buyer, rhoText(spent));
  return { dataset: datasetId, rho: rhoText(rho), spent: rhoText(spent), remaining: rhoText(subtractRho(storedRho(policy.privacyBudget.rho), spent)) };
}
