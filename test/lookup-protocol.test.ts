/**
 * lookup: results against a plain JS left join; preparation reusable through
 * Arrow IPC; key rotation; the budget; what each role receives; hostile
 * messages refused with the state unchanged.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Int64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGroup, CryptoPool, InvalidPointError, keysFromTable, oprf, readTable, writeArrowIPC } from "../engine/index.js";
import {
  BelowMinimumError,
  BudgetExceededError,
  decodeMessage,
  deriveTagAndKey,
  encodeMessage,
  lookupKeyPair,
  preparedTableInfo,
  prepareLookupTable,
  ProtocolError,
  RefusedError,
  runLookup,
  WrongStepError,
  type ElementBatch,
  type LookupContext,
  type ProtocolMessage,
  type SealedRows,
  lookupBuyer,
  lookupProvider,
  type LookupParams,
  type LookupProviderOptions,
  type LookupProviderState,
  type Step,
} from "../protocols/index.js";
import { oracleKey, randomKeys, rng, rowsOf } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
afterAll(() => pool.close());
const ctx: LookupContext = { pool };
/** The messages a step sends (every lookup message goes to the other role). */
const sent = (s: Step<unknown>): ProtocolMessage[] => s.messages.map((o) => o.message);
/** A provider's first state (it sends nothing before the buyer's hello). */
const providerStart = async (params: LookupParams, o: LookupProviderOptions) => (await lookupProvider.start({ params, ...o }, { ...ctx, prepared: new Table() })).state;
const seed = new Uint8Array(32).fill(9);
const product = "telco.monthly-spend";

function providerTable(keys: (string | null)[], r: () => number): Table {
  return new Table({
    phone: vectorFromArray(keys, new Utf8()),
    spend: vectorFromArray(keys.map(() => (r() < 0.1 ? null : Math.round(r() * 1e5) / 100)), new Float64()),
    plan: vectorFromArray(keys.map(() => (r() < 0.5 ? "五G畅享" : "basic")), new Utf8()),
    big: vectorFromArray(keys.map((_, i) => BigInt(i) * 10_000_000_000n - 3n), new Int64()),
    secret_column: vectorFromArray(keys.map(() => "never-released"), new Utf8()),
  });
}

function buyerTable(keys: (string | null)[]): Table {
  return new Table({ phone: vectorFromArray(keys, new Utf8()), grade: vectorFromArray(keys.map((_, i) => "ABCDE"[i % 5] as string), new Utf8()) });
}

/** The left join, in plain JS. */
function oracleLeftJoin(buyer: Table, provider: Table, labels: string[]): Record<string, unknown>[] {
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < provider.numRows; i++) {
    const k = oracleKey(provider, ["phone"], i);
    if (k !== null) byKey.set(k, [...(byKey.get(k) ?? []), i]);
  }
  const prow = rowsOf(provider);
  const out: Record<string, unknown>[] = [];
  rowsOf(buyer).forEach((row, i) => {
    const k = oracleKey(buyer, ["phone"], i);
    const matches = k === null ? [] : (byKey.get(k) ?? []);
    if (matches.length === 0) out.push({ ...row, ...Object.fromEntries(labels.map((l) => [l, null])) });
    for (const m of matches) out.push({ ...row, ...Object.fromEntries(labels.map((l) => [l, prow[m]?.[l] ?? null])) });
  });
  return out;
}

