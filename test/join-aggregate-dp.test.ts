/**
 * join-aggregate with differential privacy (protocols/join-aggregate/dp.ts):
 * the plan meets ρ by KLS21's bound with two parties; the noisy result
 * minus a plaintext oracle (a JS join applying the same rows-per-key cap
 * and clipping) is exactly the provider's plus the exchange's shares
 * (replayed from their seeds), within the stated bound, and the same on
 * other data (noise independent of the data); every group is released and
 * k read from the noisy count; hostile noise chunks, weights above the cap
 * and a clear count in a dp result are refused with the state unchanged;
 * `umbra join-aggregate --epsilon` takes the largest ρ within ε at δ = 1e-6.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { CryptoPool, keysFromTable } from "../engine/index.js";
import { distributedGaussianRho, epsilonFromRho, noiseHalfWidth, seededUniformSource } from "../engine/dp/index.js";
import { joinAggregateCommand } from "../node/commands/join-aggregate.js";
import { rhoForEpsilon } from "../node/epsilon.js";
import { createHeContext, KeyMismatchError } from "../engine/he/index.js";
import { InvalidArgumentError } from "../engine/errors.js";
import {
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  jaBuyer,
  jaDpPlan,
  jaExchange,
  jaExchangeNoise,
  jaHeOptions,
  jaProvider,
  jaProviderNoise,
  JA_NOISE_SLOTS,
  resolveJaParams,
  runJoinAggregate,
  type AggregateKey,
  type AggregateSpec,
  type JaContext,
  type JaExchangeState,
  type JoinAggregateParams,
  type JoinCiphertext,
  type JoinResult,
  type JoinWeights,
  type ProtocolMessage,
} from "../protocols/index.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
afterAll(async () => {
  await pool.close();
});

const AGGS: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "var", column: "v" }];
const V = 100;
const CAP = 2;
const RHO = "1/2";

interface Sides {
  buyer: Table;
  provider: Table;
}

/** Buyer keys with duplicates (up to 4 rows per key, beyond the cap), provider values partly beyond ±V and some null. */
function sides(seed: number, groups: readonly string[]): Sides {
  let x = seed;
  const r = () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x / 2 ** 31);
  const bk: string[] = [];
  const bg: string[] = [];
  for (let i = 0; i < 60; i++) {
    const dup = 1 + Math.floor(r() * 4);
    for (let d = 0; d < dup; d++) {
      bk.push(`k${i}`);
      bg.push(groups[i % groups.length] as string);
    }
  }
  const pk: string[] = [];
  const pv: (number | null)[] = [];
  for (let i = 0; i < 90; i++) {
    const rows = 1 + Math.floor(r() * 3);
    for (let d = 0; d < rows; d++) {
      pk.push(`k${Math.floor(r() * 80)}`);
      pv.push(r() < 0.1 ? null : Math.round((r() - 0.5) * 3 * V)); // about a third beyond ±V
    }
  }
  return {
    buyer: new Table({ k: vectorFromArray(bk, new Utf8()), g: vectorFromArray(bg, new Utf8()) }),
    provider: new Table({ k: vectorFromArray(pk, new Utf8()), v: vectorFromArray(pv, new Float64()) }),
  };
}

interface Exact {
  c: bigint;
  n: bigint;
  s: bigint;
  q: bigint;
}

/** The plaintext oracle: the join with the buyer's rows per key capped at CAP and values clipped to ±V, per buyer group. */
function oracle(d: Sides, cap = CAP): Map<string, Exact> {
  const weight = new Map<string, number>();
  const group = new Map<string, string>();
  for (let i = 0; i < d.buyer.numRows; i++) {
    const k = d.buyer.getChild("k")?.get(i) as string;
    weight.set(k, Math.min(cap, (weight.get(k) ?? 0) + 1));
    group.set(k, d.buyer.getChild("g")?.get(i) as string);
  }
  const out = new Map<string, Exact>();
  for (const g of new Set(group.values())) out.set(g, { c: 0n, n: 0n, s: 0n, q: 0n });
  for (let i = 0; i < d.provider.numRows; i++) {
    const k = d.provider.getChild("k")?.get(i) as string;
    const w = weight.get(k);
    if (w === undefined) continue;
    const e = out.get(group.get(k) as string) as Exact;
    const W = BigInt(w);
    e.c += W;
    const v = d.provider.getChild("v")?.get(i) as number | null;
    if (v === null) continue;
    const c = BigInt(Math.max(-V, Math.min(V, v)));
    e.n += W;
    e.s += W * c;
    e.q += W * c * c;
  }
  return out;
}

