/**
 * The library API is one API (issue 18 item 9): the same option names across
 * runPsi, runLookup, prepareLookupTable, runJoinAggregate and
 * runFederatedAggregate; an unknown or renamed option refused at run time
 * with its name; the CLI's defaults (k = 10, |value| ≤ 2^40); results that
 * JSON.stringify; readTable's type inference; a text column to aggregate
 * refused with its name and the fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Int64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { CryptoPool, readTable, UnsupportedTypeError, type KeyOptions } from "../engine/index.js";
import {
  DEFAULT_MAX_ABS_VALUE,
  DEFAULT_MIN_GROUP_SIZE,
  lookupKeyPair,
  prepareLookupTable,
  runFederatedAggregate,
  runJoinAggregate,
  runLookup,
  runPsi,
  UnknownOptionError,
} from "../protocols/index.js";
import { AGGREGATE_DEFAULT_MAX_ABS, DEFAULT_MIN_GROUP_SIZE as CLI_MIN_GROUP_SIZE } from "../node/commands/aggregate.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
const dir = mkdtempSync(join(tmpdir(), "umbra-library-api-"));
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

const normalise: KeyOptions = { digitsOnly: true };
/** 20 buyer phones, formatted; the provider holds 16 of them (ids 0..15: 5 of grade "small", 11 of "large") as bare digits, with a spend each. */
const phone = (i: number): string => `1555000${String(1000 + i)}`;
const buyer = new Table({
  phone: vectorFromArray(Array.from({ length: 20 }, (_, i) => `+1 (555) 000-${String(1000 + i)}`), new Utf8()),
  grade: vectorFromArray(Array.from({ length: 20 }, (_, i) => (i < 5 ? "small" : "large")), new Utf8()),
});
const provider = new Table({
  phone: vectorFromArray(Array.from({ length: 16 }, (_, i) => phone(i)), new Utf8()),
  spend: vectorFromArray(Array.from({ length: 16 }, (_, i) => BigInt(100 + i)), new Int64()),
});
const secretKey = lookupKeyPair(new Uint8Array(32).fill(7), "telco.spend", 1).secretKey;
const prepared = (): Promise<Table> => prepareLookupTable({ table: provider, keys: ["phone"], labels: ["spend"], normalise, secretKey, product: "telco.spend", version: 1, pool });
const jaBase = { buyer: { table: buyer, keys: ["phone"], normalise, groupBy: "grade" }, provider: { table: provider, keys: ["phone"], normalise }, aggregates: [{ fn: "count" as const }], pool };

/** Every provider's table of a federated run: `rows` rows in category "a", 20 in "b". */
const faTable = (rows: number): Table =>
  new Table({
    cat: vectorFromArray([...Array.from({ length: rows }, () => "a"), ...Array.from({ length: 20 }, () => "b")], new Utf8()),
    x: vectorFromArray(Array.from({ length: rows + 20 }, (_, i) => BigInt(i)), new Int64()),
  });
const faBase = { providers: [{ table: faTable(3) }, { table: faTable(2) }], aggregates: [{ fn: "count" as const }, { fn: "sum" as const, column: "x" }], groupBy: { column: "cat", categories: ["a", "b"] } };

async function refusal(run: () => Promise<unknown>): Promise<UnknownOptionError> {
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnknownOptionError);
  return err as UnknownOptionError;
}

describe("one set of option names: keys and normalise on every side", () => {
  it("runPsi matches the formatted and the bare phones with normalise { digitsOnly }", async () => {
    const r = await runPsi({ buyer: { table: buyer, keys: ["phone"], normalise }, provider: { table: provider, keys: ["phone"], normalise }, pool });
    expect(r.table.numRows).toBe(16);
  });

  it("runLookup and prepareLookupTable take the same keys and normalise", async () => {
    const r = await runLookup({ buyer: { table: buyer, keys: ["phone"], normalise }, provider: { prepared: await prepared(), secretKey }, pool });
    expect(r.matchedRows).toBe(16);
  });

  it("runJoinAggregate takes the same keys and normalise on each side", async () => {
    const r = await runJoinAggregate({ ...jaBase, minGroupSize: 1 });
    expect(r.rows).toEqual([
      { grade: "large", count: 11 },
      { grade: "small", count: 5 },
    ]);
  });
});

