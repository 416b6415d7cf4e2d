/**
 * The node's command line across real processes: `umbra exchange start` and
 * `umbra party start` as child processes of dist/node/cli.js on loopback with
 * free ports and temporary folders; datasets, jobs and the audit ledger
 * through the CLI; a party killed (SIGKILL) mid-job and restarted; SIGTERM
 * ends each process with exit code 0; and the demo, the README's main
 * command, exits 0.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { CLI as cli, umbra as runUmbra } from "./helpers/cli.js";
import { startNode, stopNode, type NodeProcess as Node } from "./helpers/processes.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";

const root = mkdtempSync(join(tmpdir(), "umbra-node-cli-"));

/** Runs `umbra ARGS` to the end (asynchronously, so the nodes keep serving). */
const umbra = (...args: string[]) => runUmbra(args);

const dirs = { exchange: join(root, "exchange"), telco: join(root, "telco"), bank: join(root, "bank") };
const exchangeDb = join(dirs.exchange, "exchange.db");
let exchange: Node;
let telco: Node;
let bank: Node;

const phone = (i: number) => `+86-139-${String(10_000_000 + i)}`;
const telcoPhones = Array.from({ length: 3_000 }, (_, i) => phone(i));
const bankRows = [...Array.from({ length: 1_500 }, (_, i) => ({ phone: phone(2_000 + i), grade: "ABC"[i % 3] as string })), { phone: phone(2_001), grade: "Z" }, { phone: "", grade: "N" }];

const ledgerCount = (): number => {
  const db = new Database(exchangeDb, { readonly: true });
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM ledger").get() as { n: number }).n;
  } finally {
    db.close();
  }
};

/** The parties' invitations, from umbra exchange invite (the telco keeps presenting its used one on restart: a registered party needs none). */
const invites: Record<string, string> = {};
const invite = async (name: string): Promise<string> => {
  const r = await umbra("exchange", "invite", "--name", name, "--db", exchangeDb, "--json");
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { code: string }).code;
};

const startTelco = () =>
  startNode("party", "start", "--name", "telco", "--exchange", exchange.url, "--invite", invites["telco"] as string, "--port", "0", "--db", join(dirs.telco, "telco.db"), "--data", dirs.telco);

