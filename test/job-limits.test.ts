/**
 * A job's privacy limits through the node's role adapters (node/jobs): the
 * spec's `limits` reach the protocols where the roles start — minIntersection
 * withholds the buyer's result (psi, psi-cardinality, lookup), maxBuyerKeys
 * makes the provider (and join-aggregate's exchange role) refuse a larger
 * buyer set — and `buyerKeysSeen` reports what the provider's role was told.
 */
import { Float64, Int32, Table, Utf8, vectorFromArray, type DataType } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { BelowMinimumError, decodeMessage, KeyLimitExceededError, lookupKeyPair, prepareLookupTable } from "../protocols/index.js";
import { exchangeProtocolFor } from "../node/jobs/exchange-roles.js";
import type { JobSpec, PartyResources, PartyRole } from "../node/jobs/protocol.js";
import { nodeProtocolFor } from "../node/jobs/registry.js";
import { RoleRun, type RoleFrame } from "../node/jobs/run.js";
import type { JobRequest } from "../node/policy.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
afterAll(() => pool.close());

const keyTable = (keys: readonly string[], extra: Record<string, unknown[]> = {}): Table =>
  new Table({
    k: vectorFromArray([...keys], new Utf8()),
    ...Object.fromEntries(Object.entries(extra).map(([name, values]) => [name, vectorFromArray(values, (typeof values[0] === "string" ? new Utf8() : new Float64()) as DataType)])),
  });
const buyerKeys = Array.from({ length: 8 }, (_, i) => `shared-${i}`).concat(["mine-1", "mine-2"]); // 10 distinct, 8 shared
const providerKeys = Array.from({ length: 30 }, (_, i) => `shared-${i}`);

/** A job spec as a party reads it from job.start: the buyer "bank", the provider "telco", the exchange "exchange". */
function spec(protocol: JobSpec["protocol"], limits?: JobSpec["limits"], more: Partial<JobSpec> = {}): JobSpec {
  const request = { protocol, buyer: "bank", params: { keyColumns: ["k"] } } as JobRequest;
  return { id: `limits-${protocol}-${Math.random().toString(36).slice(2)}`, protocol, request, buyer: "bank", providers: ["telco"], exchange: "exchange", keyColumns: ["k"], ...(limits ? { limits } : {}), ...more };
}

const moduleOf = (s: JobSpec) => nodeProtocolFor(s.protocol)!;

interface Side {
  readonly run: RoleRun;
  readonly out: readonly RoleFrame[];
}

/** Starts a party's role of the job as its agent does. */
async function startRole(s: JobSpec, party: PartyRole, r: PartyResources): Promise<Side> {
  const m = moduleOf(s);
  return RoleRun.start(await m.player(s, party, r), m.parties(s));
}

/** Plays a two-party job: every frame of each side to the other, until neither has more. */
async function play(s: JobSpec, buyer: { ctx: PartyResources }, provider: { ctx: PartyResources }): Promise<{ b: RoleRun; p: RoleRun }> {
  const b = await startRole(s, "buyer", buyer.ctx);
  const p = await startRole(s, "provider", provider.ctx);
  let toP = [...b.out];
  let toB = [...p.out];
  while (toP.length + toB.length > 0) {
    const nextB: RoleFrame[] = [];
    for (const f of toP) nextB.push(...(await p.run.receive("bank", f.frame)));
    const nextP: RoleFrame[] = [];
    for (const f of [...toB, ...nextB]) nextP.push(...(await b.run.receive("telco", f.frame)));
    toP = nextP;
    toB = [];
  }
  return { b: b.run, p: p.run };
}

const buyerResult = (s: JobSpec, run: RoleRun, table: Table) => moduleOf(s).result(s, run.state, table);
const buyerKeysSeen = (s: JobSpec, run: RoleRun) => moduleOf(s).buyerKeysSeen?.(run.state);

