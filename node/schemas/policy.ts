/**
 * A usage policy as a document: the JSON Schema of what a provider registers
 * with a dataset (every field optional: one left out takes its default, see
 * node/policy.ts defaultPolicy). The one source of a policy's form: the route
 * schemas (so both servers' OpenAPI documents show every field with its
 * description and default), parsePolicy, `umbra policy check` and
 * docs/policy.md's field table (test/policy-cli.test.ts compares them) all
 * read it. parsePolicy adds the rules a schema cannot say (no entry twice, a
 * column the dataset has, a real calendar date, at least one protocol).
 *
 * Each description says what is allowed, then what the field means: a
 * refusal quotes it ("must be …").
 */
import { Type, type Static } from "typebox";
import { ProtocolId } from "../../protocols/index.js";
import { ColumnName, Identifier, IsoDateTime, MAX_LIST_LENGTH, Rho } from "./common.js";
import { DOCUMENT_KEYWORD } from "./check.js";

/** Largest minimum group size a policy may set. */
export const MAX_MIN_GROUP_SIZE = 1_000_000_000;
/** Most columns in one composite key. */
export const MAX_KEY_PARTS = 16;
/** k when a policy does not set it. */
export const DEFAULT_MIN_GROUP_SIZE = 10;
/** A buyer's budget when a policy does not set it (in the default unit, jobs). */
export const DEFAULT_QUERY_BUDGET = 100;

/** The unit of a policy's query budget: evaluated keys (lookup keys, the buyer's distinct keys) or whole jobs. */
export const BudgetUnit = { Keys: "keys", Jobs: "jobs" } as const;
export type BudgetUnit = (typeof BudgetUnit)[keyof typeof BudgetUnit];

/** The field a policy's author writes notes in (as in package.json): a string or lines of text, ignored and not stored. */
export const POLICY_COMMENT_FIELD = "//";
/** Most lines in a policy's comment. */
export const MAX_COMMENT_LINES = 200;

export const ProtocolIdSchema = Type.Unsafe<ProtocolId>({ type: "string", enum: Object.values(ProtocolId) });

/** One key a buyer may join on: a column, or a composite of 2 to 16 columns. */
export const KeyColumnSchema = Type.Union([ColumnName, Type.Array(ColumnName, { minItems: 2, maxItems: MAX_KEY_PARTS })], {
  description: `a column name, or an array of 2 to ${MAX_KEY_PARTS} column names for a composite key`,
});

const CommentLine = Type.String({ maxLength: 1000 });

export const PolicySchema = Type.Object(
  {
    allowedProtocols: Type.Optional(
      Type.Array(ProtocolIdSchema, {
        maxItems: MAX_LIST_LENGTH,
        default: [],
        description: `an array of the protocols a buyer may run on the dataset (${Object.values(ProtocolId).join(", ")}); at least one`,
      }),
    ),
    outputColumns: Type.Optional(
      Type.Array(ColumnName, {
        maxItems: MAX_LIST_LENGTH,
        default: [],
        description:
          "an array of the columns allowed in outputs: lookup's labels, the columns join-aggregate aggregates, every column federated-aggregate reads (aggregated, histogram, group-by); key columns need not be listed",
      }),
    ),
    keyColumns: Type.Optional(
      Type.Array(KeyColumnSchema, {
        maxItems: MAX_LIST_LENGTH,
        default: [],
        description:
          'an array of the keys a buyer may join on (psi, psi-cardinality, lookup, join-aggregate), each a column name or an array of column names for a composite key, e.g. ["phone", ["first_name", "birth_date"]]; a job\'s key must be exactly one of them',
      }),
    ),
    allowedBuyers: Type.Optional(
      Type.Union([Type.Literal("any"), Type.Array(Identifier, { maxItems: MAX_LIST_LENGTH })], {
        default: [],
        description: '"any" or an array of the buyers\' party names (as they registered at the exchange) that may use the dataset',
      }),
    ),
    minGroupSize: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_MIN_GROUP_SIZE,
        default: DEFAULT_MIN_GROUP_SIZE,
        description: `an integer from 1 to ${MAX_MIN_GROUP_SIZE}: k, the fewest keys a released group may describe (psi-cardinality, join-aggregate, federated-aggregate); a job runs with the larger of this and its own`,
      }),
    ),
    queryBudget: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        default: DEFAULT_QUERY_BUDGET,
        description: "an integer of at least 0: what each buyer may spend on the dataset in all, counted in budgetUnit",
      }),
    ),
    budgetUnit: Type.Optional(
      Type.Unsafe<BudgetUnit>({
        type: "string",
        enum: Object.values(BudgetUnit),
        default: BudgetUnit.Jobs,
        description: '"jobs" (each job costs 1) or "keys" (a job costs the buyer\'s distinct keys: it declares queryCount, and is charged the keys the provider measured; federated-aggregate costs 1)',
      }),
    ),
    expiresAt: Type.Optional(
      Type.Union([IsoDateTime, Type.Null()], {
        default: null,
        description: "an ISO 8601 date-time with a time zone (e.g. 2025-01-31T23:59:59Z), or null for never: from that instant the policy permits nothing",
      }),
    ),
    minIntersection: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: Number.MAX_SAFE_INTEGER,
        description:
          "an integer of at least 1: psi, psi-cardinality and lookup results matching fewer distinct keys are withheld from the buyer (a job runs with the larger of this and its own; psi-cardinality also with k); left out: 1",
      }),
    ),
    privacyBudget: Type.Optional(
      Type.Object(
        { rho: Rho },
        {
          additionalProperties: false,
          description:
            'an object { "rho": ρ }: the zCDP ρ each buyer may spend on the dataset in all (differential privacy, docs/differential-privacy.md); when set, every federated-aggregate and join-aggregate job on it must declare dp, and one whose ρ exceeds what remains is refused; left out: no privacy budget (DP is optional)',
        },
      ),
    ),
    [POLICY_COMMENT_FIELD]: Type.Optional(
      Type.Union([CommentLine, Type.Array(CommentLine, { maxItems: MAX_COMMENT_LINES })], {
        description: `a comment for the policy's readers, a string or an array of up to ${MAX_COMMENT_LINES} lines: ignored, and not stored`,
      }),
    ),
  },
  {
    additionalProperties: false,
    [DOCUMENT_KEYWORD]: "policy",
    title: "UsagePolicy",
    description:
      "an object, a dataset's usage policy: which buyers may run which protocols on it, on which keys and columns, under which k and budget, until when (a field left out takes its default, which fails closed; reference: docs/policy.md)",
  },
);

/** A policy as a provider writes it (every field optional). */
export type PolicyDocument = Static<typeof PolicySchema>;

/** The fields of a policy, in the order they are checked and reported (the comment is not one). */
export const POLICY_FIELDS: readonly string[] = Object.freeze(Object.keys(PolicySchema.properties).filter((f) => f !== POLICY_COMMENT_FIELD));
