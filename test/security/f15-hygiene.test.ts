/**
 * Finding 15 (hygiene), the parts about results and budgets: `job result
 * --out` wrote 0644 (any local user could read the buyer's rows), and budget
 * rows survived a lowered budget (a buyer that had spent most of it kept the
 * full new budget). The other parts: the identity key file (f11), the
 * party's OpenAPI behind its token (f01), pruned nonces (f15-nonces).
 */
import { chmodSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { jobCommand } from "../../node/commands/jobs.js";
import { api, startNodes, tokenFileOf, waitForJob, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
const POLICY = { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 5, budgetUnit: "jobs" };
let firstJob = "";
const psi = () => api<{ id: string; error?: { rule: string } }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: POLICY })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("finding 15: results and budgets", () => {
  it("job result --out writes the buyer's rows readable by its owner only, even over an existing 0644 file", async () => {
    const r = await psi();
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    firstJob = r.body.id;
    const out = join(mkdtempSync(join(tmpdir(), "umbra-f15-")), "matched.csv");
    writeFileSync(out, "old\n");
    chmodSync(out, 0o644);
    expect(await jobCommand(["result", r.body.id, "--party", bank.url, "--token-file", tokenFileOf(bank), "--out", out], { out: () => undefined, err: () => undefined })).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
  });

  it("a lowered budget counts what was spent: 3 of 5 jobs spent, the budget lowered to 4 leaves 1, at the exchange and at the provider", async () => {
    for (let i = 0; i < 2; i++) expect(await waitForJob(bank.url, (await psi()).body.id)).toMatchObject({ state: "succeeded" });
    expect(x.store.getBudget("telco.subs.csv", "bank")?.remaining).toBe(2);
    expect(telco.store.getBudget("telco.subs.csv", "bank")?.remaining).toBe(2);
    const lowered = await api<{ policyVersion: number }>(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { ...POLICY, queryBudget: 4 }, update: true });
    expect(lowered.body.policyVersion).toBe(2);
    expect(x.store.getBudget("telco.subs.csv", "bank")?.remaining).toBe(1);
    expect(telco.store.getBudget("telco.subs.csv", "bank")?.remaining).toBe(1);
    expect(await waitForJob(bank.url, (await psi()).body.id)).toMatchObject({ state: "succeeded" });
    const before = snapshot(telco.store);
    const refused = await psi();
    expect(refused.status).toBe(403);
    expect(refused.body.error?.rule).toBe("budget-exhausted");
    expect(snapshot(telco.store)).toBe(before);
  });
  it("job result --out refuses a symbolic link (another user's link in a shared folder), leaving its target untouched (red-team F8)", async () => {
    const r = { body: { id: firstJob } };
    const dir = mkdtempSync(join(tmpdir(), "umbra-f15-"));
    const loot = join(dir, "loot");
    writeFileSync(loot, "");
    symlinkSync(loot, join(dir, "result.csv"));
    const errors: string[] = [];
    const code = await jobCommand(["result", r.body.id, "--party", bank.url, "--token-file", tokenFileOf(bank), "--out", join(dir, "result.csv")], { out: () => undefined, err: (l) => void errors.push(l) }).catch((e: unknown) => e);
    expect(code).toMatchObject({ code: "UMBRA_UNWRITABLE_FILE", message: 'file "result.csv": is a symbolic link; write to a file of your own instead' });
    expect(readFileSync(loot, "utf8")).toBe("");
  });

});
