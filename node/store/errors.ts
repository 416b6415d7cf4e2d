/**
 * The store's errors: a record it does not hold, one that exists already, and
 * a job state change off the job graph. None names an id, a key or a value.
 */
import { UmbraError } from "../../engine/errors.js";
import type { JobState } from "./types.js";

export const StoreErrorCode = {
  NotFound: "UMBRA_NOT_FOUND",
  AlreadyExists: "UMBRA_ALREADY_EXISTS",
  InvalidTransition: "UMBRA_INVALID_TRANSITION",
  StoreVersion: "UMBRA_STORE_VERSION",
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** A job, dataset, party or result that the store does not hold. */
export class NotFoundError extends UmbraError {
  constructor(what: string) {
    super(StoreErrorCode.NotFound, `${what} not found`);
  }
}

/** A record that exists already and may not be replaced (a job id, a result, a dataset id of another owner). */
export class AlreadyExistsError extends UmbraError {
  constructor(what: string) {
    super(StoreErrorCode.AlreadyExists, `${what} already exists`);
  }
}

/** A job state change that the job graph does not allow, or from a state the caller did not expect. */
export class InvalidTransitionError extends UmbraError {
  readonly from: JobState;
  readonly to: JobState;
  constructor(from: JobState, to: JobState, message?: string) {
    super(StoreErrorCode.InvalidTransition, message ?? `a job cannot go from ${from} to ${to}`);
    this.from = from;
    this.to = to;
  }
}
