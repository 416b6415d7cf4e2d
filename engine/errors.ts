/**
 * The engine's typed errors.
 *
 * Every error carries a stable `code` (`UMBRA_*`) that survives crossing a
 * worker or process boundary (see {@link serializeError} /
 * {@link errorFromSerialized}). Messages name the problem and where it was
 * found (an index, a column name, a byte length) and never a key, an
 * identifier, a scalar or a value.
 */

export const ErrorCode = {
  InvalidPoint: "UMBRA_INVALID_POINT",
  InvalidScalar: "UMBRA_INVALID_SCALAR",
  InvalidLength: "UMBRA_INVALID_LENGTH",
  InvalidArgument: "UMBRA_INVALID_ARGUMENT",
  UnsupportedBackend: "UMBRA_UNSUPPORTED_BACKEND",
  InvalidInput: "UMBRA_INVALID_INPUT",
  MissingColumn: "UMBRA_MISSING_COLUMN",
  MalformedCsv: "UMBRA_MALFORMED_CSV",
  UnreadableFile: "UMBRA_UNREADABLE_FILE",
  UnwritableFile: "UMBRA_UNWRITABLE_FILE",
  UnsupportedFormat: "UMBRA_UNSUPPORTED_FORMAT",
  UnsupportedType: "UMBRA_UNSUPPORTED_TYPE",
  PoolClosed: "UMBRA_POOL_CLOSED",
  WorkerFailed: "UMBRA_WORKER_FAILED",
  UnsupportedSize: "UMBRA_UNSUPPORTED_SIZE",
  HashingFailed: "UMBRA_HASHING_FAILED",
  Internal: "UMBRA_INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class: every error the engine throws on purpose is an UmbraError. */
export class UmbraError extends Error {
  /** A stable `UMBRA_*` code: one of {@link ErrorCode} or of a higher layer's codes. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Malformed input: bytes, files or arguments that are not what they must be. */
export class InvalidInputError extends UmbraError {
  constructor(message: string, code: string = ErrorCode.InvalidInput, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A group element that is not a canonical encoding, not on the curve, of small order, or the identity. */
export class InvalidPointError extends InvalidInputError {
  /** Position of the offending element in a batch, when it came from one. */
  readonly index: number | undefined;
  constructor(message: string, index?: number) {
    super(index === undefined ? message : `${message} (element ${index})`, ErrorCode.InvalidPoint);
    this.index = index;
  }
}

/** A scalar that is not 32 bytes, not reduced modulo the group order, or zero. */
export class InvalidScalarError extends InvalidInputError {
  constructor(message: string) {
    super(message, ErrorCode.InvalidScalar);
  }
}

/** A buffer whose length is wrong for what it must hold. */
export class InvalidLengthError extends InvalidInputError {
  readonly expected: string;
  readonly actual: number;
  /** `message` replaces the built one (used when the error is rebuilt after crossing a worker boundary). */
  constructor(what: string, expected: string, actual: number, message?: string) {
    super(message ?? `${what}: expected ${expected} bytes, got ${actual}`, ErrorCode.InvalidLength);
    this.expected = expected;
    this.actual = actual;
  }
}

/** A bad option or argument from the caller. */
export class InvalidArgumentError extends InvalidInputError {
  constructor(message: string) {
    super(message, ErrorCode.InvalidArgument);
  }
}

/** The requested group or backend is unknown or cannot load on this platform. */
export class UnsupportedBackendError extends UmbraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.UnsupportedBackend, message, options);
  }
}

/** Column names listed in a MissingColumnError: the first few, quoted. */
const FOUND_LISTED = 20;

/** A key column named by the caller is not in the input. */
export class MissingColumnError extends InvalidInputError {
  readonly column: string;
  /** Where the column was looked for (e.g. `file "x.csv"`). */
  readonly source: string;
  /** The columns the input has, when known (names only, never values). */
  readonly found: readonly string[] | undefined;
  /** The delimiter a CSV header seems to use instead of the one it was read with, when it seems to. */
  readonly delimiter: string | undefined;
  /**
   * With `found`, the message lists the columns found (names are not data);
   * `hint` (e.g. the delimiter the header seems to use) is appended as is.
   */
  constructor(column: string, source: string, found?: readonly string[], options?: { hint?: string; delimiter?: string }) {
    const hint = options?.hint;
    const listed = found === undefined ? "" : found.length === 0 ? "; it has no columns" : `; columns found: ${found.slice(0, FOUND_LISTED).map((c) => JSON.stringify(c)).join(", ")}${found.length > FOUND_LISTED ? `, … (${found.length} in all)` : ""}`;
    super(`column "${column}" not found in ${source}${listed}${hint === undefined ? "" : `; ${hint}`}`, ErrorCode.MissingColumn);
    this.column = column;
    this.source = source;
    this.found = found;
    this.delimiter = options?.delimiter;
  }
}

/** What a MalformedCsvError is about, when a caller may add a remedy (the CLI names its flag). */
export const CsvProblem = {
  /** A field of an int64 column holds a number with decimals. */
  Decimals: "decimals",
} as const;
export type CsvProblem = (typeof CsvProblem)[keyof typeof CsvProblem];

/** A CSV input that cannot be parsed. */
export class MalformedCsvError extends InvalidInputError {
  readonly line: number | undefined;
  /** The column concerned, when one is. */
  readonly column: string | undefined;
  readonly problem: CsvProblem | undefined;
  constructor(message: string, line?: number, options?: { cause?: unknown; column?: string; problem?: CsvProblem }) {
    super(line === undefined ? `malformed CSV: ${message}` : `malformed CSV at line ${line}: ${message}`, ErrorCode.MalformedCsv, options);
    this.line = line;
    this.column = options?.column;
    this.problem = options?.problem;
  }
}

/** A file that does not exist, cannot be opened, or is not a valid file of its format. */
export class UnreadableFileError extends InvalidInputError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.UnreadableFile, options);
  }
}