beforeAll(async () => {
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  writeFileSync(join(dirs.telco, "subscribers.csv"), "phone,spend\n" + telcoPhones.map((p, i) => `${p},${i % 100}`).join("\n") + "\n");
  writeFileSync(join(dirs.bank, "customers.csv"), "phone,grade\n" + bankRows.map((r) => `${r.phone},${r.grade}`).join("\n") + "\n");
  // Big enough that a psi job runs for several seconds (to kill a party in the middle of it).
  // Large enough that the provider is still hashing its set (seconds) when the test kills it, the moment the job runs.
  writeFileSync(join(dirs.telco, "big.csv"), "k\n" + Array.from({ length: 600_000 }, (_, i) => `k${i}`).join("\n") + "\n");
  writeFileSync(join(dirs.bank, "big.csv"), "k\n" + Array.from({ length: 60_000 }, (_, i) => `k${30_000 + i}`).join("\n") + "\n");
  writeFileSync(
    join(root, "telco-policy.json"),
    JSON.stringify({ allowedProtocols: ["psi", "lookup"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 1_000_000, budgetUnit: "keys", expiresAt: null }),
  );
  exchange = await startNode("exchange", "start", "--port", "0", "--db", exchangeDb);
  for (const n of ["telco", "bank"]) invites[n] = await invite(n);
  [telco, bank] = await Promise.all([startTelco(), startNode("party", "start", "--name", "bank", "--exchange", exchange.url, "--invite", invites["bank"] as string, "--port", "0", "--db", join(dirs.bank, "bank.db"), "--data", dirs.bank)]);
}, 60_000);

afterAll(async () => {
  for (const n of [telco, bank, exchange]) await stopNode(n, "SIGKILL").catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

describe("umbra node commands across processes", () => {
  it("prints the listening lines and each command's --help", async () => {
    expect(exchange.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const cmd of [["exchange", "start"], ["exchange", "invite"], ["exchange", "parties"], ["party", "start"], ["dataset", "register"], ["job", "submit"], ["audit", "verify"], ["demo"]]) {
      const r = await umbra(...cmd, "--help");
      expect(r.status, cmd.join(" ")).toBe(0);
      expect(r.stdout).toMatch(/Usage:/);
    }
    const bad = await umbra("party", "start");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--name is required/);
  });

  it("registers a dataset and lists it", async () => {
    const reg = await umbra("dataset", "register", "--party", telco.url, "--token-file", join(dirs.telco, "telco.token"), "--file", "subscribers.csv", "--policy", `@${join(root, "telco-policy.json")}`);
    expect(reg.stderr).toBe("");
    expect(reg.status).toBe(0);
    expect(reg.stdout).toMatch(/registered telco\.subscribers\.csv .*3,000 rows/);
    const big = await umbra("dataset", "register", "--party", telco.url, "--token-file", join(dirs.telco, "telco.token"), "--file", "big.csv", "--policy", JSON.stringify({ allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: "any", queryBudget: 100, budgetUnit: "jobs" }));
    expect(big.status).toBe(0);
    const list = await umbra("dataset", "list", "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"));
    expect(list.status).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^id\s+owner\s+rows\s+protocols\s+keys\s+output columns\s+k\s+expiry$/);
    expect(list.stdout).toMatch(/telco\.subscribers\.csv\s+telco\s+3,000\s+psi,lookup\s+phone\s+spend\s+1\s+never/);
  });

  it("job submit --wait runs psi; the result file equals a plain join", async () => {
    const r = await umbra("job", "submit", "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"), "--protocol", "psi", "--input", "customers.csv", "--provider-dataset", "telco.subscribers.csv", "--key", "phone", "--query-count", "1501", "--wait");
    expect(r.status, r.stderr).toBe(0);
    const id = /job (job-\S+) submitted/.exec(r.stdout)?.[1] as string;
    expect(id).toBeDefined();
    expect(r.stdout).toMatch(new RegExp(`job ${id} succeeded: rows 1,001`));
    const status = await umbra("job", "status", id, "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"));
    expect(status.stdout).toMatch(/state: succeeded/);
    const out = join(root, "matched.csv");
    const res = await umbra("job", "result", id, "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"), "--out", out);
    expect(res.status, res.stderr).toBe(0);
    const t = await readTable(out);
    const got = Array.from({ length: t.numRows }, (_, i) => `${t.getChild("phone")?.get(i)}|${t.getChild("grade")?.get(i)}`).sort();
    const telcoSet = new Set(telcoPhones);
    const expected = bankRows.filter((b) => b.phone !== "" && telcoSet.has(b.phone)).map((b) => `${b.phone}|${b.grade}`).sort();
    expect(got).toEqual(expected);
  });

  it("a refused job prints its rule, exits 1 and adds exactly one ledger entry", async () => {
    const before = ledgerCount();
    const r = await umbra("job", "submit", "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"), "--protocol", "psi-cardinality", "--input", "customers.csv", "--provider-dataset", "telco.subscribers.csv", "--key", "phone", "--query-count", "10");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^refused: protocol-not-allowed/m);
    expect(ledgerCount()).toBe(before + 1);
  });

  it("a provider killed mid-job (SIGKILL) and restarted with the same store and folder: the job resumes and succeeds, its result exact, one result entry", async () => {
    const sub = await umbra("job", "submit", "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"), "--protocol", "psi", "--input", "big.csv", "--provider-dataset", "telco.big.csv", "--key", "k");
    expect(sub.status, sub.stderr).toBe(0);
    const id = /job (job-\S+) submitted/.exec(sub.stdout)?.[1] as string;
    const status = async () => (await umbra("job", "status", id, "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"))).stdout;
    const state = async () => /state: (\w+)/.exec(await status())?.[1];
    for (let i = 0; i < 200 && (await state()) !== "running"; i++) await new Promise((r) => setTimeout(r, 50));
    // Running: the provider has accepted and is hashing its 600,000 keys — the job cannot have ended yet.
    expect(await state()).toBe("running");
    await stopNode(telco, "SIGKILL");
    telco = await startTelco();
    let final: string | undefined;
    for (let i = 0; i < 480 && !["succeeded", "failed", "cancelled"].includes((final = await state()) ?? ""); i++) await new Promise((r) => setTimeout(r, 250));
    expect(final, await status()).toBe("succeeded");
    const out = join(dirs.bank, "resumed.csv");
    const result = await umbra("job", "result", id, "--party", bank.url, "--token-file", join(dirs.bank, "bank.token"), "--out", out);
    expect(result.status, result.stderr).toBe(0);
    const t = await readTable(out);
    const got = Array.from({ length: t.numRows }, (_, i) => String(t.getChild("k")?.get(i))).sort();
    // Every one of the bank's 60,000 keys (k30000…k89999) is among the telco's 600,000 (k0…k599999).
    expect(got).toEqual(Array.from({ length: 60_000 }, (_, i) => `k${30_000 + i}`).sort());
    const db = new Database(exchangeDb, { readonly: true });
    const results = db.prepare("SELECT count(*) AS n FROM ledger WHERE job = ? AND kind = 'job.result'").get(id) as { n: number };
    db.close();
    expect(results.n).toBe(1);
  }, 180_000);

  it("audit verify passes; an entry edited in the db file makes it exit 1 naming that seq", async () => {
    const ok = await umbra("audit", "verify", "--db", exchangeDb);
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^ledger verified: \d+ entries, head seq \d+ [0-9a-f]{16}…, log root [0-9a-f]{16}…$/m);
    const show = await umbra("audit", "show", "--db", exchangeDb);
    expect(show.status).toBe(0);
    expect(show.stdout).toMatch(/^1 {2}\S+Z {2}party\.registered {2}- {2}\{/m);
    expect(show.stdout).toMatch(/job\.refused .*"rule":"protocol-not-allowed"/);

    const db = new Database(exchangeDb);
    db.prepare("UPDATE ledger SET body = ? WHERE seq = 3").run(JSON.stringify({ edited: true }));
    db.close();
    const bad = await umbra("audit", "verify", "--db", exchangeDb);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/FAILED at entry seq 3: hash/);
  });

  it("SIGTERM makes each process exit 0 by itself", async () => {
    const codes = [await stopNode(telco), await stopNode(bank), await stopNode(exchange)];
    expect(codes).toEqual([0, 0, 0]);
  }, 60_000);
});

