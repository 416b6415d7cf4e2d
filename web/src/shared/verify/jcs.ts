/**
 * RFC 8785 (JCS) canonical JSON, as node/store/checks.ts writes it: no
 * whitespace, object keys sorted by UTF-16 code units, numbers and strings as
 * ECMAScript's JSON.stringify writes them (RFC 8785 §3.2.2.2 and §3.2.2.3 are
 * that serialisation). Only JSON values: null, booleans, finite numbers,
 * well-formed strings, arrays and plain objects; anything else throws.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export class NotJsonError extends Error {}

export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

function encode(v: unknown, depth: number): string {
  if (depth > 64) throw new NotJsonError("JSON nests deeper than 64 levels");
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new NotJsonError("JSON numbers must be finite");
      return JSON.stringify(v);
    case "string":
      if (LONE_SURROGATE.test(v)) throw new NotJsonError("JSON strings must be well-formed UTF-16");
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return `[${v.map((x) => encode(x, depth + 1)).join(",")}]`;
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new NotJsonError("JSON objects must be plain objects");
      const obj = v as Record<string, unknown>;
      // Array.prototype.sort compares strings by UTF-16 code units, as RFC 8785 §3.2.3 asks.
      const keys = Object.keys(obj).sort();
      return `{${keys.map((k) => `${encode(k, depth + 1)}:${encode(obj[k], depth + 1)}`).join(",")}}`;
    }
    default:
      throw new NotJsonError(`a ${typeof v} is not a JSON value`);
  }
}
