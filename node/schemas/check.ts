/**
 * Checks a document against its schema with ajv (the validator Fastify
 * ships), and says what is wrong in the node's terms: one {@link FieldIssue}
 * per field found wrong — its path as `params.keyColumns[1]`, an unknown key
 * as `"key"` (quoted, cut short) — and a problem that says what is allowed
 * (the schema's description, the valid fields, the bounds) and, for an
 * unknown field or value, the valid one it most likely meant ({@link nearest}). The parsers
 * (node/policy.ts, node/catalog.ts) and the routes' body validation
 * (node/server/validation.ts) both use it, so a document is refused the same
 * way wherever it arrives.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { TSchema } from "typebox";
import { InvalidInputError } from "../../engine/errors.js";

/** One problem found in a document: the field's path (`params.keyColumns[1]`) and what is wrong with it. */
export interface FieldIssue {
  readonly field: string;
  readonly problem: string;
}

/**
 * A policy, job request or dataset descriptor that is not well formed. Lists
 * every field found wrong (`issues`); `field` is the first of them.
 */
export class InvalidDocumentError extends InvalidInputError {
  readonly issues: readonly FieldIssue[];
  constructor(what: string, issues: readonly FieldIssue[], code: string) {
    super(`invalid ${what}: ${issues.map((i) => `${i.field}: ${i.problem}`).join("; ")}`, code);
    this.issues = issues;
  }
  /** The first field found wrong. */
  get field(): string {
    return this.issues[0]?.field ?? "";
  }
  /** Every field found wrong, in the order found. */
  get fields(): string[] {
    return this.issues.map((i) => i.field);
  }
}

/** The codes of the node's document errors, and of a policy's denial (node/policy.ts). */
export const PolicyErrorCode = {
  InvalidPolicy: "UMBRA_INVALID_POLICY",
  InvalidJobRequest: "UMBRA_INVALID_JOB_REQUEST",
  InvalidDataset: "UMBRA_INVALID_DATASET",
  PolicyDenied: "UMBRA_POLICY_DENIED",
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** The annotation naming which document a schema is (`policy`, `dataset`, `job-request`): the body validation reports its problems as that document's error. */
export const DOCUMENT_KEYWORD = "x-umbra-document";

// Patterns are matched without the u flag, so a pattern's length bound counts UTF-16 code units (node/schemas/common.ts);
// nothing is coerced, removed or defaulted: a document is refused as it came.
const ajv = new Ajv({ allErrors: true, verbose: true, unicodeRegExp: false, strict: true, coerceTypes: false, useDefaults: false, removeAdditional: false });
ajv.addKeyword({ keyword: DOCUMENT_KEYWORD, schemaType: "string" });

const compiled = new WeakMap<object, ValidateFunction>();

function validatorOf(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (v === undefined) {
    v = ajv.compile(schema as object);
    compiled.set(schema, v);
  }
  return v;
}

/** A key as it may appear in a message: quoted, and cut short. */
export function showKey(key: string): string {
  const cut = key.length > 40 ? `${key.slice(0, 40)}…` : key;
  return JSON.stringify(cut);
}

/** `/params/keyColumns/1` as `params.keyColumns[1]`. */
function fieldOf(instancePath: string, root: string): string {
  if (instancePath === "") return root;
  let out = "";
  for (const raw of instancePath.slice(1).split("/")) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === "" ? seg : `.${seg}`;
  }
  return out;
}

const join = (parent: string, key: string, rootPath: boolean): string => (rootPath ? showKey(key) : `${parent}.${showKey(key)}`);

function article(type: string): string {
  return type === "integer" || type === "array" || type === "object" ? `an ${type}` : type === "null" ? "null" : `a ${type}`;
}

