/**
 * Issue 18 (the newcomer path), the data side of the local commands: data
 * errors that say where and what to do (file, column, line or data row,
 * bound, flag — never the value), the output path checked before any work,
 * notes on what a run leaves out (nulls, rows outside --categories, values
 * --scale rounds) and warnings on inputs that cannot match, negative
 * numbers, formats (Parquet output), --delimiter, lookup --prefix and --json.
 * CLI cases run the built CLI (`npm run build` first) in a temporary folder;
 * engine-level changes have unit tests beside them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csvLineOfRow, readTable, writeTable } from "../engine/columns/index.js";
import { CsvProblem, ErrorCode, MalformedCsvError, MissingColumnError, UmbraError } from "../engine/errors.js";
import { parseOptions, UsageError } from "../node/commands/args.js";
import { faLocalVector, resolveFaParams } from "../protocols/federated-aggregate/index.js";
import { umbra, type CliRun } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-newcomer-data-"));
const file = (name: string) => join(dir, name);
const run = (...args: string[]): Promise<CliRun> => umbra(args, {}, { cwd: dir, timeoutMs: 90_000 });

/** A value no message may quote. */
const SECRET = "200000000";
const STACK = /\n\s+at /;

function write(name: string, text: string): void {
  writeFileSync(file(name), text);
}

