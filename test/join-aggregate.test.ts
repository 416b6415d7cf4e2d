/**
 * join-aggregate: results equal DuckDB's SQL (JOIN USING, GROUP BY, HAVING
 * COUNT(DISTINCT key) >= k AND COUNT(*) >= k) on random data with duplicates on both sides, nulls, unicode
 * and composite keys, extreme values and small groups (each buyer key in one
 * group, as the protocol requires); what each role receives; hostile
 * messages refused with the state unchanged; a key in two groups refused by
 * the buyer and, sent by a modified buyer, by the exchange; the buyer's key
 * count capped by maxBuyerKeys; no buffer sized from an announcement; k
 * counted in distinct matched keys (a provider's ten rows of one key do not
 * make a group), every unreleased group counted as suppressed, and the buyer
 * refusing a result whose groups do not add up.
 */
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { Float64, Int32, Int64, Table, Utf8, vectorFromArray, type DataType } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool, keysFromTable } from "../engine/index.js";
import { createHeContext, KeyMismatchError, ParameterMismatchError } from "../engine/he/index.js";
import { InvalidPointError } from "../engine/errors.js";
import {
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  jaBuyer,
  KeyLimitExceededError,
  OverlappingGroupsError,
  jaExchange,
  jaHeOptions,
  jaProvider,
  resolveJaParams,
  runJoinAggregate,
  RefusedError,
  WrongJobError,
  WrongSenderError,
  WrongStepError,
  type AggregateSpec,
  type JaContext,
  type JaExchangeState,
  type JoinAggregateParams,
  type JoinHello,
  type JoinResult,
  type JoinWeights,
  type ProtocolMessage,
} from "../protocols/index.js";
import type { RoleName } from "../protocols/role.js";
import { rng } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
let db: DuckDBInstance;
let sql: DuckDBConnection;

beforeAll(async () => {
  db = await DuckDBInstance.create(":memory:");
  sql = await db.connect();
});
afterAll(async () => {
  sql.closeSync();
  await pool.close();
});

// Keys the SQL oracle compares exactly as Umbra does after its default normalisation (trimmed, NFC, non-empty).
const KEYS = ["alice", "bob", "Zoë", "李雷", "韩梅梅", "+86 138 0000 0001", "0", "🙂", "ÅSA", "o'neil"];
const key = (r: () => number, universe: number): string => {
  const k = Math.floor(r() * universe);
  return k < KEYS.length ? (KEYS[k] as string) : `cust-${k}`;
};

function literal(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return `'${v.replace(/'/g, "''")}'`;
  return String(v);
}

async function load(name: string, table: Table, types: Record<string, string>): Promise<void> {
  const cols = Object.keys(types);
  await sql.run(`CREATE OR REPLACE TABLE ${name} (${cols.map((c) => `${c} ${types[c]}`).join(", ")})`);
  if (table.numRows === 0) return;
  const rows: string[] = [];
  for (let i = 0; i < table.numRows; i++) rows.push(`(${cols.map((c) => literal(table.getChild(c)?.get(i))).join(", ")})`);
  for (let i = 0; i < rows.length; i += 2000) await sql.run(`INSERT INTO ${name} VALUES ${rows.slice(i, i + 2000).join(", ")}`);
}

interface Row {
  label: string | null;
  values: Record<string, number | null>;
}

/** How many groups the buyer's table b has (a NULL group included): released + suppressed. */
async function buyerGroups(groupBy: string | undefined): Promise<number> {
  if (!groupBy) return 1;
  const r = await sql.runAndReadAll(`SELECT COUNT(*) FROM (SELECT DISTINCT ${groupBy} FROM b)`);
  return Number(r.getRows()[0]?.[0]);
}

/** DuckDB's answer, keyed by label: a group is released with at least k distinct matched keys and k joined rows. */
async function oracle(keys: readonly string[], groupBy: string | undefined, aggregates: readonly AggregateSpec[], k: number): Promise<Map<string | null, Row>> {
  const sel = aggregates.map((a) => (a.fn === "count" ? "COUNT(*)::DOUBLE AS count" : `${{ sum: "SUM", avg: "AVG", var: "VAR_SAMP", stddev: "STDDEV_SAMP" }[a.fn]}(${a.column})::DOUBLE AS ${a.fn}_${a.column}`));
  const g = groupBy ? `${groupBy}::VARCHAR AS g, ` : "";
  const q = `SELECT ${g}${sel.join(", ")} FROM b JOIN p USING (${keys.join(", ")}) ${groupBy ? `GROUP BY ${groupBy}` : ""} HAVING COUNT(*) >= ${k} AND COUNT(DISTINCT ${keys.length === 1 ? keys[0] : `ROW(${keys.join(", ")})`}) >= ${k}`;
  const res = await sql.runAndReadAll(q);
  const names = res.columnNames();
  const out = new Map<string | null, Row>();
  for (const row of res.getRows()) {
    const values: Record<string, number | null> = {};
    names.forEach((n, i) => {
      if (n !== "g") values[n] = row[i] === null ? null : Number(row[i]);
    });
    const label = groupBy ? (row[0] === null ? null : String(row[0])) : "";
    out.set(label, { label, values });
  }
  return out;
}

function secureRows(table: Table, groupBy: string | undefined): Map<string | null, Row> {
  const out = new Map<string | null, Row>();
  for (let i = 0; i < table.numRows; i++) {
    const values: Record<string, number | null> = {};
    let label: string | null = "";
    for (const f of table.schema.fields) {
      const v: unknown = table.getChild(f.name)?.get(i);
      if (groupBy && f.name === groupBy) label = v === null ? null : String(v);
      else values[f.name] = v === null || v === undefined ? null : Number(v);
    }
    out.set(label, { label, values });
  }
  return out;
}

