/**
 * Finding 12 (medium): symbolic links escaped the data folder (the
 * containment check was lexical): registering `link/secret.csv` with
 * link → ../outside worked, and a lookup read it.
 *
 * The attacks, against a real agent: a file through a linked folder, a linked
 * file, a FIFO (which would block the agent on open), a folder, and `..` and
 * absolute names — each refused, nothing registered anywhere. A job whose
 * buyer file is a link out of the folder fails without reading it. A link that
 * stays inside the folder is fine.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { api, startNodes, waitForJob, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
const POLICY = { allowedProtocols: ["psi", "lookup"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100, budgetUnit: "jobs" };

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  const outside = mkdtempSync(join(tmpdir(), "umbra-outside-"));
  writeFileSync(join(outside, "secret.csv"), "phone,spend\n1,999\n2,999\n");
  symlinkSync(outside, join(telco.dataDir, "link"));
  symlinkSync(join(outside, "secret.csv"), join(telco.dataDir, "alias.csv"));
  execFileSync("mkfifo", [join(telco.dataDir, "pipe.csv")]);
  mkdirSync(join(telco.dataDir, "folder.csv"));
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone,spend\n1,10\n2,20\n");
  symlinkSync(join(telco.dataDir, "subs.csv"), join(telco.dataDir, "inside.csv"));
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n1\n2\n");
  symlinkSync(join(outside, "secret.csv"), join(bank.dataDir, "escape.csv"));
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("finding 12: the data folder is a real boundary", () => {
  it.each([
    ["a file through a linked folder", "link/secret.csv", 403],
    ["a linked file pointing out", "alias.csv", 403],
    ["a FIFO", "pipe.csv", 403],
    ["a folder", "folder.csv", 403],
    ["a .. name", "../secret.csv", 403],
    ["an absolute name", "/etc/passwd", 403],
  ])("refuses %s, registering nothing", async (_what, file, status) => {
    const before = [snapshot(x.store), snapshot(telco.store)];
    const r = await api<{ error: { code: string; message: string } }>(telco.url, "POST", "/v1/datasets", { file, policy: POLICY });
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe("UMBRA_FORBIDDEN");
    expect([snapshot(x.store), snapshot(telco.store)]).toEqual(before);
  });

  it("a folder on the way that other users may write is refused (they could swap in a link between the check and the read: red-team F6)", async () => {
    mkdirSync(join(telco.dataDir, "shared"));
    writeFileSync(join(telco.dataDir, "shared", "s.csv"), "phone,spend\n1,10\n");
    chmodSync(join(telco.dataDir, "shared"), 0o777);
    const before = [snapshot(x.store), snapshot(telco.store)];
    const r = await api<{ error: { code: string; message: string } }>(telco.url, "POST", "/v1/datasets", { file: "shared/s.csv", policy: POLICY });
    expect(r.status).toBe(403);
    expect(r.body.error.message).toBe('the folder "shared" of the data folder can be written by other users, who could swap a file for a link out of it while it is read; run chmod go-w on it');
    expect([snapshot(x.store), snapshot(telco.store)]).toEqual(before);
    chmodSync(join(telco.dataDir, "shared"), 0o755);
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "shared/s.csv", policy: POLICY })).status).toBe(201);
  });

  it("a link that stays inside the folder is an ordinary file", async () => {
    const r = await api<{ id: string; rows: number }>(telco.url, "POST", "/v1/datasets", { file: "inside.csv", policy: POLICY });
    expect(r.status).toBe(201);
    expect(r.body.rows).toBe(2);
  });

  it("a buyer file that links out of the folder: the job fails, its file unread", async () => {
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "escape.csv", providerDataset: "telco.inside.csv", params: { keyColumns: ["phone"] } });
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "failed", reason: "UMBRA_FORBIDDEN" });
    // Only the provider's messages (it started first); the buyer sent nothing.
    const fromBank = [...x.store.ledgerRows({ job: r.body.id })].filter((e) => e.kind === "job.step" && JSON.parse(e.body).from === "bank");
    expect(fromBank).toEqual([]);
  });
});