beforeAll(async () => {
  write("big.csv", `id,region,amt\n1,north,10\n2,south,${SECRET}\n3,east,5\n`);
  write("nulls.csv", "id,region,amt\n1,north,10\n2,north,\n3,north,5\n4,south,7\n");
  write("decimals.csv", "id,amt\n1,10.25\n2,3.5\n3,1\n");
  write("semi.csv", "name;phone;amt\nann;111;2\nbob;222;3\n");
  write("phones.csv", "phone,amt\n111,2\n333,4\n");
  write("semi-phones.csv", "phone;amt\n111;2\n333;4\n");
  write("tabs.tsv.csv", "id\tamt\n1\t10\n2\t20\n");
  write("regions.csv", "id,region,amt\n1,north,1\n2,south,2\n3,east,3\n4,west,4\n5,,5\n6,north,6\n");
  write("header-only.csv", "phone,amt\n");
  write("blank-keys.csv", "phone,amt\n,1\n  ,2\n");
  write("buyer-amt.csv", "phone,amt\n111,9\n222,8\n");
  write("join-buyer.csv", "id,segment\n1,a\n2,a\n3,a\n");
  write("join-provider.csv", `id,amt\n1,10\n2,\n3,${SECRET}\n`);
  await writeTable(file("big.arrow"), new Table({ id: vectorFromArray(["1", "2", "3"], new Utf8()), amt: vectorFromArray([10n, 200000000n, 5n], new Int64()) }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exit code, the message parts, no stack trace, no secret value. */
function expectError(r: CliRun, status: number, parts: readonly string[]): void {
  expect({ status: r.status, stdout: r.stdout }).toEqual({ status, stdout: "" });
  for (const p of parts) expect(r.stderr).toContain(p);
  expect(r.stderr).not.toMatch(STACK);
  expect(r.stderr).not.toContain(SECRET);
}

describe("item 3: data errors say where and what to do", () => {
  it("aggregate: a value above --max-abs-value names the file, column, CSV line, bound and flag, not the value", async () => {
    const r = await run("aggregate", "--provider", "big.csv", "--provider", "big.csv", "--agg", "sum(amt)", "--max-abs-value", "100", "--out", "o.csv");
    expectError(r, 1, ['UMBRA_VALUE_OUT_OF_RANGE: column "amt" of provider 1 file "big.csv", line 3: a value is outside --max-abs-value 100', "raise --max-abs-value or fix the row"]);
  });

  it("aggregate: from an Arrow file the place is the data row", async () => {
    const r = await run("aggregate", "--provider", "big.arrow", "--provider", "big.arrow", "--agg", "sum(amt)", "--max-abs-value", "100", "--out", "o.csv");
    expectError(r, 1, ['UMBRA_VALUE_OUT_OF_RANGE: column "amt" of provider 1 file "big.arrow", data row 2: a value is outside --max-abs-value 100']);
  });

  it("join-aggregate: the same for the provider's aggregated column", async () => {
    const r = await run("join-aggregate", "--buyer", "join-buyer.csv", "--provider", "join-provider.csv", "--key", "id", "--agg", "sum(amt)", "--max-abs-value", "100", "--min-group-size", "1", "--out", "o.csv");
    expectError(r, 1, ['UMBRA_VALUE_OUT_OF_RANGE: column "amt" of provider file "join-provider.csv", line 4: a value is outside --max-abs-value 100']);
  });

  it("decimals in an integer column: the line, the column and --scale N", async () => {
    const r = await run("aggregate", "--provider", "decimals.csv", "--provider", "decimals.csv", "--agg", "sum(amt)", "--out", "o.csv");
    expectError(r, 1, ['UMBRA_MALFORMED_CSV: malformed CSV at line 2: file "decimals.csv": column "amt" is not a valid int64 (it has decimals): give --scale N (the number of decimal digits to keep)']);
  });

  it("a semicolon file: the columns found and --delimiter ';', for the buyer and the provider", async () => {
    const [buyer, provider] = await Promise.all([
      run("psi", "--buyer", "semi.csv", "--provider", "phones.csv", "--key", "phone", "--out", "o.csv"),
      run("psi", "--buyer", "phones.csv", "--provider", "semi.csv", "--key", "phone", "--out", "o.csv"),
    ]);
    expectError(buyer, 1, ['UMBRA_MISSING_COLUMN: column "phone" not found in buyer file "semi.csv"; columns found: "name;phone;amt"; the header looks separated by ";": give --delimiter \';\'']);
    expectError(provider, 1, ['UMBRA_MISSING_COLUMN: column "phone" not found in provider file "semi.csv"; columns found: "name;phone;amt"; the header looks separated by ";": give --delimiter \';\'']);
  });
});

describe("item 4: the output path is checked before any work", () => {
  it("a missing folder: UMBRA_UNWRITABLE_FILE with the path as given, before the inputs are read (absent here)", async () => {
    const runs = await Promise.all([
      run("psi", "--buyer", "absent.csv", "--provider", "absent.csv", "--key", "phone", "--out", "no-such-folder/o.csv"),
      run("lookup", "--buyer", "absent.csv", "--provider", "absent.csv", "--key", "phone", "--columns", "amt", "--out", "no-such-folder/o.csv"),
      run("aggregate", "--provider", "absent.csv", "--provider", "absent2.csv", "--agg", "count", "--out", "no-such-folder/o.csv"),
      run("join-aggregate", "--buyer", "absent.csv", "--provider", "absent.csv", "--key", "id", "--agg", "count", "--out", "no-such-folder/o.csv"),
    ]);
    for (const r of runs) expectError(r, 1, ['UMBRA_UNWRITABLE_FILE: cannot write --out "no-such-folder/o.csv": its folder "no-such-folder" does not exist (ENOENT)']);
  });

  it("a folder as --out: UMBRA_UNWRITABLE_FILE saying so", async () => {
    mkdirSync(file("a-folder.csv"), { recursive: true });
    const r = await run("psi", "--buyer", "absent.csv", "--provider", "absent.csv", "--key", "phone", "--out", "a-folder.csv");
    expectError(r, 1, ['UMBRA_UNWRITABLE_FILE: cannot write --out "a-folder.csv": it is a folder; give a file name']);
  });
});

describe("item 10: nothing is lost silently", () => {
  it("aggregate and join-aggregate both skip nulls in an aggregated column, with a note naming the column and file", async () => {
    const [agg, ja] = await Promise.all([
      run("aggregate", "--provider", "nulls.csv", "--provider", "nulls.csv", "--agg", "count,sum(amt)", "--min-group-size", "1", "--max-abs-value", "100", "--out", "agg-nulls.csv"),
      run("join-aggregate", "--buyer", "join-buyer.csv", "--provider", "join-provider.csv", "--key", "id", "--agg", "count,sum(amt)", "--min-group-size", "1", "--out", "ja-nulls.csv"),
    ]);
    expect(agg.status).toBe(0);
    expect(agg.stderr).toContain('umbra: note: 1 row(s) of provider 1 file "nulls.csv" have no value in column "amt": those rows are skipped');
    expect(ja.status).toBe(0);
    expect(ja.stderr).toContain('umbra: note: 1 row(s) of provider file "join-provider.csv" have no value in column "amt": SUM/AVG/VAR/STDDEV of "amt" skip those rows, as SQL skips nulls');
    const aggOut = await readTable(file("agg-nulls.csv"));
    // 2 providers × (10 + 5 + 7): the null row is out of the sum and of the cell's count.
    expect([aggOut.getChild("count")?.get(0), aggOut.getChild("sum_amt")?.get(0)].map(String)).toEqual(["6", "44"]);
    const jaOut = await readTable(file("ja-nulls.csv"));
    expect([jaOut.getChild("count")?.get(0), jaOut.getChild("sum_amt")?.get(0)].map(String)).toEqual(["3", String(10 + 200000000)]);
  });

  it("aggregate --categories: a note counts the rows outside them (and no group value)", async () => {
    const r = await run("aggregate", "--provider", "regions.csv", "--provider", "regions.csv", "--agg", "count", "--group-by", "region", "--categories", "north,south", "--min-group-size", "1", "--out", "o.csv");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('umbra: note: 3 row(s) of provider 1 file "regions.csv" have a --group-by "region" value not in --categories (or none): they are in no cell');
    expect(r.stderr).not.toContain("east");
  });

  it("--scale 1 on 2-decimal values: a warning names the column, the count and --scale 2", async () => {
    const r = await run("aggregate", "--provider", "decimals.csv", "--provider", "decimals.csv", "--agg", "sum(amt)", "--scale", "1", "--min-group-size", "1", "--quiet", "--out", "o.csv");
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(
      'umbra: warning: 1 value(s) of column "amt" of provider 1 file "decimals.csv" have more decimal digits than --scale keeps; each was rounded half away from zero: give --scale 2 to keep them\n' +
        'umbra: warning: 1 value(s) of column "amt" of provider 2 file "decimals.csv" have more decimal digits than --scale keeps; each was rounded half away from zero: give --scale 2 to keep them\n',
    );
  });

  it("a header-only buyer file and an all-blank key column: warnings naming file and column", async () => {
    const [empty, blank] = await Promise.all([
      run("psi", "--buyer", "header-only.csv", "--provider", "phones.csv", "--key", "phone", "--out", "o1.csv", "--quiet"),
      run("psi", "--buyer", "blank-keys.csv", "--provider", "phones.csv", "--key", "phone", "--out", "o2.csv", "--quiet"),
    ]);
    expect({ status: empty.status, stderr: empty.stderr }).toEqual({ status: 0, stderr: 'umbra: warning: buyer file "header-only.csv" has no data rows (a header only): nothing can match\n' });
    expect({ status: blank.status, stderr: blank.stderr }).toEqual({ status: 0, stderr: 'umbra: warning: key column "phone" of buyer file "blank-keys.csv" is blank in every row: no row can match\n' });
  });
});

describe("item 11: small things on the command line", () => {
  it("--min-group-size -3 says it needs an integer of at least 1", async () => {
    const r = await run("aggregate", "--provider", "big.csv", "--provider", "big.csv", "--agg", "count", "--min-group-size", "-3", "--out", "o.csv");
    expectError(r, 2, ["umbra: --min-group-size needs an integer of at least 1", "Usage:"]);
  });

  it("an .xlsx path: the formats read and written, .parquet among them", async () => {
    const r = await run("psi", "--buyer", "phones.csv", "--provider", "phones.csv", "--key", "phone", "--out", "o.xlsx");
    expectError(r, 1, ['UMBRA_UNSUPPORTED_FORMAT: file "o.xlsx": unsupported file extension ".xlsx" (files are read and written as .arrow, .feather, .ipc, .arrows, .csv or .parquet)']);
  });

  it("Parquet output: psi writes the buyer's matching rows as .parquet", async () => {
    const r = await run("psi", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--out", "o.parquet", "--quiet");
    expect(r.status).toBe(0);
    const t = await readTable(file("o.parquet"));
    expect(t.schema.fields.map((f) => f.name)).toEqual(["phone", "amt"]);
    expect([t.numRows, t.getChild("phone")?.get(0), t.getChild("amt")?.get(0)]).toEqual([1, "111", "9"]);
  });

  it("--delimiter: a semicolon file read with --delimiter ';', a tab file with --delimiter tab", async () => {
    const [semi, tab] = await Promise.all([
      run("psi", "--buyer", "semi.csv", "--provider", "semi-phones.csv", "--key", "phone", "--delimiter", ";", "--cardinality", "--quiet"),
      run("aggregate", "--provider", "tabs.tsv.csv", "--provider", "tabs.tsv.csv", "--agg", "sum(amt)", "--min-group-size", "1", "--delimiter", "tab", "--quiet", "--out", "tab-out.csv"),
    ]);
    expect(semi.status).toBe(0);
    expect(semi.stdout.split("\n")[0]).toBe("intersection size: 1");
    expect(tab.status).toBe(0);
    expect(String((await readTable(file("tab-out.csv"))).getChild("sum_amt")?.get(0))).toBe("60");
  });

  it("lookup: a column in both files is refused with --prefix named; with --prefix the provider's columns are renamed", async () => {
    const [clash, prefixed] = await Promise.all([
      run("lookup", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--columns", "amt", "--out", "l1.csv"),
      run("lookup", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--columns", "amt", "--prefix", "p_", "--out", "l2.csv", "--quiet"),
    ]);
    expectError(clash, 1, ['UMBRA_INVALID_ARGUMENT: column "amt" is both a buyer column and a provider column; give --prefix P to name the provider\'s columns P<column> in the output']);
    expect(prefixed.status).toBe(0);
    const t = await readTable(file("l2.csv"));
    expect(t.schema.fields.map((f) => f.name)).toEqual(["phone", "amt", "p_amt"]);
    expect([t.getChild("amt")?.get(0), t.getChild("p_amt")?.get(0), t.getChild("p_amt")?.get(1)]).toEqual(["9", "2", null]);
  });
});

describe("--json: one object on stdout", () => {
  it("psi, psi --cardinality, lookup, aggregate and join-aggregate", async () => {
    const [psi, card, lookup, agg, ja] = await Promise.all([
      run("psi", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--out", "j1.csv", "--json"),
      run("psi", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--cardinality", "--json"),
      run("lookup", "--buyer", "buyer-amt.csv", "--provider", "phones.csv", "--key", "phone", "--columns", "amt", "--prefix", "p_", "--out", "j2.csv", "--json"),
      run("aggregate", "--provider", "regions.csv", "--provider", "regions.csv", "--agg", "count", "--group-by", "region", "--categories", "north,south", "--min-group-size", "1", "--out", "j3.csv", "--json"),
      run("join-aggregate", "--buyer", "join-buyer.csv", "--provider", "join-provider.csv", "--key", "id", "--agg", "count", "--min-group-size", "1", "--out", "j4.csv", "--json"),
    ]);
    for (const r of [psi, card, lookup, agg, ja]) {
      expect(r.status).toBe(0);
      expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    }
    expect(JSON.parse(psi.stdout)).toMatchObject({ command: "psi", rows: 1, out: "j1.csv", buyerDistinctKeys: 2, providerDistinctKeys: 2, notes: [] });
    expect(JSON.parse(card.stdout)).toMatchObject({ command: "psi", intersectionSize: 1, out: null, notes: [] });
    expect(JSON.parse(lookup.stdout)).toMatchObject({ command: "lookup", buyerRows: 2, matchedRows: 1, rows: 2, out: "j2.csv", notes: [] });
    const a = JSON.parse(agg.stdout) as { command: string; cells: number; rowsPerProvider: number[]; out: string; notes: { level: string; message: string }[] };
    expect({ command: a.command, cells: a.cells, rowsPerProvider: a.rowsPerProvider, out: a.out }).toEqual({ command: "aggregate", cells: 2, rowsPerProvider: [6, 6], out: "j3.csv" });
    expect(a.notes.map((n) => n.level)).toEqual(["note", "note"]);
    expect(a.notes[0]?.message).toContain('3 row(s) of provider 1 file "regions.csv" have a --group-by "region" value not in --categories');
    expect(agg.stderr).not.toContain("umbra: note:");
    expect(JSON.parse(ja.stdout)).toMatchObject({ command: "join-aggregate", groups: 1, k: 1, rows: { buyer: 3, provider: 3 }, out: "j4.csv" });
  });
});

// ------------------------------------------------------------------ engine and argument units

describe("engine: CSV delimiter, line numbers, error details, Parquet output", () => {
  it("readTable reads a semicolon CSV with delimiter ';'", async () => {
    const t = await readTable(file("semi.csv"), { delimiter: ";" });
    expect(t.schema.fields.map((f) => f.name)).toEqual(["name", "phone", "amt"]);
    expect(t.numRows).toBe(2);
  });

  it("a missing column of a CSV read with the wrong delimiter lists the columns found and the delimiter its header seems to use", async () => {
    let caught: unknown;
    await readTable(file("semi.csv"), { columns: ["phone"] }).catch((err: unknown) => (caught = err));
    expect(caught).toBeInstanceOf(MissingColumnError);
    const e = caught as MissingColumnError;
    expect([e.code, e.found, e.delimiter]).toEqual([ErrorCode.MissingColumn, ["name;phone;amt"], ";"]);
  });

  it("an int64 field with decimals is MalformedCsvError marked Decimals with its column", async () => {
    let caught: unknown;
    await readTable(file("decimals.csv"), { columnTypes: { amt: "int64" } }).catch((err: unknown) => (caught = err));
    expect(caught).toBeInstanceOf(MalformedCsvError);
    const e = caught as MalformedCsvError;
    expect([e.line, e.column, e.problem]).toEqual([2, "amt", CsvProblem.Decimals]);
    expect(e.message).not.toContain("10.25");
  });

  it("csvLineOfRow counts physical lines: blank lines and quoted line breaks included", async () => {
    write("lines.csv", 'id,note\n1,"two\nlines"\n\n2,x\n3,y\n');
    expect(await Promise.all([0, 1, 2, 3].map((r) => csvLineOfRow(file("lines.csv"), r)))).toEqual([3, 5, 6, undefined]);
  });

  it("writeTable writes .parquet that reads back the same (nulls kept)", async () => {
    const t = new Table({ s: vectorFromArray(["a", null, "c"], new Utf8()), n: vectorFromArray([1n, null, -3n], new Int64()) });
    await writeTable(file("round.parquet"), t);
    const back = await readTable(file("round.parquet"));
    expect([0, 1, 2].map((i) => [back.getChild("s")?.get(i), back.getChild("n")?.get(i)])).toEqual([["a", 1n], [null, null], ["c", -3n]]);
  });

  it("writing into a missing folder is UMBRA_UNWRITABLE_FILE", async () => {
    let caught: unknown;
    await writeTable(file("no-folder/x.csv"), new Table({ s: vectorFromArray(["a"], new Utf8()) })).catch((err: unknown) => (caught = err));
    expect((caught as UmbraError).code).toBe(ErrorCode.UnwritableFile);
  });
});

describe("federated-aggregate: a row with a null in an aggregated column is skipped", () => {
  it("faLocalVector leaves the row out of the count and the sum", () => {
    const s = resolveFaParams({ job: "j1", providers: 2, minProviders: 2, minGroupSize: 1, maxRowsPerProvider: 10, aggregates: [{ fn: "count" }, { fn: "sum", column: "amt" }], maxAbsValue: 100n });
    const table = new Table({ amt: vectorFromArray([10n, null, 5n], new Int64()) });
    expect(faLocalVector(s, table)).toEqual(["2", "15"]);
  });
});

describe("args: negative numbers reach the option's check", () => {
  const spec = { "--min-group-size": "string", "--scale": "string" } as const;
  it("--min-group-size -3 and --scale -1 are refused by their own rule", () => {
    const k = parseOptions(["--min-group-size", "-3"], spec, "usage");
    expect(() => k?.integer("--min-group-size", Number.MAX_SAFE_INTEGER, 1)).toThrow(new UsageError("--min-group-size needs an integer of at least 1", "usage"));
    const s = parseOptions(["--scale", "-1"], spec, "usage");
    expect(() => s?.integer("--scale", 9)).toThrow(new UsageError("--scale needs an integer from 0 to 9", "usage"));
  });
});
