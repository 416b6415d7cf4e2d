/**
 * engine/psi building blocks (distinctKeys, shuffledOrder, permutePacked /
 * permuteFixed, ElementIndex) and engine/columns takeRows /
 * concatTablesHorizontally, each checked against a plain JS oracle
 * (Set / Map / Vector.get) on random data with duplicates and nulls.
 */
import {
  Binary,
  Bool,
  Decimal,
  DenseUnion,
  DurationMillisecond,
  Float16,
  FixedSizeList,
  IntervalDayTime,
  LargeBinary,
  LargeList,
  Map_,
  SparseUnion,
  TimeMillisecond,
  Utf8View,
  DateDay,
  DateMillisecond,
  Dictionary,
  Field,
  FixedSizeBinary,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  LargeUtf8,
  List,
  Null,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMicrosecond,
  TimestampMillisecond,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  Utf8,
  makeData,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  Vector,
} from "apache-arrow";
import { describe, expect, it } from "vitest";
import { concatTablesHorizontally, takeRows, type KeyColumn } from "../engine/columns/index.js";
import { ErrorCode, InvalidArgumentError, InvalidLengthError } from "../engine/errors.js";
import { packedAt, packedCount, type PackedBytes } from "../engine/packed.js";
import { ElementIndex, distinctKeys, permuteFixed, permutePacked, shuffledOrder } from "../engine/psi/index.js";
import { mulberry32, randomBytesFrom } from "./helpers/data.js";

// ------------------------------------------------------------- helpers

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A KeyColumn from strings (null = a null row); `lead` junk bytes before the first key test offsets[0] > 0. */
function keyColumn(values: readonly (string | null)[], lead = 0): KeyColumn {
  const parts = values.map((v) => (v === null ? new Uint8Array(0) : enc.encode(v)));
  const total = parts.reduce((s, p) => s + p.length, lead);
  const data = new Uint8Array(total).fill(0xee, 0, lead);
  const offsets = new Uint32Array(values.length + 1);
  const valid = new Uint8Array(values.length);
  let o = lead;
  offsets[0] = lead;
  parts.forEach((p, i) => {
    data.set(p, o);
    o += p.length;
    offsets[i + 1] = o;
    valid[i] = values[i] === null ? 0 : 1;
  });
  return { data, offsets, valid, length: values.length };
}

/** The oracle: distinct keys in first-seen order with a Map, and per row its index. */
function distinctOracle(values: readonly (string | null)[]): { distinct: string[]; rowToDistinct: number[] } {
  const seen = new Map<string, number>();
  const distinct: string[] = [];
  const rowToDistinct = values.map((v) => {
    if (v === null) return -1;
    let k = seen.get(v);
    if (k === undefined) {
      k = distinct.length;
      seen.set(v, k);
      distinct.push(v);
    }
    return k;
  });
  return { distinct, rowToDistinct };
}

function unpackStrings(p: PackedBytes): string[] {
  const out: string[] = [];
  for (let i = 0; i < packedCount(p); i++) out.push(dec.decode(packedAt(p, i)));
  return out;
}

