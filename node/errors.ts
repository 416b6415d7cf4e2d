/**
 * The node layer's typed errors: why an envelope was refused, and a bad
 * persisted identity. They extend the protocol layer's split — malformed
 * input is an `InvalidMessageError`, a well-formed envelope against the rules
 * is a `ProtocolError` — and carry stable `UMBRA_*` codes. Messages name the
 * rule that failed and never a key, a node name, a job id, a nonce or a
 * payload byte.
 */
import { InvalidInputError, UmbraError } from "../engine/errors.js";
import { InvalidMessageError, ProtocolError } from "../protocols/errors.js";

// A wrong job or step is the protocol layer's error, with its code.
export { WrongJobError, WrongStepError } from "../protocols/errors.js";

export const NodeErrorCode = {
  PayloadTooLarge: "UMBRA_PAYLOAD_TOO_LARGE",
  NotForMe: "UMBRA_NOT_FOR_ME",
  UnknownSender: "UMBRA_UNKNOWN_SENDER",
  BadSignature: "UMBRA_BAD_SIGNATURE",
  StaleMessage: "UMBRA_STALE_MESSAGE",
  Replay: "UMBRA_REPLAY",
  BadCiphertext: "UMBRA_BAD_CIPHERTEXT",
  InvalidIdentity: "UMBRA_INVALID_IDENTITY",
  NoMaskKey: "UMBRA_NO_MASK_KEY",
  WrongSender: "UMBRA_WRONG_SENDER",
} as const;
export type NodeErrorCode = (typeof NodeErrorCode)[keyof typeof NodeErrorCode];

/** The codes of what a server answers a request it will not serve (their HTTP statuses: node/server/http-errors.ts). */
export const RequestErrorCode = {
  BadRequest: "UMBRA_BAD_REQUEST",
  NotFound: "UMBRA_NOT_FOUND",
  Forbidden: "UMBRA_FORBIDDEN",
  AlreadyExists: "UMBRA_ALREADY_EXISTS",
} as const;
export type RequestErrorCode = (typeof RequestErrorCode)[keyof typeof RequestErrorCode];

/** An envelope, or its payload, larger than this node accepts. */
export class PayloadTooLargeError extends InvalidMessageError {
  constructor(limit: number) {
    super(`envelope payload exceeds the limit of ${limit} bytes`, NodeErrorCode.PayloadTooLarge);
  }
}

/** An encrypted payload that does not decrypt (AEAD failure): tampered, or sealed to another key. */
export class BadCiphertextError extends InvalidMessageError {
  constructor() {
    super("envelope payload does not decrypt", NodeErrorCode.BadCiphertext);
  }
}

/** An envelope addressed to another node, received by a node that does not relay. */
export class NotForMeError extends ProtocolError {
  constructor() {
    super("envelope is addressed to another node", NodeErrorCode.NotForMe);
  }
}

/** An envelope from a sender whose keys this node does not know. */
export class UnknownSenderError extends ProtocolError {
  constructor() {
    super("envelope sender is not a registered party", NodeErrorCode.UnknownSender);
  }
}

/** An envelope whose signature does not verify under its sender's key. */
export class BadSignatureError extends ProtocolError {
  constructor() {
    super("envelope signature does not verify", NodeErrorCode.BadSignature);
  }
}

/** An envelope whose timestamp is outside the allowed clock skew (too old, or from the future). */
export class StaleMessageError extends ProtocolError {
  constructor(direction: "old" | "future") {
    super(
      direction === "old" ? "envelope timestamp is older than the allowed clock skew" : "envelope timestamp is further in the future than the allowed clock skew",
      NodeErrorCode.StaleMessage,
    );
  }
}

/** An envelope whose nonce this node has already accepted from the same sender. */
export class ReplayError extends ProtocolError {
  constructor() {
    super("envelope nonce was already used by this sender", NodeErrorCode.Replay);
  }
}

/** A persisted identity that is malformed, or whose public keys do not match its secret keys. */
export class InvalidIdentityError extends InvalidInputError {
  constructor(message: string) {
    super(`invalid node identity: ${message}`, NodeErrorCode.InvalidIdentity);
  }
}

