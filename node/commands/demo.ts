/**
 * `umbra demo` (`npm run demo`): the node end to end, as separate processes.
 *
 * It starts an exchange and four parties — three providers, "telco",
 * "retailer" and "insurer", and a buyer, "bank" — each an `umbra … start`
 * child process on loopback on a free port, with its own database and data
 * folder in a temporary directory; writes synthetic customer files into the
 * data folders; registers the providers' datasets with their usage policies;
 * runs every protocol the node offers as a real job through the nodes (psi
 * and lookup against the telco, psi-cardinality against the retailer, a
 * federated aggregate across all three providers with the exchange as the
 * aggregator, a secure join-aggregate of the bank's risk grades with the
 * telco's monthly spend with the exchange as the matcher and aggregator) and
 * one the retailer's policy refuses; prints each result next
 * to the plaintext answer computed here and next to what each party learned
 * (a provider: the buyer's set size, or nothing; the exchange: sizes and
 * digests, from its ledger); runs `umbra audit verify` on the exchange's
 * database; and stops every process with SIGTERM, waiting for each to exit.
 *
 * Exit code 0 only when every secure result equals its plaintext answer,
 * the refusal names its rule, the ledger verifies and every node exits 0.
 *
 * The synthetic data, the plaintext answers and the reading of the result
 * tables are in demo-data.ts; this file runs the processes and the jobs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, readFileSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tableFromIPC, type Table } from "apache-arrow";
import { listEntries, resultCommitment, type LedgerEntry } from "../ledger.js";
import { openStore } from "../store.js";
import { count, parseOptions, processIO, type CommandIO } from "./args.js";
import { registerDataset } from "./datasets.js";
import { demoTrade } from "./demo-trade.js";
import { describeFinal, describeProgress, jobResult, submitAggregateJob, submitJob, submitJoinAggregateJob, waitForJob, type JobView } from "./jobs.js";
import { PartyApiError, partyEndpoint, type PartyEndpoint } from "./node.js";
import {
  FA_AGE_EDGES,
  FA_K,
  FA_PROVIDERS,
  FA_REGIONS,
  generate,
  householdAnswer,
  householdResult,
  JA_GRADES,
  JA_K,
  riskAnswer,
  riskData,
  riskResult,
  writeData,
} from "./demo-data.js";

const CLI = fileURLToPath(new URL("../cli.js", import.meta.url));

export const DEMO_USAGE = `  demo [--keep]
                 start an exchange and four parties as processes on loopback, run
                 psi, psi-cardinality, lookup, federated-aggregate and
                 join-aggregate as jobs through them, compare each result with
                 the plaintext answer,
                 verify the audit ledger, print the consoles' addresses, stop
                 (--keep: keep the nodes running, with their consoles, until
                 Ctrl-C, and keep the temporary folder with the data, dbs and logs)
  demo --local [--buyer-rows N] [--provider-rows N] [--dir DIR]
                 the engine alone, both roles in this process (no nodes)
`;

// ------------------------------------------------------------ processes

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  /** The line it printed when it started listening. */
  readonly line: string;
  readonly exited: Promise<number | null>;
}

/** Spawns `umbra ARGS`, logs to `log`, and resolves with its URL once it prints its listening line. */
async function startProcess(name: string, args: readonly string[], log: string): Promise<Proc> {
  const fd = openSync(log, "a");
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const [url, line] = await new Promise<[string, string]>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s (see ${log})`)), 20_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      const m = /^.* listening at (http:\/\/[^\s]+).*$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve([m[1] as string, m[0]]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before listening (see ${log})`));
    });
  });
  return { name, child, url, line, exited };
}

/** SIGTERM, then the exit code (SIGKILL after 15 s). */
async function stopProcess(p: Proc): Promise<number | null> {
  if (p.child.exitCode !== null) return p.child.exitCode;
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

function runCli(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.once("exit", (code) => resolve({ code, out }));
  });
}

