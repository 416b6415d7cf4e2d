/**
 * node/policy and node/catalog: strict parsing of policies, job requests and
 * dataset descriptors (every refusal names its field); checkJob's rules one
 * by one, their precedence, expiry boundaries, budgets and the effective k;
 * the content hash of describeDataset (the same rows give the same hash from
 * a table, CSV or Arrow IPC, whatever the batching; different rows differ).
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Int64, RecordBatch, Table, tableToIPC, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeArrowIPC, writeCsv } from "../engine/columns/index.js";
import { InvalidArgumentError, InvalidInputError, UnreadableFileError } from "../engine/errors.js";
import { ProtocolId } from "../protocols/index.js";
import { openStore } from "../node/store.js";
import { nearest } from "../node/schemas/check.js";
import {
  CONTENT_HASH_BATCH_ROWS,
  InvalidDatasetError,
  canonicalSchema,
  catalogView,
  describeDataset,
  parseDatasetDescriptor,
  type DatasetDescriptor,
} from "../node/catalog.js";
import {
  InvalidJobRequestError,
  InvalidPolicyError,
  POLICY_RULE_ORDER,
  PolicyDeniedError,
  PolicyRule,
  checkJob,
  defaultPolicy,
  effectiveMinGroupSize,
  effectiveMinIntersection,
  jobCost,
  putPolicyVersion,
  rebasedBudget,
  requestExtends,
  withThresholds,
  parseJobRequest,
  parsePolicy,
  policyIssues,
  policyWarnings,
  ALLOWS_NOTHING,
  type PolicyDocument,
  type JobRequest,
  type PolicyContext,
  type UsagePolicy,
} from "../node/policy.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "umbra-policy-"));
});
afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});
const file = (name: string): string => join(dir, name);

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}

const SCHEMA = [
  { name: "phone", type: "Utf8" },
  { name: "region", type: "Utf8" },
  { name: "spend", type: "Float64" },
  { name: "age", type: "Int64" },
];

const DATASET: DatasetDescriptor = {
  id: "telco.subscribers",
  owner: "telco",
  name: "Subscribers 2025",
  schema: SCHEMA,
  rowCount: 1_000_000,
  contentHash: "ab".repeat(32),
  createdAt: "2025-01-01T00:00:00Z",
};

const GOOD_POLICY = {
  allowedProtocols: ["psi", "psi-cardinality", "lookup", "join-aggregate"],
  outputColumns: ["region", "spend"],
  keyColumns: ["phone"],
  allowedBuyers: ["bank", "insurer"],
  minGroupSize: 10,
  queryBudget: 100,
  budgetUnit: "jobs",
  expiresAt: "2030-01-01T00:00:00Z",
};

const policy = (over: Partial<UsagePolicy> = {}): UsagePolicy => ({ ...parsePolicy(GOOD_POLICY, SCHEMA), ...over });

const request = (over: Partial<JobRequest> = {}, params: Partial<JobRequest["params"]> = {}): JobRequest => ({
  protocol: ProtocolId.Lookup,
  buyer: "bank",
  buyerDataset: "bank.customers",
  providerDataset: "telco.subscribers",
  ...over,
  params: { keyColumns: ["phone"], outputColumns: ["spend"], ...params },
});

const CTX: PolicyContext = { now: new Date("2026-06-01T00:00:00Z"), budgetRemaining: 100 };

function denial(p: UsagePolicy, r: JobRequest, ctx: PolicyContext = CTX, d: DatasetDescriptor = DATASET): PolicyDeniedError {
  const err = thrown(() => checkJob(p, d, r, ctx));
  expect(err).toBeInstanceOf(PolicyDeniedError);
  const e = err as PolicyDeniedError;
  expect(e.code).toBe("UMBRA_POLICY_DENIED");
  expect(e.message).toContain(e.rule);
  // never an identifier of the buyer or of a dataset
  for (const secret of ["bank", "telco", "insurer"]) expect(e.message).not.toContain(secret);
  return e;
}

// ---------------------------------------------------------------------------

describe("parsePolicy", () => {
  it("accepts a full policy as given", () => {
    expect(parsePolicy(GOOD_POLICY, SCHEMA)).toEqual(GOOD_POLICY);
    const withK = parsePolicy({ ...GOOD_POLICY, allowedBuyers: "any", minIntersection: 50, expiresAt: "2030-01-01T08:00:00.250+08:00" });
    expect(withK.allowedBuyers).toBe("any");
    expect(withK.minIntersection).toBe(50);
    expect(withK.expiresAt).toBe("2030-01-01T08:00:00.250+08:00");
  });

  it("fills left-out fields with the defaults, which fail closed", () => {
    const d = defaultPolicy();
    expect(parsePolicy({})).toEqual(d);
    expect(d.allowedProtocols).toEqual([]);
    expect(d.outputColumns).toEqual([]);
    expect(d.allowedBuyers).toEqual([]);
    expect(d.minGroupSize).toBeGreaterThan(1);
    expect(d.expiresAt).toBeNull();
    expect(parsePolicy({ expiresAt: null }).expiresAt).toBeNull();
    expect("minIntersection" in parsePolicy({})).toBe(false);
    // each call is a fresh object
    defaultPolicy().allowedProtocols.push("psi");
    expect(defaultPolicy().allowedProtocols).toEqual([]);
  });

  it.each<[string, unknown, string]>([
    ["not an object", null, "policy"],
    ["an array", [GOOD_POLICY], "policy"],
    ["a JSON string", JSON.stringify(GOOD_POLICY), "policy"],
    ["an unknown field", { ...GOOD_POLICY, epsilon: 1 }, '"epsilon"'],
    ["__proto__ from JSON.parse", JSON.parse('{"__proto__": {"x": 1}}'), '"__proto__"'],
    ["protocols not a list", { allowedProtocols: "psi" }, "allowedProtocols"],
    ["an unknown protocol", { allowedProtocols: ["psi", "sql"] }, "allowedProtocols[1]"],
    ["a repeated protocol", { allowedProtocols: ["psi", "psi"] }, "allowedProtocols[1]"],
    ["a column that is not a string", { outputColumns: [3] }, "outputColumns[0]"],
    ["an empty column name", { outputColumns: [""] }, "outputColumns[0]"],
    ["a repeated column", { outputColumns: ["spend", "spend"] }, "outputColumns[1]"],
    ["a column not in the schema", { outputColumns: ["spend", "salary"] }, "outputColumns[1]"],
    ["buyers as another string", { allowedBuyers: "all" }, "allowedBuyers"],
    ["buyers not a list", { allowedBuyers: 5 }, "allowedBuyers"],
    ["a buyer with whitespace", { allowedBuyers: ["a b"] }, "allowedBuyers[0]"],
    ["an empty buyer", { allowedBuyers: [""] }, "allowedBuyers[0]"],
    ["k of zero", { minGroupSize: 0 }, "minGroupSize"],
    ["a fractional k", { minGroupSize: 2.5 }, "minGroupSize"],
    ["k as a string", { minGroupSize: "10" }, "minGroupSize"],
    ["a huge k", { minGroupSize: 1e12 }, "minGroupSize"],
    ["a negative budget", { queryBudget: -1 }, "queryBudget"],
    ["an infinite budget", { queryBudget: Infinity }, "queryBudget"],
    ["an unknown budget unit", { budgetUnit: "rows" }, "budgetUnit"],
    ["a date without time", { expiresAt: "2030-01-01" }, "expiresAt"],
    ["a date-time without zone", { expiresAt: "2030-01-01T00:00:00" }, "expiresAt"],
    ["February 30th", { expiresAt: "2030-02-30T00:00:00Z" }, "expiresAt"],
    ["hour 24", { expiresAt: "2030-01-01T24:00:00Z" }, "expiresAt"],
    ["a bad zone", { expiresAt: "2030-01-01T00:00:00+25:00" }, "expiresAt"],
    ["a date as a number", { expiresAt: 1893456000000 }, "expiresAt"],
    ["free text as date", { expiresAt: "next year" }, "expiresAt"],
    ["minIntersection zero", { minIntersection: 0 }, "minIntersection"],
  ])("refuses %s, naming the field", (_, input, field) => {
    // Registered on a dataset, a policy must allow a protocol: those that name none get one, so the field under test is the first problem.
    const offered = typeof input === "object" && input !== null && !Array.isArray(input) && !Object.hasOwn(input, "allowedProtocols") && !Object.hasOwn(input, "__proto__") ? { allowedProtocols: ["psi"], ...input } : input;
    const err = thrown(() => parsePolicy(offered, SCHEMA));
    expect(err).toBeInstanceOf(InvalidPolicyError);
    expect(err).toBeInstanceOf(InvalidInputError);
    const e = err as InvalidPolicyError;
    expect(e.code).toBe("UMBRA_INVALID_POLICY");
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
  });

  it("lists every bad field, and checks columns against the schema only when given one", () => {
    const e = thrown(() => parsePolicy({ minGroupSize: 0, budgetUnit: "rows", outputColumns: ["salary"], extra: true }, SCHEMA)) as InvalidPolicyError;
    expect(e.fields).toEqual(['"extra"', "allowedProtocols", "outputColumns[0]", "minGroupSize", "budgetUnit"]);
    expect(parsePolicy({ outputColumns: ["salary"] }).outputColumns).toEqual(["salary"]);
  });

  it("refuses a policy offered on a dataset that allows no protocol, and reads one back from the store as it is", () => {
    for (const empty of [{}, { allowedProtocols: [] }, { keyColumns: ["phone"], allowedBuyers: "any" }]) {
      const e = thrown(() => parsePolicy(empty, SCHEMA)) as InvalidPolicyError;
      expect([e.code, e.fields, e.issues[0]?.problem]).toEqual(["UMBRA_INVALID_POLICY", ["allowedProtocols"], ALLOWS_NOTHING]);
      expect(policyIssues(empty)).toEqual([{ field: "allowedProtocols", problem: ALLOWS_NOTHING }]);
    }
    expect(ALLOWS_NOTHING).toMatch(/^the policy allows nothing: add at least one protocol under allowedProtocols \(/);
    // A stored policy was checked when it was registered: read back without a schema, only its form is checked.
    expect(parsePolicy({ allowedProtocols: [] })).toEqual(defaultPolicy());
    // A protocol that is not valid is reported as itself, not as "allows nothing".
    expect(policyIssues({ allowedProtocols: ["sql"] }).map((i) => i.field)).toEqual(["allowedProtocols[0]"]);
  });

  it('accepts a "//" comment (a string or lines) and does not keep it', () => {
    const p = parsePolicy({ "//": ["why", ""], ...GOOD_POLICY }, SCHEMA);
    expect(p).toEqual(GOOD_POLICY);
    expect(parsePolicy({ "//": "one line", ...GOOD_POLICY }, SCHEMA)).toEqual(GOOD_POLICY);
    expect((thrown(() => parsePolicy({ "//": 5, ...GOOD_POLICY }, SCHEMA)) as InvalidPolicyError).fields).toEqual(["//"]);
  });

  it("names the field an unknown one most likely meant, and none when no field is close", () => {
    const problem = (doc: object) => policyIssues({ allowedProtocols: ["psi"], ...doc })[0]?.problem ?? "";
    expect(problem({ keyColumn: [] })).toMatch(/^unknown field: did you mean keyColumns\? \(the fields are allowedProtocols, /);
    expect(problem({ MinGroupSize: 5 })).toMatch(/^unknown field: did you mean minGroupSize\? /);
    expect(problem({ buyers: [] })).toMatch(/^unknown field: did you mean allowedBuyers\? /);
    expect(problem({ epsilon: 1 })).toMatch(/^unknown field \(the fields are /);
    // "columns" is in outputColumns and keyColumns: ambiguous, so no guess.
    expect(problem({ columns: [] })).toMatch(/^unknown field \(the fields are /);
    expect(nearest("rows", ["keys", "jobs"])).toBeUndefined();
    expect(nearest("job", ["keys", "jobs"])).toBe("jobs");
    expect(nearest("PSI", ["psi", "lookup"])).toBe("psi");
    expect(nearest("x".repeat(200), ["psi"])).toBeUndefined();
  });
});

describe("policyWarnings", () => {
  it("warns of no buyer, a joining protocol without a key, lookup without output columns, a threshold for no allowed protocol, and a past expiry", () => {
    const w = policyWarnings({ allowedProtocols: ["psi", "lookup"], minGroupSize: 5, expiresAt: "2020-01-01T00:00:00Z" }, CTX.now);
    expect(w.map((i) => i.field)).toEqual(["allowedBuyers", "keyColumns", "outputColumns", "minGroupSize", "expiresAt"]);
    expect(policyWarnings(GOOD_POLICY as PolicyDocument, CTX.now)).toEqual([]);
  });
});

describe("parseJobRequest", () => {
  const base = { protocol: "lookup", buyer: "bank", buyerDataset: "bank.customers", providerDataset: "telco.subscribers" };

  it.each<[string, unknown]>([
    ["psi", { ...base, protocol: "psi", params: { keyColumns: ["phone"] } }],
    ["psi-cardinality with k", { ...base, protocol: "psi-cardinality", params: { keyColumns: ["phone"], minGroupSize: 20 } }],
    ["lookup", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend", "region"], queryCount: 5000 } }],
    ["join-aggregate sum", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone", "region"], outputColumns: ["spend"], mode: "sum" } }],
    ["join-aggregate count", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone"], mode: "count" } }],
    ["federated histogram", { ...base, protocol: "federated-aggregate", params: { keyColumns: ["region"], outputColumns: ["age"], mode: "histogram" } }],
  ])("accepts %s", (_, input) => {
    expect(parseJobRequest(input)).toEqual(input);
  });

  it.each<[string, unknown, string]>([
    ["not an object", "lookup", "request"],
    ["an unknown field", { ...base, priority: 1, params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, '"priority"'],
    ["an unknown parameter", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend"], where: "x" } }, 'params."where"'],
    ["an unknown protocol", { ...base, protocol: "sql", params: { keyColumns: ["phone"] } }, "protocol"],
    ["a buyer that is not a string", { ...base, buyer: 7, params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "buyer"],
    ["a buyer with a newline", { ...base, buyer: "ba\nnk", params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "buyer"],
    ["an empty buyer dataset", { ...base, buyerDataset: "", params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "buyerDataset"],
    ["a missing provider dataset", { ...base, providerDataset: undefined, params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "providerDataset"],
    ["no params", { ...base }, "params"],
    ["no key column", { ...base, params: { keyColumns: [], outputColumns: ["spend"] } }, "params.keyColumns"],
    ["a repeated key column", { ...base, params: { keyColumns: ["phone", "phone"], outputColumns: ["spend"] } }, "params.keyColumns[1]"],
    ["a key column not a string", { ...base, params: { keyColumns: [null], outputColumns: ["spend"] } }, "params.keyColumns[0]"],
    ["output columns for psi", { ...base, protocol: "psi", params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "params.outputColumns"],
    ["lookup without output columns", { ...base, params: { keyColumns: ["phone"] } }, "params.outputColumns"],
    ["lookup with no output column", { ...base, params: { keyColumns: ["phone"], outputColumns: [] } }, "params.outputColumns"],
    ["a mode for lookup", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend"], mode: "sum" } }, "params.mode"],
    ["an aggregate without mode", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone"], outputColumns: ["spend"] } }, "params.mode"],
    ["an unknown mode", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone"], mode: "median" } }, "params.mode"],
    ["a mode the protocol lacks", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone"], outputColumns: ["age"], mode: "histogram" } }, "params.mode"],
    ["sum over nothing", { ...base, protocol: "join-aggregate", params: { keyColumns: ["phone"], mode: "sum" } }, "params.outputColumns"],
    ["k for lookup", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend"], minGroupSize: 5 } }, "params.minGroupSize"],
    ["k of zero", { ...base, protocol: "psi-cardinality", params: { keyColumns: ["phone"], minGroupSize: 0 } }, "params.minGroupSize"],
    ["a query count of zero", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend"], queryCount: 0 } }, "params.queryCount"],
    ["a fractional query count", { ...base, params: { keyColumns: ["phone"], outputColumns: ["spend"], queryCount: 1.5 } }, "params.queryCount"],
  ])("refuses %s, naming the field", (_, input, field) => {
    const err = thrown(() => parseJobRequest(input));
    expect(err).toBeInstanceOf(InvalidJobRequestError);
    const e = err as InvalidJobRequestError;
    expect(e.code).toBe("UMBRA_INVALID_JOB_REQUEST");
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
    expect(e.message).not.toContain("bank");
  });
});

// ---------------------------------------------------------------------------

describe("checkJob", () => {
  it("passes a job the policy allows", () => {
    expect(() => checkJob(policy(), DATASET, request(), CTX)).not.toThrow();
    expect(() => checkJob(policy({ allowedBuyers: "any" }), DATASET, request({ buyer: "anyone" }), CTX)).not.toThrow();
  });

  it("dataset-mismatch: the job names another provider dataset", () => {
    const e = denial(policy(), request({ providerDataset: "telco.other" }));
    expect(e.rule).toBe(PolicyRule.DatasetMismatch);
  });

  it("policy-expired", () => {
    const e = denial(policy({ expiresAt: "2026-01-01T00:00:00Z" }), request());
    expect(e.rule).toBe(PolicyRule.PolicyExpired);
  });

  it("buyer-not-allowed, without naming the buyer", () => {
    const e = denial(policy({ allowedBuyers: ["insurer"] }), request());
    expect(e.rule).toBe(PolicyRule.BuyerNotAllowed);
    expect(denial(policy({ allowedBuyers: [] }), request()).rule).toBe(PolicyRule.BuyerNotAllowed);
  });

  it("protocol-not-allowed, naming the protocol", () => {
    const e = denial(policy(), request({ protocol: ProtocolId.FederatedAggregate }, { mode: "sum" }));
    expect(e.rule).toBe(PolicyRule.ProtocolNotAllowed);
    expect(e.protocol).toBe("federated-aggregate");
    expect(e.message).toContain("federated-aggregate");
  });

  it("key-column-missing, naming the columns", () => {
    const e = denial(policy(), request({}, { keyColumns: ["phone", "email", "imei"] }));
    expect(e.rule).toBe(PolicyRule.KeyColumnMissing);
    expect(e.columns).toEqual(["email", "imei"]);
    expect(e.message).toContain('"email", "imei"');
    expect(denial(policy(), request({}, { keyColumns: [] })).rule).toBe(PolicyRule.KeyColumnMissing);
  });

  it("column-not-allowed, naming the columns (in the schema but not allowed, or not in the schema)", () => {
    const e = denial(policy(), request({}, { outputColumns: ["spend", "age"] }));
    expect(e.rule).toBe(PolicyRule.ColumnNotAllowed);
    expect(e.columns).toEqual(["age"]);
    expect(e.message).toContain('"age"');
    // a policy not checked against this schema allows a column the dataset lacks: still refused
    const loose = policy({ outputColumns: ["spend", "salary"] });
    expect(denial(loose, request({}, { outputColumns: ["salary"] })).columns).toEqual(["salary"]);
  });

  it("group-size-below-minimum", () => {
    const e = denial(policy(), request({ protocol: ProtocolId.PsiCardinality }, { outputColumns: undefined, minGroupSize: 3 }));
    expect(e.rule).toBe(PolicyRule.GroupSizeBelowMinimum);
    expect(e.message).toContain("psi-cardinality");
  });

  it("query-count-missing: a budget in keys needs a declared queryCount", () => {
    const e = denial(policy({ budgetUnit: "keys", queryBudget: 10_000 }), request());
    expect(e.rule).toBe(PolicyRule.QueryCountMissing);
  });

  it("budget-exhausted", () => {
    const e = denial(policy(), request(), { ...CTX, budgetRemaining: 0 });
    expect(e.rule).toBe(PolicyRule.BudgetExhausted);
  });

  it("checks the rules in the documented order: fixing one failure reveals the next", () => {
    expect(POLICY_RULE_ORDER).toEqual([
      "dataset-mismatch",
      "policy-expired",
      "buyer-not-allowed",
      "protocol-not-allowed",
      "key-column-missing",
      "key-column-not-allowed",
      "column-not-allowed",
      "group-size-below-minimum",
      "intersection-below-minimum",
      "query-count-missing",
      "budget-exhausted",
      "dp-required",
      "privacy-budget-exhausted",
      "normalise-merges-keys",
    ]);
    // A job on a policy that breaks every rule at once (but the two of federated-aggregate's privacy budget: below).
    let p = policy({ expiresAt: "2026-01-01T00:00:00Z", allowedBuyers: ["insurer"], allowedProtocols: ["lookup"], budgetUnit: "keys", queryBudget: 50, keyColumns: [], minIntersection: 20 });
    // psi-cardinality: both a k-protocol and an intersection protocol, so every rule applies.
    let r = request(
      { protocol: ProtocolId.PsiCardinality, providerDataset: "elsewhere" },
      { keyColumns: ["email"], outputColumns: ["age"], minGroupSize: 2, minIntersection: 5, normalise: { digitsOnly: true } },
    );
    let ctx: PolicyContext = { ...CTX, budgetRemaining: 10 };
    const fixes: Record<Exclude<PolicyRule, "dp-required" | "privacy-budget-exhausted">, () => void> = {
      "dataset-mismatch": () => (r = { ...r, providerDataset: DATASET.id }),
      "policy-expired": () => (p = { ...p, expiresAt: null }),
      "buyer-not-allowed": () => (p = { ...p, allowedBuyers: ["bank"] }),
      "protocol-not-allowed": () => (p = { ...p, allowedProtocols: ["psi-cardinality"] }),
      "key-column-missing": () => (r = { ...r, params: { ...r.params, keyColumns: ["phone"] } }),
      "key-column-not-allowed": () => (p = { ...p, keyColumns: ["phone"] }),
      "column-not-allowed": () => (p = { ...p, outputColumns: ["age"] }),
      "group-size-below-minimum": () => (r = { ...r, params: { ...r.params, minGroupSize: 12 } }),
      "intersection-below-minimum": () => (r = { ...r, params: { ...r.params, minIntersection: 25 } }),
      "query-count-missing": () => (r = { ...r, params: { ...r.params, queryCount: 40 } }),
      "budget-exhausted": () => (ctx = { ...ctx, budgetRemaining: 40 }),
      "normalise-merges-keys": () => {
        const { normalise: _dropped, ...params } = r.params;
        r = { ...r, params };
      },
    };
    const seen: string[] = [];
    const order = POLICY_RULE_ORDER.filter((x): x is keyof typeof fixes => x !== "dp-required" && x !== "privacy-budget-exhausted");
    for (const rule of order) {
      seen.push(denial(p, r, ctx).rule);
      fixes[rule]();
    }
    expect(seen).toEqual(order);
    expect(() => checkJob(p, DATASET, r, ctx)).not.toThrow();
    expect(effectiveMinGroupSize(p, r)).toBe(12);
  });

  describe("privacy budget (federated-aggregate with dp)", () => {
    const fa = (rho?: string): JobRequest =>
      request(
        { protocol: ProtocolId.FederatedAggregate, providerDataset: undefined, buyerDataset: undefined, providerDatasets: [DATASET.id, "other"] },
        { keyColumns: [], outputColumns: [], aggregate: { aggregates: [{ fn: "count" }], ...(rho ? { dp: { rho } } : {}) } },
      );
    const p = policy({ allowedProtocols: [ProtocolId.FederatedAggregate], privacyBudget: { rho: "1/2" } });

    it("parses privacyBudget to an exact rational and refuses one that is not positive", () => {
      expect(parsePolicy({ ...GOOD_POLICY, privacyBudget: { rho: "0.25" } }).privacyBudget).toEqual({ rho: "1/4" });
      expect(parsePolicy({ ...GOOD_POLICY, privacyBudget: { rho: 0.5 } }).privacyBudget).toEqual({ rho: "1/2" });
      expect(parsePolicy(GOOD_POLICY).privacyBudget).toBeUndefined();
      expect(() => parsePolicy({ ...GOOD_POLICY, privacyBudget: { rho: "0/1" } })).toThrow(InvalidPolicyError);
      expect(() => parsePolicy({ ...GOOD_POLICY, privacyBudget: { rho: "-1" } })).toThrow(InvalidPolicyError);
    });

    it("refuses a job without dp (dp-required) and one whose ρ exceeds what remains (privacy-budget-exhausted), exactly", () => {
      expect(denial(p, fa()).rule).toBe(PolicyRule.DpRequired);
      expect(() => checkJob(p, DATASET, fa("1/5"), { ...CTX, privacySpent: "3/10" })).not.toThrow(); // 1/5 + 3/10 = 1/2: the last of it
      expect(denial(p, fa("1/5"), { ...CTX, privacySpent: "31/100" }).rule).toBe(PolicyRule.PrivacyBudgetExhausted);
      // Without a privacy budget, dp is optional.
      expect(() => checkJob(policy({ allowedProtocols: [ProtocolId.FederatedAggregate] }), DATASET, fa(), CTX)).not.toThrow();
    });
  });

  describe("expiry", () => {
    const p = policy({ expiresAt: "2026-06-01T00:00:00Z" });
    const at = (iso: string, ms = 0): PolicyContext => ({ ...CTX, now: new Date(Date.parse(iso) + ms) });

    it("is valid strictly before expiresAt and expired from that instant on", () => {
      expect(() => checkJob(p, DATASET, request(), at("2026-06-01T00:00:00Z", -1))).not.toThrow();
      expect(denial(p, request(), at("2026-06-01T00:00:00Z")).rule).toBe(PolicyRule.PolicyExpired);
      expect(denial(p, request(), at("2026-06-01T00:00:00Z", 1)).rule).toBe(PolicyRule.PolicyExpired);
    });

    it("honours the time zone of expiresAt", () => {
      const east = parsePolicy({ ...GOOD_POLICY, expiresAt: "2026-06-01T08:00:00+08:00" });
      expect(() => checkJob(east, DATASET, request(), at("2026-05-31T23:59:59.999Z"))).not.toThrow();
      expect(denial(east, request(), at("2026-06-01T00:00:00Z")).rule).toBe(PolicyRule.PolicyExpired);
    });

    it("never expires with expiresAt null", () => {
      expect(() => checkJob(policy({ expiresAt: null }), DATASET, request(), at("9999-12-31T23:59:59Z"))).not.toThrow();
    });
  });

  describe("budgets", () => {
    it("counts one per job in jobs", () => {
      const p = policy();
      expect(jobCost(p, request({}, { queryCount: 5000 }))).toBe(1);
      expect(() => checkJob(p, DATASET, request(), { ...CTX, budgetRemaining: 1 })).not.toThrow();
      expect(denial(p, request(), { ...CTX, budgetRemaining: 0 }).rule).toBe(PolicyRule.BudgetExhausted);
    });

    it("counts the declared keys in keys, up to exactly what remains", () => {
      const p = policy({ budgetUnit: "keys", queryBudget: 10_000 });
      expect(jobCost(p, request({}, { queryCount: 5000 }))).toBe(5000);
      expect(() => checkJob(p, DATASET, request({}, { queryCount: 5000 }), { ...CTX, budgetRemaining: 5000 })).not.toThrow();
      const e = denial(p, request({}, { queryCount: 5001 }), { ...CTX, budgetRemaining: 5000 });
      expect(e.rule).toBe(PolicyRule.BudgetExhausted);
      expect(e.message).toContain("5001 keys");
    });

    it("never lets a job exceed the policy's total budget, whatever the context claims", () => {
      const p = policy({ budgetUnit: "keys", queryBudget: 100 });
      expect(denial(p, request({}, { queryCount: 101 }), { ...CTX, budgetRemaining: 1e9 }).rule).toBe(PolicyRule.BudgetExhausted);
      expect(denial(policy({ queryBudget: 0 }), request(), CTX).rule).toBe(PolicyRule.BudgetExhausted);
    });

    it("refuses a context that is not a date and a non-negative budget", () => {
      expect(thrown(() => checkJob(policy(), DATASET, request(), { now: new Date("x"), budgetRemaining: 1 }))).toBeInstanceOf(InvalidArgumentError);
      expect(thrown(() => checkJob(policy(), DATASET, request(), { ...CTX, budgetRemaining: -1 }))).toBeInstanceOf(InvalidArgumentError);
      expect(thrown(() => checkJob(policy(), DATASET, request(), { ...CTX, budgetRemaining: NaN }))).toBeInstanceOf(InvalidArgumentError);
    });
  });

  describe("effective k", () => {
    const card = (k?: number): JobRequest => request({ protocol: ProtocolId.PsiCardinality }, { outputColumns: undefined, minGroupSize: k });

    it("is the larger of the policy's and the job's", () => {
      expect(effectiveMinGroupSize(policy({ minGroupSize: 10 }), card())).toBe(10);
      expect(effectiveMinGroupSize(policy({ minGroupSize: 10 }), card(25))).toBe(25);
      expect(effectiveMinGroupSize(policy({ minGroupSize: 10 }), card(4))).toBe(10);
    });

    it("lets a buyer ask for more than the policy's k, not less", () => {
      expect(() => checkJob(policy(), DATASET, card(10), CTX)).not.toThrow();
      expect(() => checkJob(policy(), DATASET, card(50), CTX)).not.toThrow();
      expect(denial(policy(), card(9)).rule).toBe(PolicyRule.GroupSizeBelowMinimum);
    });

    it("applies to the k-protocols only", () => {
      // lookup does not suppress groups: a k on it is refused when parsed, and ignored by the check
      expect(() => checkJob(policy(), DATASET, request({}, { minGroupSize: 1 }), CTX)).not.toThrow();
    });
  });

  it("runs the same check for the provider's agent on a parsed request (JSON round trip)", () => {
    const r = parseJobRequest(JSON.parse(JSON.stringify(request({}, { outputColumns: ["spend", "age"] }))));
    const p = parsePolicy(JSON.parse(JSON.stringify(policy())), DATASET.schema);
    const d = parseDatasetDescriptor(JSON.parse(JSON.stringify(DATASET)));
    expect(denial(p, r, CTX, d).rule).toBe(PolicyRule.ColumnNotAllowed);
  });
});

// ---------------------------------------------------------------------------

const N = 40;
const phones = Array.from({ length: N }, (_, i) => (i % 11 === 5 ? null : `+86 138 0000 ${String(i).padStart(4, "0")}`));
const ages = Array.from({ length: N }, (_, i) => (i % 7 === 3 ? null : BigInt(18 + ((i * 13) % 60))));
const spends = Array.from({ length: N }, (_, i) => (i % 9 === 4 ? null : Math.round(i * 137.25) / 100));

function sample(over: { phones?: (string | null)[]; ages?: (bigint | null)[] } = {}): Table {
  return new Table({
    phone: vectorFromArray(over.phones ?? phones, new Utf8()),
    age: vectorFromArray(over.ages ?? ages, new Int64()),
    spend: vectorFromArray(spends, new Float64()),
  });
}

/** The same rows cut into batches of `size` rows. */
function rebatched(t: Table, size: number): Table {
  const batches: RecordBatch[] = [];
  for (let i = 0; i < t.numRows; i += size) batches.push(...t.slice(i, i + size).batches);
  return new Table(batches);
}