describe("runLookup against the plaintext left join", () => {
  const r = rng(11);
  const labels = ["spend", "plan", "big"];
  const cases: [string, (string | null)[], (string | null)[]][] = [
    ["random, duplicates on both sides, nulls, unicode", randomKeys(r, 300, 80), randomKeys(r, 500, 80)],
    ["empty buyer", [], randomKeys(r, 50, 20)],
    ["empty provider", randomKeys(r, 40, 20), []],
    ["disjoint", ["a", "b", null], ["c", "d"]],
  ];
  it.each(cases)("%s", async (_name, bk, pk) => {
    const { secretKey } = lookupKeyPair(seed, product, 1);
    const provider = providerTable(pk, r);
    const prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels, secretKey, product, version: 1, pool });
    const buyer = buyerTable(bk);
    const res = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool, chunkElements: 50 });
    expect(rowsOf(res.table)).toEqual(oracleLeftJoin(buyer, provider, labels));
    expect(res.table.schema.fields.map((f) => f.name)).toEqual(["phone", "grade", ...labels]);
    expect(res.table.schema.fields.map((f) => String(f.type))).toEqual(["Utf8", "Utf8", "Float64", "Utf8", "Int64"]);
  });

  // The same cases with minIntersection 5: released as the plaintext left join when ≥ 5 distinct buyer keys match, else refused.
  it.each(cases)("%s, minIntersection 5", async (_name, bk, pk) => {
    const { secretKey } = lookupKeyPair(seed, product, 1);
    const provider = providerTable(pk, r);
    const prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels, secretKey, product, version: 1, pool });
    const buyer = buyerTable(bk);
    const run = runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool, chunkElements: 50, minIntersection: 5 });
    const have = new Set(Array.from({ length: provider.numRows }, (_, i) => oracleKey(provider, ["phone"], i)).filter((k) => k !== null));
    const matched = new Set(Array.from({ length: buyer.numRows }, (_, i) => oracleKey(buyer, ["phone"], i)).filter((k) => k !== null && have.has(k))).size;
    if (matched < 5) await expect(run).rejects.toBeInstanceOf(BelowMinimumError);
    else expect(rowsOf((await run).table)).toEqual(oracleLeftJoin(buyer, provider, labels));
  });
});

describe("preparation", () => {
  const dir = mkdtempSync(join(tmpdir(), "umbra-lookup-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const r = rng(5);
  const provider = providerTable(randomKeys(r, 200, 150), r);
  const buyer = buyerTable(randomKeys(r, 60, 150));

  it("is reusable across buyers and restarts through Arrow IPC, and holds no key or label in the clear", async () => {
    const { secretKey } = lookupKeyPair(seed, product, 3);
    const prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["plan"], secretKey, product, version: 3, pool });
    const file = join(dir, "prepared.arrow");
    await writeArrowIPC(file, prepared);
    const back = await readTable(file);
    expect(preparedTableInfo(back)).toMatchObject({ product, version: 3, rows: prepared.numRows });
    expect(back.schema.fields.map((f) => f.name)).toEqual(["tag", "sealed"]);
    const raw = Buffer.concat(rowsOf(back).map((row) => Buffer.from(JSON.stringify(row))));
    expect(raw.includes(Buffer.from("basic"))).toBe(false);
    expect(raw.includes(Buffer.from("never-released"))).toBe(false);
    const a = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared: back, secretKey }, pool });
    const b = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool });
    expect(rowsOf(a.table)).toEqual(rowsOf(b.table));
    expect(rowsOf(a.table)).toEqual(oracleLeftJoin(buyer, provider, ["plan"]));
  });

  it("rotates the key with the product version", async () => {
    const v1 = lookupKeyPair(seed, product, 1);
    const v2 = lookupKeyPair(seed, product, 2);
    expect(Buffer.from(v1.secretKey).equals(Buffer.from(v2.secretKey))).toBe(false);
    const p1 = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["plan"], secretKey: v1.secretKey, product, version: 1, pool });
    const p2 = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["plan"], secretKey: v2.secretKey, product, version: 2, pool });
    const hexTags = (t: Table) => Array.from({ length: t.numRows }, (_, i) => Buffer.from(t.getChild("tag")!.get(i) as Uint8Array).toString("hex"));
    const tags1 = new Set(hexTags(p1));
    expect(hexTags(p2).some((x) => tags1.has(x))).toBe(false);
    // A buyer that asks for version 2 from a provider holding version 1 is refused.
    const buyerState = await lookupBuyer.start({ params: { job: "rot", product, version: 2 }, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    const prov = await providerStart({ job: "rot", product, version: 1 }, { secretKey: v1.secretKey, budgetRemaining: 1000 });
    await expect(lookupProvider.receive(prov, "buyer", sent(buyerState)[0] as ProtocolMessage, { ...ctx, prepared: p1 })).rejects.toBeInstanceOf(ProtocolError);
  });

  it("keeps NaN and infinities, refuses a key the table was not sealed under, and a buyer column the lookup would add", async () => {
    const { secretKey } = lookupKeyPair(seed, product, 1);
    const t = new Table({ phone: vectorFromArray(["a", "b", "c"], new Utf8()), x: vectorFromArray([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], new Float64()) });
    const prepared = await prepareLookupTable({ table: t, keys: ["phone"], labels: ["x"], secretKey, product, version: 1, pool });
    const res = await runLookup({ buyer: { table: buyerTable(["c", "b", "a"]), keys: ["phone"] }, provider: { prepared, secretKey }, pool });
    expect(Array.from(res.table.getChild("x")!.toArray() as Float64Array)).toEqual([Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, Number.NaN]);
    const other = lookupKeyPair(new Uint8Array(32).fill(2), product, 1);
    await expect(runLookup({ buyer: { table: buyerTable(["a"]), keys: ["phone"] }, provider: { prepared, secretKey: other.secretKey }, pool })).rejects.toThrow(/not the one this prepared table was sealed under/);
    const clash = new Table({ phone: vectorFromArray(["a"], new Utf8()), x: vectorFromArray([1], new Float64()) });
    await expect(runLookup({ buyer: { table: clash, keys: ["phone"] }, provider: { prepared, secretKey }, pool })).rejects.toThrow(/already has a column "x"/);
  });

  it("refuses a label column that is also a key or does not exist", async () => {
    const { secretKey } = lookupKeyPair(seed, product, 1);
    await expect(prepareLookupTable({ table: provider, keys: ["phone"], labels: ["phone"], secretKey, product, version: 1, pool })).rejects.toThrow(/both a key and a label/);
    await expect(prepareLookupTable({ table: provider, keys: ["phone"], labels: ["nope"], secretKey, product, version: 1, pool })).rejects.toThrow(/not found/);
  });
});

