/**
 * The bodies of the exchange's routes and the party agent's, as JSON Schema
 * (TypeBox): the route schemas (node/server/exchange/routes/,
 * node/server/party.ts) are these, so every body is checked before its
 * handler runs and the OpenAPI documents describe each of them.
 *
 * The registration and the job event are checked by Fastify's own ajv (a
 * field an event does not carry is removed before it is read); the dataset
 * registration by the document checker (node/server/validation.ts: a policy
 * or descriptor with an unknown field is refused, naming it).
 */
import { Type, type Static } from "typebox";
import { DatasetDescriptorSchema } from "./dataset.js";
import { PolicySchema } from "./policy.js";
import { Identifier } from "./common.js";
import { DOCUMENT_KEYWORD } from "./check.js";
import { JobRequestSchema } from "./job-request.js";

/** The party agent's POST /v1/jobs: a job request, whose buyer the agent fills in (itself). */
export const LocalJobRequestSchema = Type.Object(
  { ...JobRequestSchema.properties, buyer: Type.Optional(Identifier) },
  { additionalProperties: false, [DOCUMENT_KEYWORD]: "job-request", description: "an object, a job request: the agent submits it as its own (buyer: this party)" },
);

/** The party agent's POST /v1/datasets: a file of its data folder and the policy it is offered under. */
export const LocalDatasetRegistrationSchema = Type.Object(
  {
    file: Type.String({ minLength: 1, maxLength: 1024, description: "a file in the agent's data folder (Arrow IPC, CSV or Parquet)" }),
    policy: PolicySchema,
    update: Type.Optional(Type.Boolean({ description: "a boolean: true registers a file registered already again, as a new policy version" })),
  },
  { additionalProperties: false },
);

/** POST /v1/datasets/check (the console): a file and a policy checked as registration would, nothing registered. */
export const LocalDatasetCheckSchema = Type.Object(
  {
    file: Type.String({ minLength: 1, maxLength: 1024, description: "a file in the agent's data folder (Arrow IPC, CSV or Parquet)" }),
    policy: PolicySchema,
  },
  { additionalProperties: false },
);

/** A 32-byte public key, as hex. */
const KeyHex = Type.String({ pattern: "^[0-9a-f]{64}$", description: "a 32-byte public key as 64 lower-case hex digits" });

/** POST /v1/parties: a party registers (or re-registers) its keys. */
export const PartyRegistrationSchema = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9._-]{1,64}$" }),
    signingPublicKey: KeyHex,
    boxPublicKey: KeyHex,
    maskPublicKey: Type.Optional(KeyHex),
    endpoint: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
    role: Type.Optional(Type.Unsafe<"provider" | "buyer">({ type: "string", enum: ["provider", "buyer"] })),
    invite: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "the invitation code for a new name" })),
  },
  { additionalProperties: false },
);
export type PartyRegistration = Static<typeof PartyRegistrationSchema>;

/** POST /v1/datasets: a provider registers a dataset (or a new version of its policy). */
export const DatasetRegistrationSchema = Type.Object({ descriptor: DatasetDescriptorSchema, policy: PolicySchema }, { additionalProperties: false });

/** The kinds of a job event. */
export const JOB_EVENT_KINDS = ["accepted", "refused", "progress", "succeeded", "failed", "charged"] as const;

/** POST /v1/jobs/:id/events: kind, and only the fields an event carries, each bounded. Anything else is removed before it is read. */
export const JobEventSchema = Type.Object(
  {
    kind: Type.Unsafe<(typeof JOB_EVENT_KINDS)[number]>({ type: "string", enum: [...JOB_EVENT_KINDS] }),
    rule: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
    digest: Type.Optional(Type.String({ pattern: "^[0-9a-f]{64}$" })),
    units: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    // succeeded: the units the buyer's agent measured, reported only when a contract of the job prices them (docs/venue.md).
    matchedRows: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    cells: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    progress: Type.Optional(
      Type.Object(
        { phase: Type.String({ pattern: "^[ -~]{1,64}$" }), done: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), total: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type JobEventBody = Static<typeof JobEventSchema>;

/** Most acknowledgements in one POST /v1/mailbox/ack (one per job: a party acknowledges its jobs' envelopes together). */
export const MAX_ACKS = 256;

/** POST /v1/mailbox/ack: per job, the delivery number up to which the party has durably processed its envelopes. */
export const MailboxAckSchema = Type.Object(
  {
    acks: Type.Array(
      Type.Object(
        {
          job: Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9._:-]+$" }),
          upTo: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: MAX_ACKS },
    ),
  },
  { additionalProperties: false },
);
export type MailboxAckBody = Static<typeof MailboxAckSchema>;
