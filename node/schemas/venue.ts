/**
 * The venue's documents (docs/venue.md) as JSON Schema (TypeBox): a product
 * as its provider writes it (`umbra product publish --file product.json`),
 * and a contract as the buyer's agent writes and every party signs it. The
 * parsers (node/venue/product.ts, node/venue/contract.ts), the exchange's
 * route bodies and its OpenAPI document all read these. Each description
 * says what is allowed: a refusal quotes it ("must be …").
 */
import { Type, type Static } from "typebox";
import { DOCUMENT_KEYWORD } from "./check.js";
import { ColumnName, Identifier, IsoDateTime, Text } from "./common.js";
import { ProtocolIdSchema } from "./policy.js";

/** Most datasets in one product. */
export const MAX_PRODUCT_DATASETS = 64;
/** Most entries of a product's other lists (output columns, auto-approve purposes and buyers). */
export const MAX_PRODUCT_LIST = 1000;
/** Longest purpose an order states. */
export const MAX_PURPOSE_LENGTH = 500;
/** Most jobs one contract may allow. */
export const MAX_QUOTA_JOBS = 1_000_000;

/** A product id: its owner's party name, a dot, and a slug (`acme.customer-matching`). */
export const ProductId = Type.String({
  pattern: "^[A-Za-z0-9._-]{1,64}\\.[a-z0-9][a-z0-9-]{0,62}$",
  description: "a product id: the owner's party name, a dot and a slug of 1 to 63 lower-case letters, digits and dashes (e.g. acme.customer-matching)",
});

/** A party name as the exchange registers it. */
export const PartyName = Type.String({ pattern: "^[A-Za-z0-9._-]{1,64}$", description: "a party name: 1 to 64 of A-Z a-z 0-9 . _ -" });

const Price = (what: string) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: `an integer of at least 0 in minor units of the currency: ${what}` });

/** A price schedule: integer minor units (cents) of one currency. */
export const PricesSchema = Type.Object(
  {
    currency: Type.String({ pattern: "^[A-Z]{3}$", description: "a currency code of 3 capital letters, as ISO 4217 (e.g. EUR, USD)" }),
    perJob: Price("the fee of each job"),
    perKey: Type.Optional(Price("the price of each key the buyer queries (its distinct keys)")),
    perMatchedRow: Type.Optional(Price("the price of each matched row")),
    perCell: Type.Optional(Price("the price of each released aggregate cell")),
  },
  { additionalProperties: false, description: "an object: currency, perJob and, optionally, perKey, perMatchedRow, perCell (left out: 0)" },
);
export type PricesDocument = Static<typeof PricesSchema>;

/** How a multi-provider job's revenue is shared (by receipts): equally, or by each provider's rows. */
export const ShareRule = { Equal: "equal", Rows: "rows" } as const;
export type ShareRule = (typeof ShareRule)[keyof typeof ShareRule];
const ShareSchema = Type.Unsafe<ShareRule>({ type: "string", enum: Object.values(ShareRule), description: '"equal" or "rows": how a multi-provider job\'s revenue is shared' });

/** Orders the provider's agent approves (signs) on its own when they fit: every field given must hold. */
export const AutoApproveSchema = Type.Object(
  {
    maxQuotaJobs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_QUOTA_JOBS, description: `an integer from 1 to ${MAX_QUOTA_JOBS}: the largest quota approved on its own` })),
    purposes: Type.Optional(Type.Array(Text(MAX_PURPOSE_LENGTH, "a purpose"), { minItems: 1, maxItems: MAX_PRODUCT_LIST, description: "an array of the purposes approved on their own (compared exactly)" })),
    buyers: Type.Optional(Type.Array(PartyName, { minItems: 1, maxItems: MAX_PRODUCT_LIST, description: "an array of the buyers whose orders are approved on their own" })),
  },
  { additionalProperties: false, description: "an object: the orders the provider's agent signs on its own (maxQuotaJobs, purposes, buyers: each given must hold)" },
);
export type AutoApproveDocument = Static<typeof AutoApproveSchema>;