describe("an unknown or renamed option is refused with its name", () => {
  it("runPsi: buyer.key is now buyer.keys", async () => {
    const err = await refusal(() => runPsi({ buyer: { table: buyer, key: ["phone"] }, provider: { table: provider, keys: ["phone"] } } as never));
    expect(err.message).toBe('runPsi: option "buyer.key" is now "buyer.keys"');
  });

  it("runLookup: a misspelled top-level option is named with the valid ones", async () => {
    const err = await refusal(async () => runLookup({ buyer: { table: buyer, keys: ["phone"] }, provider: { prepared: await prepared(), secretKey }, minIntersecton: 3 } as never));
    expect(err.message).toBe('runLookup: unknown option "minIntersecton"; valid options here: buyer, provider, minIntersection, job, pool, chunkElements, onProgress, tap');
  });

  it("prepareLookupTable: keyOptions is now normalise", async () => {
    const err = await refusal(() => prepareLookupTable({ table: provider, keys: ["phone"], labels: ["spend"], keyOptions: normalise, secretKey, product: "p", version: 1 } as never));
    expect(err.message).toBe('prepareLookupTable: option "keyOptions" is now "normalise"');
  });

  it("runJoinAggregate: the old top-level keyOptions points to each side's normalise", async () => {
    const err = await refusal(() => runJoinAggregate({ ...jaBase, keyOptions: normalise } as never));
    expect(err.message).toBe('runJoinAggregate: option "keyOptions" is now "buyer.normalise and provider.normalise"');
  });

  it("runJoinAggregate: a misspelled minGroupSize is refused, not ignored", async () => {
    const err = await refusal(() => runJoinAggregate({ ...jaBase, minGroupSzie: 1 } as never));
    expect(err.option).toBe("minGroupSzie");
  });

  it("runFederatedAggregate: an unknown option of a provider is named with its index", async () => {
    const err = await refusal(() => runFederatedAggregate({ ...faBase, providers: [{ table: faTable(3) }, { table: faTable(2), key: ["x"] }] } as never));
    expect(err.message).toBe('runFederatedAggregate: unknown option "providers[1].key"; valid options here: table, boxKeyPair');
  });
});

describe("the CLI's defaults", () => {
  it("the library's k and value bound are the CLI's", () => {
    expect([DEFAULT_MIN_GROUP_SIZE, DEFAULT_MAX_ABS_VALUE]).toEqual([CLI_MIN_GROUP_SIZE, AGGREGATE_DEFAULT_MAX_ABS]);
  });

  it("runJoinAggregate suppresses a group of 5 matched keys by default (k = 10)", async () => {
    const r = await runJoinAggregate(jaBase);
    expect(r.rows).toEqual([{ grade: "large", count: 11 }]);
  });

  it("runFederatedAggregate suppresses a cell of 5 rows by default (k = 10)", async () => {
    const r = await runFederatedAggregate(faBase);
    expect(r.rows.map((row) => [row["category"], row["suppressed"], row["count"]])).toEqual([
      ["a", true, null],
      ["b", false, 40],
    ]);
  });
});

describe("every result JSON.stringifies, counts as numbers", () => {
  it("runPsi, intersection", async () => {
    const r = await runPsi({ buyer: { table: buyer, keys: ["phone"], normalise }, provider: { table: provider, keys: ["phone"], normalise }, pool });
    expect((JSON.parse(JSON.stringify(r)) as { table: unknown[] }).table.length).toBe(16);
  });

  it("runPsi, cardinality", async () => {
    const r = await runPsi({ buyer: { table: buyer, keys: ["phone"], normalise }, provider: { table: provider, keys: ["phone"], normalise }, mode: "cardinality", pool });
    expect((JSON.parse(JSON.stringify(r)) as { count: unknown }).count).toBe(16);
  });

  it("runLookup: the Int64 label comes out as a number", async () => {
    const r = await runLookup({ buyer: { table: buyer, keys: ["phone"], normalise }, provider: { prepared: await prepared(), secretKey }, pool });
    expect((JSON.parse(JSON.stringify(r)) as { table: { spend: unknown }[] }).table[0]?.spend).toBe(100);
  });

  it("runJoinAggregate: the exact result's bigint counts as numbers", async () => {
    const r = await runJoinAggregate({ ...jaBase, minGroupSize: 1 });
    expect((JSON.parse(JSON.stringify(r)) as { result: { groups: { count: unknown }[] } }).result.groups.map((g) => g.count)).toEqual([11, 5]);
  });

  it("runFederatedAggregate: the exact sums as numbers", async () => {
    const r = await runFederatedAggregate({ ...faBase, minGroupSize: 1 });
    const json = JSON.parse(JSON.stringify(r)) as { rows: { sum_x: unknown }[] };
    expect(json.rows.map((row) => row.sum_x)).toEqual([0 + 1 + 2 + (0 + 1), sumB()]);
  });
});

