/**
 * The building blocks of the node's document schemas (JSON Schema, written
 * with TypeBox): identifiers, column names, display text, dates, bounded
 * lists. A string's length is bounded twice: by minLength/maxLength (which
 * ajv counts in code points) for the OpenAPI document, and by its pattern,
 * matched without the regular expression's u flag, so in UTF-16 code units
 * as String.length counts them (the bound the store and the checks before
 * the schemas applied). Each carries a `description` that says what is allowed: it is what
 * the OpenAPI document shows, and what a refusal says ("must be …").
 */
import { Type } from "typebox";

/** Longest identifier (buyer, dataset, owner) accepted. */
export const MAX_ID_LENGTH = 256;
/** Longest column name accepted. */
export const MAX_COLUMN_NAME_LENGTH = 1024;
/** Most entries in any list of a policy or a job request. */
export const MAX_LIST_LENGTH = 10_000;

/** An ISO 8601 date-time with seconds and a zone; whether it is a real calendar date is checked in code (checkIsoDate). */
export const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** An identifier: no whitespace or control characters. */
export const Identifier = Type.String({
  minLength: 1,
  maxLength: MAX_ID_LENGTH,
  pattern: `^[^\\s\\u0000-\\u001f\\u007f]{1,${MAX_ID_LENGTH}}$`,
  description: `an identifier: 1 to ${MAX_ID_LENGTH} characters, no whitespace or control characters`,
});

/** Display text of at most `max` characters: no control characters. */
export const Text = (max: number, what = "a text") =>
  Type.String({ minLength: 1, maxLength: max, pattern: `^[^\\u0000-\\u001f\\u007f]{1,${max}}$`, description: `${what}: 1 to ${max} characters, no control characters` });

/** A column name. */
export const ColumnName = Text(MAX_COLUMN_NAME_LENGTH, "a column name");

/** An ISO 8601 date-time with a time zone. */
export const IsoDateTime = Type.String({ pattern: ISO_8601.source, description: "an ISO 8601 date-time with a time zone, e.g. 2025-01-31T23:59:59Z" });

/** A whole number in [min, max]. */
export const Int = (minimum: number, maximum: number = Number.MAX_SAFE_INTEGER) => Type.Integer({ minimum, maximum });

/** Whether an ISO 8601 string (one that matches {@link ISO_8601}) names a real instant: a calendar date, hours, minutes, seconds and zone in range. */
export function isRealDateTime(value: string): boolean {
  const m = ISO_8601.exec(value);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const zone = m[8] ?? "Z";
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const zoneOk = zone === "Z" || (Number(zone.slice(1, 3)) <= 23 && Number(zone.slice(4, 6)) <= 59);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59 || !zoneOk) return false;
  return !Number.isNaN(Date.parse(value));
}

/** A zCDP ρ (differential privacy, docs/differential-privacy.md): a positive rational as "num/den" or a decimal string, or a positive number. */
export const Rho = Type.Union(
  [
    Type.String({ maxLength: 80, pattern: "^(\\d{1,30}/[1-9]\\d{0,29}|\\d{1,30}(\\.\\d{1,30})?([eE][+-]?\\d{1,3})?)$" }),
    Type.Number({ exclusiveMinimum: 0 }),
  ],
  { description: 'a positive zCDP ρ: "num/den" (e.g. "1/10"), a decimal string ("0.1", "1e-3") or a positive number' },
);
