/**
 * One schema source: the exchange's route bodies are the documents' JSON
 * Schemas (node/schemas/), so the OpenAPI document describes a policy field
 * by field, and a body that fails its schema is refused before its handler
 * runs — with the document's own error code, naming the field and what is
 * allowed — and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity } from "../node/identity.js";
import { listEntries } from "../node/ledger.js";
import { ExchangeClient, ExchangeError } from "../node/server/client.js";
import { bytesToHex as hex } from "@noble/hashes/utils.js";
import { startExchange, type TestExchange } from "./helpers/nodes.js";
import { MAX_ISSUES, schemaIssues } from "../node/schemas/check.js";
import { PolicySchema } from "../node/schemas/policy.js";

const bank = generateIdentity("bank");
const DESCRIPTOR = {
  id: "bank.customers",
  owner: "bank",
  name: "customers.csv",
  schema: [{ name: "phone", type: "Utf8" }, { name: "spend", type: "Int64" }],
  rowCount: 3,
  contentHash: "ab".repeat(32),
  createdAt: "2026-01-01T00:00:00Z",
};

let ex: TestExchange;
let client: ExchangeClient;

beforeAll(async () => {
  ex = await startExchange({ openRegistration: true });
  client = new ExchangeClient(ex.url, bank);
  await client.json("POST", "/v1/parties", { name: "bank", signingPublicKey: hex(bank.signing.publicKey), boxPublicKey: hex(bank.box.publicKey) });
});
afterAll(async () => ex.close());

/** What the exchange answers a dataset registration: the error it threw, or undefined when it took it. */
const register = async (body: unknown): Promise<ExchangeError | undefined> =>
  client.json("POST", "/v1/datasets", body).then(
    () => undefined,
    (err: unknown) => err as ExchangeError,
  );