const describeTable = (table: Table | string, read?: Parameters<typeof describeDataset>[0]["read"]) =>
  describeDataset({ id: "telco.subscribers", owner: "telco", name: "Subscribers", table, read, createdAt: new Date("2025-01-01T00:00:00Z") });

describe("key columns (a key discloses membership: only the keys a policy names)", () => {
  const SCHEMA2 = [...SCHEMA, { name: "diagnosis", type: "Utf8" }, { name: "first_name", type: "Utf8" }, { name: "birth_date", type: "Utf8" }];
  const DS2: DatasetDescriptor = { ...DATASET, schema: SCHEMA2 };
  const keyed = (keyColumns: unknown): UsagePolicy => parsePolicy({ ...GOOD_POLICY, allowedProtocols: ["psi"], keyColumns }, SCHEMA2);
  const psi = (keys: string[]) => request({ protocol: ProtocolId.Psi }, { keyColumns: keys, outputColumns: [] });

  it("parses single and composite keys; a composite is a set (no duplicate in another order)", () => {
    expect(keyed(["phone", ["first_name", "birth_date"]]).keyColumns).toEqual(["phone", ["first_name", "birth_date"]]);
    const dup = thrown(() => keyed([["first_name", "birth_date"], ["birth_date", "first_name"]])) as InvalidPolicyError;
    expect(dup).toBeInstanceOf(InvalidPolicyError);
    expect(dup.issues).toEqual([{ field: "keyColumns[1]", problem: "duplicate entry" }]);
  });

  it("refuses keys outside the schema, one-column composites and malformed entries, naming each field", () => {
    const e = thrown(() => parsePolicy({ ...GOOD_POLICY, keyColumns: ["nope", ["phone"], 7] }, SCHEMA2)) as InvalidPolicyError;
    expect(e.fields).toEqual(["keyColumns[0]", "keyColumns[1]", "keyColumns[2]"]);
    expect((thrown(() => parsePolicy({ ...GOOD_POLICY, keyColumns: "phone" })) as InvalidPolicyError).field).toBe("keyColumns");
  });

  it("defaults to no key column: a joining job is refused until the provider names its keys", () => {
    expect(defaultPolicy().keyColumns).toEqual([]);
    const e = denial(keyed([]), psi(["phone"]), CTX, DS2);
    expect(e.rule).toBe(PolicyRule.KeyColumnNotAllowed);
    expect(e.message).toContain("the policy allows no key column");
  });

  it("the attack: phone allowed, a composite phone + diagnosis (testing each phone's diagnosis) is refused", () => {
    const p = keyed(["phone"]);
    expect(() => checkJob(p, DS2, psi(["phone"]), CTX)).not.toThrow();
    const e = denial(p, psi(["phone", "diagnosis"]), CTX, DS2);
    expect(e.rule).toBe(PolicyRule.KeyColumnNotAllowed);
    expect(e.columns).toEqual(["diagnosis"]);
    expect(denial(p, psi(["diagnosis"]), CTX, DS2).rule).toBe(PolicyRule.KeyColumnNotAllowed);
  });

  it("a composite key matches as a set, and none of its columns alone", () => {
    const p = keyed([["first_name", "birth_date"]]);
    expect(() => checkJob(p, DS2, psi(["birth_date", "first_name"]), CTX)).not.toThrow();
    expect(denial(p, psi(["first_name"]), CTX, DS2).rule).toBe(PolicyRule.KeyColumnNotAllowed);
    expect(denial(p, psi(["first_name", "birth_date", "phone"]), CTX, DS2).rule).toBe(PolicyRule.KeyColumnNotAllowed);
  });
});

