/**
 * The HTTP edge of the node's typed errors: one table from error code to
 * status, and one Fastify plugin that answers every error a route throws —
 * the exchange's and the party agent's alike — as
 * `{ error: { code, message, rule? } }`.
 *
 * Handlers throw typed errors (node/errors.ts, node/policy.ts, …) and never
 * set a status themselves; an error that is not an UmbraError is a 400
 * (UMBRA_BAD_REQUEST) when Fastify gave it a client status (a body that is
 * not JSON, too large, failing its schema) and otherwise a 500 whose message
 * says nothing (it may quote data).
 */
import type { FastifyInstance, FastifyPluginCallback } from "fastify";
import { UmbraError } from "../../engine/errors.js";
import { PolicyDeniedError } from "../policy.js";
import { ContractDeniedError } from "../venue/contract.js";
import { MeteringRefusedError } from "../venue/metering.js";
import { ReceiptRefusedError } from "../venue/receipt.js";
import { ExchangeError } from "./client.js";
import { MailboxFullError } from "./mailbox.js";

/** Error code → HTTP status. A code not listed is a client error (400), except UMBRA_INTERNAL (500). */
const STATUS: Readonly<Record<string, number>> = {
  UMBRA_BAD_REQUEST: 400,
  UMBRA_POLICY_DENIED: 403,
  UMBRA_CONTRACT_DENIED: 403,
  UMBRA_METERING_REFUSED: 403,
  UMBRA_RECEIPT_REFUSED: 403,
  UMBRA_AMOUNT_OVERFLOW: 422,
  UMBRA_FORBIDDEN: 403,
  UMBRA_BAD_SIGNATURE: 401,
  UMBRA_UNKNOWN_SENDER: 401,
  UMBRA_STALE_MESSAGE: 401,
  UMBRA_REPLAY: 409,
  UMBRA_NOT_FOUND: 404,
  UMBRA_ALREADY_EXISTS: 409,
  UMBRA_INVALID_TRANSITION: 409,
  UMBRA_WRONG_JOB: 409,
  UMBRA_WRONG_STEP: 409,
  UMBRA_BUDGET_EXCEEDED: 403,
  UMBRA_PAYLOAD_TOO_LARGE: 413,
  UMBRA_MESSAGE_TOO_LARGE: 413,
  UMBRA_NO_MASK_KEY: 409,
  UMBRA_INVITATION_REQUIRED: 403,
  UMBRA_INVITATION_INVALID: 403,
  UMBRA_NAME_RESERVED: 403,
  UMBRA_NAME_CONFLICT: 409,
  UMBRA_DATASET_NAMESPACE: 403,
  UMBRA_MAILBOX_FULL: 429,
  UMBRA_RELAY_BUSY: 429,
  UMBRA_LOG_INCONSISTENT: 502,
  UMBRA_BAD_LOG_HEAD: 502,
  UMBRA_CONSOLE_NOT_BUILT: 404,
  UMBRA_BUSY: 429,
  UMBRA_UNAUTHENTICATED: 401,
  UMBRA_INTERNAL: 500,
};

export function httpStatusOf(err: UmbraError): number {
  // An error the exchange answered, passed on by a party's agent, keeps the exchange's status.
  if (err instanceof ExchangeError) return err.status;
  return STATUS[err.code] ?? 400;
}

/** The body every error is answered with. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly rule?: string };
}

/** The JSON schema of {@link ErrorBody}, for route `response` schemas. */
export const errorBodySchema = {
  type: "object",
  properties: { error: { type: "object", properties: { code: { type: "string" }, message: { type: "string" }, rule: { type: "string" } }, required: ["code", "message"] } },
} as const;

function ruleOf(err: UmbraError): { rule?: string } {
  if (err instanceof PolicyDeniedError || err instanceof ContractDeniedError || err instanceof MeteringRefusedError || err instanceof ReceiptRefusedError) return { rule: err.rule };
  if (err instanceof ExchangeError && err.rule) return { rule: err.rule };
  return {};
}

/**
 * The error handler, as a plugin that applies to the instance it is
 * registered on (not encapsulated): register it first, before any route.
 */
export const errorHandler: FastifyPluginCallback = Object.assign(
  (app: FastifyInstance, _opts: unknown, done: (err?: Error) => void) => {
    app.setErrorHandler((err, _req, reply) => {
      if (err instanceof UmbraError) {
        if (err instanceof MailboxFullError) void reply.header("retry-after", String(err.retryAfterSeconds));
        return reply.code(httpStatusOf(err)).send({ error: { code: err.code, message: err.message, ...ruleOf(err) } } satisfies ErrorBody);
      }
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      const body: ErrorBody = { error: { code: status === 500 ? "UMBRA_INTERNAL" : "UMBRA_BAD_REQUEST", message: status === 500 ? "internal error" : (err as Error).message } };
      return reply.code(status).send(body);
    });
    done();
  },
  // What fastify-plugin sets: the handler belongs to the instance registering the plugin, not to a child context.
  { [Symbol.for("skip-override")]: true },
);