describe("budget and leakage", () => {
  const r = rng(21);
  const provider = providerTable(Array.from({ length: 120 }, (_, i) => `+861380000${String(i).padStart(4, "0")}`), r);
  const buyerKeys = Array.from({ length: 40 }, (_, i) => `+861380000${String(i * 5).padStart(4, "0")}`);
  const buyer = buyerTable(buyerKeys);
  const { secretKey } = lookupKeyPair(seed, product, 1);
  let prepared: Table;
  beforeAll(async () => {
    prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["spend"], secretKey, product, version: 1, pool });
  });

  it("refuses beyond the evaluation budget, before evaluating anything, with the state unchanged", async () => {
    await expect(runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey, budgetRemaining: 39 }, pool })).rejects.toBeInstanceOf(BudgetExceededError);
    const b = await lookupBuyer.start({ params: { job: "budget", product, version: 1 }, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    const p = await providerStart({ job: "budget", product, version: 1 }, { secretKey, budgetRemaining: 39 });
    const before = structuredClone(p);
    await expect(lookupProvider.receive(p, "buyer", sent(b)[0] as ProtocolMessage, { ...ctx, prepared: prepared })).rejects.toBeInstanceOf(BudgetExceededError);
    expect(p).toEqual(before);
    // Exactly the budget passes, and consumes it.
    const ok = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey, budgetRemaining: 40 }, pool });
    expect(ok.stats.budgetRemaining).toBe(0);
    expect(ok.matchedRows).toBe(24);
  });

  it("the buyer is told of a refusal with the rule, and no data", async () => {
    const b = await lookupBuyer.start({ params: { job: "refusal", product, version: 1 }, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    const refusal: ProtocolMessage = { kind: "refusal", header: { job: "refusal", protocol: "lookup", version: 1, step: 3, chunk: 0, chunks: 1 }, code: "UMBRA_BUDGET_EXCEEDED", reason: "evaluation budget exceeded" };
    await expect(lookupBuyer.receive(b.state, "provider", decodeMessage(encodeMessage(refusal)), ctx)).rejects.toBeInstanceOf(RefusedError);
  });

  it("the provider receives only the query count and blinded points", async () => {
    const toProvider: Uint8Array[] = [];
    await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool, tap: (from, _to, f) => from === "buyer" && toProvider.push(f) });
    const group = await createGroup({ group: "ristretto255" });
    const unblinded = new Set(buyerKeys.map((k) => Buffer.from(oprf.hashToGroup(new TextEncoder().encode(k))).toString("hex")));
    let n = 0;
    for (const f of toProvider) {
      for (const k of buyerKeys) expect(Buffer.from(f).includes(Buffer.from(k))).toBe(false);
      const m = decodeMessage(f);
      if (m.kind === "lookupHello") {
        expect(m.queryCount).toBe(40);
        continue;
      }
      const e = m as ElementBatch;
      for (let i = 0; i < e.count; i++) {
        const el = e.elements.subarray(i * 32, i * 32 + 32);
        expect(() => group.decode(el)).not.toThrow();
        expect(unblinded.has(Buffer.from(el).toString("hex"))).toBe(false);
        n++;
      }
    }
    expect(n).toBe(40);
  });

  it("the buyer cannot open a label for a key it does not hold", async () => {
    const b0 = await lookupBuyer.start({ params: { job: "open", product, version: 1 }, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    let p = { state: await providerStart({ job: "open", product, version: 1 }, { secretKey, budgetRemaining: 100 }), messages: [] } as Step<LookupProviderState>;
    const toBuyer: ProtocolMessage[] = [];
    for (const m of sent(b0)) {
      p = await lookupProvider.receive(p.state, "buyer", m, { ...ctx, prepared: prepared });
      toBuyer.push(...sent(p));
    }
    let b = b0;
    for (const m of toBuyer) b = await lookupBuyer.receive(b.state, "provider", m, ctx);
    expect(lookupBuyer.done(b.state)).toBe(true);
    // It received every sealed row, but opened exactly those of its 24 matching keys.
    const sealedRows = toBuyer.filter((m) => m.kind === "sealedRows").reduce((acc, m) => acc + (m as SealedRows).count, 0);
    expect(sealedRows).toBe(120);
    expect(b.state.opened.filter((x) => x !== "").length).toBe(24);
    const res = lookupBuyer.result(b.state);
    const held = new Set(buyerKeys);
    for (let k = 0; k < b.state.queryCount; k++) {
      const key = new TextDecoder().decode(b.state.keyData.subarray(b.state.keyOffsets[k], b.state.keyOffsets[k + 1]));
      expect(held.has(key)).toBe(true);
      expect(res.labelsOf(k).length).toBe(Number(key.slice(-4)) < 120 ? 1 : 0);
    }
    // A tag (and its AEAD key) comes only from F_k(key): with the provider's key every
    // provider key's tag is in the table; with any other key, none is.
    const tagColumn = prepared.getChild("tag")!;
    const tags = new Set(Array.from({ length: prepared.numRows }, (_, i) => Buffer.from(tagColumn.get(i) as Uint8Array).toString("hex")));
    const guess = lookupKeyPair(new Uint8Array(32).fill(1), product, 1);
    const enc = new TextEncoder();
    for (let i = 0; i < 120; i += 7) {
      const y = enc.encode(`+861380000${String(i).padStart(4, "0")}`);
      expect(tags.has(Buffer.from(deriveTagAndKey(oprf.evaluate(secretKey, y)).tag).toString("hex"))).toBe(true);
      expect(tags.has(Buffer.from(deriveTagAndKey(oprf.evaluate(guess.secretKey, y)).tag).toString("hex"))).toBe(false);
    }
  });
});