function expectSame(secure: Map<string | null, Row>, plain: Map<string | null, Row>): void {
  expect([...secure.keys()].sort()).toEqual([...plain.keys()].sort());
  for (const [label, want] of plain) {
    const got = secure.get(label) as Row;
    for (const [name, w] of Object.entries(want.values)) {
      const x = got.values[name];
      if (w === null) expect(x, `${name} of group ${String(label)}`).toBeNull();
      else {
        expect(x, `${name} of group ${String(label)}`).not.toBeNull();
        const tol = 1e-9 * Math.max(1, Math.abs(w));
        expect(Math.abs((x as number) - w), `${name} of group ${String(label)}: ${x} vs ${w}`).toBeLessThanOrEqual(tol);
      }
    }
  }
}

interface Data {
  buyer: Table;
  provider: Table;
}

/**
 * Buyer: k (dup), g (labels, nulls, one small group; a key repeated keeps its group, rows with a null key
 * take any); provider: k (dup), v (int, negatives, extremes, nulls), w (2 decimals).
 */
function data(seed: number, nb: number, np: number, universe: number, opts: { extreme?: number } = {}): Data {
  const r = rng(seed);
  const grades = ["A", "B", "C", "D", "Ünï", "tiny"];
  const bk: (string | null)[] = [];
  const bg: (string | null)[] = [];
  const groupOf = new Map<string, string | null>();
  for (let i = 0; i < nb; i++) {
    const k = r() < 0.04 ? null : key(r, universe);
    const x = r();
    const g = x < 0.05 ? null : x < 0.06 ? "tiny" : (grades[Math.floor(r() * 5)] as string);
    bk.push(k);
    if (k !== null && !groupOf.has(k)) groupOf.set(k, g);
    bg.push(k === null ? g : (groupOf.get(k) as string | null));
  }
  const pk: (string | null)[] = [];
  const v: (number | null)[] = [];
  const w: (number | null)[] = [];
  const ext = opts.extreme ?? 1_000_000;
  for (let i = 0; i < np; i++) {
    pk.push(r() < 0.04 ? null : key(r, universe));
    const x = r();
    v.push(x < 0.05 ? null : x < 0.08 ? 0 : x < 0.1 ? ext : x < 0.12 ? -ext : Math.round((r() - 0.5) * 20_000));
    w.push(r() < 0.05 ? null : Math.round((r() - 0.3) * 1e6) / 100);
  }
  return {
    buyer: new Table({ k: vectorFromArray(bk, new Utf8()), g: vectorFromArray(bg, new Utf8()) }),
    provider: new Table({ k: vectorFromArray(pk, new Utf8()), v: vectorFromArray(v, new Int32() as DataType), w: vectorFromArray(w, new Float64()) }),
  };
}

const ALL: AggregateSpec[] = [
  { fn: "count" },
  { fn: "sum", column: "v" },
  { fn: "avg", column: "v" },
  { fn: "var", column: "v" },
  { fn: "stddev", column: "v" },
  { fn: "sum", column: "w" },
  { fn: "avg", column: "w" },
];