export const ProductSchema = Type.Object(
  {
    id: ProductId,
    title: Text(200, "a title"),
    description: Type.Optional(Text(4000, "a description")),
    datasets: Type.Array(Identifier, { minItems: 1, maxItems: MAX_PRODUCT_DATASETS, description: `an array of 1 to ${MAX_PRODUCT_DATASETS} of the provider's own dataset ids` }),
    protocols: Type.Array(ProtocolIdSchema, { minItems: 1, maxItems: 16, description: "an array of the protocols a buyer may run (each allowed by every dataset's policy)" }),
    outputColumns: Type.Optional(Type.Array(ColumnName, { maxItems: MAX_PRODUCT_LIST, description: "an array of the columns a job may release (each allowed by the policy of every dataset that has it)" })),
    prices: PricesSchema,
    share: Type.Optional(ShareSchema),
    autoApprove: Type.Optional(AutoApproveSchema),
  },
  {
    additionalProperties: false,
    [DOCUMENT_KEYWORD]: "product",
    title: "Product",
    description: "an object, a product: what a provider offers over its datasets, under which terms and at which prices (docs/venue.md)",
  },
);
/** A product as its provider writes it. */
export type ProductDocument = Static<typeof ProductSchema>;
export const PRODUCT_FIELDS: readonly string[] = Object.freeze(Object.keys(ProductSchema.properties));

/** A contract as every party signs it (RFC 8785 canonical JSON, with a domain tag: node/venue/contract.ts). */
export const ContractSchema = Type.Object(
  {
    v: Type.Literal(1, { description: "1, the contract format's version" }),
    id: Type.String({ pattern: "^contract-[A-Za-z0-9-]{8,100}$", description: "a contract id: contract- and 8 to 100 letters, digits and dashes" }),
    product: Type.Object(
      {
        id: ProductId,
        version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
        digest: Type.String({ pattern: "^[0-9a-f]{64}$", description: "the product version's SHA-256, 64 lower-case hex digits" }),
      },
      { additionalProperties: false },
    ),
    buyer: PartyName,
    provider: PartyName,
    purpose: Text(MAX_PURPOSE_LENGTH, "a purpose"),
    quota: Type.Object({ jobs: Type.Integer({ minimum: 1, maximum: MAX_QUOTA_JOBS, description: `an integer from 1 to ${MAX_QUOTA_JOBS}: the jobs the contract allows` }) }, { additionalProperties: false }),
    prices: PricesSchema,
    share: ShareSchema,
    notBefore: IsoDateTime,
    notAfter: IsoDateTime,
  },
  { additionalProperties: false, [DOCUMENT_KEYWORD]: "contract", title: "Contract", description: "an object, a contract between a buyer and a provider over one product version (docs/venue.md)" },
);
export type ContractDocument = Static<typeof ContractSchema>;
export const CONTRACT_FIELDS: readonly string[] = Object.freeze(Object.keys(ContractSchema.properties));

const Signature = Type.String({ pattern: "^[0-9a-f]{128}$", description: "an Ed25519 signature, 128 lower-case hex digits" });

/** POST /v1/products: a provider publishes a product (a new version when its id exists). */
export const ProductPublicationSchema = Type.Object({ product: ProductSchema }, { additionalProperties: false });
/** POST /v1/orders: a buyer's order, the contract it signed. */
export const OrderSchema = Type.Object({ contract: ContractSchema, signature: Signature }, { additionalProperties: false });
/** POST /v1/contracts/:id/approve: the provider's signature of the contract. */
export const ApprovalSchema = Type.Object({ signature: Signature }, { additionalProperties: false });
/** POST /v1/contracts/:id/reject and /revoke: an optional reason code. */
export const EndContractSchema = Type.Object({ reason: Type.Optional(Type.String({ pattern: "^[a-z0-9-]{1,40}$", description: "a reason code: 1 to 40 lower-case letters, digits and dashes" })) }, { additionalProperties: false });