describe("minimum intersection (psi, psi-cardinality, lookup)", () => {
  it("is filled from the policy; a job may ask for more, never less", () => {
    const p = policy({ minIntersection: 20 });
    expect(withThresholds(p, request({ protocol: ProtocolId.Psi }, { outputColumns: [] })).params.minIntersection).toBe(20);
    expect(withThresholds(p, request({ protocol: ProtocolId.Psi }, { outputColumns: [], minIntersection: 30 })).params.minIntersection).toBe(30);
    expect(denial(p, request({ protocol: ProtocolId.Psi }, { outputColumns: [], minIntersection: 19 })).rule).toBe(PolicyRule.IntersectionBelowMinimum);
  });

  it("psi-cardinality runs with the larger of k and minIntersection; join-aggregate has none", () => {
    const card = request({ protocol: ProtocolId.PsiCardinality }, { outputColumns: [] });
    expect(effectiveMinIntersection(policy({ minGroupSize: 10 }), card)).toBe(10);
    expect(effectiveMinIntersection(policy({ minGroupSize: 10, minIntersection: 25 }), card)).toBe(25);
    expect(withThresholds(policy({ minGroupSize: 10 }), card).params).toMatchObject({ minIntersection: 10, minGroupSize: 10 });
    expect(effectiveMinIntersection(policy(), request({ protocol: ProtocolId.Lookup }))).toBe(1);
    expect(effectiveMinIntersection(policy(), request({ protocol: ProtocolId.JoinAggregate }))).toBeUndefined();
  });

  it("parses params.minIntersection for the intersection protocols only", () => {
    const ok = parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "b.c", providerDataset: "t.s", params: { keyColumns: ["phone"], minIntersection: 5 } });
    expect(ok.params.minIntersection).toBe(5);
    const e = thrown(() => parseJobRequest({ protocol: "join-aggregate", buyer: "bank", buyerDataset: "b.c", providerDataset: "t.s", params: { keyColumns: ["phone"], outputColumns: ["spend"], mode: "sum", minIntersection: 5 } })) as InvalidJobRequestError;
    expect(e.issues).toEqual([{ field: "params.minIntersection", problem: "does not apply to protocol join-aggregate" }]);
  });
});

