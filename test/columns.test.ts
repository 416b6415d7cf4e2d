/**
 * engine/columns: reading and writing Arrow IPC / CSV / Parquet batch by
 * batch, key extraction and normalisation, and every typed error (class,
 * code, and that no cell value leaks into a message). Fixtures are generated
 * at run time into a temporary directory.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Bool,
  Dictionary,
  Float64,
  Int32,
  Int64,
  Int8,
  RecordBatch,
  Table,
  Uint64,
  Utf8,
  vectorFromArray,
  type DataType,
} from "apache-arrow";
import fc from "fast-check";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  concatKeyColumns,
  keysFromBatch,
  keysFromTable,
  normaliseKey,
  openBatches,
  readBatches,
  readTable,
  writeArrowIPC,
  writeCsv,
  writeTable,
  type KeyColumn,
} from "../engine/columns/index.js";
import {
  ErrorCode,
  InvalidArgumentError,
  MalformedCsvError,
  MissingColumnError,
  UmbraError,
  UnreadableFileError,
  UnsupportedFormatError,
  UnsupportedTypeError,
} from "../engine/errors.js";
import { assertPacked, packedAt, type PackedBytes } from "../engine/packed.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "umbra-columns-"));
});
afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});
const file = (name: string): string => join(dir, name);

const utf8 = new TextEncoder();
const text = new TextDecoder();

function col<T extends DataType>(values: readonly unknown[], type: T) {
  return vectorFromArray(values as unknown[], type);
}

/** A batch from named columns. */
function batchOf(columns: Record<string, readonly unknown[]>, types: Record<string, DataType> = {}): RecordBatch {
  const vectors = Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, col(v, types[k] ?? new Utf8())]));
  const table = new Table(vectors);
  const batch = table.batches[0];
  if (batch === undefined) throw new Error("no batch");
  return batch;
}

/** Key i as text, or null when invalid. */
function keyText(k: KeyColumn, i: number): string | null {
  return k.valid[i] === 1 ? text.decode(packedAt(k, i)) : null;
}
function keyBytes(k: KeyColumn, i: number): number[] | null {
  return k.valid[i] === 1 ? [...packedAt(k, i)] : null;
}
function allKeys(k: KeyColumn): (string | null)[] {
  return Array.from({ length: k.length }, (_, i) => keyText(k, i));
}

