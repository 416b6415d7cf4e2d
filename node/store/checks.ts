/**
 * The store's argument checks, its canonical JSON (RFC 8785) and the BLOB
 * views better-sqlite3 binds and returns. A check refuses with
 * `InvalidArgumentError`, naming the argument, never its value.
 */
import { InvalidArgumentError } from "../../engine/errors.js";

/** A JSON value as the store returns it (parsed from its canonical JSON). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TOKEN = /^[A-Za-z0-9._:/-]{1,64}$/;
const HEX_DIGEST = /^(?:[0-9a-f]{2}){16,64}$/;
const MAX_JSON_BYTES = 64 * 1024;
const MAX_TEXT = 512;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function checkName(what: string, v: unknown): string {
  if (typeof v !== "string" || !NAME.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._-]{1,64}`);
  return v;
}

export function checkId(what: string, v: unknown): string {
  if (typeof v !== "string" || !ID.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._:-]{1,128}`);
  return v;
}

export function checkToken(what: string, v: unknown): string {
  if (typeof v !== "string" || !TOKEN.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._:/-]{1,64}`);
  return v;
}

export function checkText(what: string, v: unknown, max = MAX_TEXT): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max || CONTROL.test(v) || LONE_SURROGATE.test(v)) {
    throw new InvalidArgumentError(`${what} must be 1 to ${max} printable characters`);
  }
  return v;
}

export function checkDigest(what: string, v: unknown): string {
  if (typeof v !== "string" || !HEX_DIGEST.test(v)) throw new InvalidArgumentError(`${what} must be 16 to 64 bytes of lowercase hex`);
  return v;
}

export function checkCount(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative safe integer`);
  return v;
}

export function checkKey(what: string, v: unknown, length: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== length) throw new InvalidArgumentError(`${what} must be ${length} bytes`);
  return v;
}

export function checkBytes(what: string, v: unknown, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) throw new InvalidArgumentError(`${what} must be ${min} to ${max} bytes`);
  return v;
}

export function checkTime(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a time in ms since the epoch`);
  return v;
}

export function checkAmount(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`${what} must be a finite non-negative number`);
  return v;
}

/**
 * The canonical JSON of `value`: RFC 8785 (JCS) — no whitespace, object keys
 * sorted by UTF-16 code units, numbers and strings as ECMAScript's
 * JSON.stringify writes them. Only JSON values are accepted: null, booleans,
 * finite numbers, well-formed strings, arrays and plain objects (no
 * `undefined`, functions, bigints, typed arrays, dates or cycles).
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

function encode(v: unknown, depth: number): string {
  if (depth > 64) throw new InvalidArgumentError("JSON nests deeper than 64 levels");
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new InvalidArgumentError("JSON numbers must be finite");
      return JSON.stringify(v);
    case "string":
      if (LONE_SURROGATE.test(v)) throw new InvalidArgumentError("JSON strings must be well-formed UTF-16");
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return `[${v.map((x) => encode(x, depth + 1)).join(",")}]`;
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new InvalidArgumentError("JSON objects must be plain objects");
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      return `{${keys.map((k) => `${encode(k, depth + 1)}:${encode(obj[k], depth + 1)}`).join(",")}}`;
    }
    default:
      throw new InvalidArgumentError(`a ${typeof v} is not a JSON value`);
  }
}

export function jsonText(what: string, v: unknown): string {
  const text = canonicalJson(v);
  if (Buffer.byteLength(text) > MAX_JSON_BYTES) throw new InvalidArgumentError(`${what} exceeds ${MAX_JSON_BYTES} bytes of JSON`);
  return text;
}

export function parseJson(text: string): JsonValue {
  return JSON.parse(text) as JsonValue;
}

/** A Buffer view of `u8` (no copy), as better-sqlite3 binds BLOBs. */
export function blob(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** A plain Uint8Array view of a BLOB read back (no copy). */
export function bytesOf(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