describe("join-aggregate equals DuckDB", () => {
  it("grouped, duplicates on both sides, nulls, unicode, k suppression (x25519)", async () => {
    const d = data(1, 900, 1200, 600);
    await load("b", d.buyer, { k: "VARCHAR", g: "VARCHAR" });
    await load("p", d.provider, { k: "VARCHAR", v: "INTEGER", w: "DOUBLE" });
    for (const k of [1, 25]) {
      const res = await runJoinAggregate({
        buyer: { table: d.buyer, keys: ["k"], groupBy: "g" },
        provider: { table: d.provider, keys: ["k"] },
        aggregates: ALL,
        minGroupSize: k,
        maxAbsValue: 1_000_000,
        scale: 2,
        pool,
      });
      const plain = await oracle(["k"], "g", ALL, k);
      expectSame(secureRows(res.table, "g"), plain);
      expect(res.suppressedGroups).toBe((await buyerGroups("g")) - plain.size);
      if (k === 25) expect(res.suppressedGroups).toBeGreaterThan(0);
    }
  });

  it("ungrouped, ristretto255, no padding", async () => {
    const d = data(2, 300, 200, 250);
    await load("b", d.buyer, { k: "VARCHAR", g: "VARCHAR" });
    await load("p", d.provider, { k: "VARCHAR", v: "INTEGER", w: "DOUBLE" });
    const aggs: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "w" }, { fn: "var", column: "w" }];
    const res = await runJoinAggregate({
      buyer: { table: d.buyer, keys: ["k"] },
      provider: { table: d.provider, keys: ["k"] },
      aggregates: aggs,
      minGroupSize: 1,
      maxAbsValue: 1_000_000,
      scale: 2,
      group: "ristretto255",
      providerPadding: "none",
      pool,
    });
    expectSame(secureRows(res.table, undefined), await oracle(["k"], undefined, aggs, 1));
    // A small maxJoinRows still runs at N = 8192 (the masked sums need its noise budget).
    const small = await runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"] }, provider: { table: d.provider, keys: ["k"] }, aggregates: aggs, minGroupSize: 1, maxAbsValue: 1_000_000, scale: 2, maxJoinRows: 4000, pool });
    expectSame(secureRows(small.table, undefined), await oracle(["k"], undefined, aggs, 1));
  });

  it("composite keys and extreme values at the declared bound", async () => {
    const r = rng(3);
    const n = 400;
    const EXT = 2 ** 40;
    const mk = (m: number) => ({
      k1: Array.from({ length: m }, () => (r() < 0.03 ? null : key(r, 30))),
      k2: Array.from({ length: m }, () => (r() < 0.03 ? null : Math.floor(r() * 10))),
    });
    const b = mk(n);
    const p = mk(n);
    // One group per composite key (a row with a null part never matches: any group).
    const groupOf = new Map<string, string>();
    const g = b.k1.map((k1, i) => {
      const pick = r() < 0.5 ? "x" : "y";
      if (k1 === null || b.k2[i] === null) return pick;
      const kk = JSON.stringify([k1, b.k2[i]]);
      if (!groupOf.has(kk)) groupOf.set(kk, pick);
      return groupOf.get(kk) as string;
    });
    const buyer = new Table({ k1: vectorFromArray(b.k1, new Utf8()), k2: vectorFromArray(b.k2, new Int32()), g: vectorFromArray(g, new Utf8()) });
    const vals = Array.from({ length: n }, () => BigInt(r() < 0.3 ? (r() < 0.5 ? EXT : -EXT) : Math.round((r() - 0.5) * 2 * EXT)));
    const provider = new Table({ k1: vectorFromArray(p.k1, new Utf8()), k2: vectorFromArray(p.k2, new Int32()), v: vectorFromArray(vals, new Int64()) });
    await load("b", buyer, { k1: "VARCHAR", k2: "INTEGER", g: "VARCHAR" });
    await load("p", provider, { k1: "VARCHAR", k2: "INTEGER", v: "HUGEINT" });
    const aggs: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }];
    const res = await runJoinAggregate({
      buyer: { table: buyer, keys: ["k1", "k2"], groupBy: "g" },
      provider: { table: provider, keys: ["k1", "k2"] },
      aggregates: aggs,
      minGroupSize: 1,
      maxAbsValue: BigInt(EXT),
      pool,
    });
    expectSame(secureRows(res.table, "g"), await oracle(["k1", "k2"], "g", aggs, 1));
    // Exact sums, not just close: compare the bigint totals with a JS join.
    const exact = new Map<string, bigint>();
    const pIndex = new Map<string, bigint[]>();
    for (let i = 0; i < n; i++) {
      if (p.k1[i] === null || p.k2[i] === null) continue;
      const kk = JSON.stringify([p.k1[i], p.k2[i]]);
      pIndex.set(kk, [...(pIndex.get(kk) ?? []), vals[i] as bigint]);
    }
    for (let i = 0; i < n; i++) {
      if (b.k1[i] === null || b.k2[i] === null) continue;
      const g = buyer.getChild("g")?.get(i) as string;
      for (const v of pIndex.get(JSON.stringify([b.k1[i], b.k2[i]])) ?? []) exact.set(g, (exact.get(g) ?? 0n) + v);
    }
    for (const grp of res.result.groups) expect(grp.columns["v"]?.sum).toBe(exact.get(grp.label as string));
  });

  it("empty, disjoint and identical sets", async () => {
    const d = data(4, 200, 200, 150);
    const empty = new Table({ k: vectorFromArray([] as string[], new Utf8()), g: vectorFromArray([] as string[], new Utf8()) });
    const disjoint = new Table({ k: vectorFromArray(["nobody-1", "nobody-2"], new Utf8()), g: vectorFromArray(["A", "B"], new Utf8()) });
    // Every buyer group not released counts as suppressed, one without a match too: 0 of 0, 2 of 2.
    for (const [buyer, groups] of [[empty, 0], [disjoint, 2]] as const) {
      const res = await runJoinAggregate({ buyer: { table: buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: ALL, minGroupSize: 1, maxAbsValue: 1_000_000, scale: 2, pool });
      expect(res.table.numRows).toBe(0);
      expect(res.suppressedGroups).toBe(groups);
    }
    const ungrouped = await runJoinAggregate({ buyer: { table: disjoint, keys: ["k"] }, provider: { table: d.provider, keys: ["k"] }, aggregates: [{ fn: "count" }], minGroupSize: 1, maxAbsValue: 1, pool });
    expect(ungrouped.table.numRows).toBe(0);
    expect(ungrouped.suppressedGroups).toBe(1);
    // Identical key sets: every provider row joins every buyer row with its key (each key's rows in one group).
    const pk = d.provider.getChild("k");
    const parity = new Map<unknown, string>();
    const sameGroups = Array.from({ length: d.provider.numRows }, (_, i) => {
      const k: unknown = pk?.get(i);
      if (!parity.has(k)) parity.set(k, parity.size % 2 ? "odd" : "even");
      return parity.get(k) as string;
    });
    const same = new Table({ k: pk as never, g: vectorFromArray(sameGroups, new Utf8()) });
    await load("b", same, { k: "VARCHAR", g: "VARCHAR" });
    await load("p", d.provider, { k: "VARCHAR", v: "INTEGER", w: "DOUBLE" });
    const res = await runJoinAggregate({ buyer: { table: same, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: ALL, minGroupSize: 1, maxAbsValue: 1_000_000, scale: 2, pool });
    expectSame(secureRows(res.table, "g"), await oracle(["k"], "g", ALL, 1));
  });

  it("several seeds, small universes (heavy duplicates) and k at the boundary", async () => {
    for (const seed of [11, 12, 13]) {
      const d = data(seed, 150 + seed * 7, 180, 40);
      await load("b", d.buyer, { k: "VARCHAR", g: "VARCHAR" });
      await load("p", d.provider, { k: "VARCHAR", v: "INTEGER", w: "DOUBLE" });
      // k counts distinct matched keys (COUNT(*) is never below them): a group with exactly k is kept, one below is suppressed.
      const counts = await sql.runAndReadAll("SELECT COUNT(DISTINCT k) FROM b JOIN p USING (k) GROUP BY g ORDER BY 1");
      const sizes = counts.getRows().map((x) => Number(x[0]));
      const k = sizes[Math.floor(sizes.length / 2)] as number;
      expect(sizes.some((x) => x < k)).toBe(true);
      const aggs: AggregateSpec[] = [{ fn: "count" }, { fn: "avg", column: "v" }, { fn: "var", column: "v" }];
      const res = await runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: aggs, minGroupSize: k, maxAbsValue: 1_000_000, pool });
      const plain = await oracle(["k"], "g", aggs, k);
      expectSame(secureRows(res.table, "g"), plain);
      expect(res.suppressedGroups).toBe((await buyerGroups("g")) - plain.size);
    }
  });
});