describe("minIntersection: the buyer's role withholds labels when fewer distinct keys matched", () => {
  const r = rng(31);
  const provider = providerTable(["+8613800000001", ...Array.from({ length: 60 }, (_, i) => `+8613900000${String(i).padStart(3, "0")}`)], r);
  const { secretKey } = lookupKeyPair(seed, product, 1);
  let prepared: Table;
  beforeAll(async () => {
    prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["spend"], secretKey, product, version: 1, pool });
  });

  it("a lookup of one matching key against minIntersection 20 is refused, naming the threshold and not the count", async () => {
    const buyer = buyerTable(["+8613800000001", ...Array.from({ length: 30 }, (_, i) => `+8613700000${String(i).padStart(3, "0")}`)]);
    const err = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool, minIntersection: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BelowMinimumError);
    expect(err).toMatchObject({ code: "UMBRA_BELOW_MINIMUM", threshold: 20 });
    expect((err as Error).message).toBe("result withheld: fewer than 20 distinct keys matched (the job's minIntersection is 20)");
  });

  it("exactly minIntersection matched keys are released; the refusal leaves the state unchanged", async () => {
    const keys = ["+8613900000001", "+8613900000002", "+8613900000002", "+8613900000003", "+8613700000000", null];
    const buyer = buyerTable(keys);
    const ok = await runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared, secretKey }, pool, minIntersection: 3 });
    expect(rowsOf(ok.table)).toEqual(oracleLeftJoin(buyer, provider, ["spend"]));
    const params = { job: "lookup-min", product, version: 1, minIntersection: 4 };
    const b0 = await lookupBuyer.start({ params: params, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    let p = { state: await providerStart(params, { secretKey, budgetRemaining: 100 }), messages: [] } as Step<LookupProviderState>;
    let b = b0.state;
    for (const m of sent(b0)) {
      p = await lookupProvider.receive(p.state, "buyer", m, { ...ctx, prepared: prepared });
      for (const x of sent(p)) b = (await lookupBuyer.receive(b, "provider", x, ctx)).state;
    }
    expect(lookupBuyer.done(b)).toBe(true);
    const before = structuredClone(b);
    expect(() => lookupBuyer.result(b)).toThrow(BelowMinimumError);
    expect(b).toEqual(before);
  });
});