/** A file that cannot be created or written (its folder missing, not writable, or the path a folder). */
export class UnwritableFileError extends InvalidInputError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.UnwritableFile, options);
  }
}

/** A file extension or format the engine does not read or write. */
export class UnsupportedFormatError extends InvalidInputError {
  constructor(message: string) {
    super(message, ErrorCode.UnsupportedFormat);
  }
}

/** A column type that cannot serve as a key. */
export class UnsupportedTypeError extends InvalidInputError {
  constructor(message: string) {
    super(message, ErrorCode.UnsupportedType);
  }
}

/** Work submitted to a pool that was closed. */
export class PoolClosedError extends UmbraError {
  constructor() {
    super(ErrorCode.PoolClosed, "the worker pool is closed");
  }
}

/** A worker failed for a reason that is not one of the typed errors above. */
export class WorkerFailedError extends UmbraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.WorkerFailed, message, options);
  }
}

/**
 * A set size outside what an algorithm's published parameters cover (e.g.
 * the cuckoo-hashing table of the OT-PSI): refused rather than run at an
 * unknown failure probability.
 */
export class UnsupportedSizeError extends InvalidInputError {
  constructor(message: string) {
    super(message, ErrorCode.UnsupportedSize);
  }
}

/**
 * Cuckoo hashing could not place every element, stash included: an event of
 * probability at most 2^-40 for the sizes allowed (a new shared seed retries).
 */
export class HashingFailedError extends UmbraError {
  constructor(message: string) {
    super(ErrorCode.HashingFailed, message);
  }
}

/** The structured-clone-safe form of an error, as workers return it. */
export interface SerializedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly index?: number;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof InvalidPointError && err.index !== undefined) {
    return { name: err.name, code: err.code, message: err.message, index: err.index };
  }
  if (err instanceof UmbraError) return { name: err.name, code: err.code, message: err.message };
  // An unexpected error: keep only its class name, never its message (it may quote data).
  const name = err instanceof Error ? err.constructor.name : typeof err;
  return { name: "WorkerFailedError", code: ErrorCode.WorkerFailed, message: `unexpected ${name} in worker` };
}

/** Rebuilds the typed error on the host side of a worker boundary. */
export function errorFromSerialized(e: SerializedError): UmbraError {
  switch (e.code) {
    case ErrorCode.InvalidPoint:
      return new InvalidPointError(e.message.replace(/ \(element \d+\)$/, ""), e.index);
    case ErrorCode.InvalidScalar:
      return new InvalidScalarError(e.message);
    case ErrorCode.InvalidArgument:
      return new InvalidArgumentError(e.message);
    case ErrorCode.InvalidLength:
      return new InvalidLengthError("", "", 0, e.message);
    case ErrorCode.UnsupportedBackend:
      return new UnsupportedBackendError(e.message);
    case ErrorCode.InvalidInput:
      return new InvalidInputError(e.message);
    case ErrorCode.UnsupportedSize:
      return new UnsupportedSizeError(e.message);
    case ErrorCode.HashingFailed:
      return new HashingFailedError(e.message);
    default:
      return new WorkerFailedError(e.message);
  }
}