// ---------------------------------------------------------------------------- roles

interface Captured {
  from: string;
  to: string;
  m: ProtocolMessage;
}

async function captured(d: Data, aggs: AggregateSpec[]): Promise<Captured[]> {
  const out: Captured[] = [];
  await runJoinAggregate({
    buyer: { table: d.buyer, keys: ["k"], groupBy: "g" },
    provider: { table: d.provider, keys: ["k"] },
    aggregates: aggs,
    maxAbsValue: 1_000_000,
    scale: 2,
    minGroupSize: 5,
    pool,
    tap: (from, to, frame) => out.push({ from, to, m: decodeMessage(frame) }),
  });
  return out;
}

describe("what each role receives", () => {
  it("the provider receives only the buyer's key, its set size and blinded points", async () => {
    const d = data(21, 300, 300, 200);
    const msgs = await captured(d, ALL);
    const toProvider = msgs.filter((x) => x.to === "provider");
    expect(new Set(toProvider.map((x) => x.m.kind))).toEqual(new Set(["aggregateKey", "joinHello", "elementBatch"]));
    const distinct = new Set(keysOf(d.buyer)).size;
    const hello = toProvider.find((x) => x.m.kind === "joinHello")?.m as { setSize: number };
    expect(hello.setSize).toBe(distinct);
    // Blinded points are all distinct (de-duplicated): duplicates in the buyer's table are not visible.
    const pts = toProvider.filter((x) => x.m.kind === "elementBatch").map((x) => Buffer.from((x.m as { elements: Uint8Array }).elements).toString("hex"));
    const all = pts.join("").match(/.{64}/g) ?? [];
    expect(new Set(all).size).toBe(distinct);
  });

  it("the buyer receives from the exchange only per-group totals, each slot uniformly masked", async () => {
    const d = data(22, 400, 400, 200);
    const msgs = await captured(d, [{ fn: "count" }, { fn: "sum", column: "v" }]);
    const toBuyer = msgs.filter((x) => x.to === "buyer");
    expect(new Set(toBuyer.filter((x) => x.from === "exchange").map((x) => x.m.kind))).toEqual(new Set(["joinResult", "joinCiphertext"]));
    expect(new Set(toBuyer.filter((x) => x.from === "provider").map((x) => x.m.kind))).toEqual(new Set(["joinHello", "elementBatch"]));
    // The provider's padded set: a bucket, not its exact distinct count.
    const ph = toBuyer.find((x) => x.m.kind === "joinHello")?.m as { setSize: number };
    expect(ph.setSize).toBeGreaterThanOrEqual(1024);
    // Every result ciphertext holds whole blocks, one per released group: nothing per key.
    const res = toBuyer.find((x) => x.m.kind === "joinResult")?.m as { codes: Uint8Array };
    const released = res.codes.length / 4;
    const he = await createHeContext(jaHeOptions(resolveJaParams({ job: "x", aggregates: [{ fn: "sum", column: "v" }], grouped: true, maxAbsValue: 1_000_000, scale: 2 })));
    try {
      let blocks = 0;
      for (const x of toBuyer.filter((y) => y.m.kind === "joinCiphertext")) blocks += he.inspect((x.m as { ciphertext: Uint8Array }).ciphertext).blocks;
      expect(blocks).toBe(released * 2); // two statistic columns (n, s) of v
    } finally {
      he.dispose();
    }
  });

  it("the exchange receives ciphertexts under the buyer's key and blinded elements, never a key or value", async () => {
    const d = data(23, 300, 300, 200);
    const msgs = await captured(d, ALL);
    const toExchange = msgs.filter((x) => x.to === "exchange");
    expect(new Set(toExchange.map((x) => x.m.kind))).toEqual(new Set(["aggregateKey", "joinHello", "joinWeights", "joinCounts", "joinCiphertext", "elementBatch"]));
    // No plaintext identifier travels anywhere.
    const frames = msgs.map((x) => Buffer.from(encodeMessage(x.m)).toString("latin1"));
    for (const k of ["cust-1", "alice", "李雷"]) expect(frames.some((f) => f.includes(Buffer.from(k).toString("latin1")))).toBe(false);
  });
});

