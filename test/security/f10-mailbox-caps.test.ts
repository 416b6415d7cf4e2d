/**
 * Finding 10 (high): 20 × 8 MiB envelopes to a party that never polls
 * doubled the exchange's memory, and the job stayed running because every
 * relay counted as activity.
 *
 * Shown here, against an exchange on loopback with parties driven by hand
 * (the recipient accepts its job, then never polls again): past the
 * recipient's cap the relay answers 429 with Retry-After and changes
 * nothing — no step, no ledger entry, no activity, not even the envelope's
 * nonce, so the same bytes go through once there is room; the sender's
 * client waits 429s out and never drops a frame, or gives up after its
 * bounded wait with a typed error; a provider that takes no job.start gets
 * no more jobs (429, nothing recorded); a job's queued frames are released
 * when it ends; and a job whose relays are all refused fails on time.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealEnvelope } from "../../node/envelope.js";
import type { NodeIdentity } from "../../node/identity.js";
import { ExchangeClient, RelayBusyError } from "../../node/server/client.js";
import { Mailboxes } from "../../node/server/mailbox.js";
import { openStore } from "../../node/store.js";
import { startExchange, waitUntil, type TestExchange } from "../helpers/nodes.js";
import { descriptor, exchangeSnapshot, handJob, handParty, signedRequest, takeMail } from "./kit.js";

const MiB = 1024 * 1024;
/** Two 8 MiB envelopes fit a recipient's queue, a third does not; one job.start fills a recipient's control reserve. */
const limits = { perRecipientBytes: 20 * MiB, perJobBytes: 40 * MiB, totalBytes: 64 * MiB, controlBytesPerRecipient: 256 * 1024 + 64 };

let sequence = 0;
/** An 8 MiB protocol envelope from `from` to `to` in `job`. */
const envelope = (job: string, from: NodeIdentity, to: string): Uint8Array => sealEnvelope({ job, step: 1, sender: from, recipient: to, sequence: sequence++, payload: randomBytes(8 * MiB) });

const relay = (x: TestExchange, from: NodeIdentity, env: Uint8Array) => signedRequest(x.url, from, "POST", "/v1/relay", { raw: env });
/** What the recipient's agent would take from its mailbox now (taken and acknowledged). */
const drain = (x: TestExchange, who: NodeIdentity) => takeMail(x, who);
const total = (frames: readonly Uint8Array[]) => frames.reduce((n, f) => n + f.length, 0);
/** Whether two lists of envelopes hold the same bytes (Buffer.equals: a deep equality over 8 MiB takes seconds). */
const sameFrames = (a: readonly Uint8Array[], b: readonly Uint8Array[]) => a.length === b.length && a.every((f, i) => Buffer.from(f).equals(Buffer.from(b[i] as Uint8Array)));

