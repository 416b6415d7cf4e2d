/**
 * `umbra psi` and `umbra lookup` as a user runs them: the built CLI spawned in
 * a temporary folder, on small files with duplicates, nulls, unicode and
 * composite keys, checked against plain JS joins; and the error paths (exit
 * codes, typed codes, no cell value on stderr).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int32, Table, Utf8, vectorFromArray } from "apache-arrow";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable, writeArrowIPC } from "../engine/columns/index.js";
import { preparedTableInfo } from "../protocols/index.js";
import { umbra, type CliRun } from "./helpers/cli.js";
import { mulberry32 } from "./helpers/data.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-cli-psi-"));
const file = (name: string) => join(dir, name);

/** Runs the CLI in the temp folder (async, so several runs can overlap). */
const run = (...args: string[]): Promise<CliRun> => umbra(args, {}, { cwd: dir, timeoutMs: 60_000 });

// ------------------------------------------------------------------ data

type Cell = string | null;
type Row = Record<string, unknown>;

const FIRST = ["Zoë", "José", "Ünal", "李雷", "Åsa", "Noémie", "Øyvind", "Chloé", "Renée", "Ðorđe"];

/** The e-mail of person i: unicode for some (so NFC vs NFD matters), ASCII for the rest. */
function email(i: number): string {
  return `${(FIRST[i % FIRST.length] as string).toLowerCase()}.x${i}@mail.test`;
}

/** The phone of person i as digits. */
function phone(i: number): string {
  return `0612${String(i * 37).padStart(6, "0")}`;
}

/** Written differently: padded, in NFD, upper-cased, or with punctuation. */
function spell(s: string, i: number, style: "email" | "phone"): string {
  if (style === "phone") return i % 3 === 0 ? `${s.slice(0, 2)} ${s.slice(2, 4)}-${s.slice(4, 6)}.${s.slice(6, 8)} ${s.slice(8)}` : i % 3 === 1 ? ` ${s} ` : s;
  if (i % 4 === 0) return s.normalize("NFD");
  if (i % 4 === 1) return `  ${s}\t`;
  if (i % 4 === 2) return s.toUpperCase();
  return s;
}

const COUNTRIES = ["FR", "fr", "DE", "de ", "ES"];