function checkDistinct(values: readonly (string | null)[], lead = 0): void {
  const got = distinctKeys(keyColumn(values, lead));
  const want = distinctOracle(values);
  expect(got.count).toBe(want.distinct.length);
  expect(got.distinct.offsets[0]).toBe(0);
  expect(unpackStrings(got.distinct)).toEqual(want.distinct);
  expect(Array.from(got.rowToDistinct)).toEqual(want.rowToDistinct);
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** A copy of `bytes` at byteOffset 1 of a fresh buffer (misaligned for any word view). */
function misaligned(bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(bytes.length + 1);
  buf.set(bytes, 1);
  return buf.subarray(1);
}

// ---------------------------------------------------------- distinctKeys

describe("distinctKeys", () => {
  it("handles 0 rows, 1 row, 1 null row", () => {
    checkDistinct([]);
    checkDistinct(["only"]);
    checkDistinct([null]);
    const empty = distinctKeys(keyColumn([]));
    expect(empty.distinct.offsets.length).toBe(1);
    expect(empty.distinct.data.length).toBe(0);
  });

  it("keeps first-seen order, maps nulls to -1, treats a valid empty key as a key", () => {
    checkDistinct(["b", "a", null, "b", "", "a", "", null, "ab", "abc", "ab"]);
  });

  it("distinguishes unicode keys and byte prefixes", () => {
    checkDistinct(["é", "é", "e\u0301", "数据", "数据可用不可见", "🙂", "🙂🙂", "数", "e", "🙂"]);
  });

  it("reads keys from offsets that do not start at 0", () => {
    checkDistinct(["x", null, "y", "x", "zz", "y"], 7);
  });

  it("matches a Map oracle on random data with duplicates, nulls, empty and long keys", () => {
    const rand = mulberry32(1);
    const pool = ["", "é", "数据", "🙂", "a".repeat(40), "b".repeat(33)];
    for (let i = 0; i < 300; i++) pool.push(Math.floor(rand() * 1e9).toString(36) + (i % 7 === 0 ? "数" : ""));
    for (const n of [2, 17, 1000]) {
      const values: (string | null)[] = [];
      for (let i = 0; i < n; i++) values.push(rand() < 0.1 ? null : (pool[Math.floor(rand() * pool.length)] as string));
      checkDistinct(values);
    }
  });

  it("matches the oracle on 100k rows", () => {
    const rand = mulberry32(2);
    const values: (string | null)[] = [];
    for (let i = 0; i < 100_000; i++) {
      const r = rand();
      values.push(r < 0.05 ? null : r < 0.06 ? "" : `k${Math.floor(rand() * 60_000)}`);
    }
    checkDistinct(values);
  });

  it("rejects a column whose offsets or validity are too short", () => {
    const bad: KeyColumn = { data: new Uint8Array(0), offsets: new Uint32Array(2), valid: new Uint8Array(3), length: 3 };
    expect(() => distinctKeys(bad)).toThrow(InvalidArgumentError);
  });
});

// ---------------------------------------------------------- shuffledOrder

function isPermutation(order: Uint32Array, n: number): boolean {
  if (order.length !== n) return false;
  const seen = new Uint8Array(n);
  for (const v of order) {
    if (v >= n || seen[v] === 1) return false;
    seen[v] = 1;
  }
  return true;
}

describe("shuffledOrder", () => {
  it("is a permutation for small and large n", () => {
    for (const n of [0, 1, 2, 3, 10, 1000, 100_000]) expect(isPermutation(shuffledOrder(n), n)).toBe(true);
  });

  it("differs between calls", () => {
    const a = shuffledOrder(1000);
    const b = shuffledOrder(1000);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it("replays with a given random source and rejects biased words", () => {
    const source = (seed: number) => {
      const rand = mulberry32(seed);
      return (bytes: number): Uint8Array => randomBytesFrom(rand, bytes);
    };
    expect(Array.from(shuffledOrder(500, source(9)))).toEqual(Array.from(shuffledOrder(500, source(9))));
    // A source whose first words are all 0xffffffff: every one is rejected (for any range that is not a power of two).
    let calls = 0;
    const skewed = (bytes: number): Uint8Array => {
      calls++;
      return calls === 1 ? new Uint8Array(8).fill(0xff) : randomBytesFrom(mulberry32(calls), bytes);
    };
    expect(isPermutation(shuffledOrder(3, skewed), 3)).toBe(true);
    expect(calls).toBeGreaterThan(1);
  });

  it("gives each ordering of 3 items about equally often", () => {
    const counts = new Map<string, number>();
    const trials = 6000;
    for (let t = 0; t < trials; t++) {
      const k = Array.from(shuffledOrder(3)).join("");
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    for (const c of counts.values()) {
      expect(c).toBeGreaterThan(800); // expectation 1000, sd ≈ 29
      expect(c).toBeLessThan(1200);
    }
  });

  it("rejects a bad size", () => {
    expect(() => shuffledOrder(-1)).toThrow(InvalidArgumentError);
    expect(() => shuffledOrder(1.5)).toThrow(InvalidArgumentError);
  });
});

// ------------------------------------------------ permutePacked / permuteFixed

describe("permutePacked and permuteFixed", () => {
  it("put element order[i] at position i", () => {
    const rand = mulberry32(3);
    const strings = Array.from({ length: 200 }, (_, i) => (i % 9 === 0 ? "" : "s".repeat(Math.floor(rand() * 50)) + i));
    const packed = keyColumn(strings, 3);
    const order = shuffledOrder(200);
    const got = permutePacked(packed, order);
    expect(got.offsets[0]).toBe(0);
    expect(unpackStrings(got)).toEqual(Array.from(order, (r) => strings[r]));
    // Repeats and omissions are allowed.
    expect(unpackStrings(permutePacked(packed, Uint32Array.of(5, 5, 0)))).toEqual([strings[5], strings[5], strings[0]]);
    expect(packedCount(permutePacked(packed, new Uint32Array(0)))).toBe(0);
  });

  it("permutes fixed-size elements, aligned or not, of any size", () => {
    const rand = mulberry32(4);
    for (const size of [32, 64, 12, 7, 1]) {
      const n = 100;
      const buf = randomBytesFrom(rand, n * size);
      const order = shuffledOrder(n);
      const want = new Uint8Array(n * size);
      order.forEach((r, i) => want.set(buf.subarray(r * size, (r + 1) * size), i * size));
      expect(permuteFixed(buf, size, order)).toEqual(want);
      expect(permuteFixed(misaligned(buf), size, order)).toEqual(want);
    }
  });

  it("reject out-of-range orders and bad lengths", () => {
    const packed = keyColumn(["a", "b"]);
    expect(() => permutePacked(packed, Uint32Array.of(2))).toThrow(InvalidArgumentError);
    expect(() => permuteFixed(new Uint8Array(64), 32, Uint32Array.of(2))).toThrow(InvalidArgumentError);
    expect(() => permuteFixed(new Uint8Array(65), 32, Uint32Array.of(0))).toThrow(InvalidLengthError);
    expect(() => permuteFixed(new Uint8Array(64), 0, Uint32Array.of(0))).toThrow(InvalidArgumentError);
  });
});

// ------------------------------------------------------------ ElementIndex

/** n random elements of `size` bytes, with some duplicated (copies of earlier ones). */
function elementsWithDuplicates(rand: () => number, n: number, size: number): Uint8Array {
  const buf = randomBytesFrom(rand, n * size);
  for (let i = 1; i < n; i++) {
    if (rand() < 0.2) {
      const j = Math.floor(rand() * i);
      buf.copyWithin(i * size, j * size, (j + 1) * size);
    }
  }
  return buf;
}

function indexOracle(elements: Uint8Array, size: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i * size < elements.length; i++) {
    const k = hex(elements.subarray(i * size, (i + 1) * size));
    if (!m.has(k)) m.set(k, i);
  }
  return m;
}

function expectedMatches(oracle: Map<string, number>, probe: Uint8Array, size: number): number[] {
  const out: number[] = [];
  for (let i = 0; i * size < probe.length; i++) out.push(oracle.get(hex(probe.subarray(i * size, (i + 1) * size))) ?? -1);
  return out;
}

/** Probe elements: half taken from `elements`, half fresh (absent with overwhelming probability). */
function probeFor(rand: () => number, elements: Uint8Array, size: number, m: number): Uint8Array {
  const n = elements.length / size;
  const probe = randomBytesFrom(rand, m * size);
  for (let i = 0; i < m; i++) {
    if (n > 0 && rand() < 0.5) {
      const j = Math.floor(rand() * n);
      probe.set(elements.subarray(j * size, (j + 1) * size), i * size);
    }
  }
  return probe;
}

describe("ElementIndex", () => {
  it.each([32, 64, 8, 12, 10, 4, 5])("matches a Map oracle for %i-byte elements, aligned or not", (size) => {
    const rand = mulberry32(size);
    const elements = elementsWithDuplicates(rand, 3000, size);
    const oracle = indexOracle(elements, size);
    const probe = probeFor(rand, elements, size, 4000);
    const want = expectedMatches(oracle, probe, size);
    for (const index of [ElementIndex.build(elements, size), ElementIndex.build(misaligned(elements), size)]) {
      expect(index.count).toBe(3000);
      for (const p of [probe, misaligned(probe)]) {
        expect(Array.from(index.matchAll(p))).toEqual(want);
        expect(index.countMatches(p)).toBe(want.filter((x) => x >= 0).length);
      }
      for (let i = 0; i < 50; i++) expect(index.find(probe, i * size)).toBe(want[i]);
      expect(index.find(misaligned(probe), 3 * size)).toBe(want[3]);
    }
  });

  it("returns the first of duplicates and compares whole elements when the leading bytes agree", () => {
    const size = 32;
    const n = 500;
    // Every element shares its first 16 bytes; they differ only at the end.
    const elements = new Uint8Array(n * size);
    for (let i = 0; i < n; i++) {
      elements.fill(0xab, i * size, i * size + 16);
      elements[i * size + 31] = i % 250; // elements i and i + 250 are equal
      elements[i * size + 30] = 7;
    }
    const index = ElementIndex.build(elements, size);
    const probe = new Uint8Array(3 * size);
    probe.fill(0xab, 0, 16);
    probe[31] = 249;
    probe[30] = 7;
    probe.fill(0xab, 32, 48);
    probe[63] = 3;
    probe[62] = 8; // differs in byte 30: absent
    probe.set(elements.subarray(260 * size, 261 * size), 64);
    expect(Array.from(index.matchAll(probe))).toEqual([249, -1, 10]);
    expect(index.find(elements, 499 * size)).toBe(249);
  });

  it("holds a set of identical elements", () => {
    const elements = new Uint8Array(100 * 32).fill(9);
    const index = ElementIndex.build(elements, 32);
    expect(index.find(new Uint8Array(32).fill(9), 0)).toBe(0);
    expect(index.find(new Uint8Array(32).fill(8), 0)).toBe(-1);
  });

  it("works empty and with an empty probe", () => {
    const index = ElementIndex.build(new Uint8Array(0), 32);
    expect(index.count).toBe(0);
    expect(Array.from(index.matchAll(new Uint8Array(64)))).toEqual([-1, -1]);
    expect(index.matchAll(new Uint8Array(0)).length).toBe(0);
    expect(index.countMatches(new Uint8Array(0))).toBe(0);
  });

  it("owns a copy of the elements it was built from", () => {
    const elements = randomBytesFrom(mulberry32(5), 4 * 32);
    const first = elements.slice(0, 32);
    const index = ElementIndex.build(elements, 32);
    elements.fill(0);
    expect(index.find(first, 0)).toBe(0);
  });

  it("rejects lengths that are not a multiple of the size, bad sizes and bad offsets", () => {
    expect(() => ElementIndex.build(new Uint8Array(33), 32)).toThrow(InvalidLengthError);
    const index = ElementIndex.build(new Uint8Array(64), 32);
    expect(() => index.matchAll(new Uint8Array(31))).toThrow(InvalidLengthError);
    expect(() => index.countMatches(new Uint8Array(65))).toThrow(InvalidLengthError);
    try {
      index.matchAll(new Uint8Array(31));
    } catch (e) {
      expect((e as InvalidLengthError).code).toBe(ErrorCode.InvalidLength);
    }
    expect(() => ElementIndex.build(new Uint8Array(6), 3)).toThrow(InvalidArgumentError);
    expect(() => index.find(new Uint8Array(40), 9)).toThrow(InvalidArgumentError);
    expect(() => index.find(new Uint8Array(40), -1)).toThrow(InvalidArgumentError);
  });
});

// ------------------------------------------------------------- takeRows

/** A JS value comparable with toEqual (bytes → arrays, vectors → arrays, struct rows → objects). */
function plain(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return Array.from(v);
  if (typeof v === "object" && v !== null && "toArray" in v && typeof (v as Vector).toArray === "function") {
    return Array.from((v as Vector).toArray() as ArrayLike<unknown>, plain);
  }
  if (typeof v === "object" && v !== null && "toJSON" in v) return (v as { toJSON(): unknown }).toJSON();
  return v;
}

function columnValues(t: Table, name: string): unknown[] {
  const col = t.getChild(name);
  if (col === null) throw new Error(`no column ${name}`);
  const out: unknown[] = [];
  for (let i = 0; i < t.numRows; i++) out.push(plain(col.get(i)));
  return out;
}

/** Checks takeRows(t, rows) against Vector.get on the input, column by column, and that the result survives an IPC round trip. */
function checkTake(t: Table, rows: Uint32Array | Int32Array): Table {
  const got = takeRows(t, rows);
  expect(got.numRows).toBe(rows.length);
  expect(got.schema.fields.map((f) => [f.name, String(f.type)])).toEqual(t.schema.fields.map((f) => [f.name, String(f.type)]));
  for (const f of t.schema.fields) {
    const src = columnValues(t, f.name);
    const want = Array.from(rows, (r) => (r < 0 ? null : src[r]));
    expect(columnValues(got, f.name), f.name).toEqual(want);
    const col = got.getChild(f.name);
    // Unions have no validity bitmap (a null is a null in a child), so their nullCount is 0.
    if (!f.name.endsWith("union")) expect(col?.nullCount, f.name).toBe(want.filter((v) => v === null).length);
  }
  const back = tableFromIPC(tableToIPC(got));
  for (const f of t.schema.fields) expect(columnValues(back, f.name), `${f.name} after IPC`).toEqual(columnValues(got, f.name));
  return got;
}

const N = 300;

/** One column per supported type, N rows, with nulls. */
function allTypesTable(seed: number, dictType: Dictionary<Utf8, Int32> = new Dictionary(new Utf8(), new Int32())): Table {
  const rand = mulberry32(seed);
  const maybe = <T>(v: T): T | null => (rand() < 0.15 ? null : v);
  const ints = (lo: number, hi: number) => Array.from({ length: N }, () => maybe(lo + Math.floor(rand() * (hi - lo))));
  const words = ["", "alpha", "数据", "🙂", "beta", "x".repeat(50)];
  const pick = () => words[Math.floor(rand() * words.length)] as string;
  const cols: Record<string, Vector> = {
    utf8: vectorFromArray(Array.from({ length: N }, () => maybe(pick() + Math.floor(rand() * 10))), new Utf8()),
    large_utf8: vectorFromArray(Array.from({ length: N }, () => maybe(pick())), new LargeUtf8()),
    i8: vectorFromArray(ints(-128, 128), new Int8()),
    i16: vectorFromArray(ints(-32768, 32768), new Int16()),
    i32: vectorFromArray(ints(-(2 ** 31), 2 ** 31), new Int32()),
    i64: vectorFromArray(
      Array.from({ length: N }, () => maybe(BigInt(Math.floor(rand() * 2 ** 53)) * (rand() < 0.5 ? -1000n : 1000n))),
      new Int64(),
    ),
    u8: vectorFromArray(ints(0, 256), new Uint8()),
    u16: vectorFromArray(ints(0, 65536), new Uint16()),
    u32: vectorFromArray(ints(0, 2 ** 32), new Uint32()),
    u64: vectorFromArray(Array.from({ length: N }, () => maybe(BigInt(Math.floor(rand() * 2 ** 53)) * 1999n)), new Uint64()),
    f32: vectorFromArray(Array.from({ length: N }, () => maybe(Math.fround(rand() * 100 - 50))), new Float32()),
    f64: vectorFromArray(Array.from({ length: N }, () => maybe(rand() * 1e9 - 5e8)), new Float64()),
    bool: vectorFromArray(Array.from({ length: N }, () => maybe(rand() < 0.5)), new Bool()),
    dict: vectorFromArray(Array.from({ length: N }, () => maybe(pick())), dictType),
    binary: vectorFromArray(Array.from({ length: N }, () => maybe(randomBytesFrom(rand, Math.floor(rand() * 40)))), new Binary()),
    fixed: vectorFromArray(Array.from({ length: N }, () => maybe(randomBytesFrom(rand, 6))), new FixedSizeBinary(6)),
    date_day: vectorFromArray(Array.from({ length: N }, () => maybe(new Date(Date.UTC(2000 + Math.floor(rand() * 30), 0, 1 + Math.floor(rand() * 300))))), new DateDay()),
    date_ms: vectorFromArray(Array.from({ length: N }, () => maybe(new Date(Math.floor(rand() * 2e12)))), new DateMillisecond()),
    ts_ms: vectorFromArray(Array.from({ length: N }, () => maybe(Math.floor(rand() * 2e12))), new TimestampMillisecond()),
    ts_us: vectorFromArray(Array.from({ length: N }, () => maybe(Math.floor(rand() * 2e15))), new TimestampMicrosecond("UTC")),
    list: vectorFromArray(
      Array.from({ length: N }, () => maybe(Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 100)))),
      new List(new Field("item", new Int32(), true)),
    ),
    struct: vectorFromArray(
      Array.from({ length: N }, () => maybe({ a: Math.floor(rand() * 100), b: pick() })),
      new Struct([new Field("a", new Int32(), true), new Field("b", new Utf8(), true)]),
    ),
  };
  const entries = new Struct([new Field("key", new Utf8(), false), new Field("value", new Int32(), true)]);
  Object.assign(cols, {
    time_ms: vectorFromArray(ints(0, 86_400_000), new TimeMillisecond()),
    duration: vectorFromArray(Array.from({ length: N }, () => maybe(BigInt(Math.floor(rand() * 1e12)))), new DurationMillisecond()),
    interval: vectorFromArray(Array.from({ length: N }, () => maybe(Int32Array.of(Math.floor(rand() * 1000), Math.floor(rand() * 1e6)))), new IntervalDayTime()),
    decimal: vectorFromArray(Array.from({ length: N }, () => maybe(Uint32Array.from(randomBytesFrom(rand, 4)))), new Decimal(2, 20, 128)),
    f16: vectorFromArray(Array.from({ length: N }, () => maybe(Math.floor(rand() * 64) / 4)), new Float16()),
    fsl: vectorFromArray(Array.from({ length: N }, () => maybe([Math.floor(rand() * 100), rand() < 0.2 ? null : 7])), new FixedSizeList(2, new Field("item", new Int16(), true))),
    map: vectorFromArray(
      Array.from({ length: N }, () => maybe(new Map(Array.from({ length: Math.floor(rand() * 3) }, (_, k) => [`k${k}`, Math.floor(rand() * 9)])))),
      new Map_(new Field("entries", entries, false)),
    ),
    large_list: vectorFromArray(
      Array.from({ length: N }, () => maybe(Array.from({ length: Math.floor(rand() * 3) }, () => pick()))),
      new LargeList(new Field("item", new Utf8(), true)),
    ),
    large_binary: vectorFromArray(Array.from({ length: N }, () => maybe(randomBytesFrom(rand, Math.floor(rand() * 9)))), new LargeBinary()),
    utf8_view: vectorFromArray(Array.from({ length: N }, () => maybe(pick() + pick())), new Utf8View()),
    sparse_union: unionVector(rand, false),
    dense_union: unionVector(rand, true),
  });
  return new Table(cols);
}

/** A union of Int32 and Utf8 with nulls in both children, built from its buffers. */
function unionVector(rand: () => number, dense: boolean): Vector {
  const fields = [new Field("i", new Int32(), true), new Field("s", new Utf8(), true)];
  const typeIds = Int8Array.from({ length: N }, () => (rand() < 0.5 ? 0 : 1));
  const ints: (number | null)[] = [];
  const strs: (string | null)[] = [];
  const valueOffsets = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const isInt = typeIds[i] === 0;
    const nul = rand() < 0.15;
    if (dense) {
      valueOffsets[i] = isInt ? ints.length : strs.length;
      if (isInt) ints.push(nul ? null : Math.floor(rand() * 1000));
      else strs.push(nul ? null : `s${Math.floor(rand() * 1000)}`);
    } else {
      ints.push(isInt && !nul ? Math.floor(rand() * 1000) : null);
      strs.push(!isInt && !nul ? `s${Math.floor(rand() * 1000)}` : null);
    }
  }
  const children = [vectorFromArray(ints, new Int32()).data[0], vectorFromArray(strs, new Utf8()).data[0]] as NonNullable<Vector["data"][0]>[];
  return dense
    ? new Vector([makeData({ type: new DenseUnion([0, 1], fields), length: N, nullCount: 0, typeIds, valueOffsets, children })])
    : new Vector([makeData({ type: new SparseUnion([0, 1], fields), length: N, nullCount: 0, typeIds, children })]);
}

