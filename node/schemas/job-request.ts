/**
 * A buyer's job request as a document: the JSON Schema of every field's type
 * and bounds (node/policy.ts JobRequest says what each means). The exchange's
 * POST /v1/jobs route and parseJobRequest both check a request with it first;
 * parseJobRequest then applies the rules that tie fields together — which
 * form the request takes (one provider dataset or several), which parameters
 * fit its protocol, which computation fields each aggregate protocol takes,
 * no entry twice.
 */
import { Type, type Static } from "typebox";
import { HE_MAX_SCALE } from "../../engine/he/index.js";
import { FA_MAX_PROVIDERS, FA_MAX_SLOTS, JA_DP_MAX_ROWS_PER_KEY } from "../../protocols/index.js";
import { ColumnName, Identifier, Int, MAX_COLUMN_NAME_LENGTH, MAX_LIST_LENGTH, Rho, Text } from "./common.js";
import { DOCUMENT_KEYWORD } from "./check.js";
import { MAX_MIN_GROUP_SIZE, ProtocolIdSchema } from "./policy.js";

/** The aggregate a join-aggregate or federated-aggregate job computes. */
export const AggregateMode = { Count: "count", Sum: "sum", Avg: "avg", Var: "var", Histogram: "histogram" } as const;
export type AggregateMode = (typeof AggregateMode)[keyof typeof AggregateMode];

/** A function of a federated-aggregate or join-aggregate job (ARCHITECTURE.md: COUNT/SUM/AVG/VAR/STDDEV). */
export const AGGREGATE_FNS = ["count", "sum", "avg", "var", "stddev"] as const;
export type AggregateFn = (typeof AGGREGATE_FNS)[number];

/** The groups ECDH matching may run in (join-aggregate). */
export const JOIN_GROUPS = ["x25519", "ristretto255"] as const;
export type JoinGroup = (typeof JOIN_GROUPS)[number];

/** Largest `maxJoinRows` a join-aggregate job may declare (the protocol's bound). */
export const MAX_JOIN_ROWS = 2 ** 40;

const enumOf = <T extends string>(values: readonly T[], description?: string) => Type.Unsafe<T>({ type: "string", enum: [...values], ...(description ? { description } : {}) });

/** params.aggregate: every field any aggregate protocol takes (which of them a protocol takes is checked in code). */
export const AggregateParamsSchema = Type.Object(
  {
    aggregates: Type.Array(Type.Object({ fn: enumOf(AGGREGATE_FNS), column: Type.Optional(ColumnName) }, { additionalProperties: false }), {
      minItems: 1,
      maxItems: MAX_LIST_LENGTH,
      description: "an array of the aggregates, in output order: count, or a function (sum, avg, var, stddev) of a column",
    }),
    groupBy: Type.Optional(
      Type.Object(
        { column: ColumnName, categories: Type.Optional(Type.Array(Text(MAX_COLUMN_NAME_LENGTH, "a category"), { minItems: 1, maxItems: FA_MAX_SLOTS })) },
        { additionalProperties: false, description: "an object: the group-by column (and, for federated-aggregate, its declared categories)" },
      ),
    ),
    histogram: Type.Optional(
      Type.Object(
        { column: ColumnName, edges: Type.Array(Type.Number(), { minItems: 2, maxItems: FA_MAX_SLOTS + 1, description: "an array of the bin edges, strictly increasing" }) },
        { additionalProperties: false },
      ),
    ),
    minProviders: Type.Optional(Int(2, FA_MAX_PROVIDERS)),
    maxAbsValue: Type.Optional(
      Type.String({ maxLength: 64, pattern: "^(?=.*[1-9])(\\d+|\\d+\\.\\d*|\\.\\d+)$", description: 'a positive decimal string, e.g. "1000000" or "2.5"' }),
    ),
    scale: Type.Optional(Int(0, HE_MAX_SCALE)),
    maxRowsPerProvider: Type.Optional(Int(1)),
    maxJoinRows: Type.Optional(Int(1, MAX_JOIN_ROWS)),
    group: Type.Optional(enumOf(JOIN_GROUPS)),
    approximate: Type.Optional(Type.Boolean({ description: "true or false" })),
    dp: Type.Optional(
      Type.Object(
        { rho: Rho, maxRowsPerKey: Type.Optional(Int(1, JA_DP_MAX_ROWS_PER_KEY)) },
        {
          additionalProperties: false,
          description:
            "federated-aggregate, join-aggregate: differential privacy, ρ-zCDP in all (each provider — in join-aggregate the provider and the exchange — adds its share of discrete Gaussian noise); join-aggregate only: maxRowsPerKey, the cap on the buyer's rows per key (default 1; the noise grows with it)",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

/** params.aggregate as a buyer writes it. */
export type AggregateParamsDocument = Static<typeof AggregateParamsSchema>;

/** How both sides normalise their key columns before matching (beyond trim and NFC, always applied); each side applies the request's, to its own file. */
export const KeyNormaliseSchema = Type.Object(
  {
    digitsOnly: Type.Optional(Type.Boolean({ description: "true: keep only the ASCII digits of each key (formatted phone numbers match plain ones)" })),
    caseFold: Type.Optional(Type.Boolean({ description: "true: lower-case each key" })),
  },
  { additionalProperties: false, description: "an object: the key normalisation both sides apply (digitsOnly, caseFold)" },
);
export type KeyNormaliseDocument = Static<typeof KeyNormaliseSchema>;

export const JobParamsSchema = Type.Object(
  {
    keyColumns: Type.Optional(Type.Array(ColumnName, { maxItems: MAX_LIST_LENGTH, description: "an array of the join key columns (several for a composite key)" })),
    outputColumns: Type.Optional(Type.Array(ColumnName, { maxItems: MAX_LIST_LENGTH, description: "an array of the provider columns in the output" })),
    minGroupSize: Type.Optional(Int(1, MAX_MIN_GROUP_SIZE)),
    minIntersection: Type.Optional(Int(1, MAX_MIN_GROUP_SIZE)),
    mode: Type.Optional(enumOf(Object.values(AggregateMode))),
    queryCount: Type.Optional(Int(1)),
    aggregate: Type.Optional(AggregateParamsSchema),
    normalise: Type.Optional(KeyNormaliseSchema),
  },
  { additionalProperties: false },
);

export const JobRequestSchema = Type.Object(
  {
    protocol: ProtocolIdSchema,
    buyer: Identifier,
    buyerDataset: Type.Optional(Identifier),
    providerDataset: Type.Optional(Identifier),
    providerDatasets: Type.Optional(Type.Array(Identifier, { minItems: 2, maxItems: FA_MAX_PROVIDERS, description: "an array of a multi-provider job's provider datasets, in provider order" })),
    params: JobParamsSchema,
    contracts: Type.Optional(
      Type.Array(Type.String({ pattern: "^contract-[A-Za-z0-9-]{8,100}$", description: "a contract id" }), {
        minItems: 1,
        maxItems: FA_MAX_PROVIDERS,
        description: "an array of the contracts the job runs under (docs/venue.md): one per product whose datasets it touches",
      }),
    ),
  },
  { additionalProperties: false, [DOCUMENT_KEYWORD]: "job-request", description: "an object, a buyer's job: against one provider dataset, or (federated-aggregate) several" },
);

/** A job request as a buyer writes it. */
export type JobRequestDocument = Static<typeof JobRequestSchema>;

/** The fields of a job request, in the order they are checked and reported. */
export const JOB_REQUEST_FIELDS: readonly string[] = Object.freeze(Object.keys(JobRequestSchema.properties));
