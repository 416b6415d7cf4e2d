/**
 * federated-aggregate: exact results against a plaintext computation on
 * random data, with k applied per provider per cell and bin; a sybil
 * co-provider cannot lift a victim's small cell or bin over k; what the key
 * holder receives; one provider's masked vector decrypted alone; hostile
 * input refused with typed errors; a missing provider fails the job with
 * nothing released.
 */
import { Float64, Int64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../engine/errors.js";
import { bfvScheme, createHeContext, InvalidCiphertextError, InvalidKeyError, KeyMismatchError, ParameterMismatchError, type HeContext } from "../engine/he/index.js";
import {
  decodeMessage,
  encodeMessage,
  faBoxKeyPair,
  faBuyer,
  faExchange,
  faProvider,
  faBuyerResult,
  faHeOptions,
  faLocalVector,
  InvalidMessageError,
  MessageTooLargeError,
  MissingProviderError,
  providerRole,
  ProtocolError,
  resolveFaParams,
  runFederatedAggregate,
  WrongJobError,
  WrongSenderError,
  WrongStepError,
  type AggregateCiphertext,
  type AggregateKey,
  type AggregateSpec,
  type FaContext,
  type FaExchangeState,
  type FaProviderInput,
  type FederatedAggregateParams,
  type ProtocolMessage,
} from "../protocols/index.js";
import { rng } from "./helpers/data.js";

/** Provider i's start, by hand. */
const providerStart = (params: FederatedAggregateParams, input: FaProviderInput) => faProvider.start({ params, input }, {});
/** The exchange takes a message from the role that sends its step: the key set from the buyer, provider i's vector from "provider-<i>". */
const exchangeReceive = (s: FaExchangeState, m: ProtocolMessage, c: FaContext = {}) => faExchange.receive(s, m.kind === "aggregateCiphertext" ? providerRole(m.party) : "buyer", m, c);

interface Raw {
  readonly cat: (string | null)[];
  readonly x: (bigint | number)[];
}

function table(raw: Raw, kind: "int" | "float"): Table {
  return new Table({
    cat: vectorFromArray(raw.cat, new Utf8()),
    x: kind === "int" ? vectorFromArray(raw.x as bigint[], new Int64()) : vectorFromArray(raw.x as number[], new Float64()),
  });
}

/** Scaled exact integer of a value as the protocol defines it. */
function scaled(v: bigint | number, scale: number): bigint {
  if (typeof v === "bigint") return v * 10n ** BigInt(scale);
  const y = v * 10 ** scale;
  return BigInt(y < 0 ? -Math.round(-y) : Math.round(y));
}

interface Oracle {
  count: bigint;
  sum: bigint;
  sumsq: bigint;
  hist: bigint[];
}

/**
 * The plaintext computation with k per provider: each provider's cells with 1 … k−1 rows are left out and,
 * with a histogram, its rows of a cell's bin, or below the first or above the last edge, where it has
 * 1 … k−1 rows (from the cell's count and sums too); then the providers' cells are added.
 */
function oracle(raws: readonly Raw[], categories: readonly string[] | null, scale: number, edges: readonly number[] = [], k = 1): Oracle[] {
  const cells = categories ? categories.length : 1;
  const empty = (): Oracle[] => Array.from({ length: cells }, () => ({ count: 0n, sum: 0n, sumsq: 0n, hist: new Array<bigint>(Math.max(0, edges.length - 1)).fill(0n) }));
  const out = empty();
  const K = BigInt(k);
  for (const raw of raws) {
    const mine = ownCells(keptRows(raw, categories, scale, edges, k), categories, scale, edges, empty());
    mine.forEach((c, i) => {
      if (c.count > 0n && c.count < K) return;
      const o = out[i] as Oracle;
      o.count += c.count;
      o.sum += c.sum;
      o.sumsq += c.sumsq;
      c.hist.forEach((h, b) => {
        if (h >= K) o.hist[b] = (o.hist[b] as bigint) + h;
      });
    });
  }
  return out;
}

/** A provider's rows without those of a (cell, range) where it has 1 … k−1 rows: a range is a bin, below the first edge or above the last. */
function keptRows(raw: Raw, categories: readonly string[] | null, scale: number, edges: readonly number[], k: number): Raw {
  if (edges.length < 2) return raw;
  const e = edges.map((x) => scaled(x, scale));
  const rangeOf = (v: bigint | number): string => {
    const s = scaled(v, scale);
    if (s < (e[0] as bigint)) return "below";
    if (s > (e[e.length - 1] as bigint)) return "above";
    let b = 0;
    while (b < e.length - 2 && s >= (e[b + 1] as bigint)) b++;
    return `bin ${b}`;
  };
  const at = (r: number): string => `${categories ? categories.indexOf(raw.cat[r] ?? "\u0000") : 0} ${rangeOf(raw.x[r] as bigint | number)}`;
  const n = new Map<string, number>();
  raw.x.forEach((_, r) => n.set(at(r), (n.get(at(r)) ?? 0) + 1));
  const keep = raw.x.map((_, r) => (n.get(at(r)) as number) >= k);
  return { cat: raw.cat.filter((_, r) => keep[r]), x: raw.x.filter((_, r) => keep[r]) };
}

/** One provider's cells, plain, added into `out`. */
function ownCells(raw: Raw, categories: readonly string[] | null, scale: number, edges: readonly number[], out: Oracle[]): Oracle[] {
  const e = edges.map((x) => scaled(x, scale));
  raw.x.forEach((v, r) => {
    const c = categories ? categories.indexOf(raw.cat[r] ?? "\u0000") : 0;
    if (c < 0) return;
    const o = out[c] as Oracle;
    const s = scaled(v, scale);
    o.count += 1n;
    o.sum += s;
    o.sumsq += s * s;
    if (e.length > 1 && s >= (e[0] as bigint) && s <= (e[e.length - 1] as bigint)) {
      let b = 0;
      while (b < e.length - 2 && s >= (e[b + 1] as bigint)) b++;
      o.hist[b] = (o.hist[b] as bigint) + 1n;
    }
  });
  return out;
}

function expectClose(actual: number | null, expected: number, what: string): void {
  expect(actual, what).not.toBeNull();
  const a = actual as number;
  expect(Math.abs(a - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${a} vs ${expected}`).toBe(true);
}

function checkAgainstOracle(result: Awaited<ReturnType<typeof runFederatedAggregate>>["result"], want: Oracle[], scale: number, k: number): void {
  const f = 10n ** BigInt(scale);
  expect(result.cells.length).toBe(want.length);
  result.cells.forEach((cell, i) => {
    const w = want[i] as Oracle;
    if (w.count < BigInt(k)) {
      expect(cell.suppressed).toBe(true);
      expect(cell.count).toBeNull();
      expect(cell.columns["x"]?.sum).toBeNull();
      return;
    }
    expect(cell.suppressed).toBe(false);
    expect(cell.count).toBe(w.count);
    const c = cell.columns["x"];
    expect(c?.sum).toBe(w.sum);
    if (w.count > 0n) expectClose(c?.avg ?? null, Number(w.sum) / Number(w.count * f), `avg cell ${i}`);
    if (w.count > 1n) {
      const v = Number(w.count * w.sumsq - w.sum * w.sum) / Number(w.count * (w.count - 1n) * f * f);
      expectClose(c?.var ?? null, v, `var cell ${i}`);
      expectClose(c?.stddev ?? null, Math.sqrt(v), `stddev cell ${i}`);
    }
    w.hist.forEach((h, b) => expect(cell.histogram[b]).toBe(h < BigInt(k) ? null : h));
  });
}

const FULL: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "x" }, { fn: "avg", column: "x" }, { fn: "var", column: "x" }, { fn: "stddev", column: "x" }];

describe("federated-aggregate: results equal the plaintext computation", () => {
  it("2 providers, 64-bit integers with extremes, group-by with a category at one provider only, histogram", async () => {
    const V = 2n ** 40n;
    const r = rng(11);
    const cats = ["a", "b", "c", "only-1"];
    const gen = (n: number, withOnly: boolean): Raw => {
      const cat: (string | null)[] = [];
      const x: bigint[] = [];
      for (let i = 0; i < n; i++) {
        const u = r();
        cat.push(u < 0.05 ? null : u < 0.1 ? "undeclared" : withOnly && u < 0.3 ? "only-1" : (["a", "b", "c"][Math.floor(r() * 3)] as string));
        const w = r();
        x.push(w < 0.1 ? V : w < 0.2 ? -V : w < 0.3 ? 0n : BigInt(Math.floor((r() - 0.5) * 2e12)));
      }
      return { cat, x };
    };
    const raws = [gen(300, false), gen(250, true)];
    const edges = [-1e12, -1000, 0, 1000, 1e12];
    const run = await runFederatedAggregate({
      providers: raws.map((raw) => ({ table: table(raw, "int") })),
      aggregates: FULL,
      groupBy: { column: "cat", categories: cats },
      histogram: { column: "x", edges },
      minGroupSize: 1,
      maxAbsValue: V,
      maxRowsPerProvider: 1000,
    });
    checkAgainstOracle(run.result, oracle(raws, cats, 0, edges), 0, 1);
    const t = run.table;
    expect(t.numRows).toBe(4);
    expect(t.schema.fields.map((f) => f.name)).toEqual(["category", "suppressed", "count", "sum_x", "avg_x", "var_x", "stddev_x", "hist_x_0", "hist_x_1", "hist_x_2", "hist_x_3"]);
    expect(t.getChild("category")?.get(3)).toBe("only-1");
    expect(t.getChild("count")?.get(3)).toBe(oracle(raws, cats, 0)[3]?.count);
  });

  it("3 providers, fixed point (scale 2) with negatives, zeros and extremes, no group-by", async () => {
    const r = rng(12);
    const gen = (n: number): Raw => {
      const x: number[] = [];
      for (let i = 0; i < n; i++) {
        const w = r();
        x.push(w < 0.1 ? 1e9 : w < 0.2 ? -1e9 : w < 0.3 ? 0 : Math.round((r() - 0.5) * 2e8) / 100);
      }
      return { cat: x.map(() => null), x };
    };
    const raws = [gen(200), gen(150), gen(1)];
    const run = await runFederatedAggregate({
      providers: raws.map((raw) => ({ table: table(raw, "float") })),
      aggregates: FULL,
      minGroupSize: 1,
      maxAbsValue: 1e9,
      scale: 2,
      maxRowsPerProvider: 500,
      minProviders: 3,
    });
    checkAgainstOracle(run.result, oracle(raws, null, 2), 2, 1);
    expect(run.table.schema.fields.map((f) => f.name)).toEqual(["suppressed", "count", "sum_x", "avg_x", "var_x", "stddev_x"]);
  });

  it("k per provider: a cell or bin where a provider has 1 … k−1 rows leaves its rows out; totals below k suppressed (present with nulls)", async () => {
    const k = 5;
    // a: p0 6 rows, p1 2 (left out); b: 3 + 3, each under k → 0, suppressed (6 ≥ k on the union!);
    // c: p0 5 (kept) → 5 = k, released; d: p1 4 → 0, suppressed.
    // Bins [-10,0) / [0,10]: a at p0 holds 1 / 5 → its [-10,0) row is left out of the bin and of the cell: a = 5.
    const p0: Raw = { cat: ["a", "a", "a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "c", "c"], x: [-1n, 0n, 2n, 4n, 6n, 8n, 1n, 2n, 3n, 9n, 9n, 9n, 9n, 9n] };
    const p1: Raw = { cat: ["a", "a", "b", "b", "b", "d", "d", "d", "d"], x: [5n, -9n, 1n, 1n, 1n, 2n, 2n, 2n, 2n] };
    const cats = ["a", "b", "c", "d"];
    const run = await runFederatedAggregate({
      providers: [{ table: table(p0, "int") }, { table: table(p1, "int") }],
      aggregates: FULL,
      groupBy: { column: "cat", categories: cats },
      histogram: { column: "x", edges: [-10, 0, 10] },
      minGroupSize: k,
      maxAbsValue: 100,
    });
    checkAgainstOracle(run.result, oracle([p0, p1], cats, 0, [-10, 0, 10], k), 0, k);
    const t = run.table;
    expect(t.numRows).toBe(4);
    expect([0, 1, 2, 3].map((i) => t.getChild("suppressed")?.get(i))).toEqual([false, true, false, true]);
    expect(t.getChild("count")?.get(0)).toBe(5n);
    expect(t.getChild("sum_x")?.get(0)).toBe(20);
    expect(t.getChild("hist_x_0")?.get(0)).toBeNull(); // p0's single negative row: left out of the bin (and the cell)
    expect(t.getChild("hist_x_1")?.get(0)).toBe(5n);
    expect(t.getChild("count")?.get(1)).toBeNull();
    expect(t.getChild("sum_x")?.get(1)).toBeNull();
    expect(t.getChild("count")?.get(2)).toBe(5n);
    expect(t.getChild("sum_x")?.get(2)).toBe(45);
    expect(t.getChild("hist_x_1")?.get(2)).toBe(5n);
  });

  it("random data, 3 providers of very different sizes, k = 8: equals the plaintext computation with k per provider", async () => {
    const k = 8;
    const r = rng(14);
    const cats = ["a", "b", "c", "d", "e"];
    const gen = (n: number): Raw => {
      const cat: (string | null)[] = [];
      const x: bigint[] = [];
      for (let i = 0; i < n; i++) {
        const u = r();
        cat.push(u < 0.05 ? null : u < 0.08 ? "undeclared" : (cats[Math.floor(r() * r() * cats.length)] as string));
        x.push(BigInt(Math.floor((r() - 0.4) * 2000)));
      }
      return { cat, x };
    };
    const raws = [gen(400), gen(60), gen(15)];
    const edges = [-800, -100, -95, 0, 100, 1200]; // [-100, -95): a narrow bin, small at every provider
    const run = await runFederatedAggregate({
      providers: raws.map((raw) => ({ table: table(raw, "int") })),
      aggregates: FULL,
      groupBy: { column: "cat", categories: cats },
      histogram: { column: "x", edges },
      minGroupSize: k,
      maxAbsValue: 2000,
    });
    const want = oracle(raws, cats, 0, edges, k);
    checkAgainstOracle(run.result, want, 0, k);
    // The data exercises the rule: some cells and some bins differ from the plaintext on the union.
    const union = oracle(raws, cats, 0, edges, 1);
    expect(want.some((w, i) => w.count !== union[i]?.count)).toBe(true);
    expect(want.some((w, i) => w.count >= BigInt(k) && w.hist.some((h, b) => h !== union[i]?.hist[b]))).toBe(true);
  });
});

describe("k per provider per cell: a sybil co-provider cannot lift a victim's small cell over k", () => {
  const k = 10;
  const cats = ["victim-cell", "other"];

  it("the victim's single row beside a sybil's 10 zero rows: the cell releases the sybil's rows only, never the victim's value", async () => {
    const victim: Raw = { cat: ["victim-cell", ...Array.from({ length: 20 }, () => "other")], x: [777n, ...Array.from({ length: 20 }, (_, i) => BigInt(i))] };
    const sybil: Raw = { cat: Array.from({ length: 10 }, () => "victim-cell"), x: Array.from({ length: 10 }, () => 0n) };
    const run = await runFederatedAggregate({ providers: [{ table: table(victim, "int") }, { table: table(sybil, "int") }], aggregates: FULL, groupBy: { column: "cat", categories: cats }, minGroupSize: k, maxAbsValue: 1000 });
    const cell = run.result.cells[0];
    expect(cell?.suppressed).toBe(false);
    expect(cell?.count).toBe(10n); // not 11
    expect(cell?.columns["x"]?.sum).toBe(0n); // not 777
    expect(run.result.cells[1]?.count).toBe(20n);
    checkAgainstOracle(run.result, oracle([victim, sybil], cats, 0, [], k), 0, k);
  });

  it("the victim's own role zeroes every slot of the cell before it masks its vector", async () => {
    const victim: Raw = { cat: ["victim-cell", ...Array.from({ length: 20 }, () => "other")], x: [777n, ...Array.from({ length: 20 }, () => 3n)] };
    const ps = params("fa-sybil-local", { groupBy: { column: "cat", categories: cats }, minGroupSize: k, histogram: { column: "x", edges: [0, 100, 1000] } });
    const boxes = [faBoxKeyPair(), faBoxKeyPair()];
    const p = await providerStart(ps, { index: 0, table: table(victim, "int"), boxKeyPair: boxes[0] as { publicKey: Uint8Array; secretKey: Uint8Array }, peers: boxes.map((b) => b.publicKey) });
    const stride = p.state.stride;
    expect(p.state.values.slice(0, stride)).toEqual(new Array<string>(stride).fill("0"));
    expect(p.state.values[stride]).toBe("20");
  });

  it("a histogram bin: the victim's one row in a bin beside a sybil's 10 in it is left out of the bin and of the cell", async () => {
    // The victim keeps the cell (15 rows) but holds a single row in [100, 1000].
    const victim: Raw = { cat: Array.from({ length: 15 }, () => "victim-cell"), x: [777n, ...Array.from({ length: 14 }, () => 5n)] };
    const sybil: Raw = { cat: Array.from({ length: 10 }, () => "victim-cell"), x: Array.from({ length: 10 }, () => 500n) };
    const edges = [0, 100, 1000];
    const run = await runFederatedAggregate({
      providers: [{ table: table(victim, "int") }, { table: table(sybil, "int") }],
      aggregates: FULL,
      groupBy: { column: "cat", categories: cats },
      histogram: { column: "x", edges },
      minGroupSize: k,
      maxAbsValue: 1000,
    });
    const cell = run.result.cells[0];
    expect(cell?.histogram).toEqual([14n, 10n]); // not [14, 11]
    expect(cell?.count).toBe(24n); // the victim's lone row in [100, 1000] is out of the cell's count too (not 25)
    checkAgainstOracle(run.result, oracle([victim, sybil], cats, 0, edges, k), 0, k);
  });
});

// The subtraction attacks: a victim with 20 rows aged 20 … 39 (spend 100), one aged 42 (spend 4,242) and 12 aged
// 60 (spend 500), beside a co-provider's 10 rows aged 30 (spend 50); k = 10.
const AGES = {
  victim: [...Array.from({ length: 20 }, (_, i) => [20 + i, 100]), [42, 4242], ...Array.from({ length: 12 }, () => [60, 500])],
  other: Array.from({ length: 10 }, () => [30, 50]),
};
const ageTable = (rows: readonly (readonly number[])[]): Table =>
  new Table({ age: vectorFromArray(rows.map((r) => BigInt(r[0] as number)), new Int64()), spend: vectorFromArray(rows.map((r) => BigInt(r[1] as number)), new Int64()) });

describe("k per provider per range: a bin under k cannot be recovered by subtraction", () => {
  const k = 10;
  const run = (histogram: { column: string; edges: number[] }, approximate = false) =>
    runFederatedAggregate({ providers: [{ table: ageTable(AGES.victim) }, { table: ageTable(AGES.other) }], aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], histogram, minGroupSize: k, maxAbsValue: 10_000, approximate });

  it("edges [0, 42, 43, 1000] on age: the one person aged 42 is in no slot — count − Σ bins is 0 and the sum leaves out 4,242", async () => {
    const cell = (await run({ column: "age", edges: [0, 42, 43, 1000] })).result.cells[0];
    // Before: count 43, bins [30, -, 12] (count − Σ bins = 1), sum 12,742.
    expect([cell?.count, cell?.histogram, cell?.columns["spend"]?.sum]).toEqual([42n, [30n, null, 12n], 20n * 100n + 12n * 500n + 10n * 50n]);
  });

  it("edges [0, 993] on spend: the victim's one value above the last edge is in no slot — count − Σ bins is 0", async () => {
    const cell = (await run({ column: "spend", edges: [0, 993] })).result.cells[0];
    // Before: count 43, bins [42] (count − Σ bins = 1: one value above 993), sum 12,742.
    expect([cell?.count, cell?.histogram, cell?.columns["spend"]?.sum]).toEqual([42n, [42n], 20n * 100n + 12n * 500n + 10n * 50n]);
  });

  it("the victim's own role leaves the rows out of its vector before it masks it: below the first edge too", async () => {
    // Edges [21, 1000]: one row (aged 20) below the first edge, under k: out of the count, the sum and the bin.
    const ps: FederatedAggregateParams = { job: "fa-ranges-local", providers: 2, minProviders: 2, minGroupSize: k, aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], histogram: { column: "age", edges: [21, 1000] }, maxAbsValue: 10_000, maxRowsPerProvider: 100 };
    const boxes = [faBoxKeyPair(), faBoxKeyPair()];
    const p = await providerStart(ps, { index: 0, table: ageTable(AGES.victim), boxKeyPair: boxes[0] as { publicKey: Uint8Array; secretKey: Uint8Array }, peers: boxes.map((b) => b.publicKey) });
    expect(p.state.values).toEqual(["32", String(19 * 100 + 4242 + 12 * 500), "32"]);
  });
});

// ------------------------------------------------------------------ state machines, by hand

const CATS = Array.from({ length: 200 }, (_, i) => `c${i}`);

function params(job: string, overrides: Partial<FederatedAggregateParams> = {}): FederatedAggregateParams {
  return {
    job,
    providers: 2,
    minProviders: 2,
    minGroupSize: 1,
    aggregates: FULL,
    groupBy: { column: "cat", categories: CATS },
    maxAbsValue: 1000,
    maxRowsPerProvider: 100,
    ...overrides,
  };
}

const DATA: Raw[] = [
  { cat: ["c0", "c0", "c1", "c5"], x: [10n, -3n, 0n, 1000n] },
  { cat: ["c0", "c2"], x: [7n, -1000n] },
];

let he: HeContext;
let ctx: FaContext;
beforeAll(async () => {
  he = await createHeContext(faHeOptions(resolveFaParams(params("setup"))));
  ctx = { he: bfvScheme(he) };
});
afterAll(() => he?.dispose());

/** Through the codec, as a transport would. */
const wire = <M extends ProtocolMessage>(m: M): M => decodeMessage(encodeMessage(m)) as M;

async function setup(job: string, p: Partial<FederatedAggregateParams> = {}) {
  const ps = params(job, p);
  const boxes = DATA.map(() => faBoxKeyPair());
  const peers = boxes.map((b) => b.publicKey);
  const buyer = await faBuyer.start(ps, ctx);
  const exchange = await faExchange.start(ps, {});
  const providers = await Promise.all(DATA.map((raw, i) => providerStart(ps, { index: i, table: table(raw, "int"), boxKeyPair: boxes[i] as { publicKey: Uint8Array; secretKey: Uint8Array }, peers })));
  const keyMsg = wire(buyer.messages[0]?.message as AggregateKey);
  const ex1 = await exchangeReceive(exchange.state, keyMsg, ctx);
  const relayed = ex1.messages.map((a) => wire(a.message as AggregateKey));
  const masked = await Promise.all(providers.map(async (p, i) => wire((await faProvider.receive(p.state, "exchange", relayed[i] as AggregateKey, ctx)).messages[0]?.message as AggregateCiphertext)));
  return { ps, buyer, exchange: ex1, providers, keyMsg, masked };
}

describe("federated-aggregate: what the key holder sees", () => {
  it("the buyer receives exactly one ciphertext, the re-randomised aggregate of all providers", async () => {
    const toBuyer: ProtocolMessage[] = [];
    const toExchange: ProtocolMessage[] = [];
    const raws = [DATA[0] as Raw, DATA[1] as Raw, DATA[0] as Raw];
    await runFederatedAggregate({
      providers: raws.map((raw) => ({ table: table(raw, "int") })),
      aggregates: FULL,
      groupBy: { column: "cat", categories: ["c0", "c1", "c2", "c5"] },
      minGroupSize: 1,
      maxAbsValue: 1000,
      maxRowsPerProvider: 10,
      tap: (from, to, frame) => {
        if (to === "buyer") toBuyer.push(decodeMessage(frame));
        if (to === "exchange" && from.startsWith("provider-")) toExchange.push(decodeMessage(frame));
      },
    });
    expect(toBuyer.length).toBe(1);
    const m = toBuyer[0] as AggregateCiphertext;
    expect(m.kind).toBe("aggregateCiphertext");
    expect(m.header.step).toBe(3);
    expect(m.contributors).toBe(3);
    expect(toExchange.length).toBe(3);
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    for (const c of toExchange as AggregateCiphertext[]) expect(hex(c.ciphertext)).not.toBe(hex(m.ciphertext));
    const ps = resolveFaParams({ job: "x", providers: 3, minProviders: 2, minGroupSize: 1, aggregates: FULL, groupBy: { column: "cat", categories: ["c0", "c1", "c2", "c5"] }, maxAbsValue: 1000, maxRowsPerProvider: 10 });
    const h3 = await createHeContext(faHeOptions(ps));
    try {
      expect(h3.inspect(m.ciphertext).rows).toBe(3);
    } finally {
      h3.dispose();
    }
  });

  it("the buyer refuses a single provider's ciphertext posing as the sum", async () => {
    const s = await setup("fa-single");
    const forged: AggregateCiphertext = { ...(s.masked[0] as AggregateCiphertext), header: { ...(s.masked[0] as AggregateCiphertext).header, step: 3 }, party: 0, contributors: 2 };
    await expect(faBuyer.receive(s.buyer.state, "exchange", wire(forged), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    const claimed: AggregateCiphertext = { ...forged, contributors: 1 };
    await expect(faBuyer.receive(s.buyer.state, "exchange", wire(claimed), ctx)).rejects.toBeInstanceOf(ProtocolError);
    expect(s.buyer.state.done).toBe(false);
  });

  it("one provider's masked vector decrypted alone is uniform and unrelated to its values; the masks cancel in the sum", async () => {
    const a = await setup("fa-mask-1");
    const b = await setup("fa-mask-2");
    const plain = faLocalVector(a.providers[0]?.state as never, table(DATA[0] as Raw, "int")).map((v) => BigInt(v));
    const dA = he.decryptSums(a.masked[0]?.ciphertext as Uint8Array, a.buyer.state.secretKey);
    const dB = he.decryptSums(b.masked[0]?.ciphertext as Uint8Array, b.buyer.state.secretKey);
    expect(dA.length).toBe(plain.length);
    // Every slot differs from the plaintext (most of which are 0) and from the second run on the same data.
    let sameAsPlain = 0;
    let sameAcrossRuns = 0;
    for (let i = 0; i < plain.length; i++) {
      if (dA[i] === plain[i]) sameAsPlain++;
      if (dA[i] === dB[i]) sameAcrossRuns++;
    }
    expect(sameAsPlain).toBe(0);
    expect(sameAcrossRuns).toBe(0);
    // Uniform modulo the first CRT prime: mean of r/p near 1/2, and 16 buckets near-flat (chi-square, 15 dof, p ≈ 1e-6 bound).
    const p = BigInt(he.params.plainModuli[0] as number);
    const buckets = new Array<number>(16).fill(0);
    let mean = 0;
    for (const v of dA) {
      const r = Number(((v % p) + p) % p) / Number(p);
      mean += r;
      buckets[Math.floor(r * 16)]! += 1;
    }
    mean /= dA.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
    const e = dA.length / 16;
    const chi = buckets.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    expect(chi).toBeLessThan(50);
    // The two masked vectors add up to the true totals.
    const ex = await exchangeReceive(a.exchange.state, a.masked[0] as AggregateCiphertext, ctx);
    const ex2 = await exchangeReceive(ex.state, a.masked[1] as AggregateCiphertext, ctx);
    const sum = wire(ex2.messages[0]?.message as AggregateCiphertext);
    const done = await faBuyer.receive(a.buyer.state, "exchange", sum, ctx);
    const res = faBuyerResult(done.state);
    expect(res.cells[0]?.count).toBe(3n);
    expect(res.cells[0]?.columns["x"]?.sum).toBe(14n);
    expect(res.cells[2]?.columns["x"]?.sum).toBe(-1000n);
    expect(res.cells[5]?.columns["x"]?.sum).toBe(1000n);
    expect(res.cells[7]?.suppressed).toBe(true); // count 0 < k = 1
  });
});

describe("federated-aggregate: hostile input refused with typed errors", () => {
  it("malformed, truncated and oversized ciphertexts; wrong parameters; wrong key set; replays", async () => {
    const s = await setup("fa-hostile");
    const good = s.masked[0] as AggregateCiphertext;
    const withCt = (ciphertext: Uint8Array, extra: Partial<AggregateCiphertext> = {}): AggregateCiphertext => ({ ...good, ciphertext, ...extra });
    const ex = s.exchange.state;
    await expect(exchangeReceive(ex, withCt(new Uint8Array(200).fill(7)), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    await expect(exchangeReceive(ex, withCt(good.ciphertext.subarray(0, good.ciphertext.length - 10)), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    const big = new Uint8Array(good.ciphertext.length + 4 * 1024 * 1024);
    big.set(good.ciphertext);
    await expect(exchangeReceive(ex, withCt(big), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    // SEAL's own header corrupted (its magic, right after the 56-byte frame header and the 4-byte length): refused by SEAL's load.
    const flipped = Uint8Array.from(good.ciphertext);
    flipped[60] = (flipped[60] as number) ^ 0xff;
    await expect(exchangeReceive(ex, withCt(flipped), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    expect(() => decodeMessage(new Uint8Array(9 * 1024 * 1024))).toThrow(MessageTooLargeError);

    // Another job's parameters (a different value range): ParameterMismatchError.
    const other = await setup("fa-other", { maxAbsValue: 10 ** 6 });
    await expect(exchangeReceive(ex, withCt((other.masked[0] as AggregateCiphertext).ciphertext), ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    // Same parameters, another buyer's key set: KeyMismatchError.
    const twin = await setup("fa-hostile");
    await expect(exchangeReceive(ex, withCt((twin.masked[0] as AggregateCiphertext).ciphertext), ctx)).rejects.toBeInstanceOf(KeyMismatchError);
    // Index out of range, a forged contributor count, another job.
    await expect(exchangeReceive(ex, withCt(good.ciphertext, { party: 9 }), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(exchangeReceive(ex, withCt(good.ciphertext, { contributors: 2 }), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(exchangeReceive(ex, { ...good, header: { ...good.header, job: "another" } }, ctx)).rejects.toBeInstanceOf(WrongJobError);

    // State unchanged by the refusals: the good one is accepted, then its replay refused.
    const ok = await exchangeReceive(ex, good, ctx);
    expect(ok.messages.length).toBe(0);
    await expect(exchangeReceive(ok.state, good, ctx)).rejects.toBeInstanceOf(WrongStepError);

    // Step 1 with options other than the job's, a fingerprint of other parameters, a garbage key.
    const p0 = s.providers[0]?.state;
    if (!p0) throw new Error("no provider");
    await expect(faProvider.receive(p0, "exchange", { ...s.keyMsg, maxAbsValue: "99" }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProvider.receive(p0, "exchange", { ...s.keyMsg, fingerprint: "0".repeat(32) }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProvider.receive(p0, "exchange", { ...s.keyMsg, publicKey: new Uint8Array(100).fill(1) }, ctx)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(faProvider.receive(p0, "exchange", { ...s.keyMsg, publicKey: (other.keyMsg as AggregateKey).publicKey }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProvider.receive(p0, "exchange", { ...s.keyMsg, header: { ...s.keyMsg.header, step: 2 } }, ctx)).rejects.toBeInstanceOf(WrongStepError);
  });

  it("each role takes a step only from the role that sends it (WrongSenderError, UMBRA_WRONG_SENDER), its state unchanged", async () => {
    const s = await setup("fa-senders");
    const v0 = s.masked[0] as AggregateCiphertext;
    const v1 = s.masked[1] as AggregateCiphertext;
    // The key set only from the buyer.
    const fresh = (await faExchange.start(s.ps, {})).state;
    await expect(faExchange.receive(fresh, providerRole(0), s.keyMsg, ctx)).rejects.toBeInstanceOf(WrongSenderError);
    await expect(faExchange.receive(fresh, providerRole(0), s.keyMsg, ctx)).rejects.toMatchObject({ code: "UMBRA_WRONG_SENDER" });
    // Provider i's vector only from "provider-<i>": not from another provider, nor from the buyer.
    await expect(faExchange.receive(s.exchange.state, providerRole(1), v0, ctx)).rejects.toBeInstanceOf(WrongSenderError);
    await expect(faExchange.receive(s.exchange.state, "buyer", v0, ctx)).rejects.toBeInstanceOf(WrongSenderError);
    // A provider hears only from the exchange.
    const p1 = s.providers[1]?.state;
    if (!p1) throw new Error("no provider");
    await expect(faProvider.receive(p1, "buyer", s.keyMsg, ctx)).rejects.toBeInstanceOf(WrongSenderError);
    // The sum only from the exchange.
    const ex = await faExchange.receive(s.exchange.state, providerRole(0), v0, ctx);
    const ex2 = await faExchange.receive(ex.state, providerRole(1), v1, ctx);
    const sum = wire(ex2.messages[0]?.message as AggregateCiphertext);
    await expect(faBuyer.receive(s.buyer.state, providerRole(0), sum, ctx)).rejects.toBeInstanceOf(WrongSenderError);
    // The states passed in are unchanged: the right senders are then accepted.
    expect((await faExchange.receive(fresh, "buyer", s.keyMsg, ctx)).messages.length).toBe(2);
    expect((await faBuyer.receive(s.buyer.state, "exchange", sum, ctx)).state.done).toBe(true);
  });

  it("job parameters are checked: too few providers, a value out of range, too many rows", async () => {
    expect(() => resolveFaParams(params("j", { minProviders: 3 }))).toThrow(ProtocolError);
    expect(() => resolveFaParams(params("j", { providers: 1 }))).toThrow(InvalidArgumentError);
    expect(() => resolveFaParams(params("j", { histogram: { column: "x", edges: [1, 1] } }))).toThrow(InvalidArgumentError);
    await expect(
      runFederatedAggregate({ providers: [{ table: table({ cat: [null], x: [1001n] }, "int") }, { table: table({ cat: [null], x: [1n] }, "int") }], aggregates: FULL, minGroupSize: 1, maxAbsValue: 1000 }),
    ).rejects.toMatchObject({ code: "UMBRA_VALUE_OUT_OF_RANGE" });
    await expect(
      runFederatedAggregate({ providers: [{ table: table({ cat: [null, null], x: [1n, 2n] }, "int") }, { table: table({ cat: [null], x: [1n] }, "int") }], aggregates: FULL, minGroupSize: 1, maxAbsValue: 1000, maxRowsPerProvider: 1 }),
    ).rejects.toMatchObject({ code: "UMBRA_BOUND_EXCEEDED" });
  });
});

describe("federated-aggregate: a provider that drops out", () => {
  it("fails the job with nothing released to the buyer", async () => {
    const toBuyer: Uint8Array[] = [];
    const run = runFederatedAggregate({
      providers: DATA.concat([DATA[0] as Raw]).map((raw) => ({ table: table(raw, "int") })),
      aggregates: FULL,
      minGroupSize: 1,
      maxAbsValue: 1000,
      dropOut: [1],
      tap: (_from, to, frame) => {
        if (to === "buyer") toBuyer.push(frame);
      },
    });
    await expect(run).rejects.toBeInstanceOf(MissingProviderError);
    await expect(run).rejects.toMatchObject({ missing: [1] });
    expect(toBuyer.length).toBe(0);
  });
});