describe("hostile messages are refused and leave the state unchanged", () => {
  const r = rng(3);
  const provider = providerTable(randomKeys(r, 100, 60), r);
  const buyer = buyerTable(randomKeys(r, 30, 60));
  const { secretKey } = lookupKeyPair(seed, product, 1);

  it("at the provider and the buyer", async () => {
    const prepared = await prepareLookupTable({ table: provider, keys: ["phone"], labels: ["spend"], secretKey, product, version: 1, pool });
    const b = await lookupBuyer.start({ params: { job: "hostile", product, version: 1, chunkElements: 10 }, keys: keysFromTable(buyer, ["phone"]) }, ctx);
    const p0 = await providerStart({ job: "hostile", product, version: 1 }, { secretKey, budgetRemaining: 1000 });
    const hello = sent(b)[0] as ProtocolMessage;
    const chunk0 = sent(b)[1] as ElementBatch;
    const expectRefused = async <S,>(s: S, fn: () => Promise<unknown>, type: abstract new (...a: never[]) => Error) => {
      const before = structuredClone(s);
      await expect(fn()).rejects.toBeInstanceOf(type);
      expect(s).toEqual(before);
    };
    await expectRefused(p0, () => lookupProvider.receive(p0, "buyer", chunk0, { ...ctx, prepared: prepared }), WrongStepError);
    const p1 = await lookupProvider.receive(p0, "buyer", hello, { ...ctx, prepared: prepared });
    const zeroed = { ...chunk0, elements: Uint8Array.from(chunk0.elements).fill(0, 32, 64) };
    await expectRefused(p1.state, () => lookupProvider.receive(p1.state, "buyer", zeroed, { ...ctx, prepared: prepared }), InvalidPointError);
    const bad = { ...chunk0, elements: Uint8Array.from(chunk0.elements).fill(0xff, 0, 32) };
    await expectRefused(p1.state, () => lookupProvider.receive(p1.state, "buyer", bad, { ...ctx, prepared: prepared }), InvalidPointError);
    const p2 = await lookupProvider.receive(p1.state, "buyer", chunk0, { ...ctx, prepared: prepared });
    await expectRefused(p2.state, () => lookupProvider.receive(p2.state, "buyer", chunk0, { ...ctx, prepared: prepared }), WrongStepError); // replay
    // The buyer side.
    let bs = b.state;
    bs = (await lookupBuyer.receive(bs, "provider", sent(p1)[0] as ProtocolMessage, ctx)).state;
    const ev = sent(p2)[0] as ElementBatch;
    const s1 = bs;
    await expectRefused(s1, () => lookupBuyer.receive(s1, "provider", { ...ev, elements: Uint8Array.from(ev.elements).fill(0, 0, 32) }, ctx), InvalidPointError);
    await expectRefused(s1, () => lookupBuyer.receive(s1, "provider", { ...ev, header: { ...ev.header, step: 5 } }, ctx), WrongStepError);
    bs = (await lookupBuyer.receive(s1, "provider", ev, ctx)).state;
    await expectRefused(bs, () => lookupBuyer.receive(bs, "provider", ev, ctx), WrongStepError);
  });
});