function keysOf(t: Table): string[] {
  const out: string[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const v = t.getChild("k")?.get(i) as string | null;
    if (v !== null) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------- hostile input

describe("hostile messages are refused and leave the state unchanged", () => {
  const params: JoinAggregateParams = { job: "ja-hostile", aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }], grouped: true, maxAbsValue: 1_000_000, maxJoinRows: 1_000_000, providerPadding: "none" };

  async function start() {
    const d = data(31, 50, 50, 40);
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    const ctx: JaContext = { pool, he };
    const buyer = await jaBuyer.start({ params, keys: keysFromTable(d.buyer, ["k"]), groups: Array.from({ length: d.buyer.numRows }, (_, i) => d.buyer.getChild("g")?.get(i) as string | null) }, ctx);
    const provider = await jaProvider.start({ params, keys: keysFromTable(d.provider, ["k"]), table: d.provider }, ctx);
    const exchange = await jaExchange.start({ params }, ctx);
    const rt = (m: ProtocolMessage) => decodeMessage(encodeMessage(m));
    return { he, ctx, buyer, provider, exchange, rt };
  }

  it("provider: wrong job, wrong step, mismatched HE options, foreign key", async () => {
    const { he, ctx, buyer, provider, rt } = await start();
    try {
      const toP = buyer.messages.filter((a) => a.to === "provider").map((a) => rt(a.message));
      const key = toP[0] as ProtocolMessage & { kind: "aggregateKey" };
      await expect(jaProvider.receive(provider.state, "buyer", { ...key, header: { ...key.header, job: "other" } }, ctx)).rejects.toBeInstanceOf(WrongJobError);
      await expect(jaProvider.receive(provider.state, "buyer", toP[1] as ProtocolMessage, ctx)).rejects.toBeInstanceOf(WrongStepError);
      await expect(jaProvider.receive(provider.state, "buyer", { ...key, maxRows: key.maxRows + 1 }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
      // The same state still accepts the genuine message.
      const ok = await jaProvider.receive(provider.state, "buyer", key, ctx);
      expect(ok.state.keyReceived).toBe(true);
      expect(provider.state.keyReceived).toBe(false);
      // A replayed key is a wrong step now.
      const afterHello = await jaProvider.receive(ok.state, "buyer", toP[1] as ProtocolMessage, ctx);
      await expect(jaProvider.receive(afterHello.state, "buyer", key, ctx)).rejects.toBeInstanceOf(WrongStepError);
      // An identity / non-canonical point in the buyer's batch is refused with its index.
      const batch = toP[2] as ProtocolMessage & { kind: "elementBatch" };
      const bad = Uint8Array.from(batch.elements);
      bad.fill(0, 32, 64);
      await expect(jaProvider.receive(afterHello.state, "buyer", { ...batch, elements: bad }, ctx)).rejects.toBeInstanceOf(InvalidPointError);
      expect(afterHello.state.received).toBe(0);
    } finally {
      he.dispose();
    }
  });

  it("each role takes each step from the one role that sends it, a refusal only from a role it hears from (WrongSenderError, state unchanged)", async () => {
    const { he, ctx, buyer, provider, exchange, rt } = await start();
    try {
      const toP = buyer.messages.filter((a) => a.to === "provider").map((a) => rt(a.message));
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => rt(a.message));
      const key = toP[0] as ProtocolMessage;
      const sender = { code: "UMBRA_WRONG_SENDER" };
      // The provider hears from the buyer only: the key from the exchange, or a refusal from it, is refused.
      await expect(jaProvider.receive(provider.state, "exchange", key, ctx)).rejects.toBeInstanceOf(WrongSenderError);
      const refusal: ProtocolMessage = { kind: "refusal", header: { ...key.header, chunk: 0, chunks: 1 }, code: "UMBRA_POLICY_DENIED", reason: "no" };
      await expect(jaProvider.receive(provider.state, "exchange", refusal, ctx)).rejects.toMatchObject(sender);
      await expect(jaProvider.receive(provider.state, "buyer", refusal, ctx)).rejects.toBeInstanceOf(RefusedError);
      // The exchange takes 1, 10, 11, 12 from the buyer and 6, 7, 8, 9 from the provider.
      const x0 = structuredClone(exchange.state);
      for (const m of toX) await expect(jaExchange.receive(exchange.state, "provider", m, ctx)).rejects.toMatchObject(sender);
      const x1 = (await jaExchange.receive(exchange.state, "buyer", toX[0] as ProtocolMessage, ctx)).state;
      const providerHello: JoinHello = { ...(toX[1] as JoinHello), header: { ...(toX[1] as JoinHello).header, step: 6 }, peerSetSize: (toX[1] as JoinHello).setSize, groups: 0 };
      await expect(jaExchange.receive(x1, "buyer", providerHello, ctx)).rejects.toMatchObject(sender);
      expect((await jaExchange.receive(x1, "provider", providerHello, ctx)).state.providerHello).toBe(true);
      expect(structuredClone(exchange.state)).toEqual(x0);
      // The buyer takes 4, 5 from the provider and 13, 14 from the exchange; the provider's hello from the exchange is refused.
      const p1 = (await jaProvider.receive(provider.state, "buyer", key, ctx)).state;
      const answer = await jaProvider.receive(p1, "buyer", toP[1] as ProtocolMessage, ctx);
      const hello = answer.messages.find((a) => a.to === "buyer")?.message as ProtocolMessage;
      await expect(jaBuyer.receive(buyer.state, "exchange", hello, ctx)).rejects.toMatchObject(sender);
      expect((await jaBuyer.receive(buyer.state, "provider", hello, ctx)).state.providerHello).toBe(true);
      expect(buyer.state.providerHello).toBe(false);
    } finally {
      he.dispose();
    }
  });

  it("exchange: bad weights, oversized counts, a ciphertext under another key", async () => {
    const { he, ctx, buyer, provider, exchange, rt } = await start();
    try {
      let x = exchange.state;
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => rt(a.message));
      for (const m of toX.slice(0, 2)) x = (await jaExchange.receive(x, "buyer", m, ctx)).state;
      const w = toX[2] as ProtocolMessage & { kind: "joinWeights" };
      const codes = Uint8Array.from(w.codes);
      new DataView(codes.buffer).setUint32(0, 999, true);
      await expect(jaExchange.receive(x, "buyer", { ...w, codes }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      const zero = Uint8Array.from(w.weights);
      new DataView(zero.buffer).setUint32(0, 0, true);
      await expect(jaExchange.receive(x, "buyer", { ...w, weights: zero }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      const x2 = (await jaExchange.receive(x, "buyer", w, ctx)).state;
      expect(x2.weightsReceived).toBe(x.buyerSetSize);
      expect(x.weightsReceived).toBe(0);
      // Provider side: feed the key and hello so the provider emits its exchange messages.
      const toP = buyer.messages.filter((a) => a.to === "provider").map((a) => rt(a.message));
      let p = provider.state;
      const outs: ProtocolMessage[] = [];
      for (const m of toP.slice(0, 2)) {
        const r = await jaProvider.receive(p, "buyer", m, ctx);
        p = r.state;
        outs.push(...r.messages.filter((a) => a.to === "exchange").map((a) => rt(a.message)));
      }
      let y = x2;
      y = (await jaExchange.receive(y, "provider", outs[0] as ProtocolMessage, ctx)).state; // hello
      const counts = outs[1] as ProtocolMessage & { kind: "joinCounts" };
      const big = Uint8Array.from(counts.counts);
      new DataView(big.buffer).setUint32(0, 0xffffffff, true);
      await expect(jaExchange.receive(y, "provider", { ...counts, counts: big }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      y = (await jaExchange.receive(y, "provider", counts, ctx)).state;
      // A statistic encrypted under another key set is refused.
      const ct = outs[2] as ProtocolMessage & { kind: "joinCiphertext" };
      const other = he.generateKeys({ galois: false });
      const foreign = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(he.inspect(ct.ciphertext).length)), other.publicKey);
      await expect(jaExchange.receive(y, "provider", { ...ct, ciphertext: foreign }, ctx)).rejects.toBeInstanceOf(KeyMismatchError);
      const y2 = (await jaExchange.receive(y, "provider", ct, ctx)).state;
      expect(y2.valueChunks.length).toBe(1);
      expect(y.valueChunks.length).toBe(0);
    } finally {
      he.dispose();
    }
  });
});

// ---------------------------------------------------------------------------- one group per key

const u32 = (xs: readonly number[]): Uint8Array => {
  const b = new Uint8Array(xs.length * 4);
  xs.forEach((x, i) => new DataView(b.buffer).setUint32(i * 4, x, true));
  return b;
};
const fromU32 = (b: Uint8Array): number[] => Array.from({ length: b.length / 4 }, (_, i) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(i * 4, true));

/** Bytes held in a state's typed arrays (and arrays of them). */
function heldBytes(state: object): number {
  let n = 0;
  for (const v of Object.values(state)) {
    if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (Array.isArray(v)) for (const x of v) if (ArrayBuffer.isView(x)) n += x.byteLength;
  }
  return n;
}

describe("each buyer key falls in one group", () => {
  // The attack: A = {target, x1 … x10}, B = {x1 … x10}; with k = 10 both pass, and A − B is the target's value.
  const xs = Array.from({ length: 10 }, (_, i) => `x-${i + 1}`);
  const overlapping = new Table({
    k: vectorFromArray(["the-target", ...xs, ...xs], new Utf8()),
    g: vectorFromArray(["A", ...xs.map(() => "A"), ...xs.map(() => "B")], new Utf8()),
  });
  const provider = new Table({ k: vectorFromArray(["the-target", ...xs], new Utf8()), v: vectorFromArray([987_654, ...xs.map(() => 1)], new Int32() as DataType) });
  const aggs: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }];

  it("the buyer refuses a key in two groups, naming the group column and the first two rows, never the key", async () => {
    const err = await runJoinAggregate({ buyer: { table: overlapping, keys: ["k"], groupBy: "g" }, provider: { table: provider, keys: ["k"] }, aggregates: aggs, minGroupSize: 10, maxAbsValue: 1_000_000, pool }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OverlappingGroupsError);
    expect(err).toMatchObject({ code: "UMBRA_OVERLAPPING_GROUPS", column: "g", rows: [2, 12] });
    expect((err as Error).message).toBe('group column "g": data rows 2 and 12 have the same key in different groups; each key must fall in one group; de-duplicate or fix the group column');
  });

  it("a key in a group and in the NULL group is refused too; null keys and a key repeated in one group are not", async () => {
    const params: JoinAggregateParams = { job: "ja-overlap-null", aggregates: aggs, grouped: true, maxAbsValue: 1_000_000 };
    const keys = (ks: (string | null)[]) => keysFromTable(new Table({ k: vectorFromArray(ks, new Utf8()) }), ["k"]);
    const ctx: JaContext = { pool };
    await expect(jaBuyer.start({ params, keys: keys(["a", "b", " a"]), groups: ["A", "B", null], groupColumn: "segment" }, ctx)).rejects.toMatchObject({ code: "UMBRA_OVERLAPPING_GROUPS", rows: [1, 3] });
    const ok = await jaBuyer.start({ params, keys: keys([null, "a", null, "a", "b"]), groups: ["A", "A", "B", "A", null], groupColumn: "segment" }, ctx);
    const w = ok.messages.map((a) => a.message).find((m) => m.kind === "joinWeights") as JoinWeights;
    // Two positions, one (code, weight) pair each: "a" twice in one group, "b" once in the NULL group.
    expect(fromU32(w.offsets)).toEqual([0, 1, 2]);
    expect(fromU32(w.weights).sort()).toEqual([1, 2]);
  });

  it("the exchange refuses JoinWeights that give one position weights for two group codes, with the state unchanged", async () => {
    const params: JoinAggregateParams = { job: "ja-two-codes", aggregates: aggs, grouped: true, maxAbsValue: 1_000_000 };
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    try {
      const ctx: JaContext = { pool, he };
      // A modified buyer agent: a legitimate input (target and x's in A, others in B), then one position's weights forged to name both codes.
      const table = new Table({ k: vectorFromArray(["the-target", ...xs, "y-1"], new Utf8()), g: vectorFromArray(["A", ...xs.map(() => "A"), "B"], new Utf8()) });
      const buyer = await jaBuyer.start({ params, keys: keysFromTable(table, ["k"]), groups: ["A", ...xs.map(() => "A"), "B"], groupColumn: "g" }, ctx);
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => decodeMessage(encodeMessage(a.message)));
      let x: JaExchangeState = (await jaExchange.start({ params }, ctx)).state;
      for (const m of toX.slice(0, 2)) x = (await jaExchange.receive(x, "buyer", m, ctx)).state;
      const w = toX[2] as JoinWeights;
      const off = fromU32(w.offsets);
      const codes = fromU32(w.codes);
      const weights = fromU32(w.weights);
      const other = 1 - (codes[0] as number); // two groups: codes 0 and 1
      const forged: JoinWeights = {
        ...w,
        offsets: u32(off.map((o, i) => (i === 0 ? o : o + 1))),
        codes: u32([codes[0] as number, other, ...codes.slice(1)]),
        weights: u32([weights[0] as number, 1, ...weights.slice(1)]),
      };
      const before = structuredClone(x);
      const err = await jaExchange.receive(x, "buyer", decodeMessage(encodeMessage(forged)), ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidMessageError);
      expect((err as Error).message).toBe("a buyer position carries weights for more than one group: each key must fall in one group");
      expect(structuredClone(x)).toEqual(before);
      // The genuine weights are still accepted.
      expect((await jaExchange.receive(x, "buyer", w, ctx)).state.weightsReceived).toBe(12);
    } finally {
      he.dispose();
    }
  });
});

// ---------------------------------------------------------------------------- maxBuyerKeys and buffers

describe("maxBuyerKeys: the provider and the exchange refuse a larger buyer set", () => {
  const params: JoinAggregateParams = { job: "ja-max-keys", aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }], grouped: true, maxAbsValue: 1_000_000, maxJoinRows: 1_000_000, providerPadding: "none" };
  const d = data(41, 60, 50, 45);
  const groups = Array.from({ length: d.buyer.numRows }, (_, i) => d.buyer.getChild("g")?.get(i) as string | null);
  const distinct = new Set(keysOf(d.buyer)).size;

  it("a buyer with more distinct keys than maxBuyerKeys is refused by its own role, by the provider at the hello and by the exchange", async () => {
    const limit = distinct - 1;
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    try {
      const ctx: JaContext = { pool, he };
      // Its own role: the job allows fewer keys than it holds.
      await expect(jaBuyer.start({ params: { ...params, maxBuyerKeys: limit }, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx)).rejects.toMatchObject({ code: "UMBRA_KEY_LIMIT_EXCEEDED", announced: distinct, limit });
      // A buyer started without the limit (a modified agent) meets it at the provider and the exchange.
      const buyer = await jaBuyer.start({ params, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx);
      const toP = buyer.messages.filter((a) => a.to === "provider").map((a) => a.message);
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => a.message);
      const limited = { ...params, maxBuyerKeys: limit };
      const provider = await jaProvider.start({ params: limited, keys: keysFromTable(d.provider, ["k"]), table: d.provider }, ctx);
      const p1 = (await jaProvider.receive(provider.state, "buyer", toP[0] as ProtocolMessage, ctx)).state;
      const before = structuredClone(p1);
      const err = await jaProvider.receive(p1, "buyer", toP[1] as ProtocolMessage, ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyLimitExceededError);
      expect(err).toMatchObject({ code: "UMBRA_KEY_LIMIT_EXCEEDED", announced: distinct, limit });
      expect(structuredClone(p1)).toEqual(before);
      let x = (await jaExchange.start({ params: limited }, ctx)).state;
      x = (await jaExchange.receive(x, "buyer", toX[0] as ProtocolMessage, ctx)).state;
      const xBefore = structuredClone(x);
      await expect(jaExchange.receive(x, "buyer", toX[1] as ProtocolMessage, ctx)).rejects.toBeInstanceOf(KeyLimitExceededError);
      expect(structuredClone(x)).toEqual(xBefore);
      // The provider's hello to the exchange names the buyer's set size: refused there too.
      const unlimited = await jaProvider.start({ params, keys: keysFromTable(d.provider, ["k"]), table: d.provider }, ctx);
      let up = unlimited.state;
      const out: ProtocolMessage[] = [];
      for (const m of toP.slice(0, 2)) {
        const r = await jaProvider.receive(up, "buyer", m, ctx);
        up = r.state;
        out.push(...r.messages.filter((a) => a.to === "exchange").map((a) => a.message));
      }
      await expect(jaExchange.receive(x, "provider", out[0] as JoinHello, ctx)).rejects.toBeInstanceOf(KeyLimitExceededError);
      // At the limit, everything runs.
      const atLimit = await runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: [{ fn: "count" }], minGroupSize: 1, maxAbsValue: 1, pool, maxBuyerKeys: distinct });
      expect(atLimit.table.numRows).toBeGreaterThan(0);
      await expect(runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: [{ fn: "count" }], minGroupSize: 1, maxAbsValue: 1, pool, maxBuyerKeys: limit })).rejects.toBeInstanceOf(KeyLimitExceededError);
    } finally {
      he.dispose();
    }
  });

  it("the exchange, told of 10^8-key sets by both hellos, allocates nothing for them until chunks arrive", async () => {
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    try {
      const ctx: JaContext = { pool, he };
      const buyer = await jaBuyer.start({ params, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx);
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => a.message);
      const big = 100_000_000;
      let x = (await jaExchange.start({ params }, ctx)).state;
      x = (await jaExchange.receive(x, "buyer", toX[0] as ProtocolMessage, ctx)).state;
      const withKey = heldBytes(x); // the buyer's public key
      x = (await jaExchange.receive(x, "buyer", { ...(toX[1] as JoinHello), setSize: big }, ctx)).state;
      const providerHello: JoinHello = { ...(toX[1] as JoinHello), header: { ...(toX[1] as JoinHello).header, step: 6 }, setSize: big, peerSetSize: big, peerChunkElements: (toX[1] as JoinHello).chunkElements, groups: 0 };
      x = (await jaExchange.receive(x, "provider", providerHello, ctx)).state;
      expect(x.buyerSetSize).toBe(big);
      expect(x.providerSetSize).toBe(big);
      expect(heldBytes(x)).toBe(withKey);
    } finally {
      he.dispose();
    }
  });
});

