/**
 * Finding 16 (red team of durable jobs): the relay became a table, parties
 * acknowledge what they processed, envelopes carry sequence numbers and a
 * recipient skips what it has processed. The new surfaces, attacked against
 * real servers on loopback:
 *
 * - POST /v1/mailbox/ack: acknowledging another party's envelopes, malformed
 *   bodies, job ids with SQL and LIKE metacharacters, unsigned and replayed
 *   requests;
 * - GET /v1/mailbox?after=: negative, NaN, 2^64, strings;
 * - POST /v1/relay: the same (job, sender, recipient, sequence) sent again
 *   with other content, a sequence far ahead (2^53 − 1, and 2^53 crafted on
 *   the wire), a duplicate for a job that has ended, from a party that is not
 *   the sender, the same bytes again;
 * - a malicious exchange delivering again to a party agent an envelope it
 *   processed, an envelope of an ended job, an old job.start;
 * - bounds: a party that never acknowledges; the relay's bookkeeping rows.
 *
 * Each refusal leaves the exchange's store, ledger and mailboxes as they were
 * (exchangeSnapshot); a party shown an envelope again changes nothing.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { sealEnvelope } from "../../node/envelope.js";
import type { NodeIdentity } from "../../node/identity.js";
import { LedgerKind, listEntries } from "../../node/ledger.js";
import { signRequest } from "../../node/server/auth.js";
import { unpackDeliveries } from "../../node/server/mailbox.js";
import type { RelayRow, Store } from "../../node/store.js";
import { decodeEnvelope } from "../../protocols/envelope-codec.js";
import { api, startExchange, startParty, waitForJob, waitUntil, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { exchangeSnapshot, handJob, handParty, signedRequest, snapshot, takeMail } from "./kit.js";

const MiB = 1024 * 1024;
const MAX = Number.MAX_SAFE_INTEGER;
/** A marker in every hand-made payload: it must never reach a log line or an error message. */
const MARKER = "f16-payload-marker-7c1d";

type Answer = { error?: { code: string; message: string } } & Record<string, unknown>;

/** A protocol envelope from `from` to `to` in `job` (unsealed payload carrying the marker, plus `extra` random bytes). */
const envelope = (job: string, from: NodeIdentity, to: string, sequence: number, extra = 0, step = 1): Uint8Array =>
  sealEnvelope({ job, step, sender: from, recipient: to, sequence, payload: Buffer.concat([Buffer.from(MARKER), randomBytes(extra)]) });

const relay = (x: TestExchange, as: NodeIdentity, env: Uint8Array) => signedRequest<Answer>(x.url, as, "POST", "/v1/relay", { raw: env });
const ack = (x: TestExchange, as: NodeIdentity, body: unknown) => signedRequest<Answer>(x.url, as, "POST", "/v1/mailbox/ack", { body });
/** What a party's poll is handed (not acknowledged). */
async function poll(x: TestExchange, as: NodeIdentity, query = ""): Promise<{ status: number; deliveries: { id: number; frame: Uint8Array }[] }> {
  const r = await signedRequest<Buffer>(x.url, as, "GET", `/v1/mailbox${query}`);
  return { status: r.status, deliveries: r.status === 200 ? unpackDeliveries(r.body) : [] };
}
/** The rows queued for `recipient` in the exchange's store (ids, senders, sequences and bytes). */
const queued = (x: TestExchange, recipient: string) =>
  x.store.durable.relayAfter(recipient, 0, Number.MAX_SAFE_INTEGER).map((r) => [r.id, r.job, r.sender, r.sequence, r.kind, Buffer.from(r.frame).toString("hex")]);

/** The number of rows of one of the store's tables (the durable bookkeeping is not otherwise listed). */
function rowCount(store: Store, table: "relay_taken" | "sequences" | "inbound" | "relay", job?: string): number {
  const db = (store.durable as unknown as { ctx: { db: { prepare(s: string): { get(...a: unknown[]): unknown } } } }).ctx.db;
  const row = (job === undefined ? db.prepare(`SELECT count(*) AS n FROM ${table}`).get() : db.prepare(`SELECT count(*) AS n FROM ${table} WHERE job = ?`).get(job)) as { n: number };
  return row.n;
}

