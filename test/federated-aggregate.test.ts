/**
 * federated-aggregate: exact results against a plaintext computation on
 * random data; what the key holder receives; one provider's masked vector
 * decrypted alone; hostile input refused with typed errors; a missing
 * provider fails the job with nothing released.
 */
import { Float64, Int64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../engine/errors.js";
import { createHeContext, InvalidCiphertextError, InvalidKeyError, KeyMismatchError, ParameterMismatchError, type HeContext } from "../engine/he/index.js";
import {
  decodeMessage,
  encodeMessage,
  faBoxKeyPair,
  faBuyerReceive,
  faBuyerResult,
  faBuyerStart,
  faExchangeReceive,
  faExchangeStart,
  faHeOptions,
  faLocalVector,
  faProviderReceive,
  faProviderStart,
  InvalidMessageError,
  MessageTooLargeError,
  MissingProviderError,
  ProtocolError,
  resolveFaParams,
  runFederatedAggregate,
  WrongJobError,
  WrongStepError,
  type AggregateCiphertext,
  type AggregateKey,
  type AggregateSpec,
  type FaContext,
  type FederatedAggregateParams,
  type ProtocolMessage,
} from "../protocols/index.js";
import { rng } from "./helpers/data.js";

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

function oracle(raws: readonly Raw[], categories: readonly string[] | null, scale: number, edges: readonly number[] = []): Oracle[] {
  const cells = categories ? categories.length : 1;
  const out: Oracle[] = Array.from({ length: cells }, () => ({ count: 0n, sum: 0n, sumsq: 0n, hist: new Array<bigint>(Math.max(0, edges.length - 1)).fill(0n) }));
  const e = edges.map((x) => scaled(x, scale));
  for (const raw of raws) {
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
  }
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
      minCount: 1,
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
      maxAbsValue: 1e9,
      scale: 2,
      maxRowsPerProvider: 500,
      minProviders: 3,
    });
    checkAgainstOracle(run.result, oracle(raws, null, 2), 2, 1);
    expect(run.table.schema.fields.map((f) => f.name)).toEqual(["suppressed", "count", "sum_x", "avg_x", "var_x", "stddev_x"]);
  });

  it("suppresses exactly the cells below k (present with nulls, suppressed = true)", async () => {
    const k = 5;
    // a: 2 + 2 = 4 = k − 1 (suppressed); b: 3 + 2 = 5 = k (released); c: 0 (suppressed)
    const p0: Raw = { cat: ["a", "a", "b", "b", "b"], x: [1n, -2n, 3n, 0n, 7n] };
    const p1: Raw = { cat: ["a", "b", "a", "b"], x: [5n, 6n, -9n, 10n] };
    const cats = ["a", "b", "c"];
    const run = await runFederatedAggregate({
      providers: [{ table: table(p0, "int") }, { table: table(p1, "int") }],
      aggregates: FULL,
      groupBy: { column: "cat", categories: cats },
      histogram: { column: "x", edges: [-10, 0, 10] },
      minCount: k,
      maxAbsValue: 100,
    });
    checkAgainstOracle(run.result, oracle([p0, p1], cats, 0, [-10, 0, 10]), 0, k);
    const t = run.table;
    expect(t.numRows).toBe(3);
    expect([0, 1, 2].map((i) => t.getChild("suppressed")?.get(i))).toEqual([true, false, true]);
    expect(t.getChild("count")?.get(0)).toBeNull();
    expect(t.getChild("sum_x")?.get(0)).toBeNull();
    expect(t.getChild("count")?.get(1)).toBe(5n);
    expect(t.getChild("sum_x")?.get(1)).toBe(26);
    // bins of the released cell: [-10,0) holds 0, [0,10] holds 5 → the first is below k, nulled
    expect(t.getChild("hist_x_0")?.get(1)).toBeNull();
    expect(t.getChild("hist_x_1")?.get(1)).toBe(5n);
  });
});

// ------------------------------------------------------------------ state machines, by hand

const CATS = Array.from({ length: 200 }, (_, i) => `c${i}`);

function params(job: string, overrides: Partial<FederatedAggregateParams> = {}): FederatedAggregateParams {
  return {
    job,
    providers: 2,
    minProviders: 2,
    minCount: 1,
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
  ctx = { he };
});
afterAll(() => he?.dispose());

/** Through the codec, as a transport would. */
const wire = <M extends ProtocolMessage>(m: M): M => decodeMessage(encodeMessage(m)) as M;

