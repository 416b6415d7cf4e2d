/**
 * A dataset descriptor's shape: what a provider registers about a dataset it
 * holds (name, schema, row count, content hash — never rows), as JSON Schema.
 * Its own module so that node/policy.ts (which checks jobs against a dataset)
 * and node/catalog.ts (which describes datasets and lists them under their
 * policies) both read it without importing each other. parseDatasetDescriptor
 * (node/catalog.ts) checks a descriptor with it and adds the rules a schema
 * cannot say (no column twice, a real calendar date).
 */
import { Type, type Static } from "typebox";
import { ColumnName, Identifier, Int, IsoDateTime, Text } from "./common.js";
import { DOCUMENT_KEYWORD } from "./check.js";

/** Longest dataset name accepted. */
export const MAX_DATASET_NAME_LENGTH = 256;
/** Longest type name accepted in a descriptor's schema. */
export const MAX_TYPE_NAME_LENGTH = 1024;
/** Most columns accepted in a descriptor's schema. */
export const MAX_COLUMNS = 10_000;

/** The coarse shape of a key column's values (node/key-shape.ts): never a value. */
export const KeyShape = { Digits: "digits", FormattedDigits: "formatted-digits", Alphanumeric: "alphanumeric", Mixed: "mixed" } as const;
export type KeyShape = (typeof KeyShape)[keyof typeof KeyShape];
export const KEY_SHAPES: readonly KeyShape[] = Object.freeze(Object.values(KeyShape));

export const DatasetDescriptorSchema = Type.Object(
  {
    id: Identifier,
    owner: Identifier,
    name: Text(MAX_DATASET_NAME_LENGTH, "a dataset name"),
    schema: Type.Array(
      Type.Object(
        {
          name: ColumnName,
          type: Text(MAX_TYPE_NAME_LENGTH, "an Arrow type name"),
          keyShape: Type.Optional(Type.Unsafe<KeyShape>({ type: "string", enum: [...KEY_SHAPES], description: `a key column's shape: ${KEY_SHAPES.join(", ")}` })),
        },
        { additionalProperties: false },
      ),
      {
        minItems: 1,
        maxItems: MAX_COLUMNS,
        description: "an array of the columns, in order: each a name, an Arrow type name (Utf8, Int64, Float64, …) and, for a key column, its shape",
      },
    ),
    rowCount: Int(0),
    contentHash: Type.String({ pattern: "^[0-9a-f]{64}$", description: "64 lower-case hex digits (SHA-256)" }),
    createdAt: IsoDateTime,
  },
  { additionalProperties: false, [DOCUMENT_KEYWORD]: "dataset", description: "an object, what a provider registers about a dataset: never its rows" },
);

/** A dataset as the catalog records it: what it is, never what it holds (schema: column names and Arrow type names, in order; contentHash: node/catalog.ts's header). */
export type DatasetDescriptor = Static<typeof DatasetDescriptorSchema>;

/** The names a descriptor is made with (describeDataset checks them before it reads a row). */
export const DescriptorNamesSchema = Type.Pick(DatasetDescriptorSchema, ["id", "owner", "name"]);

/** The fields of a descriptor, in the order they are checked and reported. */
export const DESCRIPTOR_FIELDS: readonly string[] = Object.freeze(Object.keys(DatasetDescriptorSchema.properties));