function run(d: Sides, tag: string, o: { grouped?: boolean; k?: number; tap?: (m: ProtocolMessage) => void } = {}) {
  return runJoinAggregate({
    buyer: { table: d.buyer, keys: ["k"], ...(o.grouped === false ? {} : { groupBy: "g" }) },
    provider: { table: d.provider, keys: ["k"] },
    aggregates: AGGS,
    maxAbsValue: V,
    minGroupSize: o.k ?? 1,
    pool,
    dp: { rho: RHO, maxRowsPerKey: CAP },
    testNoiseSources: { provider: seededUniformSource(`${tag}/provider`), exchange: seededUniformSource(`${tag}/exchange`) },
    ...(o.tap ? { tap: (_from: string, _to: string, frame: Uint8Array) => o.tap?.(decodeMessage(frame)) } : {}),
  });
}

const plan = () => resolveJaParams({ job: "plan", aggregates: AGGS, grouped: true, maxAbsValue: V, dp: { rho: RHO, maxRowsPerKey: CAP } }).dp!;

/** The noise the seeded parties add to the block of group code g, per statistic column (c, n, s, q): the provider's slot g plus the exchange's draw g. */
function replay(tag: string, groups: number): bigint[][] {
  const dp = plan();
  const p = jaProviderNoise(dp, seededUniformSource(`${tag}/provider`));
  const rngE = seededUniformSource(`${tag}/exchange`);
  const e = dp.statistics.map((_, k) => jaExchangeNoise(dp, k, groups, rngE));
  return Array.from({ length: groups }, (_, g) => dp.statistics.map((_, k) => (p[k]?.[g] as bigint) + (e[k]?.[g] as bigint)));
}

/** Per released group (by label), its noisy totals minus the oracle's: (c, n, s, q). */
function differences(r: Awaited<ReturnType<typeof run>>, exact: Map<string, Exact>): Map<string, bigint[]> {
  const out = new Map<string, bigint[]>();
  for (const g of r.result.groups) {
    const e = exact.get(g.label === "" ? "all" : (g.label as string)) as Exact; // ungrouped: one group labelled ""
    const col = g.columns["v"]!;
    const sq = g.noise!.columns["v"]!.sumsq!;
    out.set(g.label as string, [g.count - e.c, col.n - e.n, (col.sum as bigint) - e.s, sq.low + sq.halfWidth - e.q]);
  }
  return out;
}

