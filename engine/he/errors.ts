/**
 * Typed errors of the homomorphic-encryption engine.
 *
 * They extend the engine's classes (`engine/errors.ts`) so that callers that
 * catch `InvalidInputError` or `UmbraError` keep working. Messages name the
 * object, a byte length or an index, never a key, a coefficient or a value.
 * {@link heErrorFromSerialized} rebuilds them on the host side of a worker
 * boundary (`engine/errors.ts`' `errorFromSerialized` knows only its own
 * codes).
 */
import { errorFromSerialized, InvalidInputError, UmbraError, type SerializedError } from "../errors.js";

export const HeErrorCode = {
  /** Ciphertext bytes that are not a ciphertext of this engine: bad framing, oversized, rejected by SEAL. */
  InvalidCiphertext: "UMBRA_INVALID_CIPHERTEXT",
  /** Key bytes that are not a key of this engine: bad framing, oversized, rejected by SEAL. */
  InvalidKey: "UMBRA_INVALID_KEY",
  /** Well-formed bytes made for other parameters (another context: N, moduli, scale or bounds differ). */
  ParameterMismatch: "UMBRA_PARAMETER_MISMATCH",
  /** Well-formed objects made under different key sets (e.g. a ciphertext and another buyer's secret key). */
  KeyMismatch: "UMBRA_KEY_MISMATCH",
  /** An input value outside the declared range (|value| > maxAbsValue), or not finite. */
  ValueOutOfRange: "UMBRA_VALUE_OUT_OF_RANGE",
  /** An operation whose result could include more rows than the context declared (its total could wrap). */
  BoundExceeded: "UMBRA_BOUND_EXCEEDED",
  /** A ciphertext whose noise budget is spent: decrypting it would not give the exact result. */
  NoiseBudgetExhausted: "UMBRA_NOISE_BUDGET_EXHAUSTED",
  /** A context or key handle used after dispose(). */
  Disposed: "UMBRA_DISPOSED",
} as const;
export type HeErrorCode = (typeof HeErrorCode)[keyof typeof HeErrorCode];

/** Ciphertext bytes that are malformed, oversized, or refused by SEAL's own validation. */
export class InvalidCiphertextError extends InvalidInputError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HeErrorCode.InvalidCiphertext, options);
  }
}

/** Key bytes that are malformed, oversized, or refused by SEAL's own validation. */
export class InvalidKeyError extends InvalidInputError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HeErrorCode.InvalidKey, options);
  }
}

/** Well-formed input produced under other encryption parameters than this context's. */
export class ParameterMismatchError extends UmbraError {
  constructor(message: string) {
    super(HeErrorCode.ParameterMismatch, message);
  }
}

/** Well-formed objects produced under different key sets. */
export class KeyMismatchError extends UmbraError {
  constructor(message: string) {
    super(HeErrorCode.KeyMismatch, message);
  }
}

/** A value outside the declared range. `index` is its position in the column; the value itself is never reported. */
export class ValueOutOfRangeError extends InvalidInputError {
  readonly index: number | undefined;
  constructor(message: string, index?: number) {
    super(index === undefined ? message : `${message} (element ${index})`, HeErrorCode.ValueOutOfRange);
    this.index = index;
  }
}

/** A result that could hold more rows than the context was built for, so its total could wrap. */
export class BoundExceededError extends UmbraError {
  constructor(message: string) {
    super(HeErrorCode.BoundExceeded, message);
  }
}

/** A ciphertext whose noise budget is exhausted: its decryption would not be exact. */
export class NoiseBudgetExhaustedError extends UmbraError {
  constructor(message: string) {
    super(HeErrorCode.NoiseBudgetExhausted, message);
  }
}

/** A context or key handle used after `dispose()`. */
export class DisposedError extends UmbraError {
  constructor(what: string) {
    super(HeErrorCode.Disposed, `${what} was disposed`);
  }
}

/** {@link errorFromSerialized} extended with this layer's codes. */
export function heErrorFromSerialized(e: SerializedError): UmbraError {
  switch (e.code) {
    case HeErrorCode.InvalidCiphertext:
      return new InvalidCiphertextError(e.message);
    case HeErrorCode.InvalidKey:
      return new InvalidKeyError(e.message);
    case HeErrorCode.ParameterMismatch:
      return new ParameterMismatchError(e.message);
    case HeErrorCode.KeyMismatch:
      return new KeyMismatchError(e.message);
    case HeErrorCode.ValueOutOfRange: {
      const m = / \(element (\d+)\)$/.exec(e.message);
      return new ValueOutOfRangeError(e.message.replace(/ \(element \d+\)$/, ""), m?.[1] === undefined ? undefined : Number(m[1]));
    }
    case HeErrorCode.BoundExceeded:
      return new BoundExceededError(e.message);
    case HeErrorCode.NoiseBudgetExhausted:
      return new NoiseBudgetExhaustedError(e.message);
    case HeErrorCode.Disposed:
      return new DisposedError(e.message.replace(/ was disposed$/, ""));
    default:
      return errorFromSerialized(e);
  }
}
