/**
 * The node as a newcomer runs it (issue 18): config files, free ports and a
 * taken one, a quiet exit on a closed pipe, key normalisation on node jobs
 * (the same count as the local CLI), job list and --json, paths for dataset
 * register, audit verify given a party's database, and request lines of the
 * mailbox kept out of the info log. Real processes of dist/node/cli.js on
 * loopback, with temporary folders.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";
import { describeStatus } from "../node/commands/jobs.js";
import { parseJobRequest, requestExtends } from "../node/job-request.js";
import { CLI, umbra as run } from "./helpers/cli.js";

const root = mkdtempSync(join(tmpdir(), "umbra-newcomer-"));
const umbra = (...args: string[]) => run(args);

interface Node {
  readonly child: ChildProcess;
  url: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

/** Starts `umbra ARGS`; resolves once it prints its listening line. */
function startNode(...args: string[]): Promise<Node> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const node: Node = { child, url: "", stderr: "", exited };
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stderr.on("data", (c: Buffer) => (node.stderr += c.toString("utf8")));
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const m = / listening at (http:\/\/\S+)/.exec(out);
      if (m && node.url === "") {
        node.url = m[1] as string;
        resolve(node);
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening: ${node.stderr}`)));
  });
}

const children: ChildProcess[] = [];
const dirs = { exchange: join(root, "exchange"), telco: join(root, "telco"), bank: join(root, "bank"), elsewhere: join(root, "elsewhere") };
const exchangeDb = join(dirs.exchange, "exchange.db");
let exchange: Node;
let telco: Node;
let bank: Node;
const bankApi = () => ["--party", bank.url, "--token-file", join(dirs.bank, "bank.token")];
const telcoApi = () => ["--party", telco.url, "--token-file", join(dirs.telco, "telco.token")];

// The telco's phones are plain digits; the bank's the same numbers written with separators, 990 of them shared.
const digits = (i: number) => `4420794${String(60_000 + i)}`;
const formatted = (i: number) => `+44 20 794 ${String(60_000 + i).slice(0, 2)}-${String(60_000 + i).slice(2)}`;

const invite = async (name: string): Promise<string> => {
  const r = await umbra("exchange", "invite", "--name", name, "--db", exchangeDb, "--json");
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { code: string }).code;
};

const policy = JSON.stringify({ allowedProtocols: ["psi", "psi-cardinality"], outputColumns: [], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null });

beforeAll(async () => {
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  writeFileSync(join(dirs.telco, "subscribers.csv"), "phone\n" + Array.from({ length: 2_000 }, (_, i) => digits(i)).join("\n") + "\n");
  writeFileSync(join(dirs.bank, "customers.csv"), "phone,grade\n" + Array.from({ length: 1_000 }, (_, i) => `${formatted(1_010 + i)},A`).join("\n") + "\n");
  writeFileSync(join(dirs.elsewhere, "outside.csv"), "phone\n1\n");
  exchange = await startNode("exchange", "start", "--port", "0", "--db", exchangeDb);
  // The parties from config files (TOML and JSON; relative paths from the file's folder), the invitation by flag.
  writeFileSync(join(dirs.telco, "umbra.toml"), `name = "telco"\nport = 0\ndata = "."\ndb = "telco.db"\nexchange = "${exchange.url}"\n`);
  writeFileSync(join(dirs.bank, "umbra.json"), JSON.stringify({ name: "bank", port: 0, data: ".", db: "bank.db", exchange: exchange.url }));
  const [ti, bi] = [await invite("telco"), await invite("bank")];
  [telco, bank] = await Promise.all([
    startNode("party", "start", "--config", join(dirs.telco, "umbra.toml"), "--invite", ti),
    startNode("party", "start", "--config", join(dirs.bank, "umbra.json"), "--invite", bi),
  ]);
  const reg = await umbra("dataset", "register", ...telcoApi(), "--file", "subscribers.csv", "--policy", policy);
  expect(reg.status, reg.stderr).toBe(0);
}, 60_000);

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

const noStack = (s: string) => expect(s).not.toMatch(/^\s+at /m);

describe("starting nodes", () => {
  it("a party starts from a config file, with the paths in it taken from the file's folder", () => {
    expect(telco.stderr).not.toMatch(/UMBRA_/);
    expect(bank.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("a flag overrides the config file: the file's taken port, --port 0 given", async () => {
    const port = new URL(exchange.url).port;
    writeFileSync(join(root, "taken.toml"), `port = ${port}\ndb = "other.db"\n`);
    const n = await startNode("exchange", "start", "--config", join(root, "taken.toml"), "--port", "0");
    expect(n.url).not.toBe(exchange.url);
    n.child.kill("SIGTERM");
    expect(await n.exited).toBe(0);
  });

  it("docs/configuration.md's examples are config files the commands take", async () => {
    const doc = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const blocks = [...doc.matchAll(/```(toml|json)\n([\s\S]*?)```/g)].map((m) => ({ ext: m[1] as string, text: m[2] as string }));
    expect(blocks.map((b) => b.ext)).toEqual(["toml", "toml", "json"]);
    const dir = join(root, "docs-examples");
    mkdirSync(dir, { recursive: true });
    const [exchangeToml, bankToml, bankJson] = blocks.map((b, i) => {
      const file = join(dir, `example-${i}.${b.ext}`);
      writeFileSync(file, b.text);
      return file;
    }) as [string, string, string];
    // The exchange's example starts (its port replaced by a free one on the command line).
    const n = await startNode("exchange", "start", "--config", exchangeToml, "--port", "0");
    n.child.kill("SIGTERM");
    expect(await n.exited).toBe(0);
    // The parties' examples are read whole (no unknown key) before a bad flag is refused.
    for (const file of [bankToml, bankJson]) {
      const r = await umbra("party", "start", "--config", file, "--exchange-key", "zz");
      expect(r.stderr).toMatch(/^umbra: --exchange-key needs the exchange's key fingerprint/);
      expect(r.status).toBe(2);
    }
  });

  it("an unknown key in a config file is refused, naming it and the valid keys", async () => {
    writeFileSync(join(root, "bad.toml"), `name = "x"\nhttp-port = 7302\n`);
    const r = await umbra("party", "start", "--config", join(root, "bad.toml"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^umbra: UMBRA_INVALID_CONFIG: config file "bad\.toml": unknown key "http-port" \(valid keys: .*\bport\b.*\bdata\b/m);
    noStack(r.stderr);
    writeFileSync(join(root, "broken.toml"), `name = "x\nport = 1\n`);
    const broken = await umbra("party", "start", "--config", join(root, "broken.toml"));
    expect(broken.stderr).toBe('umbra: UMBRA_INVALID_CONFIG: config file "broken.toml": not valid TOML at line 1, column 10: control characters are not allowed in strings\n');
    expect(broken.status).toBe(1);
  });

  it("a second party on a port in use: a typed error naming the port and --port 0, no stack", async () => {
    const port = new URL(bank.url).port;
    const r = await umbra("party", "start", "--name", "carol", "--exchange", exchange.url, "--port", port, "--db", join(root, "carol.db"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`umbra: UMBRA_PORT_IN_USE: port ${port} on 127.0.0.1 is in use`);
    expect(r.stderr).toContain("--port 0 for any free port");
    expect(r.stderr).not.toMatch(/EADDRINUSE/);
    noStack(r.stderr);
  });

  it("an exchange on a port in use: the same typed error", async () => {
    const port = new URL(exchange.url).port;
    const r = await umbra("exchange", "start", "--port", port, "--db", join(root, "second.db"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^umbra: UMBRA_PORT_IN_USE: port ${port} on 127\\.0\\.0\\.1 is in use .*start this exchange with --port N`, "m"));
    noStack(r.stderr);
  });

  it("a party started before its exchange waits for it, and prints its listening line once registered", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const early = startNode("party", "start", "--name", "early", "--exchange", `http://127.0.0.1:${port}`, "--port", "0", "--db", join(root, "early", "early.db"));
    // Started once the party says it waits: nothing listened at the exchange's address when it first asked.
    const child = children[children.length - 1] as ChildProcess;
    await new Promise<void>((resolve) => {
      let err = "";
      const onData = (c: Buffer) => {
        err += c.toString("utf8");
        if (err.includes("waiting for the exchange to answer")) {
          child.stderr?.off("data", onData);
          resolve();
        }
      };
      child.stderr?.on("data", onData);
    });
    const later = await startNode("exchange", "start", "--port", String(port), "--db", join(root, "later", "exchange.db"), "--open-registration");
    const party = await early;
    expect(party.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    later.child.kill("SIGTERM");
    party.child.kill("SIGTERM");
    expect(await later.exited).toBe(0);
  });

  it("the exchange's info log has no mailbox poll lines (they are at debug)", () => {
    expect(exchange.stderr).toMatch(/"msg":"incoming request"/);
    expect(exchange.stderr).not.toMatch(/\/v1\/mailbox/);
  });
});

describe("key normalisation on node jobs", () => {
  let local: number;
  it("local psi --digits-only counts 990 shared phones", async () => {
    const r = await umbra("psi", "--buyer", join(dirs.bank, "customers.csv"), "--provider", join(dirs.telco, "subscribers.csv"), "--key", "phone", "--digits-only", "--cardinality", "--quiet");
    expect(r.status, r.stderr).toBe(0);
    local = Number(/([\d,]+)/.exec(r.stdout)?.[1]?.replace(/,/g, ""));
    expect(local).toBe(990);
  });

  it("without --digits-only the job matches none and warns that the key shapes differ, naming the fix", async () => {
    const r = await umbra("job", "submit", ...bankApi(), "--protocol", "psi", "--input", "customers.csv", "--provider-dataset", "telco.subscribers.csv", "--key", "phone", "--wait");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/succeeded: rows 0/);
    expect(r.stderr).toMatch(/warning: the provider's phone keys are plain digits and yours contain separators: add --digits-only/);
  });

  it("with --digits-only the job matches as many as the local CLI, both sides normalising alike", async () => {
    const r = await umbra("job", "submit", ...bankApi(), "--protocol", "psi", "--input", "customers.csv", "--provider-dataset", "telco.subscribers.csv", "--key", "phone", "--digits-only", "--wait", "--json");
    expect(r.status, r.stderr).toBe(0);
    const done = JSON.parse(r.stdout) as { state: string; progress: { rows: number } };
    expect(done.state).toBe("succeeded");
    expect(done.progress.rows).toBe(local);
    expect(r.stderr).not.toMatch(/warning/);
  });

  it("lookup with --digits-only: the provider's prepared table is normalised alike, 990 buyer rows get a plan", async () => {
    writeFileSync(join(dirs.telco, "plans.csv"), "phone,plan\n" + Array.from({ length: 2_000 }, (_, i) => `${digits(i)},p${i % 7}`).join("\n") + "\n");
    const lookupPolicy = JSON.stringify({ allowedProtocols: ["lookup"], outputColumns: ["plan"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null });
    const reg = await umbra("dataset", "register", ...telcoApi(), "--file", "plans.csv", "--policy", lookupPolicy);
    expect(reg.status, reg.stderr).toBe(0);
    const r = await umbra("job", "submit", ...bankApi(), "--protocol", "lookup", "--input", "customers.csv", "--provider-dataset", "telco.plans.csv", "--key", "phone", "--columns", "plan", "--digits-only", "--wait", "--json");
    expect(r.status, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const out = join(root, "plans-out.csv");
    const res = await umbra("job", "result", id, ...bankApi(), "--out", out);
    expect(res.status, res.stderr).toBe(0);
    const t = await readTable(out);
    const plans = Array.from({ length: t.numRows }, (_, i) => t.getChild("plan")?.get(i) as string | null).filter((p) => p !== null && p !== "");
    expect(plans).toHaveLength(990);
  });

  it("join-aggregate with --digits-only: both sides' keys normalised alike, the count over 990 joined rows", async () => {
    writeFileSync(join(dirs.telco, "spend.csv"), "phone,spend\n" + Array.from({ length: 2_000 }, (_, i) => `${digits(i)},${i % 10}`).join("\n") + "\n");
    const joinPolicy = JSON.stringify({ allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 5, queryBudget: 100, budgetUnit: "jobs", expiresAt: null });
    const reg = await umbra("dataset", "register", ...telcoApi(), "--file", "spend.csv", "--policy", joinPolicy);
    expect(reg.status, reg.stderr).toBe(0);
    const r = await umbra("job", "submit", ...bankApi(), "--protocol", "join-aggregate", "--input", "customers.csv", "--provider-dataset", "telco.spend.csv", "--key", "phone", "--agg", "count", "--digits-only", "--wait", "--json");
    expect(r.status, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const out = join(root, "join-out.csv");
    expect((await umbra("job", "result", id, ...bankApi(), "--out", out)).status).toBe(0);
    const t = await readTable(out);
    expect(Number(t.getChild("count")?.get(0))).toBe(990);
  }, 120_000);

  it("a job request carries its normalisation: checked by its schema, kept by the exchange, refused where no key is joined", () => {
    const asked = parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "c.csv", providerDataset: "t.s", params: { keyColumns: ["phone"], normalise: { digitsOnly: true } } });
    expect(asked.params.normalise).toEqual({ digitsOnly: true });
    // An agent runs a job only as it asked for it: the exchange cannot drop (or add) the normalisation.
    expect(requestExtends(asked, { ...asked, params: { ...asked.params, normalise: { digitsOnly: true } } })).toBe(true);
    const { normalise: _dropped, ...without } = asked.params;
    expect(requestExtends(asked, { ...asked, params: without })).toBe(false);
    expect(() => parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "c.csv", providerDataset: "t.s", params: { keyColumns: ["phone"], normalise: { digits: true } } })).toThrow('params.normalise."digits": unknown field: did you mean digitsOnly? (the fields are digitsOnly, caseFold)');
    expect(() => parseJobRequest({ protocol: "federated-aggregate", buyer: "bank", providerDatasets: ["a", "b"], params: { aggregate: { aggregates: [{ fn: "count" }] }, normalise: { caseFold: true } } })).toThrow(
      /params\.normalise: does not apply to protocol federated-aggregate/,
    );
  });

  it("--digits-only does not apply to federated-aggregate", async () => {
    const r = await umbra("job", "submit", ...bankApi(), "--protocol", "federated-aggregate", "--provider-dataset", "a", "--provider-dataset", "b", "--agg", "count", "--digits-only");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--digits-only does not apply to federated-aggregate/);
  });
});