function csvField(v: Cell): string {
  if (v === null) return "";
  if (v === "") return '""';
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

function writeCsvFile(path: string, columns: readonly string[], rows: readonly Record<string, Cell>[]): void {
  const lines = [columns.join(","), ...rows.map((r) => columns.map((c) => csvField(r[c] ?? null)).join(","))];
  writeFileSync(path, lines.join("\r\n") + "\r\n");
}

/** Buyer: people 0..99, some twice, some with no e-mail; written in various ways. */
function buyerRows(): Record<string, Cell>[] {
  const rnd = mulberry32(7);
  const rows: Record<string, Cell>[] = [];
  for (let i = 0; i < 100; i++) {
    rows.push({
      id: `B${1000 + i}`,
      email: i % 13 === 5 ? null : i % 17 === 3 ? "   " : spell(email(i), i, "email"),
      phone: i % 19 === 4 ? null : spell(phone(i), i, "phone"),
      country: COUNTRIES[i % COUNTRIES.length] as string,
      note: `note, "quoted" ${i}`,
    });
  }
  for (let k = 0; k < 25; k++) {
    const i = Math.floor(rnd() * 100);
    const r = rows[i] as Record<string, Cell>;
    rows.push({ ...r, id: `B${2000 + k}`, email: r["email"] === null ? null : spell(email(i), i + 1, "email") });
  }
  return rows;
}

/** Provider: people 60..159 (overlap 60..99), some twice with other values, some with no e-mail. */
function providerRows(): Record<string, Cell>[] {
  const rows: Record<string, Cell>[] = [];
  for (let i = 60; i < 160; i++) {
    rows.push({
      email: i % 23 === 2 ? null : spell(email(i), i + 2, "email"),
      phone: spell(phone(i), i + 1, "phone"),
      country: COUNTRIES[(i + (i % 2)) % COUNTRIES.length] as string,
      score: `score-${i * 11}`,
      segment: i % 9 === 0 ? null : `segment-${String.fromCharCode(65 + (i % 26))}${i}`,
    });
  }
  // Second rows for some keys, spelled as the first (so both match the same buyer rows).
  for (let i = 61; i < 100; i += 4) rows.push({ email: spell(email(i), i + 2, "email"), phone: phone(i), country: "FR", score: `score-dup-${i}`, segment: `segment-dup-${i}` });
  return rows;
}

// ---------------------------------------------------------------- oracles

interface Norm {
  readonly digitsOnly?: boolean;
  readonly caseFold?: boolean;
}

/** trim, digits only, case fold, NFC; empty is no key (as engine/columns/normalise.ts documents). */
function normalise(v: unknown, o: Norm): string | null {
  if (v === null || v === undefined) return null;
  let s = String(v).trim();
  if (o.digitsOnly) s = s.replace(/[^0-9]/g, "");
  if (o.caseFold) s = s.toLowerCase();
  s = s.normalize("NFC");
  return s === "" ? null : s;
}

function keyOf(row: Row, keys: readonly string[], o: Norm): string | null {
  const parts = keys.map((k) => normalise(row[k], o));
  return parts.some((p) => p === null) ? null : JSON.stringify(parts);
}

function rowsOf(t: Table): Row[] {
  return t.toArray().map((r: { toJSON(): Row }) => ({ ...r.toJSON() }));
}

const stable = (r: Row): string => JSON.stringify(r, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
const sortedRows = (rows: readonly Row[]): string[] => rows.map(stable).sort();

/** Inner join on the buyer's rows: each buyer row whose key the provider has, once. */
function psiOracle(buyer: readonly Row[], provider: readonly Row[], keys: readonly string[], o: Norm = {}): Row[] {
  const have = new Set(provider.map((r) => keyOf(r, keys, o)).filter((k) => k !== null));
  return buyer.filter((r) => {
    const k = keyOf(r, keys, o);
    return k !== null && have.has(k);
  });
}

function cardinalityOracle(buyer: readonly Row[], provider: readonly Row[], keys: readonly string[], o: Norm = {}): number {
  const have = new Set(provider.map((r) => keyOf(r, keys, o)).filter((k) => k !== null));
  return new Set(buyer.map((r) => keyOf(r, keys, o)).filter((k) => k !== null && have.has(k))).size;
}

/** Left join: one row per matching provider row, or one row of nulls. */
function lookupOracle(buyer: readonly Row[], provider: readonly Row[], keys: readonly string[], labels: readonly string[], o: Norm = {}): Row[] {
  const out: Row[] = [];
  for (const b of buyer) {
    const k = keyOf(b, keys, o);
    const matches = k === null ? [] : provider.filter((p) => keyOf(p, keys, o) === k);
    if (matches.length === 0) out.push({ ...b, ...Object.fromEntries(labels.map((l) => [l, null])) });
    for (const m of matches) out.push({ ...b, ...Object.fromEntries(labels.map((l) => [l, m[l] ?? null])) });
  }
  return out;
}

/** The numbers of the one-line summaries. */
function summaryNumber(stdout: string, label: string): number {
  const m = new RegExp(`${label}: ([\\d,]+)`).exec(stdout);
  if (!m) throw new Error(`no "${label}" in: ${stdout}`);
  return Number((m[1] as string).replace(/,/g, ""));
}

// ------------------------------------------------------------------ tests

let buyer: Row[];
let provider: Row[];
/** Every distinctive cell value of the inputs: none may ever reach stderr. */
let secrets: string[];

beforeAll(async () => {
  const b = buyerRows();
  const p = providerRows();
  writeCsvFile(file("buyer.csv"), ["id", "email", "phone", "country", "note"], b);
  writeCsvFile(file("provider.csv"), ["email", "phone", "country", "score", "segment"], p);
  buyer = rowsOf(await readTable(file("buyer.csv")));
  provider = rowsOf(await readTable(file("provider.csv")));
  const all = [...b, ...p].flatMap((r) => Object.values(r)).filter((v): v is string => typeof v === "string");
  secrets = [...new Set(all.map((v) => v.trim()).filter((v) => v.length >= 5))];
  // Also the normalised phone digits, which the CLI might be tempted to print.
  for (let i = 0; i < 160; i++) secrets.push(phone(i));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectNoCellValue(stderr: string): void {
  const leaked = secrets.filter((s) => stderr.includes(s));
  expect(leaked).toEqual([]);
}

describe("umbra psi", () => {
  it("writes the buyer's matching rows (duplicates, nulls, unicode, padding) like a plain join", async () => {
    const r = await run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--out", "matched.csv");
    expect(r.stderr).not.toMatch(/umbra:/);
    expect(r.status).toBe(0);
    const expected = psiOracle(buyer, provider, ["email"]);
    expect(expected.length).toBeGreaterThan(10);
    // The cases are exercised: a buyer key matched twice, an NFD spelling matched, a padded one matched.
    const keys = expected.map((x) => keyOf(x, ["email"], {}));
    expect(new Set(keys).size).toBeLessThan(keys.length);
    expect(expected.some((x) => String(x["email"]) !== String(x["email"]).normalize("NFC"))).toBe(true);
    expect(expected.some((x) => String(x["email"]) !== String(x["email"]).trim())).toBe(true);
    const got = rowsOf(await readTable(file("matched.csv")));
    expect(sortedRows(got)).toEqual(sortedRows(expected));
    // The summary: rows, distinct keys on each side, bytes each way, time.
    expect(summaryNumber(r.stdout, "rows written")).toBe(expected.length);
    expect(summaryNumber(r.stdout, "buyer distinct keys")).toBe(new Set(buyer.map((x) => keyOf(x, ["email"], {})).filter((k) => k !== null)).size);
    expect(summaryNumber(r.stdout, "provider distinct keys")).toBe(new Set(provider.map((x) => keyOf(x, ["email"], {})).filter((k) => k !== null)).size);
    expect(summaryNumber(r.stdout, "bytes buyer->provider")).toBeGreaterThan(0);
    expect(summaryNumber(r.stdout, "provider->buyer")).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/\d+\.\d\d s/);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    // Progress lines on a pipe: phases and counts, never a value.
    expect(r.stderr).toMatch(/100%/);
    expectNoCellValue(r.stderr);
  });

  it("composite key with --case-fold, ristretto255, Arrow IPC out; --digits-only on phones", async () => {
    const [a, b] = await Promise.all([
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email,country", "--case-fold", "--group", "ristretto255", "--out", "composite.arrow", "--quiet"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "phone", "--digits-only", "--out", "phones.arrows", "--quiet"),
    ]);
    expect(a.stderr).toBe("");
    expect(a.status).toBe(0);
    const composite = psiOracle(buyer, provider, ["email", "country"], { caseFold: true });
    expect(composite.length).toBeGreaterThan(5);
    // Case folding matters here: without it, fewer rows match.
    expect(psiOracle(buyer, provider, ["email", "country"]).length).toBeLessThan(composite.length);
    expect(sortedRows(rowsOf(await readTable(file("composite.arrow"))))).toEqual(sortedRows(composite));

    expect(b.stderr).toBe("");
    expect(b.status).toBe(0);
    const phones = psiOracle(buyer, provider, ["phone"], { digitsOnly: true });
    expect(phones.length).toBeGreaterThan(psiOracle(buyer, provider, ["phone"]).length);
    expect(sortedRows(rowsOf(await readTable(file("phones.arrows"))))).toEqual(sortedRows(phones));
  });

  it("--engine ot (psi-ot) writes the same rows as the plain join, on a single and a composite key", async () => {
    const [single, composite] = await Promise.all([
      run("psi", "--engine", "ot", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--out", "ot.csv", "--json"),
      run("psi", "--engine", "ot", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email,country", "--case-fold", "--out", "ot-composite.arrow", "--quiet"),
    ]);
    expect(single.status).toBe(0);
    const expected = psiOracle(buyer, provider, ["email"]);
    expect(sortedRows(rowsOf(await readTable(file("ot.csv"))))).toEqual(sortedRows(expected));
    expect(JSON.parse(single.stdout)).toMatchObject({ command: "psi", engine: "ot", rows: expected.length });
    expectNoCellValue(single.stderr);
    expect(composite.stderr).toBe("");
    expect(sortedRows(rowsOf(await readTable(file("ot-composite.arrow"))))).toEqual(sortedRows(psiOracle(buyer, provider, ["email", "country"], { caseFold: true })));
  });

  it("the default engine is ot for an intersection, ecdh for --cardinality, --group or --engine ecdh; all give the join's rows", async () => {
    const base = ["psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--json"];
    const runs = await Promise.all([
      run(...base, "--out", "default.csv"),
      run(...base, "--cardinality"),
      run(...base, "--group", "ristretto255", "--out", "grouped.csv"),
      run(...base, "--engine", "ecdh", "--out", "ecdh.csv"),
    ]);
    expect(runs.map((r) => (JSON.parse(r.stdout) as { engine: string }).engine)).toEqual(["ot", "ecdh", "ecdh", "ecdh"]);
    const expected = sortedRows(psiOracle(buyer, provider, ["email"]));
    const written = await Promise.all(["default.csv", "grouped.csv", "ecdh.csv"].map(async (f) => sortedRows(rowsOf(await readTable(file(f))))));
    expect(written).toEqual([expected, expected, expected]);
  });

  it("--cardinality --rho 100 releases a noisy count: its ρ, its interval, within the noise bound of the exact count", async () => {
    // ρ = 100 keeps σ at its floor (√2), so a count of more than ten keys is never clamped (that needs noise past 6σ).
    const r = await run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--cardinality", "--rho", "100", "--json", "--quiet");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { engine: string; noisyIntersectionSize: number; clamped: boolean; interval: { low: number; high: number; level: number }; dp: { rho: string; sigma: number } };
    const exact = new Set(psiOracle(buyer, provider, ["email"]).map((x) => keyOf(x, ["email"], {}))).size;
    expect(exact).toBeGreaterThan(10);
    expect([j.engine, j.dp.rho, j.clamped, j.interval.level]).toEqual(["dp", "100/1", false, 0.95]);
    expect(j.interval.high - j.noisyIntersectionSize).toBe(j.noisyIntersectionSize - j.interval.low);
    // Noise beyond 40σ per share fails the job (federated-aggregate/dp.ts tailBound): the released count is never further.
    expect(Math.abs(j.noisyIntersectionSize - exact)).toBeLessThanOrEqual(Math.ceil(80 * j.dp.sigma) + 80);
    expectNoCellValue(r.stderr);
  });

  it("--rho applies to --cardinality only and not with --engine or --group (usage errors, exit 2)", async () => {
    const base = ["psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--rho", "1/10"];
    const runs = await Promise.all([run(...base, "--out", "x.csv"), run(...base, "--cardinality", "--engine", "ecdh"), run(...base, "--cardinality", "--epsilon", "1")]);
    expect(runs.map((r) => r.status)).toEqual([2, 2, 2]);
    expect(runs[0]?.stderr).toMatch(/apply to --cardinality only/);
    expect(runs[1]?.stderr).toMatch(/drop --engine and --group/);
    expect(runs[2]?.stderr).toMatch(/two ways to say the same budget/);
  });

  it("--engine takes ecdh or ot; ot refuses --cardinality and --group (usage errors, exit 2)", async () => {
    const base = ["psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email"];
    const [bad, card, group] = await Promise.all([
      run(...base, "--engine", "vole", "--out", "x.csv"),
      run(...base, "--engine", "ot", "--cardinality"),
      run(...base, "--engine", "ot", "--group", "ristretto255", "--out", "x.csv"),
    ]);
    expect([bad.status, card.status, group.status]).toEqual([2, 2, 2]);
    expect(bad.stderr).toMatch(/--engine must be ecdh or ot/);
    expect(card.stderr).toMatch(/--engine ot computes the intersection only/);
    expect(group.stderr).toMatch(/--group applies to --engine ecdh only/);
  });

  it("--cardinality prints the intersection size; --out is then ignored with a warning", async () => {
    const r = await run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--cardinality", "--out", "ignored.csv", "--quiet");
    expect(r.status).toBe(0);
    const n = cardinalityOracle(buyer, provider, ["email"]);
    expect(n).toBeGreaterThan(10);
    expect(r.stdout).toMatch(new RegExp(`^intersection size: ${n}$`, "m"));
    expect(summaryNumber(r.stdout, "buyer distinct keys")).toBeGreaterThan(n);
    expect(r.stderr).toMatch(/--out is ignored/);
    expect(existsSync(file("ignored.csv"))).toBe(false);
  });

  it("reads Arrow IPC and Parquet inputs", async () => {
    // Buyer as Arrow IPC (with an Int32 column), provider as Parquet (with nulls).
    const ids = buyer.map((r) => r["id"] as string);
    const emails = buyer.map((r) => (r["email"] as string | null) ?? null);
    await writeArrowIPC(
      file("buyer.arrow"),
      new Table({ id: vectorFromArray(ids, new Utf8()), email: vectorFromArray(emails, new Utf8()), n: vectorFromArray(ids.map((_, i) => i * 3), new Int32()) }),
    );
    const pEmails = provider.map((r) => (r["email"] as string | null) ?? null);
    const pScores = provider.map((r) => (r["score"] as string | null) ?? null);
    const buf = parquetWriteBuffer({
      columnData: [
        { name: "email", data: pEmails, type: "STRING" },
        { name: "score", data: pScores, type: "STRING" },
      ],
      rowGroupSize: 40,
    });
    writeFileSync(file("provider.parquet"), new Uint8Array(buf));
    const r = await run("psi", "--buyer", "buyer.arrow", "--provider", "provider.parquet", "--key", "email", "--out", "from-binary.csv", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const b = rowsOf(await readTable(file("buyer.arrow")));
    const p = rowsOf(await readTable(file("provider.parquet")));
    expect(p).toHaveLength(provider.length);
    // CSV output holds text: the Int32 column comes back as its decimal text.
    const expected = psiOracle(b, p, ["email"]).map((x) => ({ ...x, n: String(x["n"]) }));
    expect(sortedRows(rowsOf(await readTable(file("from-binary.csv"))))).toEqual(sortedRows(expected));
  });
});

describe("umbra lookup", () => {
  it("one-shot: the buyer's rows with the provider's columns, a left join", async () => {
    const r = await run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "score,segment", "--out", "enriched.csv");
    expect(r.stderr).not.toMatch(/umbra:/);
    expect(r.status).toBe(0);
    const expected = lookupOracle(buyer, provider, ["email"], ["score", "segment"]);
    // Nulls for non-matching rows and repeated rows for duplicate provider keys are both exercised.
    expect(expected.filter((x) => x["score"] === null).length).toBeGreaterThan(20);
    expect(expected.length).toBeGreaterThan(buyer.length);
    const got = rowsOf(await readTable(file("enriched.csv")));
    expect(sortedRows(got)).toEqual(sortedRows(expected));
    expect(summaryNumber(r.stdout, "buyer rows")).toBe(buyer.length);
    expect(summaryNumber(r.stdout, "matched rows")).toBe(psiOracle(buyer, provider, ["email"]).length);
    expect(summaryNumber(r.stdout, "rows written")).toBe(expected.length);
    expect(summaryNumber(r.stdout, "prepared rows")).toBe(new Set(provider.map((x) => keyOf(x, ["email"], {})).filter((k) => k !== null)).size);
    expect(r.stdout).toMatch(/lookup \d+\.\d\d s; preparation \d+\.\d\d s/);
    expectNoCellValue(r.stderr);
  });

  it("prepare (seed file created 0600, metadata kept in Arrow IPC) then lookup --prepared", async () => {
    const prep = [
      "lookup", "prepare", "--provider", "provider.csv", "--key", "phone", "--columns", "score,segment",
      "--product", "telco.phones", "--product-version", "3", "--seed-file", "master.seed", "--digits-only", "--quiet",
    ];
    const p1 = await run(...prep, "--out", "prepared.arrow");
    expect(p1.status).toBe(0);
    expect(p1.stderr).toMatch(/created seed file "master\.seed"/);
    const st = statSync(file("master.seed"));
    expect(st.size).toBe(32);
    if (process.platform !== "win32") expect(st.mode & 0o777).toBe(0o600);
    const seed = readFileSync(file("master.seed"));
    expect(summaryNumber(p1.stdout, "prepared rows")).toBe(new Set(provider.map((x) => keyOf(x, ["phone"], { digitsOnly: true })).filter((k) => k !== null)).size);

    // The schema metadata survives the Arrow IPC write/read round trip.
    const prepared = await readTable(file("prepared.arrow"));
    const info = preparedTableInfo(prepared);
    expect(info.product).toBe("telco.phones");
    expect(info.version).toBe(3);
    expect(info.labelSchema.fields.map((f) => f.name)).toEqual(["score", "segment"]);
    expect(info.rows).toBe(prepared.numRows);
    // No key or label in the clear in the prepared file.
    const bytes = readFileSync(file("prepared.arrow")).toString("latin1");
    expect(["score-", "segment-", phone(70), "telco.phones"].map((s) => bytes.includes(s))).toEqual([false, false, false, true]);

    // A second prepare reuses the seed (no new one, no message).
    const p2 = await run(...prep, "--out", "prepared2.arrows");
    expect(p2.status).toBe(0);
    expect(p2.stderr).toBe("");
    expect(readFileSync(file("master.seed")).equals(seed)).toBe(true);

    const expected = lookupOracle(buyer, provider, ["phone"], ["score", "segment"], { digitsOnly: true });
    const [l1, l2, l3] = await Promise.all([
      run("lookup", "--buyer", "buyer.csv", "--prepared", "prepared.arrow", "--seed-file", "master.seed", "--key", "phone", "--digits-only", "--out", "via-prepared.csv", "--quiet"),
      run("lookup", "--buyer", "buyer.csv", "--prepared", "prepared2.arrows", "--seed-file", "master.seed", "--key", "phone", "--digits-only", "--out", "via-prepared2.arrow", "--quiet", "--product", "telco.phones", "--product-version", "3"),
      run("lookup", "--buyer", "buyer.csv", "--prepared", "prepared.arrow", "--seed-file", "master.seed", "--key", "phone", "--out", "no-digits.csv", "--quiet"),
    ]);
    expect(l1.stderr).toBe("");
    expect(l1.status).toBe(0);
    expect(sortedRows(rowsOf(await readTable(file("via-prepared.csv"))))).toEqual(sortedRows(expected));
    expect(l2.stderr).toBe("");
    expect(l2.status).toBe(0);
    expect(sortedRows(rowsOf(await readTable(file("via-prepared2.arrow"))))).toEqual(sortedRows(expected));
    expect(l1.stdout).toMatch(/preparation: prepared file/);
    // Without --digits-only the keys are spelled differently: a warning, and fewer matches.
    expect(l3.status).toBe(0);
    expect(l3.stderr).toMatch(/normalised with digitsOnly=1/);
    expect(summaryNumber(l3.stdout, "matched rows")).toBeLessThan(summaryNumber(l1.stdout, "matched rows"));
  });

  it("refuses a prepared table for another product or version, and a missing seed file", async () => {
    const [a, b] = await Promise.all([
      run("lookup", "--buyer", "buyer.csv", "--prepared", "prepared.arrow", "--seed-file", "master.seed", "--key", "phone", "--product", "other", "--out", "x.csv", "--quiet"),
      run("lookup", "--buyer", "buyer.csv", "--prepared", "prepared.arrow", "--seed-file", "no-such.seed", "--key", "phone", "--out", "y.csv", "--quiet"),
    ]);
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/^umbra: UMBRA_INVALID_ARGUMENT: the prepared table is for product "telco.phones"/m);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/^umbra: UMBRA_UNREADABLE_FILE: cannot open seed file "no-such.seed": ENOENT/m);
    expect(existsSync(file("no-such.seed"))).toBe(false);
    expect(existsSync(file("x.csv")) || existsSync(file("y.csv"))).toBe(false);
  });

  it("stops at the provider's budget: UMBRA_BUDGET_EXCEEDED, nothing written, no value on stderr", async () => {
    const r = await run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "score", "--budget", "1", "--out", "over.csv");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^umbra: UMBRA_BUDGET_EXCEEDED: /m);
    expect(existsSync(file("over.csv"))).toBe(false);
    expectNoCellValue(r.stderr);
    // Within budget it runs and reports what is left.
    const distinct = new Set(buyer.map((x) => keyOf(x, ["email"], {})).filter((k) => k !== null)).size;
    const ok = await run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "score", "--budget", String(distinct + 5), "--out", "within.csv", "--quiet");
    expect(ok.status).toBe(0);
    expect(summaryNumber(ok.stdout, "budget remaining")).toBe(5);
  });
});