async function setup(job: string, p: Partial<FederatedAggregateParams> = {}) {
  const ps = params(job, p);
  const boxes = DATA.map(() => faBoxKeyPair());
  const peers = boxes.map((b) => b.publicKey);
  const buyer = await faBuyerStart(ps, ctx);
  const exchange = await faExchangeStart(ps);
  const providers = await Promise.all(DATA.map((raw, i) => faProviderStart(ps, { index: i, table: table(raw, "int"), boxKeyPair: boxes[i] as { publicKey: Uint8Array; secretKey: Uint8Array }, peers })));
  const keyMsg = wire(buyer.messages[0]?.message as AggregateKey);
  const ex1 = await faExchangeReceive(exchange.state, keyMsg, ctx);
  const relayed = ex1.messages.map((a) => wire(a.message as AggregateKey));
  const masked = await Promise.all(providers.map(async (p, i) => wire((await faProviderReceive(p.state, relayed[i] as AggregateKey, ctx)).messages[0]?.message as AggregateCiphertext)));
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
    const ps = resolveFaParams({ job: "x", providers: 3, minProviders: 2, minCount: 1, aggregates: FULL, groupBy: { column: "cat", categories: ["c0", "c1", "c2", "c5"] }, maxAbsValue: 1000, maxRowsPerProvider: 10 });
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
    await expect(faBuyerReceive(s.buyer.state, wire(forged), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    const claimed: AggregateCiphertext = { ...forged, contributors: 1 };
    await expect(faBuyerReceive(s.buyer.state, wire(claimed), ctx)).rejects.toBeInstanceOf(ProtocolError);
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
    const ex = await faExchangeReceive(a.exchange.state, a.masked[0] as AggregateCiphertext, ctx);
    const ex2 = await faExchangeReceive(ex.state, a.masked[1] as AggregateCiphertext, ctx);
    const sum = wire(ex2.messages[0]?.message as AggregateCiphertext);
    const done = await faBuyerReceive(a.buyer.state, sum, ctx);
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
    await expect(faExchangeReceive(ex, withCt(new Uint8Array(200).fill(7)), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    await expect(faExchangeReceive(ex, withCt(good.ciphertext.subarray(0, good.ciphertext.length - 10)), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    const big = new Uint8Array(good.ciphertext.length + 4 * 1024 * 1024);
    big.set(good.ciphertext);
    await expect(faExchangeReceive(ex, withCt(big), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    // SEAL's own header corrupted (its magic, right after the 56-byte frame header and the 4-byte length): refused by SEAL's load.
    const flipped = Uint8Array.from(good.ciphertext);
    flipped[60] = (flipped[60] as number) ^ 0xff;
    await expect(faExchangeReceive(ex, withCt(flipped), ctx)).rejects.toBeInstanceOf(InvalidCiphertextError);
    expect(() => decodeMessage(new Uint8Array(9 * 1024 * 1024))).toThrow(MessageTooLargeError);

    // Another job's parameters (a different value range): ParameterMismatchError.
    const other = await setup("fa-other", { maxAbsValue: 10 ** 6 });
    await expect(faExchangeReceive(ex, withCt((other.masked[0] as AggregateCiphertext).ciphertext), ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    // Same parameters, another buyer's key set: KeyMismatchError.
    const twin = await setup("fa-hostile");
    await expect(faExchangeReceive(ex, withCt((twin.masked[0] as AggregateCiphertext).ciphertext), ctx)).rejects.toBeInstanceOf(KeyMismatchError);
    // Index out of range, a forged contributor count, another job.
    await expect(faExchangeReceive(ex, withCt(good.ciphertext, { party: 9 }), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(faExchangeReceive(ex, withCt(good.ciphertext, { contributors: 2 }), ctx)).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(faExchangeReceive(ex, { ...good, header: { ...good.header, job: "another" } }, ctx)).rejects.toBeInstanceOf(WrongJobError);

    // State unchanged by the refusals: the good one is accepted, then its replay refused.
    const ok = await faExchangeReceive(ex, good, ctx);
    expect(ok.messages.length).toBe(0);
    await expect(faExchangeReceive(ok.state, good, ctx)).rejects.toBeInstanceOf(WrongStepError);

    // Step 1 with options other than the job's, a fingerprint of other parameters, a garbage key.
    const p0 = s.providers[0]?.state;
    if (!p0) throw new Error("no provider");
    await expect(faProviderReceive(p0, { ...s.keyMsg, maxAbsValue: "99" }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProviderReceive(p0, { ...s.keyMsg, fingerprint: "0".repeat(32) }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProviderReceive(p0, { ...s.keyMsg, publicKey: new Uint8Array(100).fill(1) }, ctx)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(faProviderReceive(p0, { ...s.keyMsg, publicKey: (other.keyMsg as AggregateKey).publicKey }, ctx)).rejects.toBeInstanceOf(ParameterMismatchError);
    await expect(faProviderReceive(p0, { ...s.keyMsg, header: { ...s.keyMsg.header, step: 2 } }, ctx)).rejects.toBeInstanceOf(WrongStepError);
  });

  it("job parameters are checked: too few providers, a value out of range, too many rows", async () => {
    expect(() => resolveFaParams(params("j", { minProviders: 3 }))).toThrow(ProtocolError);
    expect(() => resolveFaParams(params("j", { providers: 1 }))).toThrow(InvalidArgumentError);
    expect(() => resolveFaParams(params("j", { histogram: { column: "x", edges: [1, 1] } }))).toThrow(InvalidArgumentError);
    await expect(
      runFederatedAggregate({ providers: [{ table: table({ cat: [null], x: [1001n] }, "int") }, { table: table({ cat: [null], x: [1n] }, "int") }], aggregates: FULL, maxAbsValue: 1000 }),
    ).rejects.toMatchObject({ code: "UMBRA_VALUE_OUT_OF_RANGE" });
    await expect(
      runFederatedAggregate({ providers: [{ table: table({ cat: [null, null], x: [1n, 2n] }, "int") }, { table: table({ cat: [null], x: [1n] }, "int") }], aggregates: FULL, maxAbsValue: 1000, maxRowsPerProvider: 1 }),
    ).rejects.toMatchObject({ code: "UMBRA_BOUND_EXCEEDED" });
  });
});

describe("federated-aggregate: a provider that drops out", () => {
  it("fails the job with nothing released to the buyer", async () => {
    const toBuyer: Uint8Array[] = [];
    const run = runFederatedAggregate({
      providers: DATA.concat([DATA[0] as Raw]).map((raw) => ({ table: table(raw, "int") })),
      aggregates: FULL,
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