/** Runs `f`, expects it to throw an UmbraError of `cls` with `code`, and returns the error. */
async function expectUmbraError(
  f: () => unknown,
  cls: abstract new (...args: never[]) => UmbraError,
  code: ErrorCode,
): Promise<UmbraError> {
  let caught: unknown;
  try {
    await f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(cls);
  const err = caught as UmbraError;
  expect(err.code).toBe(code);
  return err;
}

async function drain(path: string, options?: Parameters<typeof readBatches>[1]): Promise<RecordBatch[]> {
  const out: RecordBatch[] = [];
  for await (const b of readBatches(path, options)) out.push(b);
  return out;
}

const SECRET = "SECRET-4711";

function sampleTable(): Table {
  return new Table({
    name: col(["alice", null, "bob, jr.", 'say "hi"', "line\nbreak", "é", ""], new Utf8()),
    n: col([1n, 2n, null, -4n, 9007199254740993n, 0n, 7n], new Int64()),
    x: col([1.5, null, -0.25, 1e300, 3, 0, Number.NaN], new Float64()),
    ok: col([true, false, null, true, true, false, true], new Bool()),
  });
}

function columnValues(t: Table, name: string): unknown[] {
  const v = t.getChild(name);
  if (v === null) throw new Error(`no column ${name}`);
  return Array.from({ length: v.length }, (_, i) => v.get(i) as unknown);
}

// -------------------------------------------------------------- round trips

describe("Arrow IPC round trips", () => {
  it("writes and reads an IPC file (magic ARROW1), keeping types and nulls", async () => {
    const t = sampleTable();
    const p = file("sample.arrow");
    await writeArrowIPC(p, t, { format: "file" });
    const head = (await readFile(p)).subarray(0, 6);
    expect(text.decode(head)).toBe("ARROW1");
    const back = await readTable(p);
    expect(back.schema.fields.map((f) => String(f.type))).toEqual(t.schema.fields.map((f) => String(f.type)));
    for (const name of ["name", "n", "x", "ok"]) expect(columnValues(back, name)).toEqual(columnValues(t, name));
  });

  it("writes and reads an IPC stream (.arrows), and detects a stream inside .ipc", async () => {
    const t = sampleTable();
    for (const name of ["sample.arrows", "sample-stream.ipc"]) {
      const p = file(name);
      await writeArrowIPC(p, t, { format: "stream" });
      expect(text.decode((await readFile(p)).subarray(0, 6))).not.toBe("ARROW1");
      const back = await readTable(p);
      for (const c of ["name", "n", "x", "ok"]) expect(columnValues(back, c)).toEqual(columnValues(t, c));
    }
  });

  it("writeTable chooses the layout by extension (.arrow/.feather file, .arrows stream)", async () => {
    const t = sampleTable();
    await writeTable(file("t.feather"), t);
    await writeTable(file("t2.arrows"), t);
    expect(text.decode((await readFile(file("t.feather"))).subarray(0, 6))).toBe("ARROW1");
    expect(text.decode((await readFile(file("t2.arrows"))).subarray(0, 6))).not.toBe("ARROW1");
    expect((await readTable(file("t.feather"))).numRows).toBe(7);
    expect((await readTable(file("t2.arrows"))).numRows).toBe(7);
  });

  it("streams several stored batches from an async iterable and yields them one by one", async () => {
    async function* gen(): AsyncGenerator<RecordBatch> {
      for (let b = 0; b < 5; b++) {
        yield batchOf({ id: Array.from({ length: 100 }, (_, i) => b * 100 + i) }, { id: new Int32() });
      }
    }
    const p = file("many.arrow");
    await writeArrowIPC(p, gen());
    const batches = await drain(p);
    expect(batches.map((b) => b.numRows)).toEqual([100, 100, 100, 100, 100]);
    const ids = batches.flatMap((b) => Array.from(b.getChild("id")?.toArray() as Int32Array));
    expect(ids).toEqual(Array.from({ length: 500 }, (_, i) => i));
    const s = file("many.arrows");
    await writeArrowIPC(s, gen(), { format: "stream" });
    expect((await drain(s)).length).toBe(5);
  });

  it("keeps the schema of a table with no rows", async () => {
    const empty = new Table(sampleTable().schema);
    const p = file("empty.arrow");
    await writeArrowIPC(p, empty);
    const back = await readTable(p);
    expect(back.numRows).toBe(0);
    expect(back.schema.fields.map((f) => f.name)).toEqual(["name", "n", "x", "ok"]);
  });

  it("projects columns on read", async () => {
    const p = file("proj.arrow");
    await writeArrowIPC(p, sampleTable());
    const t = await readTable(p, { columns: ["ok", "name"] });
    expect(t.schema.fields.map((f) => f.name)).toEqual(["ok", "name"]);
    expect(columnValues(t, "name")[0]).toBe("alice");
  });

  it("refuses batches whose fields differ, and nothing at all", async () => {
    const a = batchOf({ a: ["x"] });
    const b = batchOf({ b: ["y"] });
    await expectUmbraError(() => writeArrowIPC(file("mixed.arrow"), [a, b]), InvalidArgumentError, ErrorCode.InvalidArgument);
    await expectUmbraError(() => writeArrowIPC(file("none.arrow"), []), InvalidArgumentError, ErrorCode.InvalidArgument);
  });
});

describe("CSV round trips", () => {
  it("writes RFC 4180 CSV (quotes, CRLF, nulls empty) and reads it back with column types", async () => {
    const t = sampleTable();
    const p = file("sample.csv");
    await writeCsv(p, t);
    const raw = await readFile(p, "utf8");
    expect(raw.startsWith("name,n,x,ok\r\n")).toBe(true);
    expect(raw).toContain('"bob, jr."');
    expect(raw).toContain('"say ""hi"""');
    expect(raw).toContain('"line\nbreak"');
    expect(raw.split("\r\n")[2]).toBe(",2,,false"); // the null row: empty fields
    const back = await readTable(p, { columnTypes: { n: "int64", x: "float64" } });
    expect(String(back.schema.fields[1]?.type)).toBe("Int64");
    expect(String(back.schema.fields[2]?.type)).toBe("Float64");
    // An empty string is written as "" but, like every empty field, reads back as null.
    expect(columnValues(back, "name")).toEqual(["alice", null, "bob, jr.", 'say "hi"', "line\nbreak", "é", null]);
    expect(columnValues(back, "n")).toEqual(columnValues(t, "n"));
    expect(columnValues(back, "x")).toEqual(columnValues(t, "x"));
    expect(columnValues(back, "ok")).toEqual(["true", "false", null, "true", "true", "false", "true"]);
  });

  it("reads all columns as Utf8 by default, handles a BOM, CRLF and blank lines", async () => {
    const p = file("bom.csv");
    await writeFile(p, "\ufeffid,v\r\n1,a\r\n\r\n2,\r\n");
    const t = await readTable(p);
    expect(t.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(["id:Utf8", "v:Utf8"]);
    expect(columnValues(t, "id")).toEqual(["1", "2"]);
    expect(columnValues(t, "v")).toEqual(["a", null]);
  });

  it("round-trips nulls in a one-column CSV (a blank line is a null row there)", async () => {
    const p = file("one-col.csv");
    await writeCsv(p, new Table({ k: col(["a", null, "b", null], new Utf8()) }));
    expect(columnValues(await readTable(p), "k")).toEqual(["a", null, "b", null]);
  });

  it("keeps the header schema of a CSV with no data rows", async () => {
    const p = file("header-only.csv");
    await writeFile(p, "a,b\n");
    const t = await readTable(p, { columnTypes: { b: "int64" } });
    expect(t.numRows).toBe(0);
    expect(t.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(["a:Utf8", "b:Int64"]);
  });

  it("parses int64 beyond 2^53 and negative values exactly", async () => {
    const p = file("ints.csv");
    await writeFile(p, "v\n9223372036854775807\n-9223372036854775808\n -42 \n+7\n123456789012345\n");
    const t = await readTable(p, { columnTypes: { v: "int64" } });
    expect(columnValues(t, "v")).toEqual([9223372036854775807n, -9223372036854775808n, -42n, 7n, 123456789012345n]);
  });

  it("projects columns on read", async () => {
    const p = file("proj.csv");
    await writeFile(p, "a,b,c\n1,2,3\n4,5,6\n");
    const t = await readTable(p, { columns: ["c", "a"] });
    expect(t.schema.fields.map((f) => f.name)).toEqual(["c", "a"]);
    expect(columnValues(t, "c")).toEqual(["3", "6"]);
  });
});

describe("streaming", () => {
  it("yields several CSV batches of batchSize rows for a file larger than batchSize", async () => {
    const p = file("big.csv");
    const lines = ["id,email"];
    for (let i = 0; i < 10_500; i++) lines.push(`${i},user${i}@example.com`);
    await writeFile(p, lines.join("\n") + "\n");
    const batches = await drain(p, { batchSize: 1000, columnTypes: { id: "int64" } });
    expect(batches.length).toBe(11);
    expect(batches.slice(0, 10).every((b) => b.numRows === 1000)).toBe(true);
    expect(batches[10]?.numRows).toBe(500);
    const last = batches[10];
    expect(last?.getChild("id")?.get(499)).toBe(10_499n);
    expect(last?.getChild("email")?.get(499)).toBe("user10499@example.com");
  });

  it("defaults to 65,536 rows per batch", async () => {
    const p = file("default-batch.csv");
    const lines = ["k"];
    for (let i = 0; i < 70_000; i++) lines.push(String(i));
    await writeFile(p, lines.join("\n"));
    const batches = await drain(p);
    expect(batches.map((b) => b.numRows)).toEqual([65_536, 70_000 - 65_536]);
  });

  it("closes the file when the consumer stops early", async () => {
    const p = file("big.csv");
    let n = 0;
    for await (const b of readBatches(p, { batchSize: 100 })) {
      n += b.numRows;
      if (n >= 200) break;
    }
    expect(n).toBe(200);
    const source = await openBatches(p, { batchSize: 100 });
    expect(source.schema.fields.map((f) => f.name)).toEqual(["id", "email"]);
    await source.batches.return(undefined);
  });

  it("writes a large CSV in chunks and reads it back", async () => {
    const p = file("ids.arrow");
    const ids = Array.from({ length: 20_000 }, (_, i) => `id-${i}`);
    await writeArrowIPC(p, new Table({ id: col(ids, new Utf8()) }));
    const out = file("ids.csv");
    await writeCsv(out, readBatches(p));
    const back = await drain(out, { batchSize: 7000 });
    expect(back.map((b) => b.numRows)).toEqual([7000, 7000, 6000]);
    expect(back[2]?.getChild("id")?.get(5999)).toBe("id-19999");
  });
});

describe("Parquet reading", () => {
  const rows = 2500;
  const names = Array.from({ length: rows }, (_, i) => (i % 7 === 0 ? null : `name-${i}`));
  const i32 = Array.from({ length: rows }, (_, i) => (i % 11 === 0 ? null : i - 1000));
  const i64 = Array.from({ length: rows }, (_, i) => (i % 13 === 0 ? null : BigInt(i) * 4294967296n));
  const f64 = Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? null : i / 4));
  const bools = Array.from({ length: rows }, (_, i) => (i % 3 === 0 ? null : i % 2 === 0));
  const ids = Array.from({ length: rows }, (_, i) => BigInt(i));

  async function writeParquet(path: string): Promise<void> {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: "name", data: names, type: "STRING" },
        { name: "i32", data: i32, type: "INT32" },
        { name: "i64", data: i64, type: "INT64" },
        { name: "f64", data: f64, type: "DOUBLE" },
        { name: "flag", data: bools, type: "BOOLEAN" },
        { name: "id", data: ids, type: "INT64", nullable: false },
      ],
      rowGroupSize: 1000,
    });
    await writeFile(path, new Uint8Array(buf));
  }

  it("converts each row group to batches of at most batchSize rows, with Arrow types and nulls", async () => {
    const p = file("data.parquet");
    await writeParquet(p);
    const source = await openBatches(p, { batchSize: 400 });
    expect(source.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual([
      "name:Utf8",
      "i32:Int32",
      "i64:Int64",
      "f64:Float64",
      "flag:Bool",
      "id:Int64",
    ]);
    const batches: RecordBatch[] = [];
    for await (const b of source.batches) batches.push(b);
    // Row groups of 1000, 1000, 500 rows, each cut into batches of 400.
    expect(batches.map((b) => b.numRows)).toEqual([400, 400, 200, 400, 400, 200, 400, 100]);
    const t = new Table(batches);
    expect(columnValues(t, "name")).toEqual(names);
    expect(columnValues(t, "i32")).toEqual(i32);
    expect(columnValues(t, "i64")).toEqual(i64);
    expect(columnValues(t, "f64")).toEqual(f64);
    expect(columnValues(t, "flag")).toEqual(bools);
    expect(columnValues(t, "id")).toEqual(ids);
  });

  it("reads only the projected columns", async () => {
    const p = file("data.parquet");
    const t = await readTable(p, { columns: ["id", "name"] });
    expect(t.schema.fields.map((f) => f.name)).toEqual(["id", "name"]);
    expect(t.numRows).toBe(rows);
  });

  it("gives Parquet integer keys equal to CSV string keys", async () => {
    const t = await readTable(file("data.parquet"), { columns: ["id"] });
    const csv = file("ids-as-text.csv");
    await writeFile(csv, "id\n" + Array.from({ length: rows }, (_, i) => ` ${i} `).join("\n"));
    const fromParquet = keysFromTable(t, ["id"]);
    const fromCsv = keysFromTable(await readTable(csv), ["id"]);
    expect(Buffer.from(fromParquet.data).equals(Buffer.from(fromCsv.data))).toBe(true);
    expect(fromParquet.offsets).toEqual(fromCsv.offsets);
  });
});