/** Rows 0..k-1 of a table split into record batches of the given sizes (the schema and dictionary type shared). */
function multiBatch(sizes: readonly number[], seed: number, dictId?: number): Table {
  const dictType = new Dictionary(new Utf8(), new Int32(), dictId);
  const parts = sizes.map((_, k) => allTypesTable(seed + k, dictType));
  const schema = (parts[0] as Table).schema;
  const batches = sizes.map((size, k) => {
    const t = (parts[k] as Table).slice(0, size);
    const children = schema.fields.map((f) => {
      const data = t.getChild(f.name)?.data;
      if (data === undefined || data.length !== 1) throw new Error("expected one chunk");
      return data[0] as NonNullable<(typeof data)[0]>;
    });
    return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: size, nullCount: 0, children }));
  });
  return new Table(schema, batches);
}

function randomRows(rand: () => number, m: number, n: number, nullRows: boolean): Int32Array {
  const rows = new Int32Array(m);
  for (let i = 0; i < m; i++) rows[i] = nullRows && rand() < 0.1 ? -1 : Math.floor(rand() * n);
  return rows;
}

describe("takeRows", () => {
  it("takes rows of every type, with repeats and nulls (Uint32Array)", () => {
    const t = allTypesTable(10);
    const rand = mulberry32(11);
    checkTake(t, Uint32Array.from(randomRows(rand, 500, N, false)));
    checkTake(t, Uint32Array.of(0, 0, 0, N - 1));
  });

  it("turns -1 into a row of nulls (Int32Array)", () => {
    const t = allTypesTable(12);
    checkTake(t, randomRows(mulberry32(13), 400, N, true));
    checkTake(t, Int32Array.of(-1, -1, -1));
  });

  it("handles an empty selection", () => {
    const t = allTypesTable(14);
    expect(checkTake(t, new Uint32Array(0)).numRows).toBe(0);
    expect(checkTake(t, new Int32Array(0)).numRows).toBe(0);
  });

  it("maps global rows across record batches, empty batches included", () => {
    const t = multiBatch([100, 0, 37, 163], 20);
    expect(t.batches.length).toBe(4);
    expect(t.numRows).toBe(300);
    const rand = mulberry32(21);
    const got = checkTake(t, randomRows(rand, 600, 300, true));
    expect(got.batches.length).toBe(1);
    // Every boundary row.
    checkTake(t, Int32Array.of(0, 99, 100, 136, 137, 299, -1));
  });

  it("merges differing dictionaries of different batches", () => {
    const t = multiBatch([150, 150], 30);
    const d0 = t.batches[0]?.getChild("dict")?.data[0]?.dictionary;
    const d1 = t.batches[1]?.getChild("dict")?.data[0]?.dictionary;
    expect(d0).toBeDefined();
    expect(d0).not.toBe(d1);
    checkTake(t, Int32Array.of(0, 160, 5, 299, -1, 150));
  });

  it("respects slice offsets (bit-packed booleans and validity at non-zero offsets)", () => {
    const t = allTypesTable(40).slice(13, 250);
    checkTake(t, randomRows(mulberry32(41), 300, 237, true));
    const multi = multiBatch([90, 90], 42).slice(45, 170);
    checkTake(multi, randomRows(mulberry32(43), 300, 125, true));
  });

  it("fills a table with no batches with null rows", () => {
    const schema = new Schema([new Field("s", new Utf8(), true), new Field("n", new Int32(), true), new Field("z", new Null(), true)]);
    const empty = new Table(schema);
    const got = takeRows(empty, Int32Array.of(-1, -1));
    expect(got.numRows).toBe(2);
    expect(columnValues(got, "s")).toEqual([null, null]);
    expect(columnValues(got, "n")).toEqual([null, null]);
    expect(takeRows(empty, new Uint32Array(0)).numRows).toBe(0);
  });

  it("rejects rows out of range and negative rows other than -1", () => {
    const t = allTypesTable(50);
    expect(() => takeRows(t, Uint32Array.of(N))).toThrow(InvalidArgumentError);
    expect(() => takeRows(t, Int32Array.of(0, -2))).toThrow(InvalidArgumentError);
  });
});