describe("requestExtends: the buyer's agent runs only the job it asked for", () => {
  const asked = parseJobRequest({
    protocol: "join-aggregate", buyer: "bank", buyerDataset: "customers.csv", providerDataset: "telco.usage.csv",
    params: { keyColumns: ["id"], minGroupSize: 5, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "segment" }, scale: 0 } },
  });
  const filled: JobRequest = { ...asked, params: { ...asked.params, minGroupSize: 10, aggregate: { ...(asked.params.aggregate as NonNullable<JobRequest["params"]["aggregate"]>), maxAbsValue: "1099511627776", scale: 0 } } };

  it("accepts what the exchange filled in (defaults, a larger k), whatever the key order of the JSON", () => {
    expect(requestExtends(asked, filled)).toBe(true);
    const reordered = JSON.parse(JSON.stringify(filled, Object.keys(filled).sort())) as JobRequest;
    expect(requestExtends(asked, { ...reordered, params: filled.params })).toBe(true);
  });

  it.each([
    ["another file of the buyer's", { ...filled, buyerDataset: "secret.csv" }],
    ["another provider dataset", { ...filled, providerDataset: "telco.other.csv" }],
    ["another key", { ...filled, params: { ...filled.params, keyColumns: ["phone"] } }],
    ["a lower k", { ...filled, params: { ...filled.params, minGroupSize: 4 } }],
    ["a changed aggregate", { ...filled, params: { ...filled.params, aggregate: { ...(filled.params.aggregate as object), groupBy: { column: "region" } } as never } }],
    ["another protocol", { ...filled, protocol: ProtocolId.Psi }],
    ["a group-by the buyer never chose (the red team's hiv_status)", { ...filled, params: { ...filled.params, aggregate: { ...(filled.params.aggregate as object), groupBy: { column: "hiv_status" } } as never } }],
    ["an aggregate added", { ...filled, params: { ...filled.params, aggregate: { ...(filled.params.aggregate as object), aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "var", column: "spend" }] } as never } }],
    ["a bound the buyer gave, changed", { ...filled, params: { ...filled.params, aggregate: { ...(filled.params.aggregate as object), scale: 2 } as never } }],
    ["an unknown field in the computation", { ...filled, params: { ...filled.params, aggregate: { ...(filled.params.aggregate as object), extra: 1 } as never } }],
  ])("refuses %s", (_what, changed) => {
    expect(requestExtends(asked, changed as JobRequest)).toBe(false);
  });

  it("join-aggregate's older form: accepts its own computation filled in, refuses any other", () => {
    const old = parseJobRequest({ protocol: "join-aggregate", buyer: "bank", buyerDataset: "c.csv", providerDataset: "telco.u.csv", params: { keyColumns: ["id"], outputColumns: ["spend"], mode: "avg" } });
    const { mode: _m, ...params } = old.params;
    const ok: JobRequest = { ...old, params: { ...params, minGroupSize: 10, aggregate: { aggregates: [{ fn: "avg", column: "spend" }], maxAbsValue: "1099511627776", scale: 0, maxJoinRows: 4294967296, group: "x25519" } } };
    expect(requestExtends(old, ok)).toBe(true);
    const grouped = { ...ok, params: { ...ok.params, aggregate: { ...(ok.params.aggregate as object), groupBy: { column: "hiv_status" } } as never } };
    expect(requestExtends(old, grouped)).toBe(false);
    const other = { ...ok, params: { ...ok.params, aggregate: { ...(ok.params.aggregate as object), aggregates: [{ fn: "var", column: "spend" }] } as never } };
    expect(requestExtends(old, other)).toBe(false);
  });
});