/** The error an answer carries says nothing of the job, the names or the payload. */
function saysNothing(body: Answer, secrets: readonly string[]): void {
  const text = JSON.stringify(body);
  for (const s of [MARKER, ...secrets]) expect(text).not.toContain(s);
}

describe("finding 16: acknowledgements, polls and duplicates at the relay", () => {
  let x: TestExchange;
  let bank: NodeIdentity;
  let telco: NodeIdentity;
  let eve: NodeIdentity;
  let job: string;
  const logs: string[] = [];
  let seq = 100;

  beforeAll(async () => {
    x = await startExchange({ logger: { level: "debug", stream: { write: (s: string) => void logs.push(s) } } });
    bank = await handParty(x, "bank");
    telco = await handParty(x, "telco");
    eve = await handParty(x, "eve");
    job = await handJob(x, bank, telco);
    // Something queued for each of bank and telco, that eve's and each other's requests must leave alone.
    expect((await relay(x, bank, envelope(job, bank, "telco", seq++))).status).toBe(202);
    expect((await relay(x, telco, envelope(job, telco, "bank", seq++))).status).toBe(202);
  }, 60_000);

  afterAll(async () => {
    await x?.close();
  });

  it("acknowledging another party's envelopes (its job, every delivery number) deletes none of them", async () => {
    const before = exchangeSnapshot(x);
    const bankRows = queued(x, "bank");
    expect(bankRows.length).toBeGreaterThan(0);
    // eve plays no part in the job; telco does, and acknowledges up to the last delivery number there could be.
    const byEve = await ack(x, eve, { acks: [{ job, upTo: MAX }] });
    expect(byEve.status).toBe(200);
    expect(exchangeSnapshot(x)).toBe(before);
    const byTelco = await ack(x, telco, { acks: [{ job, upTo: MAX }] });
    expect(byTelco.status).toBe(200);
    // telco's own queue is its own to empty; bank's is untouched.
    expect(queued(x, "bank")).toEqual(bankRows);
    expect(queued(x, "telco").filter((r) => r[1] === job)).toEqual([]);
  });

  it.each([
    ["a negative upTo", { acks: [{ job: "J", upTo: -1 }] }],
    ["upTo 0", { acks: [{ job: "J", upTo: 0 }] }],
    ["a fractional upTo", { acks: [{ job: "J", upTo: 1.5 }] }],
    ["upTo 2^53", { acks: [{ job: "J", upTo: 2 ** 53 }] }],
    ["upTo 1e308", { acks: [{ job: "J", upTo: 1e308 }] }],
    ["upTo as a string", { acks: [{ job: "J", upTo: "5" }] }],
    ["upTo missing", { acks: [{ job: "J" }] }],
    ["upTo null", { acks: [{ job: "J", upTo: null }] }],
    ["257 acknowledgements", { acks: Array.from({ length: 257 }, () => ({ job: "J", upTo: 1 })) }],
    ["no acknowledgement", { acks: [] }],
    ["acks not an array", { acks: { job: "J", upTo: 1 } }],
    ["an unknown field beside acks", { acks: [{ job: "J", upTo: 1 }], all: true }],
    ["an unknown field in an ack", { acks: [{ job: "J", upTo: 1, recipient: "bank" }] }],
    ["a job id with SQL", { acks: [{ job: "J' OR '1'='1", upTo: MAX }] }],
    ["a job id with a LIKE wildcard %", { acks: [{ job: "%", upTo: MAX }] }],
    ["a job id of 129 characters", { acks: [{ job: "j".repeat(129), upTo: 1 }] }],
    ["an empty job id", { acks: [{ job: "", upTo: 1 }] }],
    ["a body that is an array", [{ job: "J", upTo: 1 }]],
  ])("an acknowledgement with %s is refused (400) and nothing changes", async (_what, body) => {
    const text = JSON.stringify(body).replaceAll('"J"', JSON.stringify(job));
    const before = exchangeSnapshot(x);
    const r = await ack(x, bank, JSON.parse(text));
    expect([r.status, r.body.error?.code]).toEqual([400, "UMBRA_BAD_REQUEST"]);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("a job id that is a LIKE wildcard in the allowed alphabet (_) matches itself only: nothing of the real job is deleted", async () => {
    const before = exchangeSnapshot(x);
    const r = await ack(x, bank, { acks: [{ job: "_", upTo: MAX }, { job: "________", upTo: MAX }] });
    expect(r.status).toBe(200);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("an unsigned and a wrongly signed acknowledgement are refused (401), a replayed one (409): nothing changes", async () => {
    const body = { acks: [{ job, upTo: MAX }] };
    const before = exchangeSnapshot(x);
    const unsigned = await fetch(`${x.url}/v1/mailbox/ack`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(unsigned.status).toBe(401);
    // Signed by eve, claiming to be bank.
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const forged = await signedRequest<Answer>(x.url, eve, "POST", "/v1/mailbox/ack", { body, headers: { ...signRequest(eve, "POST", "/v1/mailbox/ack", bytes, Date.now()), "x-umbra-party": "bank" } });
    expect(forged.status).toBe(401);
    expect(exchangeSnapshot(x)).toBe(before);
    // bank's own acknowledgement of an unknown job goes through once; the same request again is a replay.
    const first = await ack(x, bank, { acks: [{ job: "no-such-job", upTo: 1 }] });
    expect(first.status).toBe(200);
    const replayed = await signedRequest<Answer>(x.url, bank, "POST", "/v1/mailbox/ack", { body: { acks: [{ job: "no-such-job", upTo: 1 }] }, headers: first.sent });
    expect([replayed.status, replayed.body.error?.code]).toEqual([409, "UMBRA_REPLAY"]);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it.each(["-1", "-9007199254740993", "NaN", "18446744073709551616", "1e400", "Infinity", "-Infinity", "abc", "0x10", "", "1&after=2", "%00", "1.9e1"])(
    "a poll with after=%s answers 200 with the poller's own envelopes only, and changes nothing",
    async (after) => {
      const before = exchangeSnapshot(x);
      const byEve = await poll(x, eve, `?after=${after}`);
      expect([byEve.status, byEve.deliveries.length]).toEqual([200, 0]);
      const byBank = await poll(x, bank, `?after=${after}`);
      expect(byBank.status).toBe(200);
      for (const d of byBank.deliveries) expect(decodeEnvelope(d.frame, d.frame.length).recipient).toBe("bank");
      expect(exchangeSnapshot(x)).toBe(before);
    },
  );

  it("an envelope sent again with the same sequence and other content is answered as a duplicate: the first stays queued, no step, no ledger entry", async () => {
    const s = seq++;
    const first = envelope(job, bank, "telco", s);
    expect((await relay(x, bank, first)).status).toBe(202);
    const before = exchangeSnapshot(x);
    const rows = queued(x, "telco");
    const other = envelope(job, bank, "telco", s, 4096, 2);
    const r = await relay(x, bank, other);
    expect([r.status, r.body["duplicate"]]).toEqual([202, true]);
    expect(exchangeSnapshot(x)).toBe(before);
    expect(queued(x, "telco")).toEqual(rows);
    // An older sequence too: the relay keeps the highest it took.
    expect((await relay(x, bank, envelope(job, bank, "telco", s - 50))).body["duplicate"]).toBe(true);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("the same bytes sent again are a replay (nonce): refused, nothing changes", async () => {
    const env = envelope(job, bank, "telco", seq++);
    expect((await relay(x, bank, env)).status).toBe(202);
    const before = exchangeSnapshot(x);
    const r = await relay(x, bank, env);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.body.error?.code).toBe("UMBRA_REPLAY");
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("a sequence far ahead (2^53 − 1) binds only its own sender: one row of bookkeeping, nothing past it, other senders unaffected; 2^53 on the wire is refused", async () => {
    const far = envelope(job, bank, "telco", MAX);
    expect((await relay(x, bank, far)).status).toBe(202);
    expect(rowCount(x.store, "relay_taken", job)).toBe(2); // bank→telco, telco→bank
    const before = exchangeSnapshot(x);
    expect((await relay(x, bank, envelope(job, bank, "telco", MAX, 16, 3))).body["duplicate"]).toBe(true);
    expect(exchangeSnapshot(x)).toBe(before);
    // 2^53 cannot be sealed; crafted on the wire (the varint of 2^53 − 1 rewritten to 2^53) it is refused before anything.
    const wire = Buffer.from(envelope(job, bank, "telco", MAX));
    const at = wire.indexOf(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect(at).toBeGreaterThan(0);
    Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]).copy(wire, at);
    const crafted = await relay(x, bank, wire);
    expect([crafted.status, crafted.body.error?.code]).toEqual([400, "UMBRA_INVALID_MESSAGE"]);
    expect(exchangeSnapshot(x)).toBe(before);
    // telco's own numbering to bank is its own.
    const r = await relay(x, telco, envelope(job, telco, "bank", seq++));
    expect([r.status, r.body["duplicate"]]).toEqual([202, undefined]);
  });

  it("an envelope (or a duplicate) from a party that is not its sender is refused (403), from a party outside the job too; nothing changes", async () => {
    const env = envelope(job, bank, "telco", seq++);
    expect((await relay(x, bank, env)).status).toBe(202);
    const before = exchangeSnapshot(x);
    for (const by of [telco, eve]) {
      const r = await relay(x, by, env);
      expect([r.status, r.body.error?.code]).toEqual([403, "UMBRA_FORBIDDEN"]);
      saysNothing(r.body, [job]);
    }
    // eve's own envelope into a job she plays no part in.
    const r = await relay(x, eve, envelope(job, eve, "telco", 0));
    expect([r.status, r.body.error?.code]).toEqual([409, "UMBRA_WRONG_JOB"]);
    saysNothing(r.body, [job, "telco"]);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("a duplicate (and a new envelope) for a job that has ended is refused: nothing queued, no ledger entry", async () => {
    const ended = await handJob(x, bank, telco, { file: "ended.csv" });
    expect((await relay(x, bank, envelope(ended, bank, "telco", 0))).status).toBe(202);
    expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${ended}/cancel`)).status).toBe(200);
    expect(rowCount(x.store, "relay_taken", ended)).toBe(0);
    const before = exchangeSnapshot(x);
    for (const s of [0, 1, MAX]) {
      const r = await relay(x, bank, envelope(ended, bank, "telco", s));
      expect([r.status, r.body.error?.code]).toEqual([409, "UMBRA_WRONG_JOB"]);
      saysNothing(r.body, [ended]);
    }
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("no log line of all the above holds a payload, a secret key or a frame", () => {
    const text = logs.join("");
    const secrets = [bank, telco, eve].flatMap((id) => [id.signing.secretKey, id.box.secretKey]).map((k) => Buffer.from(k).toString("hex"));
    for (const s of [MARKER, Buffer.from(MARKER).toString("hex"), Buffer.from(MARKER).toString("base64").slice(0, 20), ...secrets]) expect(text).not.toContain(s);
  });
});

describe("finding 16: a party that never acknowledges", () => {
  const limits = { perRecipientBytes: 20 * MiB, perJobBytes: 40 * MiB, totalBytes: 64 * MiB, controlBytesPerRecipient: 256 * 1024 + 64 };
  let x: TestExchange;
  let bank: NodeIdentity;
  let telco: NodeIdentity;

  beforeAll(async () => {
    x = await startExchange({ mailboxLimits: limits });
    bank = await handParty(x, "bank");
    telco = await handParty(x, "telco");
  }, 60_000);

  afterAll(async () => {
    await x?.close();
  });

  it("polled again and again, never acknowledged: the queue stays within its cap in memory and in the store, and the bookkeeping holds one row per job×sender×recipient", async () => {
    const job = await handJob(x, bank, telco);
    const sequencesBefore = rowCount(x.store, "sequences");
    const statuses: number[] = [];
    for (let s = 0; s < 12; s++) {
      statuses.push((await relay(x, bank, envelope(job, bank, "telco", s, 4 * MiB))).status);
      // telco takes its mail each time (a fresh poll from 0, as after a restart) and never acknowledges.
      const p = await poll(x, telco);
      expect(p.status).toBe(200);
    }
    expect(statuses.slice(0, 4)).toEqual([202, 202, 202, 202]);
    expect(statuses.slice(5)).toEqual(Array<number>(7).fill(429));
    expect(x.app.mailboxes.queuedBytes("telco")).toBeLessThanOrEqual(limits.perRecipientBytes + limits.controlBytesPerRecipient);
    const stored = x.store.durable.relayUsage().filter((u) => u.recipient === "telco" && u.kind === "data").reduce((n, u) => n + u.bytes, 0);
    expect(stored).toBeLessThanOrEqual(limits.perRecipientBytes);
    expect(x.app.mailboxes.jobBytes(job)).toBe(stored);
    expect([rowCount(x.store, "relay_taken", job), rowCount(x.store, "sequences") - sequencesBefore]).toEqual([1, 0]);
    // Delivered again and again, queued once: each poll hands out the same rows.
    const a = (await poll(x, telco)).deliveries.map((d) => d.id);
    const b = (await poll(x, telco)).deliveries.map((d) => d.id);
    expect(a).toEqual(b);
    expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${job}/cancel`)).status).toBe(200);
    expect(x.app.mailboxes.jobBytes(job)).toBe(0);
  }, 60_000);

  it("a provider that takes its job.starts and never acknowledges: the job.stops it leaves fill its control reserve, and it gets no more jobs (429, nothing recorded)", async () => {
    const lazy = await handParty(x, "lazy");
    const policy = { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: ["bank"], queryBudget: 1_000, budgetUnit: "jobs" };
    const d = { id: "lazy.d.csv", owner: "lazy", name: "d.csv", schema: [{ name: "k", type: "Utf8" }], rowCount: 3, contentHash: "ab".repeat(32), createdAt: new Date().toISOString() };
    expect((await signedRequest(x.url, lazy, "POST", "/v1/datasets", { body: { descriptor: d, policy } })).status).toBe(201);
    const submit = () => signedRequest<{ id: string } & Answer>(x.url, bank, "POST", "/v1/jobs", { body: { protocol: "psi", buyer: "bank", buyerDataset: "mine.csv", providerDataset: "lazy.d.csv", params: { keyColumns: ["k"] } } });
    let jobs = 0;
    let refused: Awaited<ReturnType<typeof submit>> | undefined;
    let before = "";
    for (let i = 0; i < 50 && refused === undefined; i++) {
      before = exchangeSnapshot(x);
      const r = await submit();
      if (r.status !== 201) {
        refused = r;
        break;
      }
      jobs++;
      expect((await poll(x, lazy)).deliveries.length).toBeGreaterThan(0); // taken, not acknowledged
      expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${r.body.id}/cancel`)).status).toBe(200);
    }
    expect([refused?.status, refused?.body.error?.code]).toEqual([429, "UMBRA_MAILBOX_FULL"]);
    expect(exchangeSnapshot(x)).toBe(before);
    expect(jobs).toBeLessThanOrEqual(2);
    expect(x.app.mailboxes.queuedBytes("lazy")).toBeLessThanOrEqual(limits.controlBytesPerRecipient);
    // Its own acknowledgement frees it.
    const p = await poll(x, lazy);
    expect((await ack(x, lazy, { acks: [...new Set(p.deliveries.map((dl) => decodeEnvelope(dl.frame, dl.frame.length).job))].map((j) => ({ job: j, upTo: MAX })) })).status).toBe(200);
    expect(x.app.mailboxes.queuedBytes("lazy")).toBe(0);
  }, 60_000);

  it("when a job ends the exchange forgets its bookkeeping: no relay_taken, sequence or watermark rows are left for it", async () => {
    // The job.stops of the jobs above, acknowledged: room for a job.start again.
    await takeMail(x, telco);
    await takeMail(x, bank);
    const job = await handJob(x, bank, telco, { file: "forget.csv" });
    await takeMail(x, bank);
    expect((await relay(x, bank, envelope(job, bank, "telco", 0))).status).toBe(202);
    expect((await relay(x, telco, envelope(job, telco, "bank", 0))).status).toBe(202);
    expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${job}/cancel`)).status).toBe(200);
    expect(x.store.getJob(job)?.state).toBe("cancelled");
    expect({ relay_taken: rowCount(x.store, "relay_taken", job), sequences: rowCount(x.store, "sequences", job), inbound: rowCount(x.store, "inbound", job) }).toEqual({ relay_taken: 0, sequences: 0, inbound: 0 });
  }, 60_000);
});

describe("finding 16: a malicious exchange delivers again to a party agent", () => {
  const pool = new CryptoPool({ threads: 2 });
  let x: TestExchange;
  let telco: TestParty;
  let bank: TestParty;
  /** Every row the exchange handed out, by recipient (what a malicious exchange could keep and deliver again). */
  const delivered = new Map<string, RelayRow[]>();
  /** Recipients whose mail the exchange withholds. */
  const held = new Set<string>();
  /** When set, the exchange starts withholding `party`'s mail once it has handed it a job.start. */
  let holdAfterStart: string | undefined;

  beforeAll(async () => {
    x = await startExchange();
    const durable = x.store.durable;
    const relayAfter = durable.relayAfter.bind(durable);
    durable.relayAfter = (recipient, after, maxBytes) => {
      if (held.has(recipient)) return [];
      const rows = relayAfter(recipient, after, maxBytes);
      const mine = delivered.get(recipient) ?? [];
      for (const r of rows) if (!mine.some((m) => m.id === r.id)) mine.push(r);
      delivered.set(recipient, mine);
      if (holdAfterStart === recipient && rows.some((r) => r.kind === "start")) held.add(recipient);
      return rows;
    };
    telco = await startParty("telco", x.url, pool);
    bank = await startParty("bank", x.url, pool);
    writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n4\n5\n");
    writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n9\n");
    const policy = { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100, budgetUnit: "jobs" };
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy })).status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await bank?.close().catch(() => undefined);
    await telco?.close().catch(() => undefined);
    await x?.close();
    await pool.close();
  });

  /** What a party agent keeps that a replayed envelope could change: its store as snapshot sees it, its budgets, its watermarks, its outbox. */
  const partyState = (p: TestParty) =>
    JSON.stringify({
      store: snapshot(p.store),
      budget: p.store.getBudget("telco.subs.csv", "bank")?.remaining ?? null,
      inbound: rowCount(p.store, "inbound"),
      outbox: p.store.durable.outboxJobs(),
      runs: p.store.durable.listRuns().map((r) => r.job),
    });

  /** The exchange delivers `row` again (deleting its own record that it relayed it, as a malicious exchange may), and waits until the party acknowledged it. */
  async function redeliver(to: TestParty, row: RelayRow): Promise<void> {
    const db = (x.store.durable as unknown as { ctx: { db: { prepare(s: string): { run(...a: unknown[]): unknown } } } }).ctx.db;
    db.prepare("DELETE FROM relay_taken WHERE job = ? AND sender = ? AND recipient = ?").run(row.job, row.sender, to.name);
    const id = x.app.mailboxes.put(to.name, row.frame, { kind: row.kind });
    expect(id).toBeTypeOf("number");
    await waitUntil(() => !x.store.durable.relayAfter(to.name, (id as number) - 1, MAX).some((r) => r.id === id), `${to.name} to acknowledge the envelope delivered again`);
    // Whatever it caused left its outbox before the acknowledgement; nothing did.
    expect(to.store.durable.outboxJobs()).toEqual([]);
  }

  let job = "";

  it("an envelope the provider processed, delivered again while the job runs, changes nothing at the provider or the exchange", async () => {
    holdAfterStart = "bank";
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    expect(r.status).toBe(201);
    job = r.body.id;
    // bank took its job.start and sent its hello and blinded keys; telco processed them and answered (held for bank).
    await waitUntil(() => (telco.store.durable.processed(job, "bank") >= 1 && telco.store.durable.outboxJobs().length === 0 && x.app.mailboxes.pending("telco") === 0), "telco to process bank's envelopes");
    await waitUntil(() => x.app.mailboxes.pending("bank") >= 3, "telco's answers queued for bank");
    const fromBank = (delivered.get("telco") ?? []).filter((row) => row.job === job && row.sender === "bank");
    expect(fromBank.length).toBeGreaterThanOrEqual(2);
    const xBefore = exchangeSnapshot(x);
    const tBefore = partyState(telco);
    for (const row of fromBank) await redeliver(telco, row);
    expect(partyState(telco)).toBe(tBefore);
    expect(exchangeSnapshot(x)).toBe(xBefore);
    expect(x.store.getJob(job)?.state).toBe("running");
  }, 90_000);

  it("the job.start delivered again to the buyer while its job runs changes nothing; the job then ends once, with one result", async () => {
    const start = (delivered.get("bank") ?? []).find((row) => row.job === job && row.kind === "start") as RelayRow;
    expect(start).toBeDefined();
    const bBefore = partyState(bank);
    const id = x.app.mailboxes.put("bank", start.frame, { kind: "start" });
    expect(id).toBeTypeOf("number");
    // Still held: bank has not seen it. Nothing changed at bank so far.
    expect(partyState(bank)).toBe(bBefore);
    held.delete("bank");
    holdAfterStart = undefined;
    // The planted start woke bank's poll: it takes telco's answers and the start again.
    expect(await waitForJob(bank.url, job)).toMatchObject({ state: "succeeded" });
    await waitUntil(() => x.store.getJob(job)?.state === "succeeded" && x.app.mailboxes.pending("bank") === 0, "the job to end and bank to acknowledge everything");
    const entries = listEntries(x.store, { job });
    expect(entries.filter((e) => e.kind === LedgerKind.JobResult).length).toBe(1);
    expect(entries.filter((e) => e.kind === LedgerKind.JobStep && e.body["step"] === "accepted").length).toBe(1);
    expect(bank.store.getResult(job)).toBeDefined();
  }, 90_000);

  it("every envelope of the ended job, delivered again to both parties, changes nothing: one result, the same budget, no event", async () => {
    await waitUntil(() => telco.store.getJob(job)?.state === "succeeded" && x.app.mailboxes.pending("telco") === 0 && bank.store.durable.outboxJobs().length === 0, "telco to hear the job ended");
    const digest = bank.store.getResult(job)?.digest;
    const xBefore = exchangeSnapshot(x);
    const tBefore = partyState(telco);
    const bBefore = partyState(bank);
    const of = (p: string) => (delivered.get(p) ?? []).filter((row) => row.job === job && row.kind === "data");
    expect(of("bank").length).toBeGreaterThanOrEqual(3);
    for (const row of of("telco")) await redeliver(telco, row);
    for (const row of of("bank")) await redeliver(bank, row);
    expect([partyState(telco), partyState(bank), exchangeSnapshot(x)]).toEqual([tBefore, bBefore, xBefore]);
    expect(bank.store.getResult(job)?.digest).toBe(digest);
  }, 90_000);

  it("an old job.start of the ended job, delivered again to the provider and the buyer, changes nothing: no acceptance, no budget spent, no role started", async () => {
    const xBefore = exchangeSnapshot(x);
    const tBefore = partyState(telco);
    const bBefore = partyState(bank);
    // The job.start each party was handed first (bank's was delivered twice above).
    const starts = (p: string) => (delivered.get(p) ?? []).filter((row) => row.job === job && row.kind === "start").slice(0, 1);
    expect([starts("telco").length, starts("bank").length]).toEqual([1, 1]);
    for (const row of starts("telco")) await redeliver(telco, row);
    for (const row of starts("bank")) await redeliver(bank, row);
    expect([partyState(telco), partyState(bank), exchangeSnapshot(x)]).toEqual([tBefore, bBefore, xBefore]);
  }, 90_000);
});