describe("the join-aggregate dp plan", () => {
  it("splits ρ over count, n, sum and sum of squares with Δ = cap, cap, cap·V, cap·V², each met by KLS21's bound for two parties", () => {
    const dp = plan();
    expect(dp.statistics.map((s) => [s.name, s.sensitivity, s.rho])).toEqual([
      ["count", "2", "1/8"],
      ["n(v)", "2", "1/8"],
      ["sum(v)", "200", "1/8"],
      ["sumsq(v)", "20000", "1/8"],
    ]);
    for (const s of dp.statistics) {
      const [num, den] = s.sigma2.split("/").map(BigInt) as [bigint, bigint];
      const d = Number(s.sensitivity);
      expect(distributedGaussianRho(2, num, den, { l1: d, l2: d, dimension: 1 })).toBeLessThanOrEqual(1 / 8);
    }
  });

  it("keeps the HE per-row bound at V: each share counts as ⌈B/V⌉ rows, so the plaintext primes are the job's without dp", async () => {
    const job = (o: { dp?: { rho: string }; maxJoinRows?: number } = {}) =>
      resolveJaParams({ job: "bound", aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }], grouped: true, maxAbsValue: V, ...o });
    const plain = job();
    const noisy = job({ dp: { rho: RHO } });
    const rows = Number((BigInt(noisy.dp!.noiseBound) + BigInt(V) - 1n) / BigInt(V));
    expect([noisy.he.maxAbsValue, noisy.he.maxRows]).toEqual([String(V), plain.he.maxRows + 2 * rows]);
    const [a, b] = await Promise.all([createHeContext(jaHeOptions(plain)), createHeContext(jaHeOptions(noisy))]);
    try {
      expect(b.params.plainModuli).toEqual(a.params.plainModuli);
    } finally {
      a.dispose();
      b.dispose();
    }
    // The rows the shares take must fit the HE row bound too.
    expect(() => job({ dp: { rho: RHO }, maxJoinRows: 2 ** 40 })).toThrow(/noise shares' \d+ rows \(of ±100\) must be at most 2\^40/);
  });

  it("refuses a maxRowsPerKey outside [1, 65536] and a ρ that is not a positive rational", () => {
    for (const bad of [0, 1.5, 65_537]) expect(() => jaDpPlan({ rho: RHO, maxRowsPerKey: bad }, [{ column: "", stat: "c" }], 1n)).toThrow(InvalidArgumentError);
    for (const bad of ["0", "-1", "x"]) expect(() => jaDpPlan({ rho: bad }, [{ column: "", stat: "c" }], 1n)).toThrow(InvalidArgumentError);
  });
});

