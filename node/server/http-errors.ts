/** Error codes to HTTP statuses, at the edge only. */
import { UmbraError } from "../../engine/errors.js";

const STATUS: Record<string, number> = {
  UMBRA_POLICY_DENIED: 403,
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
};

export function httpStatusOf(err: UmbraError): number {
  return STATUS[err.code] ?? (err.code === "UMBRA_INTERNAL" ? 500 : 400);
}