describe("errors", () => {
  it("usage errors exit 2 with the usage text", async () => {
    const runs = await Promise.all([
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--out", "o.csv"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--out", "o.csv", "--frobnicate"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--group", "p256", "--cardinality"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email,", "--cardinality"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--out", "buyer.csv"),
      run("lookup", "--buyer", "buyer.csv", "--key", "email", "--out", "o.csv"),
      run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "email,score", "--out", "o.csv"),
      run("lookup", "prepare", "--provider", "provider.csv", "--key", "email", "--columns", "score", "--product", "p", "--product-version", "-1", "--seed-file", "s.seed", "--out", "p.arrow"),
      run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "score", "--budget", "lots", "--out", "o.csv"),
    ]);
    const messages = [
      /--key is required/,
      /--out FILE is required/,
      /unknown option "--frobnicate"/,
      /--group must be x25519 or ristretto255/,
      /--key needs a comma-separated list/,
      /--out must not be one of the input files/,
      /--provider is required/,
      /column "email" is in both --key and --columns/,
      /--product-version needs (a value|an integer)/,
      /--budget needs an integer/,
    ];
    runs.forEach((r, i) => {
      expect(r.status, String(messages[i])).toBe(2);
      expect(r.stderr).toMatch(messages[i] as RegExp);
      expect(r.stderr).toMatch(/Usage:/);
      expect(r.stdout).toBe("");
    });
    expect(existsSync(file("o.csv")) || existsSync(file("s.seed"))).toBe(false);
    const help = await run("help");
    expect(help.stdout).toMatch(/^ {2}psi --buyer FILE/m);
    expect(help.stdout).toMatch(/^ {2}lookup prepare --provider FILE/m);
    const psiHelp = await run("psi", "--help");
    expect(psiHelp.status).toBe(0);
    expect(psiHelp.stdout).toMatch(/--cardinality/);
  });

  it("a missing file, a missing key column, an unwritable format: exit 1 with the code, no value on stderr", async () => {
    const runs = await Promise.all([
      run("psi", "--buyer", "nope.csv", "--provider", "provider.csv", "--key", "email", "--out", "o.csv"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "mail", "--out", "o.csv"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "note", "--cardinality"),
      run("lookup", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--columns", "score,nope", "--out", "o.csv"),
      run("psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--out", "o.xlsx"),
      run("lookup", "prepare", "--provider", "missing.parquet", "--key", "email", "--columns", "score", "--product", "p", "--product-version", "1", "--seed-file", "s.seed", "--out", "p.arrow"),
    ]);
    const expected = [
      /^umbra: UMBRA_UNREADABLE_FILE: cannot open file "nope.csv": ENOENT$/m,
      /^umbra: UMBRA_MISSING_COLUMN: column "mail" not found in provider file "provider.csv"; columns found: "email", /m,
      /^umbra: UMBRA_MISSING_COLUMN: column "note" not found in provider file "provider.csv"; columns found: "email", /m,
      /^umbra: UMBRA_MISSING_COLUMN: column "nope" not found in provider file "provider.csv"; columns found: "email", /m,
      /^umbra: UMBRA_UNSUPPORTED_FORMAT: file "o.xlsx": unsupported file extension ".xlsx" \(files are read and written as .arrow, .feather, .ipc, .arrows, .csv or .parquet\)$/m,
      /^umbra: UMBRA_UNREADABLE_FILE: cannot open file "missing.parquet": ENOENT$/m,
    ];
    runs.forEach((r, i) => {
      expect(r.status, String(expected[i])).toBe(1);
      expect(r.stderr).toMatch(expected[i] as RegExp);
      expect(r.stderr).not.toMatch(/Usage:|\n\s+at /);
      expectNoCellValue(r.stderr);
    });
    // The seed file is only created once the provider's file has been read.
    expect(existsSync(file("s.seed")) || existsSync(file("o.csv"))).toBe(false);
    // A key column missing on the buyer's side only is named with the buyer's file.
    writeCsvFile(file("provider-note.csv"), ["note", "score"], [{ note: "n-1", score: "s-1" }]);
    const b = await run("psi", "--buyer", "provider.csv", "--provider", "provider-note.csv", "--key", "note", "--cardinality");
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/^umbra: UMBRA_MISSING_COLUMN: column "note" not found in buyer file "provider.csv"; columns found: "email", "phone", "country", "score", "segment"$/m);
  });
});
