/**
 * Issue 18, tried as a new user with awkward files of their own: a buyer's
 * phones written "+86 138-0000-0007" against a provider's "8613800000007",
 * a header with spaces, a byte-order mark and Windows line endings, a file
 * separated by semicolons given to `policy check --data`, `job result` of a
 * job that failed. Each case runs the built CLI (`npm run build` first) in a temporary folder and asserts the
 * exit code, the message and that no stack trace is printed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { describeStatus } from "../node/commands/jobs.js";
import { umbra, type CliRun } from "./helpers/cli.js";
import { api, startExchange, startParty, tokenFileOf, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-newcomer-trial-"));
const run = (...args: string[]): Promise<CliRun> => umbra(args, {}, { cwd: dir, timeoutMs: 90_000 });
const STACK = /\n\s+at /;
/** A key no message may quote. */
const SECRET = "8613800000007";

beforeAll(() => {
  let bank = "\ufeffCustomer ID,msisdn,Segment\r\n";
  let telco = "msisdn,spend\n";
  for (let i = 0; i < 30; i++) {
    const p = String(13800000000 + 7 * i);
    bank += `c${i},+86 ${p.slice(0, 3)}-${p.slice(3, 7)}-${p.slice(7)},${"AB"[i % 2]}\r\n`;
    if (i % 3 !== 0) telco += `86${p},${(10 + i * 1.25).toFixed(2)}\n`;
  }
  writeFileSync(join(dir, "bank.csv"), bank);
  writeFileSync(join(dir, "telco.csv"), telco);
  writeFileSync(join(dir, "telco-semi.csv"), telco.replace(/,/g, ";"));
  writeFileSync(join(dir, "policy.json"), JSON.stringify({ allowedProtocols: ["psi"], allowedBuyers: ["bank"], keyColumns: ["msisdn"], outputColumns: ["spend"] }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("local commands: keys of different shapes", () => {
  const WARNING = "umbra: warning: the provider's msisdn keys are plain digits and the buyer's contain separators: add --digits-only (nothing may match without it)";

  it("psi warns that formatted phones cannot match plain digits, with the flag to add", async () => {
    const r = await run("psi", "--buyer", "bank.csv", "--provider", "telco.csv", "--key", "msisdn", "--out", "m.csv", "--quiet");
    expect({ status: r.status, warned: r.stderr.includes(WARNING), stack: STACK.test(r.stderr), secret: r.stderr.includes(SECRET) }).toEqual({ status: 0, warned: true, stack: false, secret: false });
    expect(r.stdout).toMatch(/^rows written: 0 to m\.csv/);
  });

  it("psi with --digits-only does not warn and matches every provider key (BOM, CRLF and a spaced header read as they come)", async () => {
    const r = await run("psi", "--buyer", "bank.csv", "--provider", "telco.csv", "--key", "msisdn", "--digits-only", "--out", "m2.csv", "--quiet");
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const lines = readFileSync(join(dir, "m2.csv"), "utf8").trimEnd().split("\r\n"); // CSV out: RFC 4180 line endings
    expect({ header: lines[0], rows: lines.length - 1 }).toEqual({ header: "Customer ID,msisdn,Segment", rows: 20 });
  });

  it("join-aggregate --json carries the same warning in its notes", async () => {
    const r = await run("join-aggregate", "--buyer", "bank.csv", "--provider", "telco.csv", "--key", "msisdn", "--agg", "count", "--group-by", "Segment", "--out", "j.csv", "--quiet", "--json");
    expect(r.status).toBe(0);
    const notes = (JSON.parse(r.stdout) as { notes: { level: string; message: string }[] }).notes;
    expect(notes).toContainEqual({ level: "warning", message: WARNING.replace("umbra: warning: ", "") });
  });

  it("lookup warns too", async () => {
    const r = await run("lookup", "--buyer", "bank.csv", "--provider", "telco.csv", "--key", "msisdn", "--columns", "spend", "--out", "l.csv", "--quiet");
    expect({ status: r.status, warned: r.stderr.includes(WARNING), stack: STACK.test(r.stderr) }).toEqual({ status: 0, warned: true, stack: false });
  });
});

describe("policy check --data with a file separated by semicolons", () => {
  it("lists the columns it found and says the node path reads commas, with what to do", async () => {
    const r = await run("policy", "check", "policy.json", "--data", "telco-semi.csv");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr).toContain('keyColumns[0]: column "msisdn" is not in the dataset\'s schema');
    expect(r.stderr).toContain(
      'columns of telco-semi.csv: "msisdn;spend"; its header looks separated by ";": dataset register and job submit read CSV separated by commas, so save it with commas (or as .arrow/.parquet)',
    );
    expect(r.stderr).not.toMatch(STACK);
  });

  it("names the columns found when the policy names a column the file lacks", async () => {
    const r = await run("policy", "check", "policy.json", "--data", "bank.csv");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('columns of bank.csv: "Customer ID", "msisdn", "Segment"\n');
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("a missing column explained", () => {
  it("--delimiter given while the other file is separated by another character: save that file with it, not a contradicting --delimiter", async () => {
    const r = await run("psi", "--buyer", "telco-semi.csv", "--provider", "telco.csv", "--key", "msisdn", "--delimiter", ";", "--out", "x.csv", "--quiet");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr).toContain(
      'umbra: UMBRA_MISSING_COLUMN: column "msisdn" not found in provider file "telco.csv"; columns found: "msisdn,spend"; the header looks separated by ",", but --delimiter \';\' applies to every CSV input of the run: save this file separated by ";" (or as .arrow/.parquet)',
    );
    expect(r.stderr).not.toMatch(STACK);
  });

  it("a column that differs only in case: did you mean", async () => {
    const r = await run("join-aggregate", "--buyer", "bank.csv", "--provider", "telco.csv", "--key", "msisdn", "--digits-only", "--agg", "count", "--group-by", "segment", "--out", "x.csv", "--quiet");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr).toContain('column "segment" not found in buyer file "bank.csv"; columns found: "Customer ID", "msisdn", "Segment"; did you mean "Segment"? (column names are matched exactly: case and spaces count)');
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("the node path's CSV separator in --help", () => {
  it("dataset register and job submit say their CSV files are separated by commas", async () => {
    const [reg, job] = await Promise.all([run("dataset", "register", "--help"), run("job", "submit", "--help")]);
    expect([reg.status, job.status]).toEqual([0, 0]);
    expect(reg.stdout.replace(/\s+/g, " ")).toContain("a CSV file must be separated by commas (or save it as .arrow/.parquet)");
    expect(job.stdout.replace(/\s+/g, " ")).toContain("a CSV file separated by commas: no --delimiter on a node job");
  });
});

describe("a composite key in a policy", () => {
  const policy = (keyColumns: unknown) => JSON.stringify({ allowedProtocols: ["psi"], allowedBuyers: ["bank"], keyColumns, outputColumns: [] });

  it("policy check tells a composite key (first+second) from two keys each alone (first or second)", async () => {
    writeFileSync(join(dir, "flat.json"), policy(["First Name", "Birth Date"]));
    writeFileSync(join(dir, "nested.json"), policy([["First Name", "Birth Date"], "msisdn"]));
    const [flat, nested] = await Promise.all([run("policy", "check", "flat.json"), run("policy", "check", "nested.json")]);
    expect([flat.status, flat.stdout.trim()]).toEqual([0, "ok: allows psi to 1 buyer; keys First Name or Birth Date; output columns none; budget 100 jobs per buyer; expires never"]);
    expect([nested.status, nested.stdout.trim()]).toEqual([0, "ok: allows psi to 1 buyer; keys First Name+Birth Date or msisdn; output columns none; budget 100 jobs per buyer; expires never"]);
  });

  it("policy init's comment writes a composite key as an array inside the array, as the exchange reads it", async () => {
    const r = await run("policy", "init", "--protocol", "psi");
    expect(r.status).toBe(0);
    const comment = (JSON.parse(r.stdout) as { "//": string[] })["//"].find((l) => l.startsWith("keyColumns:"));
    expect(comment).toBe(
      'keyColumns: the keys a buyer may join on, each one column or a composite key (an array inside the array): replace "phone" with yours; [["first_name", "birth_date"]] allows first_name + birth_date together, while ["first_name", "birth_date"] allows either column alone.',
    );
  });
});

describe("did you mean", () => {
  it("a key column with another spelling (customer_id for \"Customer ID\"): the column found", async () => {
    const r = await run("psi", "--buyer", "bank.csv", "--provider", "bank.csv", "--key", "customer_id", "--out", "x.csv", "--quiet");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr).toContain('column "customer_id" not found in provider file "bank.csv"; columns found: "Customer ID", "msisdn", "Segment"; did you mean "Customer ID"?');
    expect(r.stderr).not.toMatch(STACK);
  });

  it("a config file's key in camel case: the flag's name it meant", async () => {
    writeFileSync(join(dir, "party.json"), JSON.stringify({ name: "bank", logLevel: "warn" }));
    const r = await run("party", "start", "--config", "party.json");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr).toMatch(/^umbra: UMBRA_INVALID_CONFIG: config file "party\.json": unknown key "logLevel" \(valid keys: log-level, port, [a-z, -]+\); did you mean "log-level"\?$/m);
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("job result of a job with no result", () => {
  const pool = new CryptoPool({ threads: 1 });
  let x: TestExchange;
  let bank: TestParty;
  let telco: TestParty;
  let bankApi: string[];
  let failed: string;

  beforeAll(async () => {
    x = await startExchange({ pool });
    [bank, telco] = [await startParty("bank", x.url, pool), await startParty("telco", x.url, pool)];
    bankApi = ["--party", bank.url, "--token-file", tokenFileOf(bank)];
    writeFileSync(join(telco.dataDir, "telco.csv"), "msisdn\n8613800000000\n");
    // The bank's file is separated by semicolons: the job fails on its missing key column.
    writeFileSync(join(bank.dataDir, "bank.csv"), "msisdn;segment\n8613800000000;A\n");
    const policy = { allowedProtocols: ["psi"], allowedBuyers: ["bank"], keyColumns: ["msisdn"], outputColumns: [] };
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "telco.csv", policy })).status).toBe(201);
    const job = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "bank.csv", providerDataset: "telco.telco.csv", params: { keyColumns: ["msisdn"] } });
    failed = job.body.id;
    expect((await waitForJob(bank.url, failed)).state).toBe("failed");
  }, 60_000);

  afterAll(async () => {
    for (const p of [bank, telco]) await p?.close().catch(() => undefined);
    await x?.close();
    await pool.close();
  });

  it("a failed job: its state and reason, and job status to see more (was: \"no result for this job here\")", async () => {
    const r = await run("job", "result", failed, ...bankApi, "--out", "x.csv");
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    expect(r.stderr.trim()).toBe(`umbra: UMBRA_NOT_FOUND: job ${failed} failed (UMBRA_MISSING_COLUMN), so it has no result; umbra job status ${failed} shows each party's last phase`);
  });

  it("dataset list tells keys each alone from a composite key, as policy check does", async () => {
    writeFileSync(join(telco.dataDir, "people.csv"), "msisdn,first,birth\n8613800000000,Ana,1990-01-01\n");
    const policy = { allowedProtocols: ["psi"], allowedBuyers: ["bank"], keyColumns: ["msisdn", ["first", "birth"]], outputColumns: [] };
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "people.csv", policy })).status).toBe(201);
    const r = await run("dataset", "list", ...bankApi);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^telco\.people\.csv\s+telco\s+1\s+psi\s+msisdn or first\+birth\s+-\s+10\s+never$/m);
  });

  it("job status of a job that failed on a data error: what to do, and where its detail is (the reason is the code alone)", async () => {
    const r = await run("job", "status", failed, ...bankApi);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      '  reason: UMBRA_MISSING_COLUMN\n  what to do: a column the job names (--key, --agg, --group-by) is not in a file: check them against your file\'s header (a CSV separated by ";" is read as one column: save it with commas); the agent of the party whose file it is logs which file, column and line ("job step failed")\n',
    );
  });

  it("an unknown job ID: job list to find it", async () => {
    const r = await run("job", "result", "job-nope", ...bankApi, "--out", "x.csv");
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 1, stderr: "umbra: UMBRA_NOT_FOUND: no job job-nope at this party (umbra job list shows its jobs)" });
  });
});

describe("job status of a job that ended", () => {
  it("rows/s over the time the job ran, not the time since (was: 160 rows over minutes later, \"17 rows/s\")", () => {
    const created = Date.parse("2026-01-01T00:00:00Z");
    const text = describeStatus(
      { id: "job-1", protocol: "psi", buyer: "bank", providers: ["telco"], state: "failed", reason: "UMBRA_MISSING_COLUMN", progress: { telco: { phase: "provider: hash and blind", done: 160, total: 160 } }, createdAt: created, updatedAt: created + 500 },
      created + 600_000,
    );
    expect(text.split("\n")).toContain("  telco: provider: hash and blind 100% (160 of 160 rows, 320 rows/s)");
  });
});
