/**
 * Finding 7, the transport: the MITM in the attack session sat on plain
 * http. Both servers serve HTTPS (`--tls-cert`, `--tls-key`); a party trusts
 * a private CA with Node's NODE_EXTRA_CA_CERTS. Here, as processes started
 * the way the README shows: an exchange on HTTPS with a certificate made by
 * openssl, two parties reaching it over TLS (invited, the exchange's key
 * given as --exchange-key), a psi job through them; a party that does not
 * trust the certificate refuses to talk to the exchange at all; a party
 * given another fingerprint refuses it too.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, umbra } from "../helpers/cli.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../../engine/columns/index.js";

const root = mkdtempSync(join(tmpdir(), "umbra-f07-tls-"));
const cert = join(root, "exchange.crt");
const key = join(root, "exchange.key.pem");
const children: ChildProcess[] = [];


/** Starts a node and resolves with its URL and its whole first stdout line once it listens. */
function startNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ url: string; line: string }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  children.push(child);
  let out = "";
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const m = /^.* listening at (https?:\/\/\S+).*$/m.exec(out);
      if (m) resolve({ url: m[1] as string, line: m[0] });
    });
    child.once("exit", (code) => reject(new Error(`exited ${code} before listening: ${err}`)));
  });
}

let exchange: { url: string; line: string };
let fingerprint = "";
const db = join(root, "exchange", "exchange.db");
const dirs = { telco: join(root, "telco"), bank: join(root, "bank") };

const invite = async (name: string): Promise<string> => {
  const r = await umbra(["exchange", "invite", "--name", name, "--db", db, "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { code: string }).code;
};
const party = (name: keyof typeof dirs, code: string, fp: string) =>
  ["party", "start", "--name", name, "--exchange", exchange.url, "--exchange-key", fp, "--invite", code, "--port", "0", "--db", join(dirs[name], `${name}.db`), "--data", dirs[name]];

beforeAll(async () => {
  for (const d of [join(root, "exchange"), ...Object.values(dirs)]) mkdirSync(d, { recursive: true });
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  writeFileSync(join(dirs.telco, "subs.csv"), "phone\n" + Array.from({ length: 50 }, (_, i) => `1380000${String(i).padStart(4, "0")}`).join("\n") + "\n");
  writeFileSync(join(dirs.bank, "cust.csv"), "phone\n" + Array.from({ length: 40 }, (_, i) => `1380000${String(i + 30).padStart(4, "0")}`).join("\n") + "\n");
  exchange = await startNode(["exchange", "start", "--port", "0", "--db", db, "--tls-cert", cert, "--tls-key", key]);
  fingerprint = /key fingerprint ([0-9a-f]{16})/.exec(exchange.line)?.[1] as string;
}, 60_000);

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

describe("finding 7: the nodes over TLS", () => {
  it("the exchange serves HTTPS and prints its key fingerprint", () => {
    expect(exchange.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it("a party that does not trust the exchange's certificate refuses to talk to it (and spends no invitation)", async () => {
    const code = await invite("telco");
    const r = await umbra(party("telco", code, fingerprint));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/UMBRA_EXCHANGE_UNREACHABLE/);
    const parties = await umbra(["exchange", "parties", "--db", db, "--json"]);
    expect(JSON.stringify(JSON.parse(parties.stdout))).not.toMatch(/"name":"telco","fingerprint/);
  });

  it("a party given another fingerprint refuses the exchange before registering", async () => {
    const r = await umbra(party("telco", await invite("telco"), "0".repeat(16)), { NODE_EXTRA_CA_CERTS: cert });
    expect(r.status).toBe(1);
    expect(r.stderr, r.stderr).toMatch(/UMBRA_EXCHANGE_KEY_MISMATCH/);
  });

  it("parties trusting the CA run a psi job over TLS; the result equals the plain join", async () => {
    const env = { NODE_EXTRA_CA_CERTS: cert };
    const telco = await startNode(party("telco", await invite("telco"), fingerprint), env);
    const bank = await startNode(party("bank", await invite("bank"), fingerprint), env);
    expect(bank.line).toContain(`exchange key ${fingerprint} as given`);
    const tf = (n: keyof typeof dirs) => join(dirs[n], `${n}.token`);
    const reg = await umbra(["dataset", "register", "--party", telco.url, "--token-file", tf("telco"), "--file", "subs.csv", "--policy", JSON.stringify({ allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] })]);
    expect(reg.status, reg.stderr).toBe(0);
    const job = await umbra(["job", "submit", "--party", bank.url, "--token-file", tf("bank"), "--protocol", "psi", "--input", "cust.csv", "--provider-dataset", "telco.subs.csv", "--key", "phone", "--wait"]);
    expect(job.status, job.stderr).toBe(0);
    const id = /job (job-\S+) submitted/.exec(job.stdout)?.[1] as string;
    const out = join(root, "matched.csv");
    expect((await umbra(["job", "result", id, "--party", bank.url, "--token-file", tf("bank"), "--out", out])).status).toBe(0);
    const t = await readTable(out);
    expect(t.numRows).toBe(20);
    expect(readFileSync(out, "utf8").split(/\r?\n/)[0]).toBe("phone");
  });
});