describe("psi and psi-cardinality", () => {
  it("maxBuyerKeys: the provider refuses a buyer hello announcing more distinct keys, with the state unchanged; buyerKeysSeen stays undefined", async () => {
    const s = spec("psi", { maxBuyerKeys: 9 });
    const b = await startRole(s, "buyer", { pool, table: keyTable(buyerKeys) });
    const p = await startRole(s, "provider", { pool, table: keyTable(providerKeys) });
    expect(buyerKeysSeen(s, p.run)).toBeUndefined();
    const before = structuredClone(p.run.state);
    const err = await p.run.receive("bank", (b.out[0] as RoleFrame).frame).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyLimitExceededError);
    expect(err).toMatchObject({ code: "UMBRA_KEY_LIMIT_EXCEEDED", announced: 10, limit: 9 });
    expect(p.run.state).toEqual(before);
    expect(buyerKeysSeen(s, p.run)).toBeUndefined();
  });

  it("buyerKeysSeen is the buyer's distinct key count once the provider has its hello (duplicates and nulls not counted)", async () => {
    const s = spec("psi", { maxBuyerKeys: 10 });
    const table = new Table({ k: vectorFromArray([...buyerKeys, "shared-0", null, "mine-1"], new Utf8()) });
    const b = await startRole(s, "buyer", { pool, table });
    const p = await startRole(s, "provider", { pool, table: keyTable(providerKeys) });
    await p.run.receive("bank", (b.out[0] as RoleFrame).frame);
    expect(buyerKeysSeen(s, p.run)).toBe(10);
  });

  it("minIntersection: the buyer's result is withheld below it (8 shared keys against 9), released at it", async () => {
    const buyer = { ctx: { pool, table: keyTable(buyerKeys) } };
    const provider = { ctx: { pool, table: keyTable(providerKeys) } };
    const below = spec("psi", { minIntersection: 9 });
    const r1 = await play(below, buyer, provider);
    expect(r1.b.done).toBe(true);
    expect(() => buyerResult(below, r1.b, buyer.ctx.table)).toThrow(BelowMinimumError);
    const at = spec("psi", { minIntersection: 8 });
    const r2 = await play(at, buyer, provider);
    const res = buyerResult(at, r2.b, buyer.ctx.table);
    expect(res.kind === "table" && res.table.numRows).toBe(8);
  });

  it("psi-cardinality: count 8 against minIntersection 10 (the node's max(k, minIntersection)) is withheld", async () => {
    const s = spec("psi-cardinality", { minIntersection: 10 });
    const buyer = { ctx: { pool, table: keyTable(buyerKeys) } };
    const r = await play(s, buyer, { ctx: { pool, table: keyTable(providerKeys) } });
    expect(r.b.done).toBe(true);
    const err = (() => {
      try {
        return buyerResult(s, r.b, buyer.ctx.table);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: "UMBRA_BELOW_MINIMUM", threshold: 10 });
    expect(buyerKeysSeen(s, r.p)).toBe(10);
  });
});

describe("lookup", () => {
  it("minIntersection withholds the labels; buyerKeysSeen is the hello's queryCount", async () => {
    const product = "telco.spend";
    const { secretKey } = lookupKeyPair(new Uint8Array(32).fill(3), product, 1);
    const providerTable = keyTable(providerKeys, { spend: providerKeys.map((_, i) => i * 1.5) });
    const prepared = await prepareLookupTable({ table: providerTable, keys: ["k"], labels: ["spend"], secretKey, product, version: 1, pool });
    const lookup = { prepared, secretKey, budgetRemaining: 100, product, version: 1 };
    const buyer = { ctx: { pool, table: keyTable(buyerKeys), lookup: { ...lookup, prepared: new Table(), secretKey: new Uint8Array(0), budgetRemaining: 0 } } };
    const provider = { ctx: { pool, table: providerTable, lookup } };
    const s = spec("lookup", { minIntersection: 9 }, { outputColumns: ["spend"] });
    const r = await play(s, buyer, provider);
    expect(r.b.done).toBe(true);
    expect(buyerKeysSeen(s, r.p)).toBe(10);
    expect(() => buyerResult(s, r.b, buyer.ctx.table)).toThrow(BelowMinimumError);
    const ok = spec("lookup", { minIntersection: 8 }, { outputColumns: ["spend"] });
    const r2 = await play(ok, buyer, provider);
    const res = buyerResult(ok, r2.b, buyer.ctx.table);
    expect(res.kind === "table" && res.table.numRows).toBe(10);
  });
});