describe("budgets across a policy change", () => {
  it("what was spent stays spent: lowering the budget below it leaves nothing", () => {
    const old = policy({ queryBudget: 100 });
    expect(rebasedBudget(old, policy({ queryBudget: 10 }), 95)).toBe(5); // 5 spent of the new 10
    expect(rebasedBudget(old, policy({ queryBudget: 10 }), 80)).toBe(0); // 20 spent, more than the new budget
    expect(rebasedBudget(old, policy({ queryBudget: 200 }), 95)).toBe(195);
    expect(rebasedBudget(old, policy({ queryBudget: 1000, budgetUnit: "keys" }), 95)).toBe(95); // another unit: capped, never raised
  });

  it("putPolicyVersion rebases every buyer's row in the same transaction", () => {
    const store = openStore(":memory:");
    try {
      store.putDataset({ id: DATASET.id, owner: "telco", name: "s.csv", schema: SCHEMA, rowCount: 1, contentHash: "ab".repeat(32) });
      putPolicyVersion(store, DATASET.id, policy({ queryBudget: 100 }));
      store.setBudget(DATASET.id, "bank", 95);
      store.setBudget(DATASET.id, "insurer", 100);
      const v = putPolicyVersion(store, DATASET.id, policy({ queryBudget: 10 }));
      expect(v.version).toBe(2);
      expect(store.listBudgets(DATASET.id).map((b) => [b.buyer, b.remaining])).toEqual([["bank", 5], ["insurer", 10]]);
    } finally {
      store.close();
    }
  });
});