function problemOf(e: ErrorObject): string {
  const s = (e.parentSchema ?? {}) as Record<string, unknown>;
  const described = typeof s["description"] === "string" ? `must be ${s["description"] as string}` : undefined;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "type": {
      const t = p["type"];
      const types = (Array.isArray(t) ? t : String(t).split(",")).map(String);
      // A number's bounds are said when it is out of them; its description (what it means) would bury "an integer".
      const numeric = types.every((x) => x === "integer" || x === "number");
      return (numeric ? undefined : described) ?? `must be ${types.map((x) => article(x)).join(" or ")}`;
    }
    case "minLength":
    case "maxLength":
      if (typeof s["minLength"] === "number" && typeof s["maxLength"] === "number") return `must be ${s["minLength"]} to ${s["maxLength"]} characters`;
      return e.keyword === "minLength" ? `must have at least ${String(p["limit"])} characters` : `must have at most ${String(p["limit"])} characters`;
    case "minItems":
    case "maxItems": {
      const min = s["minItems"];
      const max = s["maxItems"];
      if (e.keyword === "minItems") return `must have at least ${String(min)} entr${min === 1 ? "y" : "ies"}`;
      return typeof min === "number" && min > 0 ? `must have ${min} to ${String(max)} entries` : `must have at most ${String(max)} entries`;
    }
    case "minimum":
    case "maximum": {
      const min = s["minimum"];
      const max = s["maximum"];
      if (typeof min === "number" && typeof max === "number" && max !== Number.MAX_SAFE_INTEGER) return `must be between ${min} and ${max}`;
      return e.keyword === "minimum" ? `must be at least ${String(min)}` : `must be at most ${String(max)}`;
    }
    case "enum": {
      const allowed = p["allowedValues"] as unknown[];
      const meant = typeof e.data === "string" ? nearest(e.data, allowed.filter((a): a is string => typeof a === "string")) : undefined;
      return `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}${meant === undefined ? "" : ` (did you mean ${JSON.stringify(meant)}?)`}`;
    }
    case "const":
      return described ?? `must be ${JSON.stringify(p["allowedValue"])}`;
    case "required":
      return "is required";
    case "additionalProperties": {
      const known = Object.keys((s["properties"] ?? {}) as object);
      const meant = nearest(String(p["additionalProperty"]), known);
      const hint = meant === undefined ? "" : `: did you mean ${meant}?`;
      return known.length === 0 ? "unknown field" : `unknown field${hint} (the fields are ${known.join(", ")})`;
    }
    default:
      return described ?? e.message ?? "is not valid";
  }
}

/** The Levenshtein distance between two strings (insertions, deletions and substitutions of UTF-16 code units). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/**
 * The one of `candidates` that `name` most likely meant, compared without
 * case, "_" or "-": the nearest within 2 edits (1 under 5 characters),
 * else the only one that contains it or that it contains (4 characters or
 * more: "protocols" → allowedProtocols); undefined when none is close or
 * the guess is ambiguous.
 */
export function nearest(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, "");
  const n = norm(name);
  if (n === "" || name.length > 100) return undefined;
  // Two edits turn one short word into another ("rows" → "jobs"): one only under 5 characters.
  const most = n.length < 5 ? 1 : 2;
  const scored = candidates.map((c) => ({ c, d: editDistance(n, norm(c)) })).filter((x) => x.d <= most && x.c !== name);
  const best = Math.min(...scored.map((x) => x.d));
  const closest = scored.filter((x) => x.d === best);
  if (closest.length === 1) return closest[0]?.c;
  if (closest.length > 1 || n.length < 4) return undefined;
  const containing = candidates.filter((c) => norm(c).includes(n) || (norm(c).length >= 4 && n.includes(norm(c))));
  return containing.length === 1 ? containing[0] : undefined;
}

/** The JSON type of a value, as a schema's `type` names it. */
function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function branchType(b: Record<string, unknown>): string[] {
  const t = b["type"];
  return Array.isArray(t) ? (t as string[]) : typeof t === "string" ? [t] : [];
}

/** How many of ajv's errors a document's check reads, and how many problems it lists at most. */
export const MAX_SCHEMA_ERRORS = 64;
export const MAX_ISSUES = 20;

/**
 * The problems of `value` against `schema`, one per field (the first found
 * there), in the order the schema lists its fields. `root` names the
 * document itself (`policy`, `request`, …).
 */