describe("runJoinAggregate with dp", () => {
  it("releases the oracle's totals (cap and clipping applied) plus exactly the replayed shares of both parties, ungrouped", async () => {
    const d = sides(7, ["all"]);
    const r = await run(d, "ungrouped", { grouped: false });
    const exact = oracle(d);
    const e = exact.get("all") as Exact;
    const g = r.result.groups[0]!;
    const got = [g.count - e.c, g.columns["v"]!.n - e.n, (g.columns["v"]!.sum as bigint) - e.s, g.noise!.columns["v"]!.sumsq!.low + g.noise!.columns["v"]!.sumsq!.halfWidth - e.q];
    expect(got).toEqual(replay("ungrouped", 1)[0]);
  });

  it("adds noise (not zero) within twice the share bound, and states ρ, ε, the bounds, σ and a 95% interval per value", async () => {
    const d = sides(7, ["a", "b", "c"]);
    const r = await run(d, "meta");
    const dp = r.result.dp!;
    expect([dp.rho, dp.maxRowsPerKey, dp.clipBound, dp.parties]).toEqual(["1/2", CAP, "100", 2]);
    expect(dp.epsilonAtDelta1e6).toBeGreaterThan(0);
    const B = 2n * BigInt(plan().noiseBound);
    const diffs = [...differences(r, oracle(d)).values()].flat();
    expect(diffs.some((x) => x !== 0n)).toBe(true);
    expect(diffs.every((x) => x <= B && -x <= B)).toBe(true);
    const g = r.result.groups[0]!;
    const sumStat = dp.statistics.find((s) => s.name === "sum(v)")!;
    expect(sumStat.sigma).toBeCloseTo(Math.sqrt(Number(sumStat.variance.split("/")[0]) / Number(sumStat.variance.split("/")[1])), 9);
    const [num, den] = plan().statistics[2]!.sigma2.split("/").map(BigInt) as [bigint, bigint];
    expect(g.noise!.columns["v"]!.sum.halfWidth).toBe(noiseHalfWidth({ kind: "distributed-discrete-gaussian", parties: 2, sigma2: { num, den } }));
  });

  it("puts each released value's 95% interval in the table, after the value: NAME_low95, NAME_high95", async () => {
    const r = await run(sides(7, ["a", "b", "c"]), "meta");
    const t = r.table;
    const at = (name: string, i: number) => t.getChild(name)?.get(i) as unknown;
    const want = r.result.groups.map((g) => [g.noise!.count.low, g.noise!.count.high, Number(g.noise!.columns["v"]!.sum.low), Number(g.noise!.columns["v"]!.sum.high)]);
    const got = r.result.groups.map((_, i) => [at("count_low95", i), at("count_high95", i), at("sum_v_low95", i), at("sum_v_high95", i)]);
    expect(got).toEqual(want);
    expect(t.schema.fields.map((f) => f.name).filter((n) => n.endsWith("95"))).toEqual(AGGS.flatMap((a) => (a.fn === "count" ? ["count_low95", "count_high95"] : a.fn === "sum" || a.fn === "avg" ? [`${a.fn}_${a.column}_low95`, `${a.fn}_${a.column}_high95`] : [])));
  });

  it("puts in each group's block the shares of its code: the groups' noise is the replayed shares, group for group", async () => {
    const d = sides(11, ["a", "b", "c", "d"]);
    // 1,024 positions leave 7,168 spare slots in the block: n, s and q carry their shares there, and n COUNT(*)'s after its own: no noise block.
    const noiseBlocks: number[] = [];
    const r = await run(d, "grouped", { tap: (m) => void (m.kind === "joinCiphertext" && m.header.step === 8 && (m as JoinCiphertext).column >= 4 && noiseBlocks.push((m as JoinCiphertext).column)) });
    expect(r.result.groups.length).toBe(4);
    const got = [...differences(r, oracle(d)).values()].map((x) => x.join(",")).sort();
    const want = replay("grouped", 4).map((x) => x.join(",")).sort(); // codes are random: the same tuples, in some order
    expect([noiseBlocks, got]).toEqual([[], want]);
  });

  /**
   * The grouped run on sides(11) with `extra` more provider keys no buyer holds (value 1): the step 8 noise blocks it sent
   * (columns ≥ 4) and whether its noise is the replayed shares, tuple for tuple.
   */
  async function withExtraKeys(extra: number): Promise<{ noiseBlocks: number[]; replayed: boolean }> {
    const d = sides(11, ["a", "b", "c", "d"]);
    const pk = [...Array.from({ length: d.provider.numRows }, (_, i) => d.provider.getChild("k")?.get(i) as string), ...Array.from({ length: extra }, (_, i) => `u${i}`)];
    const pv = [...Array.from({ length: d.provider.numRows }, (_, i) => d.provider.getChild("v")?.get(i) as number | null), ...Array.from({ length: extra }, () => 1)];
    const wider = { buyer: d.buyer, provider: new Table({ k: vectorFromArray(pk, new Utf8()), v: vectorFromArray(pv, new Float64()) }) };
    const noiseBlocks: number[] = [];
    const r = await run(wider, "grouped", { tap: (m) => void (m.kind === "joinCiphertext" && m.header.step === 8 && (m as JoinCiphertext).column >= 4 && noiseBlocks.push((m as JoinCiphertext).column)) });
    const got = [...differences(r, oracle(wider)).values()].map((x) => x.join(",")).sort();
    const want = replay("grouped", 4).map((x) => x.join(",")).sort();
    return { noiseBlocks, replayed: JSON.stringify(got) === JSON.stringify(want) };
  }

  it("puts COUNT(*)'s shares alone in a block when the last block has room for one column's shares but not two: the same replayed noise", async () => {
    // 6,400 more provider keys: about 6,480 keys pad to 6,656 positions, 1,536 spare slots (≥ 1,024, < 2,048).
    expect(await withExtraKeys(6_400)).toEqual({ noiseBlocks: [4], replayed: true });
  });

  it("puts the shares in a block of their own when the provider's last block has too few spare slots: the same replayed noise", async () => {
    // 7,400 more provider keys: about 7,480 keys pad to 7,680 positions, 512 spare slots in the one block (< 1,024).
    expect(await withExtraKeys(7_400)).toEqual({ noiseBlocks: [4, 5, 6, 7], replayed: true });
  });

  it("adds the same noise to other data from the same seeds: the noise does not depend on the data", async () => {
    const one = sides(3, ["all"]);
    const other = sides(99, ["all"]);
    const a = [...differences(await run(one, "same", { grouped: false }), oracle(one)).values()][0];
    const b = [...differences(await run(other, "same", { grouped: false }), oracle(other)).values()][0];
    expect(oracle(one).get("all")).not.toEqual(oracle(other).get("all"));
    expect(a).toEqual(b);
  });

  it("releases every group from the exchange and suppresses at the buyer only those whose noisy count is below k", async () => {
    // Group "z" has one key and no provider row: without dp the exchange suppresses it; with dp its block is noise only.
    const d = sides(5, ["a", "b"]);
    const buyer = new Table({ k: vectorFromArray([...(d.buyer.getChild("k")!.toArray() as string[]), "lonely"], new Utf8()), g: vectorFromArray([...(d.buyer.getChild("g")!.toArray() as string[]), "z"], new Utf8()) });
    const exact = oracle({ buyer, provider: d.provider });
    // Codes are random, so which seeded count noise lands on which group is not; with k = 20 the outcome is the same for every
    // assignment: each of the three possible count noises is below 20, and "a" and "b" stay at or above 20 with any of them.
    const K = 20;
    const noises = replay("k", 3).map((x) => x[0] as bigint);
    const least = noises.reduce((m, x) => (x < m ? x : m));
    expect(noises.every((x) => x < BigInt(K)) && exact.get("a")!.c + least >= BigInt(K) && exact.get("b")!.c + least >= BigInt(K)).toBe(true);
    const results: JoinResult[] = [];
    const r = await runJoinAggregate({
      buyer: { table: buyer, keys: ["k"], groupBy: "g" },
      provider: { table: d.provider, keys: ["k"] },
      aggregates: AGGS,
      maxAbsValue: V,
      minGroupSize: K,
      pool,
      dp: { rho: RHO, maxRowsPerKey: CAP },
      testNoiseSources: { provider: seededUniformSource("k/provider"), exchange: seededUniformSource("k/exchange") },
      tap: (_from, _to, frame) => {
        const m = decodeMessage(frame);
        if (m.kind === "joinResult") results.push(m as JoinResult);
      },
    });
    expect([results[0]!.codes.length / 4, results[0]!.suppressed, r.result.groups.map((g) => g.label), r.result.suppressed]).toEqual([3, 0, ["a", "b"], 1]);
  });
});

