/**
 * A usage policy as a document: the JSON Schema of what a provider registers
 * with a dataset (every field optional: one left out takes its default, see
 * node/policy.ts defaultPolicy). The route schemas (so the OpenAPI document
 * shows a policy's fields) and parsePolicy both check a policy with it;
 * parsePolicy adds the rules a schema cannot say (no entry twice, a column
 * the dataset has, a real calendar date).
 */
import { Type, type Static } from "typebox";
import { ProtocolId } from "../../protocols/index.js";
import { ColumnName, Identifier, Int, IsoDateTime, MAX_LIST_LENGTH } from "./common.js";
import { DOCUMENT_KEYWORD } from "./check.js";

/** Largest minimum group size a policy may set. */
export const MAX_MIN_GROUP_SIZE = 1_000_000_000;
/** Most columns in one composite key. */
export const MAX_KEY_PARTS = 16;

/** The unit of a policy's query budget: evaluated keys (lookup keys, the buyer's distinct keys) or whole jobs. */
export const BudgetUnit = { Keys: "keys", Jobs: "jobs" } as const;
export type BudgetUnit = (typeof BudgetUnit)[keyof typeof BudgetUnit];

export const ProtocolIdSchema = Type.Unsafe<ProtocolId>({ type: "string", enum: Object.values(ProtocolId) });

/** One key a buyer may join on: a column, or a composite of 2 to 16 columns. */
export const KeyColumnSchema = Type.Union([ColumnName, Type.Array(ColumnName, { minItems: 2, maxItems: MAX_KEY_PARTS })], {
  description: `a column name, or an array of 2 to ${MAX_KEY_PARTS} column names for a composite key`,
});

export const PolicySchema = Type.Object(
  {
    allowedProtocols: Type.Optional(Type.Array(ProtocolIdSchema, { maxItems: MAX_LIST_LENGTH, description: "an array of the protocols a buyer may run on the dataset" })),
    outputColumns: Type.Optional(Type.Array(ColumnName, { maxItems: MAX_LIST_LENGTH, description: "an array of the columns allowed in outputs (lookup labels, aggregate inputs)" })),
    keyColumns: Type.Optional(
      Type.Array(KeyColumnSchema, {
        maxItems: MAX_LIST_LENGTH,
        description: 'an array of key columns, each a column name or an array of column names for a composite key, e.g. ["phone", ["first_name", "birth_date"]]',
      }),
    ),
    allowedBuyers: Type.Optional(Type.Union([Type.Literal("any"), Type.Array(Identifier, { maxItems: MAX_LIST_LENGTH })], { description: '"any" or an array of buyer identities' })),
    minGroupSize: Type.Optional(Int(1, MAX_MIN_GROUP_SIZE)),
    queryBudget: Type.Optional(Int(0)),
    budgetUnit: Type.Optional(Type.Unsafe<BudgetUnit>({ type: "string", enum: Object.values(BudgetUnit) })),
    expiresAt: Type.Optional(Type.Union([IsoDateTime, Type.Null()], { description: "an ISO 8601 date-time with a time zone (e.g. 2025-01-31T23:59:59Z), or null for never" })),
    minIntersection: Type.Optional(Int(1)),
  },
  { additionalProperties: false, [DOCUMENT_KEYWORD]: "policy", description: "an object, a dataset's usage policy: a field left out takes its default (which fails closed)" },
);

/** A policy as a provider writes it (every field optional). */
export type PolicyDocument = Static<typeof PolicySchema>;

/** The fields of a policy, in the order they are checked and reported. */
export const POLICY_FIELDS: readonly string[] = Object.freeze(Object.keys(PolicySchema.properties));