/** A token file's token, or undefined when it is not there (a node that has not written one). */
function readToken(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Resolves at the first SIGINT or SIGTERM (the handlers go again: a second Ctrl-C stops as usual). */
function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve();
    };
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}

// -------------------------------------------------------------- checking

const multiset = (xs: readonly string[]): string => createHash("sha256").update([...xs].sort().join("\n")).digest("hex");
const cell = (v: unknown): string => (v === null || v === undefined ? "" : String(v));

function column(t: Table, name: string): string[] {
  const c = t.getChild(name);
  if (!c) return [];
  return Array.from({ length: t.numRows }, (_, i) => cell(c.get(i)));
}

export async function nodeDemoCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${DEMO_USAGE}`;
  const o = parseOptions(args, { "--keep": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const say = io.out;
  const t0 = performance.now();
  const secs = (t = t0) => `${((performance.now() - t) / 1000).toFixed(1)} s`;
  const root = mkdtempSync(join(tmpdir(), "umbra-demo-"));
  const names = ["exchange", "insurer", "telco", "retailer", "bank"] as const;
  const dirs: Record<string, string> = {};
  for (const n of names) {
    dirs[n] = join(root, n);
    mkdirSync(dirs[n] as string);
  }
  const procs: Proc[] = [];
  let ok = true;
  const check = (label: string, pass: boolean) => {
    if (!pass) ok = false;
    return `${label}: ${pass ? "equal ✓" : "DIFFERENT ✗"}`;
  };

  say("Umbra demo — an exchange and four parties as separate processes on loopback\n");
  try {
    // 1. Data.
    const data = generate();
    writeData(dirs, data);
    const risk = riskData();
    writeFileSync(join(dirs["bank"] as string, "risk.csv"), "phone,risk_grade\n" + risk.bank.map((r) => `${r.phone},${r.grade}`).join("\n") + "\n");
    writeFileSync(join(dirs["telco"] as string, "spend.csv"), "phone,monthly_spend\n" + [...risk.telco].map(([p, c]) => `${p},${(c / 100).toFixed(2)}`).join("\n") + "\n");
    const bankKeys = new Set(data.bank.map((r) => r.phone).filter((p) => p !== ""));
    say(`1. Synthetic data in ${root}${o.has("--keep") ? "" : " (removed at the end; --keep keeps it)"}`);
    say(`   bank/customers.csv        ${count(data.bank.length)} rows  (phone, grade) — the buyer`);
    say(`   telco/subscribers.csv     ${count(data.telco.size)} rows  (phone, monthly_spend, plan) — a provider`);
    say(`   retailer/members.csv      ${count(data.retailer.size)} rows  (phone, points) — a provider`);
    say(`   */households.csv          ${FA_PROVIDERS.map((p) => count(data.households[p].length)).join(" / ")} rows  (region, monthly_spend, age) — telco / retailer / insurer, a provider each`);
    say(`   bank/risk.csv             ${count(risk.bank.length)} rows  (phone, risk_grade) — the buyer's own file, never registered`);
    say(`   telco/spend.csv           ${count(risk.telco.size)} rows  (phone, monthly_spend) — a provider`);

    // 2. Nodes.
    let t = performance.now();
    // --public-log: an outsider (step 5) follows the exchange's log with only its public key.
    const exchange = await startProcess("exchange", ["exchange", "start", "--port", "0", "--public-log", "--db", join(dirs["exchange"] as string, "exchange.db")], join(root, "exchange.log"));
    procs.push(exchange);
    // Its key's fingerprint, as its operator would publish it: each party is started with it (--exchange-key) and pins it.
    const fingerprint = /key fingerprint ([0-9a-f]{16})/.exec(exchange.line)?.[1];
    if (fingerprint === undefined) throw new Error("the exchange printed no key fingerprint");
    // The exchange admits a party by invitation: its operator issues one per party (umbra exchange invite), each party presents it once.
    const exchangeDb = join(dirs["exchange"] as string, "exchange.db");
    const invites: Record<string, string> = {};
    for (const n of ["insurer", "telco", "retailer", "bank"]) {
      const inv = await runCli(["exchange", "invite", "--name", n, "--db", exchangeDb, "--json"]);
      const code = inv.code === 0 ? (JSON.parse(inv.out) as { code?: unknown }).code : undefined;
      if (typeof code !== "string") throw new Error(`umbra exchange invite --name ${n} failed: ${inv.out.trim()}`);
      invites[n] = code;
    }
    const parties = await Promise.all(
      (["insurer", "telco", "retailer", "bank"] as const).map((n) =>
        startProcess(n, ["party", "start", "--name", n, "--exchange", exchange.url, "--exchange-key", fingerprint, "--invite", invites[n] as string, "--port", "0", "--db", join(dirs[n] as string, `${n}.db`), "--data", join(dirs[n] as string)], join(root, `${n}.log`)),
      ),
    );
    procs.push(...parties);
    // Each party's API answers only with its token, from the token file it wrote beside its database (--token-file).
    const [insurer, telco, retailer, bank] = parties.map((p) => partyEndpoint(p.url, join(dirs[p.name] as string, `${p.name}.token`))) as [PartyEndpoint, PartyEndpoint, PartyEndpoint, PartyEndpoint];
    say(`\n2. Nodes started (${secs(t)}), each its own process, database and data folder; logs in ${root}/*.log`);
    for (const p of procs) say(`   ${p.name.padEnd(9)} pid ${String(p.child.pid).padEnd(7)} ${p.url}`);
    say(`   the exchange's key fingerprint ${fingerprint}: each party was admitted with a one-time invitation (umbra exchange invite),`);
    say(`   started with --exchange-key ${fingerprint} (it refuses an exchange with another key), and keeps its API's token in`);
    say(`   NAME.token (mode 0600) and its identity keys in NAME.key beside its database; the CLI calls below send that token`);

    // 3. Catalog.
    t = performance.now();
    const telcoPolicy = { allowedProtocols: ["psi", "lookup"], outputColumns: ["monthly_spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 1_000_000, budgetUnit: "keys", expiresAt: null };
    const retailerPolicy = { allowedProtocols: ["psi", "psi-cardinality"], outputColumns: [], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 10, queryBudget: 20, budgetUnit: "jobs", expiresAt: null };
    const rt = await registerDataset(telco, "subscribers.csv", telcoPolicy);
    const rr = await registerDataset(retailer, "members.csv", retailerPolicy);
    const householdPolicy = { allowedProtocols: ["federated-aggregate"], outputColumns: ["region", "monthly_spend", "age"], allowedBuyers: ["bank"], minGroupSize: FA_K, queryBudget: 20, budgetUnit: "jobs", expiresAt: null };
    const byName: Record<string, PartyEndpoint> = { telco, retailer, insurer };
    const rh = await Promise.all(FA_PROVIDERS.map((p) => registerDataset(byName[p] as PartyEndpoint, "households.csv", householdPolicy)));
    const spendPolicy = { allowedProtocols: ["join-aggregate"], outputColumns: ["monthly_spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: JA_K, queryBudget: 20, budgetUnit: "jobs", expiresAt: null };
    const rs = await registerDataset(telco, "spend.csv", spendPolicy);
    say(`\n3. Datasets registered (descriptor and policy only — never rows) (${secs(t)})`);
    say(`   ${rt.id.padEnd(25)} ${count(rt.rows)} rows, hash ${rt.contentHash.slice(0, 12)}…  policy: psi, lookup; key phone; output monthly_spend; buyers: bank; budget 1,000,000 keys`);
    say(`   ${rr.id.padEnd(25)} ${count(rr.rows)} rows, hash ${rr.contentHash.slice(0, 12)}…  policy: psi, psi-cardinality; key phone; no output columns; k = 10; buyers: bank; budget 20 jobs`);
    for (const r of rh) say(`   ${r.id.padEnd(25)} ${count(r.rows).padStart(6)} rows, hash ${r.contentHash.slice(0, 12)}…  policy: federated-aggregate; columns region, monthly_spend, age; k = ${FA_K}; buyers: bank; budget 20 jobs`);
    say(`   ${rs.id.padEnd(25)} ${count(rs.rows)} rows, hash ${rs.contentHash.slice(0, 12)}…  policy: join-aggregate; key phone; output monthly_spend; k = ${JA_K}; buyers: bank; budget 20 jobs`);

    // 4. Jobs.
    say(`\n4. Jobs, submitted by the bank's agent and run through the exchange`);
    const run = async (label: string, submit: () => Promise<JobView>): Promise<JobView> => {
      const tj = performance.now();
      say(`\n   ${label}`);
      const job = await submit();
      const done = await waitForJob(bank, job.id, (j, ms) => say(`     … ${describeProgress(j)} (${(ms / 1000).toFixed(1)} s)`));
      say(`     ${describeFinal(done)} in ${secs(tj)}`);
      if (done.state !== "succeeded") ok = false;
      return done;
    };
    const exchangeSaw = (job: string) => {
      const store = openStore(join(dirs["exchange"] as string, "exchange.db"));
      try {
        return listEntries(store, { job });
      } finally {
        store.close();
      }
    };
    const showExchange = (entries: readonly LedgerEntry[], resultBytes: { readonly bytes: Uint8Array; readonly salt: string } | undefined) => {
      const steps = entries.filter((e) => e.kind === "job.step" && typeof e.body["size"] === "number");
      const bytes = steps.reduce((s, e) => s + (e.body["size"] as number), 0);
      say(`     the exchange saw:  ${steps.length} sealed messages, ${count(bytes)} bytes in all (sizes and digests, from its ledger):`);
      const ways = new Map<string, LedgerEntry[]>();
      for (const e of steps) {
        const k = `${String(e.body["from"])} → ${String(e.body["to"])}`;
        ways.set(k, [...(ways.get(k) ?? []), e]);
      }
      for (const [k, es] of ways) {
        const b = es.reduce((n, e) => n + (e.body["size"] as number), 0);
        say(`                        ${k}: ${es.length} messages, ${count(b)} bytes (sha256 ${es.map((e) => String(e.body["digest"]).slice(0, 8)).join(", ")})`);
      }
      const result = entries.find((e) => e.kind === "job.result");
      if (result) {
        const digest = String(result.body["digest"]);
        const same = resultBytes !== undefined && resultCommitment(Buffer.from(resultBytes.salt, "hex"), resultBytes.bytes) === digest;
        say(`                        the result's digest ${digest.slice(0, 12)}…, a salted commitment${same ? " (opened by the bytes the bank fetched and its salt)" : ""}; the result and its summary stay with the bank`);
      }
    };

    // psi against the telco.
    const psi = await run("psi: which of the bank's customers are telco subscribers", () => submitJob(bank, {
      protocol: "psi", input: "customers.csv", providerDataset: rt.id, keys: ["phone"], queryCount: bankKeys.size,
    }));
    if (psi.state === "succeeded") {
      const r = await jobResult(bank, psi.id);
      if (r.kind === "table") {
        const tbl = tableFromIPC(r.bytes);
        const expected = data.bank.filter((x) => x.phone !== "" && data.telco.has(x.phone)).map((x) => `${x.phone}|${x.grade}`);
        const got = column(tbl, "phone").map((p, i) => `${p}|${column(tbl, "grade")[i] ?? ""}`);
        say(`     the bank got:      ${count(tbl.numRows)} matching rows (${tbl.schema.fields.map((f) => f.name).join(", ")})`);
        say(`     plaintext join:    ${count(expected.length)} rows — ${check("rows", multiset(got) === multiset(expected))}`);
        say(`     the telco learned: the bank's set size, ${count(bankKeys.size)} distinct keys (the blinded set it received); no phone, no match`);
        showExchange(exchangeSaw(psi.id), r);
      } else ok = false;
    }

    // psi-cardinality against the retailer.
    const card = await run("psi-cardinality: how many bank customers are retailer members (the count only)", () => submitJob(bank, {
      protocol: "psi-cardinality", input: "customers.csv", providerDataset: rr.id, keys: ["phone"],
    }));
    if (card.state === "succeeded") {
      const r = await jobResult(bank, card.id);
      const expected = [...bankKeys].filter((p) => data.retailer.has(p)).length;
      const got = r.kind === "count" ? r.count : -1;
      say(`     the bank got:      ${count(got)} shared customers (a count, no rows)`);
      say(`     plaintext answer:  ${count(expected)} — ${check("count", got === expected)}`);
      say(`     the retailer learned: the bank's set size, ${count(bankKeys.size)} distinct keys; not even the count`);
      showExchange(exchangeSaw(card.id), r);
    }

    // lookup against the telco.
    const lookup = await run("lookup: the telco's monthly_spend for the bank's customers (a left join)", () => submitJob(bank, {
      protocol: "lookup", input: "customers.csv", providerDataset: rt.id, keys: ["phone"], columns: ["monthly_spend"], queryCount: bankKeys.size,
    }));
    if (lookup.state === "succeeded") {
      const r = await jobResult(bank, lookup.id);
      if (r.kind === "table") {
        const tbl = tableFromIPC(r.bytes);
        const [ph, gr, sp] = [column(tbl, "phone"), column(tbl, "grade"), column(tbl, "monthly_spend")];
        const got = ph.map((p, i) => `${p}|${gr[i] ?? ""}|${sp[i] ?? ""}`);
        const expected = data.bank.map((x) => `${x.phone}|${x.grade}|${x.phone === "" ? "" : (data.telco.get(x.phone) ?? "")}`);
        const filled = sp.filter((v) => v !== "").length;
        say(`     the bank got:      ${count(tbl.numRows)} rows (${tbl.schema.fields.map((f) => f.name).join(", ")}), monthly_spend filled in ${count(filled)}`);
        say(`     plaintext join:    ${count(expected.length)} rows, ${count(expected.filter((e) => !e.endsWith("|")).length)} filled — ${check("every row and value", multiset(got) === multiset(expected))}`);
        say(`     the telco learned: the number of keys queried, ${count(bankKeys.size)}, charged to the bank's budget; not which matched`);
        showExchange(exchangeSaw(lookup.id), r);
      } else ok = false;
    }

    // federated-aggregate across the three providers, the exchange as the aggregator.
    const fa = await run(`federated-aggregate: household spend per region and an age histogram across the telco, the retailer and the insurer (k = ${FA_K})`, () =>
      submitAggregateJob(bank, {
        providerDatasets: rh.map((r) => r.id),
        computation: {
          aggregates: [{ fn: "count" }, { fn: "sum", column: "monthly_spend" }, { fn: "avg", column: "monthly_spend" }, { fn: "stddev", column: "monthly_spend" }],
          groupBy: { column: "region", categories: FA_REGIONS },
          histogram: { column: "age", edges: FA_AGE_EDGES },
          maxAbsValue: { text: "100000", value: 100_000n },
        },
      }),
    );
    if (fa.state === "succeeded") {
      const r = await jobResult(bank, fa.id);
      if (r.kind === "table") {
        const got = householdResult(tableFromIPC(r.bytes));
        const want = householdAnswer(FA_PROVIDERS.map((p) => data.households[p]));
        say(`     region    count         sum      avg   stddev   households by age ${FA_AGE_EDGES.slice(0, -1).map((e, i) => `[${e},${FA_AGE_EDGES[i + 1]}${i === FA_AGE_EDGES.length - 2 ? "]" : ")"}`).join(" / ")}`);
        for (const region of FA_REGIONS) {
          say(`     ${region.padEnd(6)} the bank got (secure):  ${got.get(region) ?? "(missing)"}`);
          say(`     ${"".padEnd(6)} plaintext on the union: ${want.get(region) ?? ""}`);
        }
        say(`     ${check(`every cell (the west has fewer than k = ${FA_K} households: suppressed on both sides; a bin under k shows "-")`, FA_REGIONS.every((g) => got.get(g) === want.get(g)))}`);
        say(`     each provider learned: nothing of the others — it received the job's parameters and the bank's public key; its own totals left it masked and encrypted`);
        say(`     the bank learned:  the totals over all three providers, never one provider's`);
        showExchange(exchangeSaw(fa.id), r);
        say(`                        as the aggregator it opened the ones addressed to it: the bank's public key and one BFV ciphertext per provider,`);
        say(`                        which it summed and re-randomised without the key to decrypt them`);
      } else ok = false;
    }

    // join-aggregate: the bank's risk grades × the telco's monthly spend, the exchange as the matcher and aggregator.
    const ja = await run(`join-aggregate: the average monthly spend at the telco of the bank's customers per risk grade (k = ${JA_K})`, () =>
      submitJoinAggregateJob(bank, {
        input: "risk.csv",
        providerDataset: rs.id,
        keys: ["phone"],
        groupBy: "risk_grade",
        aggregates: [{ fn: "count" }, { fn: "avg", column: "monthly_spend" }],
        maxAbsValue: "1000",
        scale: 2,
        // The bank's file has 2,020 rows and the telco's phones are unique: no grade joins more
        // rows. A small bound needs fewer CRT primes: every HE step is cheaper.
        maxJoinRows: 10_000,
      }),
    );
    if (ja.state === "succeeded") {
      const r = await jobResult(bank, ja.id);
      if (r.kind === "table") {
        const got = riskResult(tableFromIPC(r.bytes));
        const want = riskAnswer(risk);
        for (const grade of JA_GRADES) {
          say(`     ${grade}  the bank got (secure): ${got.get(grade) ?? "suppressed"}`);
          say(`        plaintext join:        ${want.get(grade) ?? ""}`);
        }
        const same = JA_GRADES.every((g) => (got.get(g) ?? "suppressed") === (want.get(g)?.startsWith("suppressed") ? "suppressed" : want.get(g)));
        say(`     ${check(`every grade (E has fewer than k = ${JA_K} matched customers: suppressed)`, same)}`);
        say(`     the telco learned: the bank's distinct-key count and its HE public key; not which keys matched, nor any total`);
        say(`     the bank learned:  COUNT and AVG per released grade, that one grade was suppressed, the telco's key count rounded up to 1/8`);
        showExchange(exchangeSaw(ja.id), r);
        say(`                        as the matcher it opened what was addressed to it: doubly blinded keys (which it matched), row counts per`);
        say(`                        blinded key and per pseudonymous group, and the telco's statistics as BFV ciphertexts under the bank's key,`);
        say(`                        which it summed per group under encryption; bank ↔ telco messages it relayed sealed, as they were`);
      } else ok = false;
    }

    // A job the retailer's policy refuses.
    say(`\n   lookup against the retailer (its policy allows psi and psi-cardinality only)`);
    try {
      await submitJob(bank, { protocol: "lookup", input: "customers.csv", providerDataset: rr.id, keys: ["phone"], columns: ["points"], queryCount: bankKeys.size });
      say("     accepted — NOT EXPECTED");
      ok = false;
    } catch (err) {
      if (!(err instanceof PartyApiError) || !err.rule) throw err;
      say(`     refused: ${err.rule} — by the exchange, before anything reached the retailer; recorded in the ledger`);
    }

    // 5. A trade on the venue: certificate, product, order, contract, a job under it, an outsider's checks.
    say(`\n5. A trade on the venue (docs/venue.md): the telco sells matching against its subscribers`);
    t = performance.now();
    const traded = await demoTrade({
      say,
      runCli,
      exchangeUrl: exchange.url,
      dir: dirs["bank"] as string,
      telco: { url: telco.url, tokenFile: join(dirs["telco"] as string, "telco.token") },
      bank: { url: bank.url, tokenFile: join(dirs["bank"] as string, "bank.token") },
      dataset: rt.id,
      input: "customers.csv",
      expectedMatches: data.bank.filter((x) => x.phone !== "" && data.telco.has(x.phone)).length,
      queryCount: bankKeys.size,
    });
    say(`   (${secs(t)})`);
    if (!traded) ok = false;

    // 6. Audit.
    t = performance.now();
    // The bank kept the latest signed tree head of the exchange's log it was shown: the ledger must still have it as a prefix.
    const head = await runCli(["party", "head", "--party", bank.url, "--token-file", join(dirs["bank"] as string, "bank.token")]);
    const headFile = join(dirs["bank"] as string, "bank-head.json");
    writeFileSync(headFile, head.out);
    const kept = JSON.parse(head.out) as { size: number; root: string };
    const audit = await runCli(["audit", "verify", "--db", exchangeDb, "--head", headFile]);
    say(`\n6. $ umbra party head --party ${bank.url} --token-file …/bank.token > bank-head.json   → size ${kept.size}, root ${kept.root.slice(0, 16)}…  (the bank's signed tree head)`);
    say(`   $ umbra audit verify --db ${exchangeDb} --head bank-head.json   (${secs(t)})`);
    say(`   ${audit.out.trim()}`);
    if (head.code !== 0 || audit.code !== 0) ok = false;
    // 7. The consoles (docs/console.md): each address carries its token after "#", which never leaves the browser.
    const exchangeToken = readToken(join(dirs["exchange"] as string, "exchange.admin-token"));
    say(`\n7. The consoles (docs/console.md; the token after "#" stays in the browser):`);
    say(`   exchange (operator)  ${exchange.url}/console/exchange/${exchangeToken === undefined ? "" : `#token=${exchangeToken}`}`);
    for (const p of parties) {
      const token = readToken(join(dirs[p.name] as string, `${p.name}.token`));
      say(`   ${p.name.padEnd(20)} ${p.url}/console/party/${token === undefined ? "" : `#token=${token}`}`);
    }
    if (o.has("--keep")) {
      say(`   the nodes keep running for you to click through: press Ctrl-C to stop them`);
      await untilInterrupted();
    } else say(`   (umbra demo --keep keeps the nodes running so that they can be opened)`);
  } catch (err) {
    ok = false;
    say(`\nthe demo failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    // 8. Shut down.
    const t = performance.now();
    // The parties first (they stop polling the exchange), then the exchange.
    const parties = procs.filter((p) => p.name !== "exchange");
    const codes = await Promise.all(parties.map(async (p) => [p.name, await stopProcess(p)] as const));
    for (const p of procs.filter((q) => q.name === "exchange")) codes.push([p.name, await stopProcess(p)] as const);
    say(`\n8. Stopped with SIGTERM (${secs(t)}): ${codes.map(([n, c]) => `${n} exited ${c}`).join(", ")}`);
    if (codes.some(([, c]) => c !== 0)) ok = false;
    if (!o.has("--keep") && ok) rmSync(root, { recursive: true, force: true });
    else say(`   data, databases and logs kept in ${root}`);
  }
  say(`\n${ok ? "Every secure result equals its plaintext answer and the ledger verifies." : "SOMETHING DID NOT MATCH (see above)."} Done in ${secs()}.`);
  return ok ? 0 : 1;
}