// ---------------------------------------------------------------------------- k in distinct keys

describe("k counts distinct matched keys; every group not released is suppressed", () => {
  const others = Array.from({ length: 30 }, (_, i) => `o-${i}`);
  const aggs: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }];

  it("a provider's ten rows of one key do not make a one-key group releasable; the other group is exact", async () => {
    const buyer = new Table({ k: vectorFromArray(["the-target", ...others], new Utf8()), g: vectorFromArray(["T", ...others.map(() => "A")], new Utf8()) });
    const provider = new Table({
      k: vectorFromArray([...Array.from({ length: 10 }, () => "the-target"), ...others], new Utf8()),
      v: vectorFromArray([...Array.from({ length: 10 }, () => 754), ...others.map((_, i) => 100 + i)], new Int32() as DataType),
    });
    const res = await runJoinAggregate({ buyer: { table: buyer, keys: ["k"], groupBy: "g" }, provider: { table: provider, keys: ["k"] }, aggregates: aggs, minGroupSize: 10, maxAbsValue: 10_000, pool });
    expect(res.result.groups.map((g) => [g.label, g.count, g.columns["v"]?.sum, res.suppressedGroups])).toEqual([["A", 30n, BigInt(30 * 100 + (29 * 30) / 2), 1]]);
  });

  it("the buyer refuses a result whose released and suppressed groups do not add up to its groups, with its state unchanged", async () => {
    const params: JoinAggregateParams = { job: "ja-suppressed-sum", aggregates: aggs, grouped: true, minGroupSize: 10, maxAbsValue: 10_000, providerPadding: "none" };
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    try {
      const ctx: JaContext = { pool, he };
      // Groups A (30 matched keys), M (one matched key), N (no match): A released, M and N suppressed.
      const keys = [...others, "the-target", "nobody"];
      const groups = [...others.map(() => "A"), "M", "N"];
      const provider = new Table({ k: vectorFromArray(["the-target", ...others], new Utf8()), v: vectorFromArray([754, ...others.map(() => 1)], new Int32() as DataType) });
      const b = await jaBuyer.start({ params, keys: keysFromTable(new Table({ k: vectorFromArray(keys, new Utf8()) }), ["k"]), groups, groupColumn: "g" }, ctx);
      let buyer = b.state;
      let prov = (await jaProvider.start({ params, keys: keysFromTable(provider, ["k"]), table: provider }, ctx)).state;
      let x = (await jaExchange.start({ params }, ctx)).state;
      // Deliver everything, holding back what the exchange sends the buyer.
      type Delivery = { from: RoleName; to: RoleName; m: ProtocolMessage };
      const queue: Delivery[] = b.messages.map((a) => ({ from: "buyer", to: a.to, m: decodeMessage(encodeMessage(a.message)) }));
      let result: JoinResult | undefined;
      while (queue.length > 0) {
        const { from, to, m } = queue.shift() as Delivery;
        const out =
          to === "provider" ? await jaProvider.receive(prov, "buyer", m, ctx).then((r) => ((prov = r.state), r.messages))
          : to === "exchange" ? await jaExchange.receive(x, from, m, ctx).then((r) => ((x = r.state), r.messages))
          : from === "exchange" ? (m.kind === "joinResult" ? void (result = m) : undefined, [])
          : await jaBuyer.receive(buyer, from, m, ctx).then((r) => ((buyer = r.state), r.messages));
        const sender = to;
        queue.push(...out.map((a) => ({ from: sender, to: a.to, m: decodeMessage(encodeMessage(a.message)) })));
      }
      expect(result?.suppressed).toBe(2);
      const genuine = result as JoinResult;
      // An exchange hiding that M matched (suppressed 1), or one more group than the buyer has (3): refused.
      for (const suppressed of [1, 3]) {
        await expect(jaBuyer.receive(buyer, "exchange", { ...genuine, suppressed }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      }
      expect(buyer.result).toBeNull();
      expect((await jaBuyer.receive(buyer, "exchange", genuine, ctx)).state.result?.suppressed).toBe(2);
    } finally {
      he.dispose();
    }
  });
});
