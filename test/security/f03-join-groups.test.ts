/**
 * Finding 3 (high): join-aggregate's k was bypassed by overlapping groups in
 * one job. Group A = {target, x1..x10}, group B = {x1..x10} (the buyer's file
 * repeated a key in two groups): A − B gave the target's exact value with
 * k = 10.
 *
 * The attacks, against a real exchange and provider agent:
 *  1. the honest buyer agent with that file: its own role refuses, naming the
 *     group column and the rows, before it sends anything;
 *  2. a modified buyer agent (driven by hand here, with the bank's keys) that
 *     sends a legitimate-looking job whose weights name both groups at one
 *     position: the exchange's role refuses the message, the job fails, and
 *     no group total ever reaches the buyer.
 *
 * And two leaks past k found later against real nodes, through the honest
 * buyer agent (the file alone is the attack):
 *  3. k counted in joined rows: the target's phone ten times in group T (30
 *     other phones in A), k = 10, released `T,10,7540,754` — one person's
 *     spend. The exchange now releases a group only with at least k distinct
 *     matched keys: T is not released, A is released as before;
 *  4. membership through the suppressed count: a one-key group said
 *     "suppressed" when the key matched and nothing when it did not. Every
 *     group not released now counts as suppressed: a member's and a
 *     non-member's one-key group give the buyer the same answer.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Table, tableFromIPC, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { openEnvelope, sealEnvelope, type SenderKeys } from "../../node/envelope.js";
import { generateIdentity, maskKeyPair, type NodeIdentity } from "../../node/identity.js";
import { jobLimitsOf, type JobSpec } from "../../node/jobs/protocol.js";
import { nodeProtocolFor } from "../../node/jobs/registry.js";
import { RoleRun } from "../../node/jobs/run.js";
import { parseJobRequest } from "../../node/policy.js";
import { ExchangeClient } from "../../node/server/client.js";
import { CONTROL_STEP, parseControl } from "../../node/server/control.js";
import { unpackDeliveries } from "../../node/server/mailbox.js";
import { decodeMessage, encodeMessage, type JoinWeights } from "../../protocols/index.js";
import { api, inviteAt, partyHeaders, startNodes, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
const K = 10;
const xs = Array.from({ length: 10 }, (_, i) => `x-${i}`);

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"], { exchangePool: true });
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "spend.csv"), "id,spend\n" + ["target", ...xs, "y-0"].map((k, i) => `${k},${i === 0 ? 9999 : 10}`).join("\n") + "\n");
  // The attacker's file: A = {target, x…}, B = {x…}.
  writeFileSync(join(bank.dataDir, "overlap.csv"), "id,g\n" + [["target", "A"], ...xs.map((k) => [k, "A"]), ...xs.map((k) => [k, "B"])].map(([k, g]) => `${k},${g}`).join("\n") + "\n");
  const policy = { allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank", "mallory"], minGroupSize: K, queryBudget: 100, budgetUnit: "jobs" };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "spend.csv", policy })).status).toBe(201);
  // Findings 3–4's provider: the target (spend 754) and 30 others (spend 100 + i), one row each; a policy with no psi.
  writeFileSync(join(telco.dataDir, "phones.csv"), "phone,spend\n" + [`${TARGET},754`, ...others.map((p, i) => `${p},${100 + i}`)].join("\n") + "\n");
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "phones.csv", policy: { ...policy, keyColumns: ["phone"] } })).status).toBe(201);
  const file = (rows: readonly (readonly [string, string])[]) => "phone,g\n" + rows.map(([k, g]) => `${k},${g}`).join("\n") + "\n";
  const a = others.map((p) => [p, "A"] as const);
  writeFileSync(join(bank.dataDir, "repeats.csv"), file([...Array.from({ length: 10 }, () => [TARGET, "T"] as const), ...a]));
  writeFileSync(join(bank.dataDir, "member.csv"), file([[TARGET, "M"], ...a]));
  writeFileSync(join(bank.dataDir, "nonmember.csv"), file([["+86-138-0000-0000", "M"], ...a]));
}, 60_000);

const TARGET = "+86-138-4242-4242";
const others = Array.from({ length: 30 }, (_, i) => `+86-139-0000-${String(1000 + i)}`);

/** Runs a join-aggregate job of the bank's FILE against telco.phones.csv (k = 10); what the bank's agent shows: its result rows and summary. */
async function bankSees(file: string): Promise<{ rows: string[]; progress: unknown }> {
  const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
    protocol: "join-aggregate", buyerDataset: file, providerDataset: "telco.phones.csv",
    params: { keyColumns: ["phone"], aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "avg", column: "spend" }], groupBy: { column: "g" }, maxAbsValue: "10000", maxJoinRows: 1000 } },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
  const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${r.body.id}/result`, { headers: partyHeaders(bank.url) })).arrayBuffer()));
  const rows = Array.from({ length: t.numRows }, (_, i) => ["g", "count", "sum_spend", "avg_spend"].map((c) => String(t.getChild(c)?.get(i))).join(","));
  return { rows, progress: (await api<{ progress: unknown }>(bank.url, "GET", `/v1/jobs/${r.body.id}`)).body.progress };
}

/** Group A as the plaintext join gives it: 30 phones, spend 100 … 129. */
const A_ROW = `A,30,${30 * 100 + (29 * 30) / 2},${(30 * 100 + (29 * 30) / 2) / 30}`;

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const request = (buyer: string, file: string) => ({
  protocol: "join-aggregate", buyer, buyerDataset: file, providerDataset: "telco.spend.csv",
  params: { keyColumns: ["id"], aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "g" }, maxAbsValue: "10000", maxJoinRows: 1000 } },
});

describe("finding 3: each buyer key in one group", () => {
  it("the honest buyer agent refuses its own overlapping file (its role names the column and rows) and sends nothing", async () => {
    const { buyer: _b, ...body } = request("bank", "overlap.csv");
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", body);
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "failed", reason: "UMBRA_OVERLAPPING_GROUPS" });
    const fromBank = [...x.store.ledgerRows({ job: r.body.id })].map((e) => JSON.parse(e.body) as { from?: string }).filter((b) => b.from === "bank");
    expect(fromBank).toEqual([]);
    expect([...x.store.ledgerRows({ job: r.body.id })].map((e) => e.kind)).not.toContain("job.result");
  });

  it("a modified buyer agent whose weights name both groups at one position: the exchange refuses, no total reaches the buyer", async () => {
    // Mallory: a registered buyer whose agent is the attacker's own code.
    const mallory: NodeIdentity = generateIdentity("mallory");
    const client = new ExchangeClient(x.url, mallory);
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    await client.json("POST", "/v1/parties", { name: "mallory", signingPublicKey: hex(mallory.signing.publicKey), boxPublicKey: hex(mallory.box.publicKey), maskPublicKey: hex(maskKeyPair(mallory).publicKey), invite: inviteAt(x.url, "mallory") });
    const keysOf = async (name: string): Promise<SenderKeys> => {
      const p = await client.json<{ signingPublicKey: string; boxPublicKey: string }>("GET", `/v1/parties/${name}`);
      return { signingPublicKey: Buffer.from(p.signingPublicKey, "hex"), boxPublicKey: Buffer.from(p.boxPublicKey, "hex") };
    };
    const xKeys: SenderKeys = { signingPublicKey: x.identity.signing.publicKey, boxPublicKey: x.identity.box.publicKey };
    const asked = parseJobRequest(request("mallory", "legit.csv"));
    const job = (await client.json<{ id: string }>("POST", "/v1/jobs", asked)).id;

    // Wait for job.start (the provider accepted), then run an honest buyer role on a legitimate-looking input…
    let start: ReturnType<typeof parseControl> | undefined;
    const nonces = new Set<string>();
    const open = (f: Uint8Array) => openEnvelope(f, { self: mallory, lookupSender: (n) => (n === "exchange" ? xKeys : undefined), replay: { seen: (_s, n) => nonces.has(hex(n)), remember: (_s, n) => void nonces.add(hex(n)) } });
    let after = 0;
    await waitUntil(async () => {
      for (const d of unpackDeliveries(await client.binary("GET", `/v1/mailbox?wait=200&after=${after}`))) {
        after = Math.max(after, d.id);
        const e = open(Uint8Array.from(d.frame));
        if (e.step === CONTROL_STEP) start = parseControl(e.job, e.payload);
      }
      return start !== undefined;
    }, "mallory's job.start");
    expect(start?.type).toBe("job.start");
    const filled = (start as { request: ReturnType<typeof parseJobRequest> }).request;
    const table = new Table({ id: vectorFromArray(["target", ...xs, "y-0"], new Utf8()), g: vectorFromArray(["A", ...xs.map(() => "A"), "B"], new Utf8()) });
    const spec: JobSpec = { id: job, protocol: "join-aggregate", request: filled, buyer: "mallory", providers: ["telco"], exchange: "exchange", buyerDataset: "legit.csv", providerDataset: "telco.spend.csv", keyColumns: ["id"], limits: jobLimitsOf(filled) };
    // Mallory's agent starts its role as an honest one would…
    const ja = nodeProtocolFor("join-aggregate")!;
    const { out } = await RoleRun.start(await ja.player(spec, "buyer", { pool, table }), ja.parties(spec));

    // …and forge its weights: the first position now also counts a row in the other group.
    const u32 = (b: Uint8Array) => Array.from(new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    const toU8 = (a: number[]) => new Uint8Array(Uint32Array.from(a).buffer);
    const forged = out.filter((f) => f.to === "exchange").map(({ frame }) => {
      const m = decodeMessage(frame);
      if (m.kind !== "joinWeights" || m.header.chunk !== 0) return frame;
      const w = m as JoinWeights;
      const [off, codes, weights] = [u32(w.offsets), u32(w.codes), u32(w.weights)];
      return encodeMessage({ ...w, offsets: toU8(off.map((o, i) => (i === 0 ? o : o + 1))), codes: toU8([codes[0] as number, 1 - (codes[0] as number), ...codes.slice(1)]), weights: toU8([weights[0] as number, 1, ...weights.slice(1)]) });
    });
    const telcoKeys = await keysOf("telco");
    let seq = 0;
    const send = async (to: string, keys: SenderKeys, frames: readonly Uint8Array[]) => {
      for (const f of frames) await client.sendRaw("/v1/relay", sealEnvelope({ job, step: decodeMessage(f).header.step, sender: mallory, recipient: to, sequence: seq++, payload: f, encryptTo: keys.boxPublicKey }));
    };
    await send("telco", telcoKeys, out.filter((f) => f.to === "telco").map((f) => f.frame));
    await send("exchange", xKeys, forged);

    await waitUntil(() => x.store.getJob(job)?.state === "failed", "the exchange's refusal");
    expect(x.store.getJob(job)?.reason).toBe("UMBRA_INVALID_MESSAGE");
    // Nothing the exchange sent mallory carries a total: its ledger shows no step from the exchange to mallory, and no result.
    const entries = [...x.store.ledgerRows({ job })].map((e) => ({ kind: e.kind, body: JSON.parse(e.body) as { from?: string; to?: string } }));
    expect(entries.filter((e) => e.kind === "job.step" && e.body.from === "exchange" && e.body.to === "mallory")).toEqual([]);
    expect(entries.map((e) => e.kind)).not.toContain("job.result");
  });
});

describe("findings 3–4 (later): k counts distinct matched keys; a group not released reads the same whatever matched", () => {
  it("the target's phone ten times in group T is not released; group A is released as without T", async () => {
    const attack = await bankSees("repeats.csv");
    expect(attack).toEqual({ rows: [A_ROW], progress: { groups: 1, suppressed: 1 } });
  }, 90_000);

  it("a one-key group of a member and of a non-member give the bank the same answer", async () => {
    const member = await bankSees("member.csv");
    const nonMember = await bankSees("nonmember.csv");
    const notReleased = { rows: [A_ROW], progress: { groups: 1, suppressed: 1 } };
    expect([member, nonMember]).toEqual([notReleased, notReleased]);
  }, 90_000);
});