export function schemaIssues(schema: TSchema, value: unknown, root: string): FieldIssue[] {
  const validate = validatorOf(schema);
  if (validate(value)) return [];
  // At most MAX_SCHEMA_ERRORS of ajv's errors are read (it reports every one, e.g. one per item of a long list),
  // so the union matching below stays bounded whatever a body holds; the problems listed stop at MAX_ISSUES.
  const errors = (validate.errors ?? []).slice(0, MAX_SCHEMA_ERRORS);
  // A union (anyOf): the branch of the value's own JSON type says what is wrong; with none — or when that branch
  // refuses the value itself, not one of its entries — the union's description says what is allowed.
  const under = (x: ErrorObject, e: ErrorObject, i: number): boolean =>
    x.schemaPath.startsWith(`${e.schemaPath}/${i}/`) && (x.instancePath === e.instancePath || x.instancePath.startsWith(`${e.instancePath}/`));
  const dropped = new Set<ErrorObject>();
  const unions = new Set<ErrorObject>();
  for (const e of errors) {
    if (e.keyword !== "anyOf") continue;
    const branches = e.schema as Record<string, unknown>[];
    const t = jsonType(e.data);
    const match = branches.findIndex((b) => branchType(b).includes(t) || (t === "integer" && branchType(b).includes("number")));
    const within = errors.filter((x) => under(x, e, match));
    const whole = match < 0 || within.every((x) => x.instancePath === e.instancePath);
    if (whole) unions.add(e);
    for (const x of errors) if (branches.some((_, i) => (i !== match || whole) && under(x, e, i))) dropped.add(x);
  }
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  const add = (field: string, problem: string) => {
    if (seen.has(field) || issues.length >= MAX_ISSUES) return;
    seen.add(field);
    issues.push({ field, problem });
  };
  for (const e of errors) {
    if (dropped.has(e)) continue;
    const field = fieldOf(e.instancePath, root);
    if (e.keyword === "anyOf") {
      if (unions.has(e)) {
        const s = (e.parentSchema ?? {}) as Record<string, unknown>;
        add(field, typeof s["description"] === "string" ? `must be ${s["description"] as string}` : "is not one of the allowed forms");
      }
      continue;
    }
    if (e.keyword === "additionalProperties") add(join(field, String((e.params as { additionalProperty: string }).additionalProperty), e.instancePath === ""), problemOf(e));
    else if (e.keyword === "required") add(e.instancePath === "" ? String((e.params as { missingProperty: string }).missingProperty) : `${field}.${String((e.params as { missingProperty: string }).missingProperty)}`, problemOf(e));
    else add(field, problemOf(e));
  }
  return issues;
}

/**
 * Puts issues in document order: unknown keys first (as the old checks did),
 * then by the rank of their top-level field in `fields`, then by list index —
 * so the schema's and the code's issues read as one pass over the document.
 */
export function inDocumentOrder(issues: readonly FieldIssue[], fields: readonly string[]): FieldIssue[] {
  const rank = (f: string): number => {
    const top = /^[A-Za-z_]+/.exec(f)?.[0];
    return top === undefined || f.startsWith('"') ? -1 : fields.indexOf(top);
  };
  const indexes = (f: string): number[] => [...f.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]));
  const cmp = (a: number[], b: number[]): number => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
    return 0;
  };
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((x, y) => rank(x.issue.field) - rank(y.issue.field) || cmp(indexes(x.issue.field), indexes(y.issue.field)) || x.i - y.i)
    .map((x) => x.issue);
}

/** The entries that repeat an earlier one (by `key`), each reported as "duplicate entry"; entries `skip` names are left out. */
export function duplicateIssues<T>(list: readonly T[], field: string, skip: (field: string) => boolean = () => false, key: (v: T) => string = (v) => JSON.stringify(v)): FieldIssue[] {
  const seen = new Set<string>();
  const out: FieldIssue[] = [];
  list.forEach((v, i) => {
    if (skip(`${field}[${i}]`)) return;
    const k = key(v);
    if (seen.has(k)) out.push({ field: `${field}[${i}]`, problem: "duplicate entry" });
    else seen.add(k);
  });
  return out;
}

/** Whether a value is a plain object (JSON's kind: no class instance, no array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