describe("scripting and recovering", () => {
  it("job list shows this party's jobs newest first; --json and --state", async () => {
    const r = await umbra("job", "list", ...bankApi(), "--json");
    expect(r.status, r.stderr).toBe(0);
    const jobs = JSON.parse(r.stdout) as { id: string; protocol: string; state: string; role: string; createdAt: number; summary: string }[];
    expect(jobs.map((j) => j.protocol)).toEqual(["join-aggregate", "lookup", "psi", "psi"]);
    expect(jobs[2]?.createdAt).toBeGreaterThanOrEqual(jobs[3]?.createdAt as number);
    expect(jobs[2]?.summary).toBe("buyer: customers.csv with telco.subscribers.csv; rows 990");
    const text = await umbra("job", "list", ...bankApi());
    expect(text.stdout.split("\n")[0]).toMatch(/^id\s+protocol\s+state\s+created\s+summary$/);
    expect(text.stdout).toContain(jobs[0]?.id);
    const none = await umbra("job", "list", ...bankApi(), "--state", "failed");
    expect(none.stdout.trim()).toBe("no failed jobs");
    const bad = await umbra("job", "list", ...bankApi(), "--state", "done");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--state must be one of submitted, running, succeeded/);
  });

  it("job status prints its state for a person, and the view with --json", async () => {
    const id = (JSON.parse((await umbra("job", "list", ...bankApi(), "--json")).stdout) as { id: string }[])[2]?.id as string;
    const text = await umbra("job", "status", id, ...bankApi());
    expect(text.stdout).toMatch(/^ {2}state: succeeded$/m);
    expect(text.stdout).not.toMatch(/progress: \{/);
    const json = JSON.parse((await umbra("job", "status", id, ...bankApi(), "--json")).stdout) as { id: string; state: string };
    expect(json).toMatchObject({ id, state: "succeeded" });
  });

  it("job status of a running job: each party's phase, %, rows/s and the time left at that rate", () => {
    const now = Date.parse("2026-01-01T00:00:10Z");
    const text = describeStatus(
      { id: "job-1", protocol: "psi", buyer: "bank", providers: ["telco"], state: "running", reason: null, progress: { telco: { phase: "provider: hash keys", done: 5_000, total: 10_000 } }, createdAt: now - 10_000, updatedAt: now },
      now,
    );
    expect(text.split("\n")).toContain("  telco: provider: hash keys 50% (5,000 of 10,000 rows, 500 rows/s, about 10 s left)");
  });

  it("job result --out into a folder that does not exist fails before fetching; the result is still there after", async () => {
    const id = (JSON.parse((await umbra("job", "list", ...bankApi(), "--json")).stdout) as { id: string }[])[2]?.id as string;
    const r = await umbra("job", "result", id, ...bankApi(), "--out", join(root, "no-such-folder", "o.csv"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^umbra: UMBRA_UNWRITABLE_FILE: cannot write --out ".*o\.csv": its folder ".*no-such-folder" does not exist \(ENOENT\); create it first or choose another path$/m);
    const ok = await umbra("job", "result", id, ...bankApi(), "--out", join(root, "o.csv"), "--json");
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ job: id, kind: "table", rows: 990 });
  });

  it("dataset register and list with --json", async () => {
    const list = await umbra("dataset", "list", ...bankApi(), "--json");
    expect((JSON.parse(list.stdout) as { id: string }[]).map((d) => d.id).sort()).toEqual(["telco.plans.csv", "telco.spend.csv", "telco.subscribers.csv"]);
  });

  it("audit show | head: a closed pipe ends it quietly", async () => {
    const child = spawn(process.execPath, [CLI, "audit", "show", "--db", exchangeDb], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.once("close", r));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  it("audit verify --json on the exchange's db; a party's db is refused with what to give instead", async () => {
    const ok = await umbra("audit", "verify", "--db", exchangeDb, "--json");
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true });
    const r = await umbra("audit", "verify", "--db", join(dirs.bank, "bank.db"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^umbra: UMBRA_NOT_EXCHANGE_DB: "bank\.db" is party "bank"'s database, which holds no ledger: give the exchange's .*umbra party head/m);
    noStack(r.stderr);
  });
});

describe("dataset register paths", () => {
  it("an absolute path inside the data folder is registered under its name there", async () => {
    writeFileSync(join(dirs.telco, "more.csv"), "phone\n1\n2\n");
    const r = await umbra("dataset", "register", ...telcoApi(), "--file", join(dirs.telco, "more.csv"), "--policy", policy, "--json");
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: "telco.more.csv", rows: 2 });
  });

  it("a path outside the data folder is refused, naming the folder and the fix", async () => {
    const r = await umbra("dataset", "register", ...telcoApi(), "--file", join(dirs.elsewhere, "outside.csv"), "--policy", policy);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^umbra: UMBRA_FORBIDDEN: the file is outside this party's data folder \(.*telco\): copy it into that folder, or start the party with --data DIR/m);
  });
});
