/**
 * Key normalisation: the rules that make two spellings of the same
 * identifier produce the same key bytes on both sides of a PSI.
 *
 * Applied in this order, each step optional:
 *   1. trim      — strip leading/trailing whitespace (String.prototype.trim's set:
 *                  ASCII TAB LF VT FF CR SPACE, NBSP, the Unicode space separators,
 *                  LS, PS, BOM);
 *   2. digitsOnly — keep only ASCII 0-9 (phone numbers: "+33 (0)1-23" -> "33012");
 *                  the result is ASCII, so steps 3-4 change nothing after it;
 *   3. caseFold  — lower-case (String.prototype.toLowerCase: locale-independent,
 *                  full Unicode mappings);
 *   4. unicode "NFC" — Unicode canonical composition, so "é" written as one code
 *                  point or as "e" + combining acute is the same key.
 * After normalisation an empty string is *no key*: such a row is null and never
 * matches anything (an empty identifier is missing data, not a value).
 *
 * `normaliseKey` applies the rules to one JS string; `keysFromBatch`
 * (keys.ts) applies the same rules on bytes, with an ASCII fast path that
 * must agree with this function exactly.
 */
import { InvalidArgumentError } from "../errors.js";

/** The normalisation applied to one key column. */
export interface KeyNormalisation {
  /** Strip leading and trailing whitespace. Default true. */
  readonly trim: boolean;
  /** Lower-case the text. Default false. */
  readonly caseFold: boolean;
  /** Keep only the ASCII digits 0-9 (for phone numbers); integer columns lose their sign. Default false. */
  readonly digitsOnly: boolean;
  /** "NFC" composes the text canonically; "none" leaves code points as they are. Default "NFC". */
  readonly unicode: "NFC" | "none";
}

/** Options of `keysFromBatch` / `keysFromTable`: normalisation for all columns, with per-column overrides. */
export interface KeyOptions extends Partial<KeyNormalisation> {
  /** Overrides by column name, applied on top of the options above. */
  readonly perColumn?: Readonly<Record<string, Partial<KeyNormalisation>>>;
  /** How errors describe the input (e.g. `file "buyers.csv"`); default "record batch" / "table". */
  readonly source?: string;
}

/** The defaults: trim, NFC, no case folding, no digit filtering. */
export const DEFAULT_KEY_NORMALISATION: KeyNormalisation = Object.freeze({
  trim: true,
  caseFold: false,
  digitsOnly: false,
  unicode: "NFC",
});

function checkFlag(name: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new InvalidArgumentError(`key option ${name} must be a boolean`);
  return v;
}

function merge(base: KeyNormalisation, o: Partial<KeyNormalisation> | undefined): KeyNormalisation {
  if (o === undefined) return base;
  const unicode = o.unicode;
  if (unicode !== undefined && unicode !== "NFC" && unicode !== "none") {
    throw new InvalidArgumentError(`key option unicode must be "NFC" or "none"`);
  }
  return {
    trim: checkFlag("trim", o.trim) ?? base.trim,
    caseFold: checkFlag("caseFold", o.caseFold) ?? base.caseFold,
    digitsOnly: checkFlag("digitsOnly", o.digitsOnly) ?? base.digitsOnly,
    unicode: unicode ?? base.unicode,
  };
}

/**
 * The normalisation for one column: defaults, then `options`, then
 * `options.perColumn[column]`.
 * @throws InvalidArgumentError for an option of the wrong type.
 */
export function resolveKeyNormalisation(options: KeyOptions | undefined, column?: string): KeyNormalisation {
  const global = merge(DEFAULT_KEY_NORMALISATION, options);
  if (column === undefined || options?.perColumn === undefined) return global;
  const own = Object.prototype.hasOwnProperty.call(options.perColumn, column) ? options.perColumn[column] : undefined;
  return merge(global, own);
}

/** True when the normalisation leaves every string unchanged. */
export function isIdentityNormalisation(n: KeyNormalisation): boolean {
  return !n.trim && !n.caseFold && !n.digitsOnly && n.unicode === "none";
}

const NON_DIGITS = /[^0-9]+/g;

/**
 * Normalises one key string (see the module comment for the rules and their
 * order). An empty result means "no key": callers must treat it as null.
 *
 * @param text the raw key.
 * @param options normalisation; missing fields take the defaults (trim, NFC).
 * @returns the canonical text.
 */
export function normaliseKey(text: string, options?: Partial<KeyNormalisation>): string {
  const n = merge(DEFAULT_KEY_NORMALISATION, options);
  return applyNormalisation(text, n);
}

/** normaliseKey with an already resolved normalisation (no option checks). */
export function applyNormalisation(text: string, n: KeyNormalisation): string {
  let s = text;
  if (n.trim) s = s.trim();
  if (n.digitsOnly) return s.replace(NON_DIGITS, "");
  if (n.caseFold) s = s.toLowerCase();
  if (n.unicode === "NFC") s = s.normalize("NFC");
  return s;
}
