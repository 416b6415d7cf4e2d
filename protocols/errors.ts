/**
 * The protocol layer's typed errors. `InvalidMessageError` is malformed input
 * (bytes that do not parse, a field out of range, a bad point);
 * `ProtocolError` is a well-formed message against the protocol (wrong job,
 * wrong step, a replayed chunk, a mode that differs). Messages never carry a
 * key, an identifier or a value.
 */
import { InvalidInputError, UmbraError } from "../engine/errors.js";

export const ProtocolErrorCode = {
  InvalidMessage: "UMBRA_INVALID_MESSAGE",
  MessageTooLarge: "UMBRA_MESSAGE_TOO_LARGE",
  Protocol: "UMBRA_PROTOCOL",
  WrongStep: "UMBRA_WRONG_STEP",
  WrongJob: "UMBRA_WRONG_JOB",
  BudgetExceeded: "UMBRA_BUDGET_EXCEEDED",
  Refused: "UMBRA_REFUSED",
  InvalidState: "UMBRA_INVALID_STATE",
  BelowMinimum: "UMBRA_BELOW_MINIMUM",
  KeyLimitExceeded: "UMBRA_KEY_LIMIT_EXCEEDED",
  OverlappingGroups: "UMBRA_OVERLAPPING_GROUPS",
  WrongSender: "UMBRA_WRONG_SENDER",
  UnknownOption: "UMBRA_UNKNOWN_OPTION",
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

/** A message that is not what the schema or the protocol's bounds allow. */
export class InvalidMessageError extends UmbraError {
  constructor(message: string, code: string = ProtocolErrorCode.InvalidMessage, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A message larger than the protocol allows. */
export class MessageTooLargeError extends InvalidMessageError {
  constructor(size: number, limit: number) {
    super(`message of ${size} bytes exceeds the limit of ${limit}`, ProtocolErrorCode.MessageTooLarge);
  }
}

/** A well-formed message that the protocol does not allow here. */
export class ProtocolError extends UmbraError {
  constructor(message: string, code: string = ProtocolErrorCode.Protocol) {
    super(code, message);
  }
}

/** A message for another step, a replayed or out-of-order chunk. */
export class WrongStepError extends ProtocolError {
  constructor(message: string) {
    super(message, ProtocolErrorCode.WrongStep);
  }
}

/** A message for another job or protocol. */
export class WrongJobError extends ProtocolError {
  constructor(message: string) {
    super(message, ProtocolErrorCode.WrongJob);
  }
}

/** The provider's evaluation budget for this buyer would be exceeded. */
export class BudgetExceededError extends ProtocolError {
  constructor(requested: number, remaining: number) {
    super(`evaluation budget exceeded: ${requested} requested, ${remaining} remaining`, ProtocolErrorCode.BudgetExceeded);
  }
}

/** The other party refused the job (its Refusal message's code and reason). */
export class RefusedError extends ProtocolError {
  readonly peerCode: string;
  constructor(peerCode: string, reason: string) {
    super(`refused by the other party (${peerCode}): ${reason}`, ProtocolErrorCode.Refused);
    this.peerCode = peerCode;
  }
}

/** A state object that is not a valid state of this protocol (e.g. corrupted persistence). */
export class InvalidStateError extends ProtocolError {
  constructor(message: string) {
    super(message, ProtocolErrorCode.InvalidState);
  }
}

/**
 * The buyer's role withholds its result: fewer distinct keys matched than
 * the job's minimum (psi and lookup: `minIntersection`; psi-cardinality: the
 * count). The message names the rule and the threshold, never the count.
 */
export class BelowMinimumError extends ProtocolError {
  readonly rule = "minIntersection";
  readonly threshold: number;
  constructor(threshold: number) {
    super(`result withheld: fewer than ${threshold} distinct keys matched (the job's minIntersection is ${threshold})`, ProtocolErrorCode.BelowMinimum);
    this.threshold = threshold;
  }
}

/**
 * The buyer announces (or holds) more distinct keys than the job allows
 * (`maxBuyerKeys`, psi's `maxPeerSetSize` on the provider). The numbers are
 * the buyer's own announcement and the job's limit.
 */
export class KeyLimitExceededError extends ProtocolError {
  readonly announced: number;
  readonly limit: number;
  constructor(what: string, announced: number, limit: number) {
    super(`${what}: ${announced} distinct buyer keys, the job allows at most ${limit}`, ProtocolErrorCode.KeyLimitExceeded);
    this.announced = announced;
    this.limit = limit;
  }
}

/**
 * join-aggregate, the buyer's own input: one key in two groups (an
 * overlap would let the difference of two groups' totals isolate one key's
 * value below k). Names the group column and the 1-based data rows of the
 * first offending pair, never the key or the labels.
 */
export class OverlappingGroupsError extends InvalidInputError {
  readonly column: string;
  readonly rows: readonly [number, number];
  constructor(column: string, first: number, second: number) {
    super(
      `group column "${column}": data rows ${first} and ${second} have the same key in different groups; each key must fall in one group; de-duplicate or fix the group column`,
      ProtocolErrorCode.OverlappingGroups,
    );
    this.column = column;
    this.rows = [first, second];
  }
}

/** A message from a role (or party) that does not send that step, e.g. provider j's vector sent as provider i's. */
export class WrongSenderError extends ProtocolError {
  constructor(message: string) {
    super(message, ProtocolErrorCode.WrongSender);
  }
}

/**
 * A runner (runPsi, runLookup, runJoinAggregate, runFederatedAggregate,
 * prepareLookupTable) given an option it does not take: a misspelling, or a
 * name from an older release (the message then says what it is now).
 * Checked at run time, since JavaScript callers bypass the types.
 */
export class UnknownOptionError extends InvalidInputError {
  /** The option as given, e.g. "buyer.key". */
  readonly option: string;
  /** The options taken at that place. */
  readonly valid: readonly string[];
  constructor(runner: string, option: string, valid: readonly string[], renamedTo?: string) {
    super(
      renamedTo !== undefined
        ? `${runner}: option "${option}" is now "${renamedTo}"`
        : `${runner}: unknown option "${option}"; valid options here: ${valid.join(", ")}`,
      ProtocolErrorCode.UnknownOption,
    );
    this.option = option;
    this.valid = valid;
  }
}