// ---------------------------------------------------------------------------- hostile input

describe("a dp job's hostile messages are refused and leave the state unchanged", () => {
  const hostile: JoinAggregateParams = { job: "ja-dp-hostile", aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }], grouped: true, maxAbsValue: 1000, maxJoinRows: 1_000_000, providerPadding: "none", dp: { rho: "1", maxRowsPerKey: 2 } };
  const rt = (m: ProtocolMessage) => decodeMessage(encodeMessage(m));

  async function setup(params: JoinAggregateParams = hostile) {
    const d = sides(17, ["a", "b"]);
    const he = await createHeContext(jaHeOptions(resolveJaParams(params)));
    const ctx: JaContext = { pool, he };
    const groups = Array.from({ length: d.buyer.numRows }, (_, i) => d.buyer.getChild("g")?.get(i) as string);
    const buyer = await jaBuyer.start({ params, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx);
    const provider = await jaProvider.start({ params, keys: keysFromTable(d.provider, ["k"]), table: d.provider }, ctx);
    const toP = buyer.messages.filter((a) => a.to === "provider").map((a) => rt(a.message));
    const p1 = await jaProvider.receive(provider.state, "buyer", toP[0] as ProtocolMessage, ctx);
    const p2 = await jaProvider.receive(p1.state, "buyer", toP[1] as ProtocolMessage, ctx);
    const fromP = p2.messages.filter((a) => a.to === "exchange").map((a) => rt(a.message));
    const values = fromP.filter((m) => m.kind === "joinCiphertext") as JoinCiphertext[];
    let x: JaExchangeState = (await jaExchange.start({ params }, ctx)).state;
    x = (await jaExchange.receive(x, "buyer", buyer.messages.find((a) => a.to === "exchange")!.message, ctx)).state; // the buyer's key
    for (const m of fromP.filter((m) => m.kind !== "joinCiphertext")) x = (await jaExchange.receive(x, "provider", m, ctx)).state;
    return { he, ctx, buyer, values, x };
  }

  it("the exchange refuses a noise chunk with the wrong column, the wrong length or under another key", async () => {
    // COUNT(*) alone: no column the provider encrypts, so COUNT(*)'s shares come in a block of their own (column 1 + 0).
    const { he, ctx, buyer, values, x: x0 } = await setup({ ...hostile, aggregates: [{ fn: "count" }] });
    try {
      const data = values.slice(0, values.length - 1);
      const noise = values.slice(values.length - 1);
      expect([data.length, noise.map((c) => c.column)]).toEqual([0, [1]]);
      let x = x0;
      const first = noise[0] as JoinCiphertext;
      const before = structuredClone(x);
      // Another column number.
      await expect(jaExchange.receive(x, "provider", { ...first, column: 0 }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      // A noise chunk is one whole block (8,192 slots): a data chunk's length (74 positions and 1,024 shares) is refused, and so
      // are the 1,024 shares alone, under the buyer's key.
      expect(he.inspect(first.ciphertext).length).toBe(he.params.slotCount);
      const buyerKey = (buyer.messages.find((a) => a.to === "exchange")!.message as AggregateKey).publicKey;
      const dataLength = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(74 + JA_NOISE_SLOTS)), buyerKey, { level: "mask" });
      await expect(jaExchange.receive(x, "provider", { ...first, ciphertext: dataLength }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      const shares = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(JA_NOISE_SLOTS)), buyerKey, { level: "mask" });
      await expect(jaExchange.receive(x, "provider", { ...first, ciphertext: shares }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      // Noise under a key that is not the buyer's.
      const other = he.generateKeys({ galois: false });
      const foreign = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(he.params.slotCount)), other.publicKey, { level: "mask" });
      await expect(jaExchange.receive(x, "provider", { ...first, ciphertext: foreign }, ctx)).rejects.toBeInstanceOf(KeyMismatchError);
      expect(structuredClone(x)).toEqual(before);
      // The genuine chunk is still accepted.
      expect((await jaExchange.receive(x, "provider", first, ctx)).state.valueChunks.length).toBe(1);
    } finally {
      he.dispose();
    }
  });

  it("the provider sends no COUNT(*) column, only its noise; the exchange refuses a count column and a step 8 of the old length", async () => {
    const { he, ctx, values, x: x0 } = await setup();
    try {
      // n(v) and s(v), one chunk each: 74 positions and their shares — in n's, COUNT(*)'s shares after its own. The count is the exchange's.
      expect(values.map((c) => [c.column, c.header.chunks, he.inspect(c.ciphertext).length])).toEqual([
        [1, 2, 74 + 2 * JA_NOISE_SLOTS],
        [2, 2, 74 + 2 * JA_NOISE_SLOTS],
      ]);
      const first = values[0] as JoinCiphertext;
      const before = structuredClone(x0);
      // A data chunk for COUNT(*) (column 0), as a provider encrypting its rows per key would send first.
      const count = await jaExchange.receive(x0, "provider", { ...first, column: 0 }, ctx).catch((e: unknown) => e);
      // The same chunk in a step 8 of three chunks (a count column more).
      const longer = await jaExchange.receive(x0, "provider", { ...first, header: { ...first.header, chunks: 3 } }, ctx).catch((e: unknown) => e);
      expect([count instanceof InvalidMessageError, longer instanceof InvalidMessageError, structuredClone(x0)]).toEqual([true, true, before]);
    } finally {
      he.dispose();
    }
  });

  it("the exchange refuses a data chunk without the shares in its spare slots (the provider's 74 positions alone, or without COUNT(*)'s)", async () => {
    const { he, ctx, buyer, values, x: x0 } = await setup();
    try {
      const first = values[0] as JoinCiphertext;
      const buyerKey = (buyer.messages.find((a) => a.to === "exchange")!.message as AggregateKey).publicKey;
      const bare = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(74)), buyerKey, { level: "mask" });
      const ownOnly = he.encryptResidues(he.params.plainModuli.map(() => new Uint32Array(74 + JA_NOISE_SLOTS)), buyerKey, { level: "mask" });
      const before = structuredClone(x0);
      const err = await jaExchange.receive(x0, "provider", { ...first, ciphertext: bare }, ctx).catch((e: unknown) => e);
      const err2 = await jaExchange.receive(x0, "provider", { ...first, ciphertext: ownOnly }, ctx).catch((e: unknown) => e);
      expect([err instanceof InvalidMessageError, err2 instanceof InvalidMessageError, structuredClone(x0)]).toEqual([true, true, before]);
    } finally {
      he.dispose();
    }
  });

  it("the exchange refuses a weight above maxRowsPerKey (a buyer that did not cap its duplicates)", async () => {
    const { he, ctx, buyer } = await setup();
    try {
      const toX = buyer.messages.filter((a) => a.to === "exchange").map((a) => rt(a.message));
      let x: JaExchangeState = (await jaExchange.start({ params: hostile }, ctx)).state;
      for (const m of toX.slice(0, 2)) x = (await jaExchange.receive(x, "buyer", m, ctx)).state;
      const w = toX[2] as JoinWeights;
      const weights = new Uint32Array(w.weights.slice().buffer);
      weights[0] = 3;
      const before = structuredClone(x);
      const err = await jaExchange.receive(x, "buyer", { ...w, weights: new Uint8Array(weights.buffer) }, ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidMessageError);
      expect((err as Error).message).toMatch(/maxRowsPerKey 2/);
      expect(structuredClone(x)).toEqual(before);
    } finally {
      he.dispose();
    }
  });

  it("the buyer refuses a dp result that carries a count in the clear", async () => {
    const d = sides(19, ["a", "b"]);
    const msgs: { from: string; to: string; m: ProtocolMessage }[] = [];
    await runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: [{ fn: "count" }], maxAbsValue: 10, minGroupSize: 1, pool, job: "ja-dp-clear", dp: { rho: "1" }, tap: (from, to, f) => msgs.push({ from, to, m: decodeMessage(f) }) });
    const res = msgs.find((x) => x.m.kind === "joinResult")!.m as JoinResult;
    expect([...res.counts].every((b) => b === 0)).toBe(true); // no exact count travels
    // Replay the buyer up to the result with a forged count.
    const p: JoinAggregateParams = { job: "ja-dp-clear", aggregates: [{ fn: "count" }], grouped: true, maxAbsValue: 10, minGroupSize: 1, dp: { rho: "1" } };
    const he = await createHeContext(jaHeOptions(resolveJaParams(p)));
    try {
      const ctx: JaContext = { pool, he };
      const groups = Array.from({ length: d.buyer.numRows }, (_, i) => d.buyer.getChild("g")?.get(i) as string);
      let b = (await jaBuyer.start({ params: p, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx)).state;
      for (const x of msgs.filter((y) => y.to === "buyer" && y.from === "provider")) b = (await jaBuyer.receive(b, "provider", x.m, ctx)).state;
      const forged = new Uint8Array(res.counts);
      forged[0] = 7;
      const before = structuredClone(b);
      await expect(jaBuyer.receive(b, "exchange", { ...res, counts: forged }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      expect(structuredClone(b)).toEqual(before);
    } finally {
      he.dispose();
    }
  });
});