describe("join-aggregate", () => {
  const request = async (): Promise<JobRequest> => {
    const raw: JobRequest = {
      protocol: "join-aggregate",
      buyer: "bank",
      buyerDataset: "customers.csv",
      providerDataset: "telco.usage.csv",
      params: { keyColumns: ["k"], aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }], groupBy: { column: "g" }, maxAbsValue: "1000" } },
    };
    const x = exchangeProtocolFor("join-aggregate")!;
    return x.finalise(await x.prepare(raw, [], []), []);
  };
  const buyerTable = new Table({ k: vectorFromArray(buyerKeys, new Utf8()), g: vectorFromArray(buyerKeys.map((_, i) => (i % 2 ? "x" : "y")), new Utf8()) });
  const providerTable = new Table({ k: vectorFromArray(providerKeys, new Utf8()), v: vectorFromArray(providerKeys.map((_, i) => i), new Int32() as DataType) });

  it("maxBuyerKeys reaches the provider's role (refuses the hello, state unchanged) and the exchange's (refuses the buyer's hello); buyerKeysSeen at the limit", async () => {
    const req = await request();
    const id = `limits-ja-${Math.random().toString(36).slice(2)}`;
    const mk = (limits: JobSpec["limits"]): JobSpec => spec("join-aggregate", limits, { id, request: req });
    const tight = mk({ maxBuyerKeys: 9 });
    const b = await startRole(mk({}), "buyer", { pool, table: buyerTable }); // a buyer agent that ignores the limit
    const pctx = { pool, table: providerTable };
    const p = await startRole(tight, "provider", pctx);
    expect(buyerKeysSeen(tight, p.run)).toBeUndefined();
    const direct = b.out.filter((f) => f.to === "telco").map((f) => f.frame);
    const toExchange = b.out.filter((f) => f.to === "exchange").map((f) => f.frame);
    await p.run.receive("bank", direct[0] as Uint8Array); // the HE key
    const before = structuredClone(p.run.state);
    await expect(p.run.receive("bank", direct[1] as Uint8Array)).rejects.toBeInstanceOf(KeyLimitExceededError);
    expect(structuredClone(p.run.state)).toEqual(before);
    // The exchange's role, started with the job's limits.
    const role = await exchangeProtocolFor("join-aggregate")!.start({ id, request: req, buyer: "bank", providers: ["telco"], limits: { maxBuyerKeys: 9 } }, { pool: () => pool });
    try {
      const kinds = toExchange.map((f) => decodeMessage(f).kind);
      expect(kinds.slice(0, 2)).toEqual(["aggregateKey", "joinHello"]);
      await role.receive("bank", toExchange[0] as Uint8Array);
      await expect(role.receive("bank", toExchange[1] as Uint8Array)).rejects.toBeInstanceOf(KeyLimitExceededError);
    } finally {
      role.dispose();
    }
    // At the limit: the provider takes the hello and reports the buyer's 10 keys.
    const fits = mk({ maxBuyerKeys: 10 });
    const q = await startRole(fits, "provider", pctx);
    for (const f of direct.slice(0, 2)) await q.run.receive("bank", f);
    expect(buyerKeysSeen(fits, q.run)).toBe(10);
  }, 60_000);

  it("the buyer's own role refuses a key in two groups, naming the group column", async () => {
    const req = await request();
    const id = `limits-ja-overlap-${Math.random().toString(36).slice(2)}`;
    const s = spec("join-aggregate", undefined, { id, request: req });
    const table = new Table({ k: vectorFromArray(["a", "b", "a"], new Utf8()), g: vectorFromArray(["x", "y", "y"], new Utf8()) });
    await expect(startRole(s, "buyer", { pool, table })).rejects.toMatchObject({ code: "UMBRA_OVERLAPPING_GROUPS", column: "g", rows: [1, 3] });
  });
});

describe("federated-aggregate", () => {
  it("buyerKeysSeen is undefined (no buyer keys)", () => {
    const s = spec("federated-aggregate");
    expect(moduleOf(s).buyerKeysSeen).toBeUndefined();
  });
});
