/**
 * Column work off a node's main thread (security finding 14): the pool's
 * column tasks (distinct keys, shuffles, COUNT(*) per key and group, int64
 * per-key statistics) give on a worker what the same functions give on the
 * calling thread, each checked against a plain JS oracle, typed errors
 * crossing back; and the sliced forms (permuteFixedAsync, ElementIndex
 * buildAsync / matchAllAsync, keysFromTableAsync) give what their
 * synchronous forms give, over more elements than one slice holds.
 */
import { Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { keysFromTable, keysFromTableAsync, pairCounts, type KeyColumn } from "../engine/columns/index.js";
import { BoundExceededError, CryptoPool } from "../engine/index.js";
import { distinctKeys, ElementIndex, permuteFixed, permuteFixedAsync } from "../engine/psi/index.js";
import { SLICE_ITEMS } from "../engine/slices.js";
import { randomBytesFrom, randomKeys, rng } from "./helpers/data.js";

/** Every task on a worker, however small. */
const pool = new CryptoPool({ threads: 2, inlineBelow: 0 });
afterAll(() => pool.close());

function keyColumn(values: readonly (string | null)[]): KeyColumn {
  return keysFromTable(new Table({ k: vectorFromArray([...values], new Utf8()) }), ["k"]);
}

/** Per key, its [group, rows] pairs ascending by group, from the rows one by one. */
function pairOracle(keyOf: Int32Array, groupOf: Uint32Array, keys: number): [number, number][][] {
  const out: Map<number, number>[] = Array.from({ length: keys }, () => new Map());
  keyOf.forEach((k, i) => {
    if (k < 0) return;
    const m = out[k] as Map<number, number>;
    m.set(groupOf[i] as number, (m.get(groupOf[i] as number) ?? 0) + 1);
  });
  return out.map((m) => [...m].sort((a, b) => a[0] - b[0]));
}

/** pairCounts' compressed rows as the oracle's lists. */
function pairsOf(p: { offsets: Uint32Array; groups: Uint32Array; rows: Uint32Array }): [number, number][][] {
  return Array.from({ length: p.offsets.length - 1 }, (_, k) => {
    const out: [number, number][] = [];
    for (let o = p.offsets[k] as number; o < (p.offsets[k + 1] as number); o++) out.push([p.groups[o] as number, p.rows[o] as number]);
    return out;
  });
}

/** Rows mostly spread over 500 keys (a few rows each), one key with 200 rows, some left out; 7 groups. */
function pairRows(r: () => number): { keyOf: Int32Array; groupOf: Uint32Array; keys: number; groups: number } {
  const n = 3000;
  const keyOf = Int32Array.from({ length: n }, (_, i) => (i < 200 ? 499 : r() < 0.05 ? -1 : Math.floor(r() * 499)));
  const groupOf = Uint32Array.from({ length: n }, () => Math.floor(r() * 7));
  return { keyOf, groupOf, keys: 500, groups: 7 };
}

describe("column work on the pool's workers", () => {
  it("distinctKeys on a worker equals distinctKeys here", async () => {
    const keys = keyColumn(randomKeys(rng(1), 5000, 800));
    const here = distinctKeys(keys);
    const there = await pool.distinctKeys(keys);
    expect({ data: there.distinct.data, offsets: there.distinct.offsets, rows: there.rowToDistinct, count: there.count }).toEqual({
      data: here.distinct.data,
      offsets: here.distinct.offsets,
      rows: here.rowToDistinct,
      count: here.count,
    });
  });

  it("shuffledOrder on a worker is a permutation", async () => {
    const order = await pool.shuffledOrder(10_000);
    expect(Array.from(order).sort((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
  });

  it("pairCounts gives COUNT(*) per key and group, groups ascending", () => {
    const x = pairRows(rng(2));
    expect(pairsOf(pairCounts(x.keyOf, x.groupOf, x.keys, x.groups))).toEqual(pairOracle(x.keyOf, x.groupOf, x.keys));
  });

  it("pairCounts on a worker equals pairCounts here", async () => {
    const x = pairRows(rng(3));
    expect(pairsOf(await pool.pairCounts(x.keyOf, x.groupOf, x.keys, x.groups))).toEqual(pairsOf(pairCounts(x.keyOf, x.groupOf, x.keys, x.groups)));
  });

  it("int64GroupStats on a worker gives COUNT(*), and per key COUNT, SUM and SUM of squares of the valid values", async () => {
    const r = rng(4);
    const n = 4000;
    const keys = 300;
    const keyOf = Int32Array.from({ length: n }, () => (r() < 0.05 ? -1 : Math.floor(r() * keys)));
    const values = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 2_000_001) - 1_000_000) * 100n);
    const valid = Uint8Array.from({ length: n }, () => (r() < 0.1 ? 0 : 1));
    const want = Array.from({ length: keys + 2 }, () => ({ rows: 0, n: 0n, s: 0n, q: 0n }));
    keyOf.forEach((k, i) => {
      if (k < 0) return;
      const w = want[k] as { rows: number; n: bigint; s: bigint; q: bigint };
      w.rows++;
      if (valid[i] === 0) return;
      const v = values[i] as bigint;
      w.n += 1n;
      w.s += v;
      w.q += v * v;
    });
    const got = await pool.int64GroupStats(keyOf, keys, [{ values, valid, squares: true }], keys + 2);
    const c = got.columns[0] as { n: BigInt64Array; s: BigInt64Array; q: BigInt64Array };
    expect(want.map((_, k) => ({ rows: got.rows[k], n: c.n[k], s: c.s[k], q: c.q[k] }))).toEqual(want);
  });

  it("a per-key sum past the 64-bit range is refused on the worker with BoundExceededError", async () => {
    const values = BigInt64Array.of(2n ** 62n, 2n ** 62n);
    await expect(pool.int64GroupStats(Int32Array.of(0, 0), 1, [{ values, valid: Uint8Array.of(1, 1), squares: false }])).rejects.toBeInstanceOf(BoundExceededError);
  });
});

describe("sliced work on the calling thread", () => {
  const n = SLICE_ITEMS + 4321;

  it("permuteFixedAsync gives permuteFixed's bytes", async () => {
    const r = rng(5);
    const elements = randomBytesFrom(r, n * 32);
    const order = Uint32Array.from({ length: n }, () => Math.floor(r() * n));
    expect(Buffer.from(await permuteFixedAsync(elements, 32, order)).equals(Buffer.from(permuteFixed(elements, 32, order)))).toBe(true);
  });

  it("ElementIndex.buildAsync and matchAllAsync find what build and matchAll find", async () => {
    const r = rng(6);
    const indexed = randomBytesFrom(r, n * 32);
    // Half of the probes are indexed elements, half random.
    const probe = new Uint8Array(n * 32);
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) probe.set(indexed.subarray(((i * 7) % n) * 32, ((i * 7) % n) * 32 + 32), i * 32);
      else probe.set(randomBytesFrom(r, 32), i * 32);
    }
    const sliced = await (await ElementIndex.buildAsync(indexed, 32)).matchAllAsync(probe);
    expect(Buffer.from(sliced.buffer).equals(Buffer.from(ElementIndex.build(indexed, 32).matchAll(probe).buffer))).toBe(true);
  });

  it("keysFromTableAsync gives keysFromTable's keys over several batches", async () => {
    const values = randomKeys(rng(7), 3000, 500);
    const batches = [values.slice(0, 1000), values.slice(1000, 2500), values.slice(2500)].map((v) => new Table({ k: vectorFromArray(v, new Utf8()) }).batches[0]!);
    const table = new Table(batches);
    expect(await keysFromTableAsync(table, ["k"])).toEqual(keysFromTable(table, ["k"]));
  });
});