/** A provider of a job that needs pairwise masks (federated-aggregate) has registered no mask key. */
export class NoMaskKeyError extends ProtocolError {
  constructor() {
    super("a provider of this job has registered no mask key (its agent registers one when it starts)", NodeErrorCode.NoMaskKey);
  }
}

/** A protocol message from a party that does not play the role the message belongs to (e.g. provider j's vector sent as provider i's). */
export class WrongSenderError extends ProtocolError {
  constructor(message: string) {
    super(message, NodeErrorCode.WrongSender);
  }
}

// ---------------------------------------------------------------------------
// Request errors: what a server answers a request it will not serve. Their
// HTTP statuses are in one table at the edge (node/server/http-errors.ts).

/** A request that is well formed JSON but not one this route takes (code UMBRA_BAD_REQUEST). */
export class BadRequestError extends InvalidInputError {
  constructor(message: string) {
    super(message, RequestErrorCode.BadRequest);
  }
}

/** Something the requester may not see, or that does not exist: the two are answered alike (code UMBRA_NOT_FOUND). */
export class NotFoundError extends UmbraError {
  constructor(message: string) {
    super(RequestErrorCode.NotFound, message);
  }
}

/** A request the requester is not the party to make (code UMBRA_FORBIDDEN). */
export class ForbiddenError extends UmbraError {
  constructor(message: string) {
    super(RequestErrorCode.Forbidden, message);
  }
}

/** A record that exists already, under terms the request does not match (code UMBRA_ALREADY_EXISTS). */
export class AlreadyExistsError extends UmbraError {
  constructor(message: string) {
    super(RequestErrorCode.AlreadyExists, message);
  }
}

// ---------------------------------------------------------------------------
// The exchange's transparency log (node/log/).

export const LogErrorCode = {
  /** Two signed heads of the exchange's log that no history joins: rewritten, cut short, or forked. */
  Inconsistent: "UMBRA_LOG_INCONSISTENT",
  /** A log head or proof that is not of its form, or not signed by the exchange's pinned key. */
  BadHead: "UMBRA_BAD_LOG_HEAD",
} as const;

/**
 * The exchange showed a log head that does not extend the one this party
 * holds (or another party or witness holds): its history was rewritten, cut
 * short or forked. The evidence is kept; the party takes nothing more from
 * the exchange until an operator has looked (docs/transparency-log.md).
 */
export class LogInconsistentError extends UmbraError {
  constructor(reason: string) {
    super(LogErrorCode.Inconsistent, `the exchange's log is inconsistent with the head this party holds (${reason}): its history was rewritten, cut short or shown differently to others; the evidence is kept in this party's store and nothing more is taken from the exchange — report it to the exchange's operator and to the venue's witnesses`);
  }
}

/** A log head or proof from the exchange that is malformed or not signed by its pinned key (code UMBRA_BAD_LOG_HEAD). */
export class BadLogHeadError extends InvalidInputError {
  constructor(what: string) {
    super(`the exchange sent a ${what} that is malformed or not signed by its pinned key`, LogErrorCode.BadHead);
  }
}

// ---------------------------------------------------------------------------
// The web console (docs/console.md).

export const ConsoleErrorCode = {
  /** The console's assets were not built (dist/console is missing: `npm run build` makes it). */
  NotBuilt: "UMBRA_CONSOLE_NOT_BUILT",
  /** Too many of a bounded kind of request at once (the console's job streams). */
  Busy: "UMBRA_BUSY",
} as const;

/** The node was built without its web console's assets (code UMBRA_CONSOLE_NOT_BUILT, HTTP 404). */
export class ConsoleNotBuiltError extends UmbraError {
  constructor() {
    super(ConsoleErrorCode.NotBuilt, "the web console is not built here: run npm run build (it builds the console into dist/console) and restart the node");
  }
}

/** As many of these requests are open as the node serves at once (code UMBRA_BUSY, HTTP 429): try again when one has ended. */
export class BusyError extends UmbraError {
  constructor(what: string) {
    super(ConsoleErrorCode.Busy, `too many ${what} are open at once: close one and try again`);
  }
}