describe("the exchange's route schemas", () => {
  it("the OpenAPI document describes a dataset registration's policy and descriptor field by field", async () => {
    const doc = (await (await fetch(`${ex.url}/documentation/json`)).json()) as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, { properties?: Record<string, unknown> }> } }> } }>>;
    };
    const body = doc.paths["/v1/datasets"]?.["post"]?.requestBody?.content["application/json"]?.schema;
    expect(Object.keys(body?.properties["policy"]?.properties ?? {})).toEqual([
      "allowedProtocols",
      "outputColumns",
      "keyColumns",
      "allowedBuyers",
      "minGroupSize",
      "queryBudget",
      "budgetUnit",
      "expiresAt",
      "minIntersection",
      "privacyBudget",
      "//",
    ]);
    expect(Object.keys(body?.properties["descriptor"]?.properties ?? {})).toEqual(["id", "owner", "name", "schema", "rowCount", "contentHash", "createdAt"]);
    expect(Object.keys(doc.paths["/v1/jobs/{id}/events"]?.["post"]?.requestBody?.content["application/json"]?.schema.properties ?? {})).toContain("progress");
  });

  it("a policy with an unknown field is refused with 400 UMBRA_INVALID_POLICY naming it and the valid fields; nothing is recorded", async () => {
    const before = listEntries(ex.store, {}).length;
    const err = await register({ descriptor: DESCRIPTOR, policy: { allowedProtocols: ["psi"], epsilon: 1 } });
    expect(err).toBeInstanceOf(ExchangeError);
    expect([err?.status, err?.code]).toEqual([400, "UMBRA_INVALID_POLICY"]);
    expect(err?.message).toContain('"epsilon": unknown field (the fields are allowedProtocols, outputColumns, keyColumns,');
    expect(ex.store.listDatasets()).toEqual([]);
    expect(listEntries(ex.store, {}).length).toBe(before);
  });

  it("nothing is coerced: a k sent as a string is refused, not read as a number", async () => {
    const err = await register({ descriptor: DESCRIPTOR, policy: { minGroupSize: "10" } });
    expect([err?.status, err?.code, err?.message]).toEqual([400, "UMBRA_INVALID_POLICY", "invalid policy: minGroupSize: must be an integer"]);
    expect(ex.store.listDatasets()).toEqual([]);
  });

  it("a bad descriptor is refused with UMBRA_INVALID_DATASET naming the field, before the policy is read", async () => {
    const err = await register({ descriptor: { ...DESCRIPTOR, contentHash: "AB".repeat(32) }, policy: { epsilon: 1 } });
    expect([err?.status, err?.code, err?.message]).toEqual([400, "UMBRA_INVALID_DATASET", "invalid dataset descriptor: contentHash: must be 64 lower-case hex digits (SHA-256)"]);
    expect(ex.store.listDatasets()).toEqual([]);
  });

  it("the OpenAPI document describes a job request; one failing its schema is refused with UMBRA_INVALID_JOB_REQUEST and records no job", async () => {
    const doc = (await (await fetch(`${ex.url}/documentation/json`)).json()) as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, { properties?: Record<string, unknown> }> } }> } }>>;
    };
    const body = doc.paths["/v1/jobs"]?.["post"]?.requestBody?.content["application/json"]?.schema;
    expect(Object.keys(body?.properties ?? {})).toEqual(["protocol", "buyer", "buyerDataset", "providerDataset", "providerDatasets", "params", "contracts"]);
    expect(Object.keys(body?.properties["params"]?.properties ?? {})).toContain("aggregate");
    const err = await client.json("POST", "/v1/jobs", { protocol: "psi", buyer: "bank", buyerDataset: "b.c", providerDataset: "telco.s", params: { keyColumns: ["phone"], minIntersection: "5" } }).then(
      () => undefined,
      (e: unknown) => e as ExchangeError,
    );
    expect([err?.status, err?.code, err?.message]).toEqual([400, "UMBRA_INVALID_JOB_REQUEST", "invalid job request: params.minIntersection: must be an integer"]);
    expect(ex.store.listJobs({})).toEqual([]);
  });

  it("a body that is not JSON is refused with 400 UMBRA_BAD_REQUEST by the shared error handler", async () => {
    const res = await fetch(`${ex.url}/v1/datasets`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect([res.status, await res.json()]).toEqual([400, { error: { code: "UMBRA_BAD_REQUEST", message: "request body is not JSON" } }]);
    expect(ex.store.listDatasets()).toEqual([]);
  });

  it("an unsigned body is refused as unsigned (401) before its schema is read, whatever it holds; nothing changes", async () => {
    for (const body of [{ descriptor: DESCRIPTOR, policy: { keyColumns: Array.from({ length: 4000 }, () => 1) } }, { protocol: "psi", params: { keyColumns: "phone" } }]) {
      for (const route of ["/v1/datasets", "/v1/jobs"]) {
        const res = await fetch(`${ex.url}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([401, "UMBRA_BAD_SIGNATURE"]);
      }
    }
    expect([ex.store.listDatasets(), ex.store.listJobs({})]).toEqual([[], []]);
  });

  it("a signed body with thousands of errors is answered with at most MAX_ISSUES problems (the check reads a bounded number of errors)", async () => {
    const err = await register({ descriptor: DESCRIPTOR, policy: { allowedProtocols: ["psi"], keyColumns: Array.from({ length: 4000 }, () => 1) } });
    expect([err?.status, err?.code]).toEqual([400, "UMBRA_INVALID_POLICY"]);
    expect(schemaIssues(PolicySchema, { keyColumns: Array.from({ length: 4000 }, () => 1) }, "policy")).toHaveLength(MAX_ISSUES);
    expect(ex.store.listDatasets()).toEqual([]);
  });

  it("a job event is checked as sent: a type that only coerces, an extra field or a count past 2^53 is refused (400), never converted or dropped", async () => {
    const send = (body: unknown) => client.json("POST", "/v1/jobs/job-none/events", body).then(() => undefined, (err: unknown) => err as ExchangeError);
    for (const body of [
      { kind: ["progress"], progress: { phase: "a", done: 1, total: 2 } },
      { kind: "progress", progress: { phase: "a", done: "1", total: 2 } },
      { kind: "progress", progress: { phase: "a", done: 1, total: 2, rows: ["x"] } },
      { kind: "progress", progress: { phase: "a", done: 1, total: 2 ** 53 } },
    ]) {
      const err = await send(body);
      expect([err?.status, err?.code]).toEqual([400, "UMBRA_BAD_REQUEST"]);
    }
    expect(ex.store.listJobs({})).toEqual([]);
  });

  it("a well-formed registration is taken", async () => {
    expect(await register({ descriptor: DESCRIPTOR, policy: { allowedProtocols: ["psi"], keyColumns: ["phone"] } })).toBeUndefined();
    expect(ex.store.listDatasets().map((d) => d.id)).toEqual(["bank.customers"]);
  });
});
