/**
 * The cluster's typed errors. Like every engine error they name what failed
 * and where (a chunk index, a queue, seconds waited) and never a key, an
 * identifier, a scalar or a value.
 */
import { UmbraError } from "../errors.js";

export const ClusterErrorCode = {
  /** Redis cannot be reached, or refused a command. */
  Unavailable: "UMBRA_CLUSTER_UNAVAILABLE",
  /** No chunk of a call finished within the deadline (no worker, or Redis lost the work). */
  Timeout: "UMBRA_CLUSTER_TIMEOUT",
  /** A chunk or a result failed authentication: a wrong cluster key, or bytes changed in Redis. */
  Tampered: "UMBRA_CLUSTER_TAMPERED",
  /** A chunk or a result is not in the cluster's format (schema, sizes). */
  Malformed: "UMBRA_CLUSTER_MALFORMED",
  /** A chunk's input expired from Redis before a worker took it. */
  Expired: "UMBRA_CLUSTER_EXPIRED",
} as const;

/** A cluster failure: the call that saw it fails whole; nothing partial is returned. */
export class ClusterError extends UmbraError {
  constructor(code: (typeof ClusterErrorCode)[keyof typeof ClusterErrorCode], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