/** Σ x over category "b" of both providers: rows 3..22 of the first, 2..21 of the second. */
function sumB(): number {
  let s = 0;
  for (let i = 3; i < 23; i++) s += i;
  for (let i = 2; i < 22; i++) s += i;
  return s;
}

describe("readTable infers numeric CSV columns on request", () => {
  const path = join(dir, "spend.csv");
  writeFileSync(path, "id,spend,zip,note\n1,2.50,007,a\n2,3,010,\n3,-1e3,123,c\n");

  it("by default every CSV column is text", async () => {
    const t = await readTable(path);
    expect(t.schema.fields.map((f) => String(f.type))).toEqual(["Utf8", "Utf8", "Utf8", "Utf8"]);
  });

  it("inferTypes: integers Int64, decimals Float64, leading zeros and words text", async () => {
    const t = await readTable(path, { inferTypes: true });
    expect(t.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(["id:Int64", "spend:Float64", "zip:Utf8", "note:Utf8"]);
  });

  it("columnTypes wins over inference for the columns it names", async () => {
    const t = await readTable(path, { inferTypes: true, columnTypes: { id: "float64" } });
    expect(t.schema.fields[0]?.type).toBeInstanceOf(Float64);
  });

  it("runJoinAggregate given a text column to aggregate names it and the fix", async () => {
    const text = new Table({ phone: vectorFromArray([phone(0)], new Utf8()), spend: vectorFromArray(["2.50"], new Utf8()) });
    const err = await runJoinAggregate({ ...jaBase, provider: { table: text, keys: ["phone"], normalise }, aggregates: [{ fn: "sum", column: "spend" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedTypeError);
    expect((err as Error).message).toBe(
      'provider table: column "spend" is text, not numbers, and cannot be aggregated: read a CSV with readTable(path, { inferTypes: true }) or readTable(path, { columnTypes: { "spend": "float64" } }) ("int64" for whole numbers)',
    );
  });
});

describe("a value beyond maxAbsValue is refused naming the column, the row and the bound, never the value", () => {
  /** The message of the error `run` rejects with, and its code. */
  async function rejection(run: () => Promise<unknown>): Promise<{ code: string; message: string }> {
    const err = (await run().then(
      () => undefined,
      (e: unknown) => e,
    )) as { code: string; message: string };
    return { code: err.code, message: err.message };
  }

  it("runJoinAggregate: the provider's row", async () => {
    const e = await rejection(() => runJoinAggregate({ ...jaBase, aggregates: [{ fn: "sum", column: "spend" }], maxAbsValue: 110, minGroupSize: 1 }));
    expect(e).toEqual({
      code: "UMBRA_VALUE_OUT_OF_RANGE",
      message: 'column "spend" of the provider table, data row 12: a value is outside maxAbsValue 110 (--max-abs-value): every |value| must be at most the bound; raise it or fix the row',
    });
  });

  it("runFederatedAggregate: the provider's row, counted in the table as given when rows with a null are left out", async () => {
    const withNull = new Table({
      cat: vectorFromArray(["a", "b", "b", "b"], new Utf8()),
      x: vectorFromArray([null, 1n, 2n, 500n], new Int64()),
    });
    const e = await rejection(() => runFederatedAggregate({ ...faBase, providers: [{ table: withNull }, { table: faTable(2) }], maxAbsValue: 100 }));
    expect(e).toEqual({
      code: "UMBRA_VALUE_OUT_OF_RANGE",
      message: 'column "x" of the provider table, data row 4: a value is outside maxAbsValue 100 (--max-abs-value): every |value| must be at most the bound; raise it or fix the row',
    });
  });
});