// --------------------------------------------------- concatTablesHorizontally

describe("concatTablesHorizontally", () => {
  it("puts columns side by side across different batch boundaries", () => {
    // Both sides have a dictionary column with dictionary id 0 (as two tables read from two IPC files would).
    const left = multiBatch([100, 200], 60, 0);
    const rightAll = multiBatch([50, 150, 100], 70, 0);
    const rename = (name: string) => `r_${name}`;
    const right = new Table(
      Object.fromEntries(rightAll.schema.fields.map((f) => [rename(f.name), rightAll.getChild(f.name) as Vector])),
    );
    const got = concatTablesHorizontally(left, right);
    expect(got.numRows).toBe(300);
    expect(got.schema.fields.map((f) => f.name)).toEqual([...left.schema.fields.map((f) => f.name), ...right.schema.fields.map((f) => f.name)]);
    for (const f of left.schema.fields) expect(columnValues(got, f.name)).toEqual(columnValues(left, f.name));
    for (const f of rightAll.schema.fields) expect(columnValues(got, rename(f.name))).toEqual(columnValues(rightAll, f.name));
    // The clashing dictionary id is renumbered: the result writes and reads back as IPC.
    const ids = got.schema.fields.flatMap((f) => (f.type instanceof Dictionary ? [f.type.id] : []));
    expect(new Set(ids).size).toBe(2);
    const back = tableFromIPC(tableToIPC(got));
    expect(columnValues(back, "dict")).toEqual(columnValues(left, "dict"));
    expect(columnValues(back, "r_dict")).toEqual(columnValues(rightAll, "dict"));
  });

  it("joins a takeRows result to its keys (the left-join shape)", () => {
    const left = new Table({ id: vectorFromArray(["a", "b", "c"], new Utf8()) });
    const right = takeRows(new Table({ v: vectorFromArray([10, 20], new Int32()) }), Int32Array.of(1, -1, 0));
    const got = concatTablesHorizontally(left, right);
    expect(got.toArray().map((r) => r.toJSON())).toEqual([
      { id: "a", v: 20 },
      { id: "b", v: null },
      { id: "c", v: 10 },
    ]);
  });

  it("handles zero rows", () => {
    const left = new Table({ a: vectorFromArray([], new Int32()) });
    const right = new Table({ b: vectorFromArray([], new Utf8()) });
    const got = concatTablesHorizontally(left, right);
    expect(got.numRows).toBe(0);
    expect(got.schema.fields.map((f) => f.name)).toEqual(["a", "b"]);
  });

  it("names the clashing column and rejects different row counts", () => {
    const left = new Table({ id: vectorFromArray(["a"], new Utf8()), secret: vectorFromArray([1], new Int32()) });
    const right = new Table({ secret: vectorFromArray([2], new Int32()) });
    expect(() => concatTablesHorizontally(left, right)).toThrow(InvalidArgumentError);
    expect(() => concatTablesHorizontally(left, right)).toThrow(/"secret"/);
    const longer = new Table({ other: vectorFromArray([1, 2], new Int32()) });
    expect(() => concatTablesHorizontally(left, longer)).toThrow(InvalidArgumentError);
  });
});