describe("COUNT(*) with dp: one result block for every group", () => {
  it("travels as one chunk of one block whose slot per group code holds its noisy count; the buyer refuses it as one block per group", async () => {
    const d = sides(23, ["a", "b", "c"]);
    const msgs: { from: string; to: string; m: ProtocolMessage }[] = [];
    const p: JoinAggregateParams = { job: "ja-dp-count-slots", aggregates: [{ fn: "count" }], grouped: true, maxAbsValue: 10, minGroupSize: 1, dp: { rho: "1" } };
    const r = await runJoinAggregate({ buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: [{ fn: "count" }], maxAbsValue: 10, minGroupSize: 1, pool, job: p.job, dp: { rho: "1" }, tap: (from, to, f) => msgs.push({ from, to, m: decodeMessage(f) }) });
    const values = msgs.filter((x) => x.m.kind === "joinCiphertext" && x.m.header.step === 14).map((x) => x.m as JoinCiphertext);
    const he = await createHeContext(jaHeOptions(resolveJaParams(p)));
    try {
      // Three released groups, one statistic: one chunk, one block (without the change: one block per group).
      expect(values.map((v) => ({ column: v.column, firstBlock: v.firstBlock, blocks: he.inspect(v.ciphertext).blocks }))).toEqual([{ column: 0, firstBlock: 0, blocks: 1 }]);
      expect(r.result.groups.length).toBe(3);
      // The buyer, replayed up to the result, is handed the count as three blocks (the block three times).
      const ctx: JaContext = { pool, he };
      const groups = Array.from({ length: d.buyer.numRows }, (_, i) => d.buyer.getChild("g")?.get(i) as string);
      let b = (await jaBuyer.start({ params: p, keys: keysFromTable(d.buyer, ["k"]), groups }, ctx)).state;
      for (const x of msgs.filter((y) => y.to === "buyer" && y.from === "provider")) b = (await jaBuyer.receive(b, "provider", x.m, ctx)).state;
      b = (await jaBuyer.receive(b, "exchange", msgs.find((x) => x.m.kind === "joinResult")!.m, ctx)).state;
      const one = values[0] as JoinCiphertext;
      const before = structuredClone(b);
      await expect(jaBuyer.receive(b, "exchange", { ...one, ciphertext: he.concat([one.ciphertext, one.ciphertext, one.ciphertext]) }, ctx)).rejects.toBeInstanceOf(InvalidMessageError);
      expect(structuredClone(b)).toEqual(before);
    } finally {
      he.dispose();
    }
  });
});