describe("finding 10: bounded mailboxes", () => {
  let x: TestExchange;
  let bank: NodeIdentity;
  let telco: NodeIdentity;
  let job: string;

  beforeAll(async () => {
    x = await startExchange({ mailboxLimits: limits });
    bank = await handParty(x, "bank");
    telco = await handParty(x, "telco");
    job = await handJob(x, bank, telco);
  }, 60_000);

  afterAll(async () => {
    await x?.close();
  });

  it("20 × 8 MiB to a party that never polls: two queued (in memory and in the store), then 429 with Retry-After, and nothing changes", async () => {
    const statuses: number[] = [];
    let afterTwo = "";
    let refused: Uint8Array | undefined;
    for (let i = 0; i < 20; i++) {
      const env = envelope(job, bank, "telco");
      const r = await relay(x, bank, env);
      statuses.push(r.status);
      if (i === 1) afterTwo = exchangeSnapshot(x);
      if (r.status === 429) {
        expect(r.headers.get("retry-after")).toBe("1");
        expect(r.body.error?.code).toBe("UMBRA_MAILBOX_FULL");
        expect(exchangeSnapshot(x)).toBe(afterTwo);
        refused ??= env;
      }
    }
    expect(statuses).toEqual([202, 202, ...Array<number>(18).fill(429)]);
    expect(x.app.mailboxes.sizes()["telco"]?.frames).toBe(2);
    expect(x.app.mailboxes.queuedBytes("telco")).toBeLessThanOrEqual(limits.perRecipientBytes);
    // The queue is the exchange's store (durable relay): what a silent party makes it keep stays within the same cap.
    const stored = x.store.durable.relayUsage().filter((u) => u.recipient === "telco" && u.kind === "data").reduce((n, u) => n + u.bytes, 0);
    expect(stored).toBe(x.app.mailboxes.queuedBytes("telco"));
    expect(stored).toBeGreaterThan(16 * MiB);
    expect(stored).toBeLessThanOrEqual(limits.perRecipientBytes);
    // The refused envelope's nonce was not taken: once the recipient takes its mail, the same bytes go through.
    expect(total(await drain(x, telco))).toBeGreaterThan(16 * MiB);
    expect((await relay(x, bank, refused as Uint8Array)).status).toBe(202);
    expect(sameFrames(await drain(x, telco), [refused as Uint8Array])).toBe(true);
  });

  it("the sender's client waits out the 429s and sends the same frame once there is room: never dropped", async () => {
    for (let i = 0; i < 2; i++) expect((await relay(x, bank, envelope(job, bank, "telco"))).status).toBe(202);
    const env = envelope(job, bank, "telco");
    const answers: number[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (input, init) => {
      const res = await realFetch(input, init);
      if (String(input).endsWith("/v1/relay")) answers.push(res.status);
      return res;
    };
    try {
      const sending = new ExchangeClient(x.url, bank, { relayMaxWaitMs: 60_000 }).sendRaw("/v1/relay", env);
      await waitUntil(() => answers.includes(429), "the client's first 429");
      await drain(x, telco);
      await sending;
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(answers.at(-1)).toBe(202);
    expect(sameFrames(await drain(x, telco), [env])).toBe(true);
  });

  it("a client that never gets room gives up after its bounded wait with a typed error, and nothing changed", async () => {
    for (let i = 0; i < 2; i++) expect((await relay(x, bank, envelope(job, bank, "telco"))).status).toBe(202);
    const before = exchangeSnapshot(x);
    const err = await new ExchangeClient(x.url, bank, { relayMaxWaitMs: 2_500 }).sendRaw("/v1/relay", envelope(job, bank, "telco")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayBusyError);
    expect(err).toMatchObject({ code: "UMBRA_RELAY_BUSY", status: 429 });
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("when the job ends its queued frames are released: the recipient keeps only the job.stop", async () => {
    expect(x.app.mailboxes.jobBytes(job)).toBeGreaterThan(16 * MiB);
    const r = await signedRequest(x.url, bank, "POST", `/v1/jobs/${job}/cancel`);
    expect(r.status).toBe(200);
    expect(x.app.mailboxes.jobBytes(job)).toBe(0);
    expect(x.app.mailboxes.sizes()["telco"]?.frames).toBe(1);
    expect(x.app.mailboxes.queuedBytes("telco")).toBeLessThan(64 * 1024);
    expect(x.app.inMemory()).toEqual({ roleJobs: 0, activity: 0 });
  });

  it("a provider that takes no job.start gets no more jobs: 429, nothing recorded; its untaken start goes when the job ends", async () => {
    const sleepy = await handParty(x, "sleepy");
    const policy = { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: ["bank"], queryBudget: 1_000, budgetUnit: "jobs" };
    expect((await signedRequest(x.url, sleepy, "POST", "/v1/datasets", { body: { descriptor: descriptor("sleepy"), policy } })).status).toBe(201);
    const submit = () => signedRequest<{ id: string; error?: { code: string } }>(x.url, bank, "POST", "/v1/jobs", { body: { protocol: "psi", buyer: "bank", buyerDataset: "mine.csv", providerDataset: "sleepy.d.csv", params: { keyColumns: ["k"] } } });
    const first = await submit();
    expect(first.status).toBe(201);
    const before = exchangeSnapshot(x);
    const second = await submit();
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("1");
    expect(second.body.error?.code).toBe("UMBRA_MAILBOX_FULL");
    expect(exchangeSnapshot(x)).toBe(before);
    // Cancelled before sleepy took its start: the start is released and sleepy, which never heard of the job, gets no stop.
    expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${first.body.id}/cancel`)).status).toBe(200);
    expect(x.app.mailboxes.pending("sleepy")).toBe(0);
    expect((await submit()).status).toBe(201);
  });
});

describe("finding 10: a refused relay is not activity", () => {
  let x: TestExchange;

  beforeAll(async () => {
    x = await startExchange({ mailboxLimits: limits, jobTimeoutMs: 1_500 });
  });

  afterAll(async () => {
    await x?.close();
  });

  it("a sender that keeps relaying to a full mailbox does not keep the job open: it fails on time, its frames released", async () => {
    const bank = await handParty(x, "bank");
    const telco = await handParty(x, "telco");
    const job = await handJob(x, bank, telco);
    for (let i = 0; i < 2; i++) expect((await relay(x, bank, envelope(job, bank, "telco"))).status).toBe(202);
    const statuses = new Set<number>();
    const env = envelope(job, bank, "telco");
    const state = () => x.store.getJob(job)?.state;
    // The telco stays present (it reads the log's head, which is no job's activity), so the sweep cannot name it
    // gone however slow the machine: the job fails because nothing happened in it, not because a party left.
    let present = true;
    const presence = (async () => {
      while (present) {
        expect((await signedRequest(x.url, telco, "GET", "/v1/log/head")).status).toBe(200);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const deadline = Date.now() + 60_000;
    try {
      while (state() === "running" && Date.now() < deadline) {
        const r = await relay(x, bank, env);
        if (state() === "running") statuses.add(r.status); // (the last one may reach a job that has just failed)
        await new Promise((r) => setTimeout(r, 200)); // the attacker's pace
      }
    } finally {
      present = false;
      await presence;
    }
    expect(x.store.getJob(job)).toMatchObject({ state: "failed", reason: "UMBRA_JOB_TIMEOUT" });
    expect([...statuses]).toEqual([429]);
    expect(x.app.mailboxes.jobBytes(job)).toBe(0);
    expect(x.app.mailboxes.sizes()["telco"]?.frames).toBe(1); // its job.stop
    expect(x.app.inMemory()).toEqual({ roleJobs: 0, activity: 0 });
    // Now the envelope belongs to no running job.
    expect((await relay(x, bank, env)).body.error?.code).toBe("UMBRA_WRONG_JOB");
  }, 90_000);
});

describe("the mailboxes' own waits", () => {
  it("waitForRoom resolves when an acknowledgement frees room (a poll alone does not), and false when its time runs out; an envelope sent again is not queued twice; a rolled-back commit counts nothing; the caps survive a restart", async () => {
    const store = openStore(":memory:");
    const caps = { perRecipientBytes: 100, perJobBytes: 1_000, totalBytes: 1_000 };
    const m = new Mailboxes(store, "x", caps);
    const row = (recipient: string, job: string, bytes: number, sequence: number) => ({ recipient, job, sender: "s", sequence, kind: "data" as const, frame: new Uint8Array(bytes) });
    expect(m.commit((r) => r.insert(row("p", "j", 80, 0)))).toBeTypeOf("number");
    expect(m.fits("p", "j", 80)).toBe(false);
    expect(await m.waitForRoom(() => m.fits("p", "j", 80), 50)).toBe(false);
    const waiting = m.waitForRoom(() => m.fits("p", "j", 80), 60_000);
    const got = await m.take("p", 0, 0);
    expect(got.length).toBe(1);
    expect(m.fits("p", "j", 80)).toBe(false); // handed out, not acknowledged: still queued
    m.ack("p", "j", (got[0] as { id: number }).id);
    expect(await waiting).toBe(true);
    expect(m.pending("p")).toBe(0);
    // Sent again after its sender restarted (same sequence): taken before, not queued twice.
    expect(m.commit((r) => r.insert(row("p", "j", 80, 0)))).toBeUndefined();
    expect(m.pending("p")).toBe(0);
    // The exchange's own role's input ("x") counts against its job's share and the total, not a recipient cap.
    m.commit((r) => r.insert(row("x", "k", 990, 0)));
    expect(m.fits("q", "k", 20)).toBe(false);
    expect(m.fitsRecipient("q", 100)).toBe(true);
    // A commit inside one that rolls back (a job.start queued in a submission that then fails): nothing stored, nothing counted.
    const queued = m.queuedBytes("p");
    expect(() =>
      m.commit(() => {
        m.commit((r) => r.insert(row("p", "j", 10, 5)));
        throw new Error("the outer step failed");
      }),
    ).toThrow("the outer step failed");
    expect([m.queuedBytes("p"), m.pending("p"), store.durable.relayUsage().filter((u) => u.recipient === "p").length]).toEqual([queued, 0, 0]);
    // After a restart what is queued counts as it did.
    const again = new Mailboxes(store, "x", caps);
    expect(again.jobBytes("k")).toBe(990);
    expect(again.pending("x")).toBe(1);
    store.close();
  });
});