describe("describeDataset", () => {
  it("describes schema, row count and a deterministic content hash", async () => {
    const d = await describeTable(sample());
    expect(d).toEqual({
      id: "telco.subscribers",
      owner: "telco",
      name: "Subscribers",
      schema: [
        { name: "phone", type: "Utf8" },
        { name: "age", type: "Int64" },
        { name: "spend", type: "Float64" },
      ],
      rowCount: N,
      contentHash: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown as string,
      createdAt: "2025-01-01T00:00:00.000Z",
    });
    expect((await describeTable(sample())).contentHash).toBe(d.contentHash);
    expect(parseDatasetDescriptor(JSON.parse(JSON.stringify(d)))).toEqual(d);
  });

  it("is the SHA-256 of the canonical table's Arrow IPC stream", async () => {
    const t = sample();
    const canonical = new Table(canonicalSchema(t.schema), t.batches.map((b) => new RecordBatch(canonicalSchema(t.schema), b.data)));
    const expected = createHash("sha256").update(tableToIPC(canonical, "stream")).digest("hex");
    expect((await describeTable(t)).contentHash).toBe(expected);
  });

  it("gives the same hash for the same rows from a table, CSV and Arrow IPC, whatever the batching", async () => {
    const t = sample();
    const { contentHash } = await describeTable(t);
    await writeCsv(file("same.csv"), t);
    await writeArrowIPC(file("same.arrow"), rebatched(t, 6));
    const csvTypes = { columnTypes: { age: "int64", spend: "float64" } } as const;
    expect((await describeTable(file("same.csv"), csvTypes)).contentHash).toBe(contentHash);
    expect((await describeTable(file("same.csv"), { ...csvTypes, batchSize: 7 })).contentHash).toBe(contentHash);
    expect((await describeTable(file("same.arrow"))).contentHash).toBe(contentHash);
    expect((await describeTable(rebatched(t, 3))).contentHash).toBe(contentHash);
    // a dictionary-encoded column is the same content
    const dict = new Table({ phone: vectorFromArray(phones), age: t.getChild("age")!, spend: t.getChild("spend")! });
    expect(String(dict.schema.fields[0]?.type)).toMatch(/^Dictionary/);
    const dd = await describeTable(dict);
    expect(dd.schema[0]).toEqual({ name: "phone", type: "Utf8" });
    expect(dd.contentHash).toBe(contentHash);
  });

  it("gives a different hash for different rows, order, names or types", async () => {
    const base = (await describeTable(sample())).contentHash;
    const changed = [...phones];
    changed[0] = "+86 138 0000 9999";
    const nulled = [...ages];
    nulled[0] = null;
    const hashes = [
      base,
      (await describeTable(sample({ phones: changed }))).contentHash,
      (await describeTable(sample({ ages: nulled }))).contentHash,
      (await describeTable(sample({ phones: [...phones].reverse() }))).contentHash,
      (await describeTable(sample().slice(0, N - 1))).contentHash,
      (await describeTable(new Table({ mobile: sample().getChild("phone")!, age: sample().getChild("age")!, spend: sample().getChild("spend")! }))).contentHash,
      // the same CSV read without column types: every column Utf8
      (await (async () => {
        await writeCsv(file("untyped.csv"), sample());
        return (await describeTable(file("untyped.csv"))).contentHash;
      })()),
    ];
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it("streams a file larger than a canonical batch, batch by batch", async () => {
    const n = CONTENT_HASH_BATCH_ROWS + 1_000;
    const ids = Array.from({ length: n }, (_, i) => `id-${i}`);
    const t = new Table({ id: vectorFromArray(ids, new Utf8()), v: vectorFromArray(Array.from({ length: n }, (_, i) => i / 4), new Float64()) });
    await writeArrowIPC(file("big.arrow"), rebatched(t, 10_000));
    const fromFile = await describeTable(file("big.arrow"));
    expect(fromFile.rowCount).toBe(n);
    expect((await describeTable(t)).contentHash).toBe(fromFile.contentHash);
  });

  it("describes an empty dataset", async () => {
    const d = await describeTable(sample().slice(0, 0));
    expect(d.rowCount).toBe(0);
    expect(d.contentHash).toBe((await describeTable(sample().slice(0, 0))).contentHash);
    expect(d.contentHash).not.toBe((await describeTable(sample())).contentHash);
  });

  it("refuses a bad id, owner or name, and an unreadable file", async () => {
    const bad = await describeDataset({ id: "with space", owner: "", name: "n", table: sample() }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidDatasetError);
    expect((bad as InvalidDatasetError).fields).toEqual(["id", "owner"]);
    const missing = await describeTable(file("absent.csv")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(UnreadableFileError);
  });
});

describe("parseDatasetDescriptor", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["an unknown field", { rows: [] }, '"rows"'],
    ["a missing id", { id: undefined }, "id"],
    ["an owner with whitespace", { owner: "te lco" }, "owner"],
    ["an empty name", { name: "" }, "name"],
    ["an empty schema", { schema: [] }, "schema"],
    ["a schema entry with extra fields", { schema: [{ name: "a", type: "Utf8", nullable: true }] }, 'schema[0]."nullable"'],
    ["an empty column name", { schema: [{ name: "", type: "Utf8" }] }, "schema[0].name"],
    ["a repeated column", { schema: [{ name: "a", type: "Utf8" }, { name: "a", type: "Int64" }] }, "schema[1].name"],
    ["a missing type", { schema: [{ name: "a" }] }, "schema[0].type"],
    ["a negative row count", { rowCount: -1 }, "rowCount"],
    ["a fractional row count", { rowCount: 1.5 }, "rowCount"],
    ["an upper-case hash", { contentHash: "AB".repeat(32) }, "contentHash"],
    ["a short hash", { contentHash: "ab" }, "contentHash"],
    ["a bad date", { createdAt: "2025-13-01T00:00:00Z" }, "createdAt"],
  ])("refuses %s, naming the field", (_, over, field) => {
    const err = thrown(() => parseDatasetDescriptor({ ...DATASET, ...over }));
    expect(err).toBeInstanceOf(InvalidDatasetError);
    expect((err as InvalidDatasetError).code).toBe("UMBRA_INVALID_DATASET");
    expect((err as InvalidDatasetError).field).toBe(field);
  });
});

describe("catalogView", () => {
  it("lists the description and the policy's terms, never the allowed buyers", () => {
    const p = policy({ minIntersection: 100, outputColumns: ["spend", "region", "gone"] });
    const view = catalogView(DATASET, p);
    expect(view).toEqual({
      id: DATASET.id,
      name: DATASET.name,
      owner: DATASET.owner,
      schema: SCHEMA,
      rowCount: DATASET.rowCount,
      contentHash: DATASET.contentHash,
      createdAt: DATASET.createdAt,
      allowedProtocols: ["psi", "psi-cardinality", "lookup", "join-aggregate"],
      outputColumns: ["spend", "region"],
      keyColumns: ["phone"],
      minGroupSize: 10,
      minIntersection: 100,
      queryBudget: 100,
      budgetUnit: "jobs",
      expiresAt: "2030-01-01T00:00:00Z",
    });
    expect(JSON.stringify(view)).not.toContain("insurer");
    // a copy: changing the view changes nothing of the policy or descriptor
    (view.allowedProtocols as ProtocolId[]).pop();
    expect(p.allowedProtocols).toHaveLength(4);
    expect(view.schema).not.toBe(DATASET.schema);
  });
});