describe("npm run demo", () => {
  it("starts the nodes as processes, runs every protocol as a job, a trade on the venue, verifies the ledger; with --keep its consoles stay open until Ctrl-C, then it exits 0", async () => {
    const child = spawn(process.execPath, [cli, "demo", "--keep"], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const kept = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString("utf8");
        if (stdout.includes("press Ctrl-C to stop them")) resolve();
      });
      void exited.then((code) => reject(new Error(`the demo exited ${code} before keeping its nodes: ${stdout}`)));
    });
    await kept;
    // The consoles' addresses, each with its token after "#": the pages and the APIs answer while the demo waits.
    const exchangeUrl = /exchange \(operator\)\s+(http:\/\/127\.0\.0\.1:\d+)\/console\/exchange\/#token=([A-Za-z0-9_-]{43})\n/.exec(stdout);
    const bankUrl = /bank\s+(http:\/\/127\.0\.0\.1:\d+)\/console\/party\/#token=([A-Za-z0-9_-]{43})\n/.exec(stdout);
    expect(exchangeUrl, stdout).not.toBeNull();
    expect(bankUrl, stdout).not.toBeNull();
    const [, xBase, xToken] = exchangeUrl as RegExpExecArray;
    const [, bBase, bToken] = bankUrl as RegExpExecArray;
    expect((await fetch(`${xBase}/console/exchange/`)).headers.get("content-type")).toMatch(/^text\/html/);
    const overview = (await (await fetch(`${xBase}/v1/admin/overview`, { headers: { authorization: `Bearer ${xToken}` } })).json()) as { counts: { parties: number } };
    expect(overview.counts.parties).toBe(4);
    expect((await fetch(`${bBase}/v1/status`, { headers: { authorization: `Bearer ${bToken}` } })).status).toBe(200);
    child.kill("SIGINT");
    const code = await exited;
    const r = { stdout, stderr, status: code };
    const root = /data, databases and logs kept in (\S+)/.exec(stdout)?.[1];
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
    expect(r.stderr).toBe("");
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ledger verified: \d+ entries/);
    expect(r.stdout).toMatch(/refused: protocol-not-allowed/);
    expect(r.stdout).toMatch(/telco exited 0, retailer exited 0, bank exited 0, exchange exited 0/);
    expect(r.stdout).not.toMatch(/DIFFERENT/);
    // The trade: refused without a contract, run under one, checked by an outsider with only the exchange's key.
    expect(r.stdout).toMatch(/refused: contract-required/);
    expect(r.stdout).toMatch(/certificate verified: signed by the exchange's key and included in its signed log/);
    expect(r.stdout).toMatch(/consistent: the exchange's log grew from \d+ to \d+ entries without changing one/);
    expect(r.stdout).not.toMatch(/NOT EXPECTED/);
  }, 480_000);
});