// ---------------------------------------------------------------------------- CLI

describe("umbra join-aggregate --rho / --epsilon", () => {
  it("runs with --epsilon 1 and states ρ, ε, the cap and each statistic's σ; --rho with --epsilon is a usage error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-ja-dp-cli-"));
    writeFileSync(join(dir, "b.csv"), "k\n" + Array.from({ length: 20 }, (_, i) => `k${i}\n`).join(""));
    writeFileSync(join(dir, "p.csv"), "k,v\n" + Array.from({ length: 20 }, (_, i) => `k${i},${i}\n`).join(""));
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: (l: string) => void lines.push(l) };
    const args = ["--buyer", join(dir, "b.csv"), "--provider", join(dir, "p.csv"), "--key", "k", "--agg", "count,sum(v)", "--max-abs-value", "100", "--min-group-size", "1", "--out", join(dir, "out.csv")];
    expect(await joinAggregateCommand([...args, "--epsilon", "1"], io)).toBe(0);
    const text = lines.join("\n");
    const r = rhoForEpsilon(1);
    expect(text).toContain(`differential privacy: ρ = ${r.num}/${r.den} zCDP (ε = ${epsilonFromRho(Number(r.num) / Number(r.den), 1e-6).toPrecision(3)} at δ = 1e-6)`);
    expect(text).toMatch(/buyer rows per key capped at 1, values clipped to ±100; noise per released value: count σ = [0-9.]+, 95% ± [0-9.]+; n\(v\) σ = [0-9.]+, 95% ± [0-9.]+; sum\(v\) σ = [0-9.]+/);
    await expect(joinAggregateCommand([...args, "--epsilon", "1", "--rho", "1/10"], io)).rejects.toThrow(/--rho and --epsilon are two ways to say the same budget/);
  });
});