// -------------------------------------------------------------------- keys

describe("keys", () => {
  it("single-column keys are the normalised UTF-8 bytes; KeyColumn is a PackedBytes", () => {
    const k = keysFromBatch(batchOf({ email: ["  Alice@Example.com ", "bob@example.com"] }), ["email"]);
    const packed: PackedBytes = k;
    assertPacked(packed);
    expect(k.length).toBe(2);
    expect(k.offsets.length).toBe(3);
    expect(k.offsets[0]).toBe(0);
    expect(allKeys(k)).toEqual(["Alice@Example.com", "bob@example.com"]);
  });

  it("NFC makes composed and decomposed é equal (and 'none' keeps them apart)", () => {
    const composed = "caf\u00e9";
    const decomposed = "cafe\u0301";
    const b = batchOf({ k: [composed, decomposed] });
    const nfc = keysFromBatch(b, ["k"]);
    expect(keyBytes(nfc, 0)).toEqual(keyBytes(nfc, 1));
    expect(keyText(nfc, 1)).toBe(composed);
    const raw = keysFromBatch(b, ["k"], { unicode: "none" });
    expect(keyBytes(raw, 0)).not.toEqual(keyBytes(raw, 1));
    expect(normaliseKey(decomposed)).toBe(composed);
  });

  it("composite keys are length-prefixed and unambiguous", () => {
    const b = batchOf({ a: ["ab", "a"], b: ["c", "bc"] });
    const k = keysFromBatch(b, ["a", "b"]);
    expect(keyBytes(k, 0)).toEqual([2, 0, 0, 0, 97, 98, 1, 0, 0, 0, 99]);
    expect(keyBytes(k, 1)).toEqual([1, 0, 0, 0, 97, 2, 0, 0, 0, 98, 99]);
    expect(keyBytes(k, 0)).not.toEqual(keyBytes(k, 1));
    // Order of the columns matters.
    expect(keyBytes(keysFromBatch(b, ["b", "a"]), 0)).toEqual([1, 0, 0, 0, 99, 2, 0, 0, 0, 97, 98]);
  });

  it("a composite row with any null or empty component is null", () => {
    const b = batchOf({ a: ["x", null, "y", "z"], b: ["1", "2", "  ", "3"] });
    const k = keysFromBatch(b, ["a", "b"]);
    expect(Array.from(k.valid)).toEqual([1, 0, 0, 1]);
    expect(packedAt(k, 1).length).toBe(0);
    expect(packedAt(k, 2).length).toBe(0);
  });

  it("trim (default on), caseFold, digitsOnly, and per-column overrides", () => {
    const b = batchOf({ email: ["  Bob@Example.COM\t"], phone: ["+33 (0)1-23 45"] });
    expect(allKeys(keysFromBatch(b, ["email"]))).toEqual(["Bob@Example.COM"]);
    expect(allKeys(keysFromBatch(b, ["email"], { trim: false }))).toEqual(["  Bob@Example.COM\t"]);
    expect(allKeys(keysFromBatch(b, ["email"], { caseFold: true }))).toEqual(["bob@example.com"]);
    expect(allKeys(keysFromBatch(b, ["phone"], { digitsOnly: true }))).toEqual(["33012345"]);
    const k = keysFromBatch(b, ["email", "phone"], { caseFold: true, perColumn: { phone: { digitsOnly: true } } });
    const expected = [...utf8.encode("bob@example.com")];
    expect(keyBytes(k, 0)).toEqual([expected.length, 0, 0, 0, ...expected, 8, 0, 0, 0, ...utf8.encode("33012345")]);
    // Non-ASCII text goes the string path with the same rules.
    const u = batchOf({ k: ["\u00a0 ÉCOLE\u3000", "Straße"] });
    expect(allKeys(keysFromBatch(u, ["k"], { caseFold: true }))).toEqual(["école", "straße"]);
  });

  it("integers are canonical base-10 text, equal to the same number as a string", () => {
    const ints = [0, 7, -1, 123, -2147483648, 2147483647];
    const asInt = keysFromBatch(batchOf({ v: ints }, { v: new Int32() }), ["v"]);
    const asText = keysFromBatch(batchOf({ v: ints.map(String) }), ["v"]);
    expect(allKeys(asInt)).toEqual(ints.map(String));
    expect(Buffer.from(asInt.data).equals(Buffer.from(asText.data))).toBe(true);

    const big = [0n, -1n, 9007199254740993n, -9223372036854775808n, 9223372036854775807n, 4294967296n, -4294967297n];
    expect(allKeys(keysFromBatch(batchOf({ v: big }, { v: new Int64() }), ["v"]))).toEqual(big.map(String));
    const ubig = [0n, 18446744073709551615n, 9007199254740992n];
    expect(allKeys(keysFromBatch(batchOf({ v: ubig }, { v: new Uint64() }), ["v"]))).toEqual(ubig.map(String));
    expect(allKeys(keysFromBatch(batchOf({ v: [-128, 5] }, { v: new Int8() }), ["v"]))).toEqual(["-128", "5"]);
    // digitsOnly drops the sign, as it does for the string "-42".
    const d = keysFromBatch(batchOf({ v: [-42] }, { v: new Int32() }), ["v"], { digitsOnly: true });
    expect(allKeys(d)).toEqual([normaliseKey("-42", { digitsOnly: true })]);
    // Composite of an integer and a string.
    const c = keysFromBatch(batchOf({ n: [12n], s: ["x"] }, { n: new Int64() }), ["n", "s"]);
    expect(keyBytes(c, 0)).toEqual([2, 0, 0, 0, 49, 50, 1, 0, 0, 0, 120]);
  });

  it("nulls are invalid with zero-length entries", () => {
    const k = keysFromBatch(batchOf({ v: ["a", null, "b", null] }), ["v"]);
    expect(Array.from(k.valid)).toEqual([1, 0, 1, 0]);
    expect(Array.from(k.offsets)).toEqual([0, 1, 1, 2, 2]);
    const i = keysFromBatch(batchOf({ v: [null, 5n] }, { v: new Int64() }), ["v"]);
    expect(allKeys(i)).toEqual([null, "5"]);
    expect(i.offsets[1]).toBe(0);
  });

  it("a key that is empty after normalisation is invalid", () => {
    const b = batchOf({ v: ["", "   ", "\t\u00a0", "x", "abc"] });
    expect(Array.from(keysFromBatch(b, ["v"]).valid)).toEqual([0, 0, 0, 1, 1]);
    expect(Array.from(keysFromBatch(b, ["v"], { digitsOnly: true }).valid)).toEqual([0, 0, 0, 0, 0]);
    // Without trimming, whitespace is a key; the empty string never is.
    expect(Array.from(keysFromBatch(b, ["v"], { trim: false, unicode: "none" }).valid)).toEqual([0, 1, 1, 1, 1]);
    expect(normaliseKey("   ")).toBe("");
  });

  it("the no-normalisation fast path copies the bytes and owns its buffers", () => {
    const b = batchOf({ v: [" A ", null, "", "é"] });
    const k = keysFromBatch(b, ["v"], { trim: false, unicode: "none" });
    expect(allKeys(k)).toEqual([" A ", null, null, "é"]);
    const values = b.getChild("v")?.data[0]?.values as Uint8Array;
    expect(k.data.buffer).not.toBe(values.buffer);
  });

  it("dictionary-encoded strings give the same keys as plain strings", () => {
    const values = ["b", " A", null, "b", "c\u0301"];
    const dict = batchOf({ v: values }, { v: new Dictionary(new Utf8(), new Int32()) });
    expect(String(dict.schema.fields[0]?.type)).toContain("Dictionary");
    const plain = batchOf({ v: values });
    for (const o of [{}, { caseFold: true }, { trim: false, unicode: "none" as const }]) {
      expect(allKeys(keysFromBatch(dict, ["v"], o))).toEqual(allKeys(keysFromBatch(plain, ["v"], o)));
    }
  });

  it("works on sliced batches (non-zero Arrow offsets)", () => {
    const b = batchOf({ s: ["a", null, "b", "c", null, "d"], n: [1, 2, null, 4, 5, 6] }, { n: new Int32() });
    const sliced = b.slice(2, 5);
    expect(allKeys(keysFromBatch(sliced, ["s"]))).toEqual(["b", "c", null]);
    expect(allKeys(keysFromBatch(sliced, ["s"], { trim: false, unicode: "none" }))).toEqual(["b", "c", null]);
    expect(allKeys(keysFromBatch(sliced, ["n"]))).toEqual([null, "4", "5"]);
  });

  it("keysFromTable concatenates across batches", () => {
    const t = new Table([batchOf({ v: ["a", null] }), batchOf({ v: ["bb", "c"] })]);
    const k = keysFromTable(t, ["v"]);
    expect(k.length).toBe(4);
    expect(Array.from(k.offsets)).toEqual([0, 1, 1, 3, 4]);
    expect(allKeys(k)).toEqual(["a", null, "bb", "c"]);
    expect(concatKeyColumns([]).length).toBe(0);
  });

  it("agrees with normaliseKey on arbitrary text and options (byte and string paths)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ unit: "grapheme-composite" }), fc.string(), fc.constantFrom(" Ab1 ", "e\u0301", "+1 (2) 3", "\u00a0x\u2028"))),
        fc.record({ trim: fc.boolean(), caseFold: fc.boolean(), digitsOnly: fc.boolean(), unicode: fc.constantFrom("NFC" as const, "none" as const) }),
        (values, options) => {
          const k = keysFromBatch(batchOf({ v: values }), ["v"], options);
          values.forEach((v, i) => {
            const expected = normaliseKey(v, options);
            expect(keyText(k, i)).toBe(expected === "" ? null : expected);
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------------ errors

describe("errors", () => {
  it("a missing file is UnreadableFileError naming the base name and ENOENT", async () => {
    for (const name of ["nope.csv", "nope.arrow", "nope.parquet"]) {
      const err = await expectUmbraError(() => readTable(file(name)), UnreadableFileError, ErrorCode.UnreadableFile);
      expect(err.message).toContain(name);
      expect(err.message).toContain("ENOENT");
      expect(err.message).not.toContain(dir);
    }
  });

  it("a directory is UnreadableFileError with EISDIR", async () => {
    await mkdir(file("folder.csv"));
    const e2 = await expectUmbraError(() => readTable(file("folder.csv")), UnreadableFileError, ErrorCode.UnreadableFile);
    expect(e2.message).toContain("EISDIR");
  });

  it("an unknown extension is UnsupportedFormatError, for reading and writing", async () => {
    await writeFile(file("data.xlsx"), "x");
    await expectUmbraError(() => readTable(file("data.xlsx")), UnsupportedFormatError, ErrorCode.UnsupportedFormat);
    await expectUmbraError(() => drain(file("noext")), UnsupportedFormatError, ErrorCode.UnsupportedFormat);
    await expectUmbraError(() => writeTable(file("out.json"), sampleTable()), UnsupportedFormatError, ErrorCode.UnsupportedFormat);
  });

  it("an unterminated quote is MalformedCsvError with a line number and no value", async () => {
    const p = file("unterminated.csv");
    await writeFile(p, `id,secret\n1,ok\n2,"${SECRET}\n3,more\n`);
    const err = await expectUmbraError(() => readTable(p), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((err as MalformedCsvError).line).toBeTypeOf("number");
    expect(err.message).toMatch(/line \d+/);
    expect(err.message).not.toContain(SECRET);
    expect(err.cause).toBeUndefined();
  });

  it("a record with the wrong number of fields is MalformedCsvError at its line", async () => {
    const p = file("ragged.csv");
    await writeFile(p, `id,secret\n1,ok\n2,${SECRET},extra\n`);
    const err = await expectUmbraError(() => readTable(p), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((err as MalformedCsvError).line).toBe(3);
    expect(err.message).toContain("line 3");
    expect(err.message).toContain("expected 2 fields, found 3");
    expect(err.message).not.toContain(SECRET);
    const short = file("short.csv");
    await writeFile(short, `a,b,c\n1,2,3\n4,5,6\n${SECRET}\n`);
    const e2 = await expectUmbraError(() => readTable(short), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((e2 as MalformedCsvError).line).toBe(4);
    expect(e2.message).not.toContain(SECRET);
  });

  it("stray quotes are MalformedCsvError without the value", async () => {
    for (const [name, body] of [
      ["stray-open.csv", `a,b\n1,x${SECRET}"y\n`],
      ["stray-close.csv", `a,b\n1,"${SECRET}"y\n`],
    ] as const) {
      const p = file(name);
      await writeFile(p, body);
      const err = await expectUmbraError(() => readTable(p), MalformedCsvError, ErrorCode.MalformedCsv);
      expect((err as MalformedCsvError).line).toBe(2);
      expect(err.message).not.toContain(SECRET);
    }
  });

  it("a bad number names the line and column, never the value", async () => {
    const p = file("badnum.csv");
    await writeFile(p, `id,amount\n1,10\n2,12.5\n3,${SECRET}\n`);
    const err = await expectUmbraError(() => readTable(p, { columnTypes: { amount: "float64" } }), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((err as MalformedCsvError).line).toBe(4);
    expect(err.message).toContain('"amount"');
    expect(err.message).not.toContain(SECRET);
    const e2 = await expectUmbraError(() => readTable(p, { columnTypes: { amount: "int64" } }), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((e2 as MalformedCsvError).line).toBe(3);
    expect(e2.message).not.toContain("12.5");
    // Line numbers count physical lines: blank lines and quoted line breaks included.
    const multi = file("multiline.csv");
    await writeFile(multi, `id,note,amount\n\n1,"two\nlines",5\n2,x,${SECRET}\n`);
    const em = await expectUmbraError(() => readTable(multi, { columnTypes: { amount: "int64" } }), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((em as MalformedCsvError).line).toBe(5);
    expect(em.message).not.toContain(SECRET);
    const big = file("overflow.csv");
    await writeFile(big, "v\n9223372036854775808\n");
    const e3 = await expectUmbraError(() => readTable(big, { columnTypes: { v: "int64" } }), MalformedCsvError, ErrorCode.MalformedCsv);
    expect(e3.message).not.toContain("9223372036854775808");
  });

  it("an empty CSV, or a duplicate header name, is MalformedCsvError at line 1", async () => {
    const p = file("empty.csv");
    await writeFile(p, "");
    const err = await expectUmbraError(() => readTable(p), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((err as MalformedCsvError).line).toBe(1);
    const d = file("dup.csv");
    await writeFile(d, "a,b,a\n1,2,3\n");
    const e2 = await expectUmbraError(() => readTable(d), MalformedCsvError, ErrorCode.MalformedCsv);
    expect((e2 as MalformedCsvError).line).toBe(1);
  });

  it("a missing column (read projection, columnTypes, key) is MissingColumnError", async () => {
    const p = file("proj.csv");
    const e1 = await expectUmbraError(() => readTable(p, { columns: ["zz"] }), MissingColumnError, ErrorCode.MissingColumn);
    expect((e1 as MissingColumnError).column).toBe("zz");
    expect(e1.message).toContain("proj.csv");
    await expectUmbraError(() => readTable(p, { columnTypes: { zz: "int64" } }), MissingColumnError, ErrorCode.MissingColumn);
    await expectUmbraError(() => readTable(file("data.parquet"), { columns: ["zz"] }), MissingColumnError, ErrorCode.MissingColumn);
    await expectUmbraError(() => readTable(file("sample.arrow"), { columns: ["zz"] }), MissingColumnError, ErrorCode.MissingColumn);
    const b = batchOf({ email: [SECRET] });
    const e2 = await expectUmbraError(() => keysFromBatch(b, ["phone"], { source: 'file "buyers.csv"' }), MissingColumnError, ErrorCode.MissingColumn);
    expect(e2.message).toContain("phone");
    expect(e2.message).toContain("buyers.csv");
    expect(e2.message).not.toContain(SECRET);
    await expectUmbraError(() => keysFromTable(new Table(b.schema), ["phone"]), MissingColumnError, ErrorCode.MissingColumn);
  });

  it("an unsupported key type is UnsupportedTypeError naming the column and type", async () => {
    const b = batchOf({ amount: [1.5], ok: [true] }, { amount: new Float64(), ok: new Bool() });
    const err = await expectUmbraError(() => keysFromBatch(b, ["amount"]), UnsupportedTypeError, ErrorCode.UnsupportedType);
    expect(err.message).toContain('"amount"');
    expect(err.message).toContain("Float64");
    expect(err.message).not.toContain("1.5");
    await expectUmbraError(() => keysFromBatch(b, ["ok"]), UnsupportedTypeError, ErrorCode.UnsupportedType);
    await expectUmbraError(() => keysFromBatch(b, []), InvalidArgumentError, ErrorCode.InvalidArgument);
    await expectUmbraError(() => keysFromBatch(batchOf({ v: ["x"] }), ["v"], { unicode: "NFKC" as "NFC" }), InvalidArgumentError, ErrorCode.InvalidArgument);
  });

  it("a corrupt or truncated Arrow file is UnreadableFileError", async () => {
    const garbage = file("garbage.arrow");
    await writeFile(garbage, `${SECRET} this is not arrow at all`);
    const e1 = await expectUmbraError(() => readTable(garbage), UnreadableFileError, ErrorCode.UnreadableFile);
    expect(e1.message).toContain("garbage.arrow");
    expect(e1.message).not.toContain(SECRET);

    const good = await readFile(file("sample.arrow"));
    const truncated = file("truncated.arrow");
    await writeFile(truncated, good.subarray(0, Math.floor(good.length / 2)));
    await expectUmbraError(() => readTable(truncated), UnreadableFileError, ErrorCode.UnreadableFile);

    const stream = await readFile(file("sample.arrows"));
    const cut = file("cut.arrows");
    await writeFile(cut, stream.subarray(0, stream.length - 40));
    await expectUmbraError(() => readTable(cut), UnreadableFileError, ErrorCode.UnreadableFile);

    const empty = file("empty.arrow");
    await writeFile(empty, "");
    await expectUmbraError(() => readTable(empty), UnreadableFileError, ErrorCode.UnreadableFile);
  });

  it("a corrupt Parquet file is UnreadableFileError", async () => {
    const garbage = file("garbage.parquet");
    await writeFile(garbage, `${SECRET} definitely not parquet, just some text`);
    const e1 = await expectUmbraError(() => readTable(garbage), UnreadableFileError, ErrorCode.UnreadableFile);
    expect(e1.message).not.toContain(SECRET);
    const good = await readFile(file("data.parquet"));
    const broken = Buffer.from(good);
    broken.fill(0xff, 4, Math.min(broken.length - 8, 4000)); // smash the first row group
    const smashed = file("smashed.parquet");
    await writeFile(smashed, broken);
    await expectUmbraError(() => readTable(smashed), UnreadableFileError, ErrorCode.UnreadableFile);
    const truncated = file("truncated.parquet");
    await writeFile(truncated, good.subarray(0, good.length - 20));
    await expectUmbraError(() => readTable(truncated), UnreadableFileError, ErrorCode.UnreadableFile);
  });

  it("bad read options are InvalidArgumentError", async () => {
    await expectUmbraError(() => readTable(file("proj.csv"), { batchSize: 0 }), InvalidArgumentError, ErrorCode.InvalidArgument);
    await expectUmbraError(() => readTable(file("sample.arrow"), { columnTypes: { n: "int64" } }), InvalidArgumentError, ErrorCode.InvalidArgument);
  });
});
