/**
 * Finding 9 (high): registration was open to any key — a key registered the
 * name `exchange`; a party registered `telco.customers.csv` with telco's
 * copied content hash and a fake row count, and telco's real registration
 * then failed.
 *
 * Shown here, against real servers on loopback: a new name registers only
 * with an invitation issued for it (single use, bound to the name,
 * unexpired, kept as a hash, used in the same transaction that registers
 * it; the ledger says "invitation", never the code); a registered party
 * restarts without one; reserved names and names sharing a dataset
 * namespace are refused, invitation or not; a dataset id outside its
 * owner's namespace, or another owner's, is refused — and telco's own
 * registration then goes through. Every refusal leaves the exchange's store,
 * ledger, invitations and mailboxes as they were. The operator's commands
 * (`umbra exchange invite`, `umbra exchange parties`) and a party started
 * without an invitation, as processes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, umbra as runUmbra } from "../helpers/cli.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { createInvitation } from "../../node/admission.js";
import { generateIdentity, storedIdentityJSON, publicIdentity } from "../../node/identity.js";
import { openStore } from "../../node/store.js";
import { api, inviteAt, startExchange, startParty, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { descriptor, exchangeSnapshot, handParty, registration, requestNonce, signedRequest } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let telco: TestParty;
/** telco's invitation (used by its first registration). */
let telcoCode: string;

type Refusal = { error?: { code: string; message: string } };

/** Registers `id` at `x` (its own signature), with `invite` when given. */
const register = (at: { url: string }, id: ReturnType<typeof generateIdentity>, invite?: string, name?: string) =>
  signedRequest<Refusal & { name?: string }>(at.url, id, "POST", "/v1/parties", { body: { ...registration(id, invite), ...(name !== undefined ? { name } : {}) } });

const umbra = (...args: string[]) => runUmbra(args);

beforeAll(async () => {
  x = await startExchange();
}, 60_000);

afterAll(async () => {
  await telco?.close();
  await x?.close();
  await pool.close();
});

describe("finding 9: admission by invitation, reserved names, dataset namespaces", () => {
  it("a new name without an invitation is refused, and nothing changes — not even the request's nonce", async () => {
    const mallory = generateIdentity("mallory");
    const before = exchangeSnapshot(x);
    const r = await register(x, mallory);
    expect(r.status).toBe(403);
    expect(r.body.error?.code).toBe("UMBRA_INVITATION_REQUIRED");
    expect(r.body.error?.message).toMatch(/umbra exchange invite --name NAME.*--invite CODE/);
    expect(exchangeSnapshot(x)).toBe(before);
    expect(x.store.nonceSeen("mallory", requestNonce(r.signature))).toBe(false);
  });

  it("the name `exchange` and the other reserved names are refused, with or without an invitation", async () => {
    const before = exchangeSnapshot(x);
    for (const name of ["exchange", "Exchange", "admin", "operator", "root", "system", "umbra", "localhost", "exchange.eu", "ROOT.x"]) {
      const r = await register(x, generateIdentity(name));
      expect(r.status, name).toBe(403);
      expect(r.body.error?.code, name).toBe("UMBRA_NAME_RESERVED");
      expect(() => createInvitation(x.store, { name }), name).toThrow(expect.objectContaining({ code: "UMBRA_NAME_RESERVED" }));
    }
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("telco registers with its invitation: once, in one transaction, recorded as invited — never the code", async () => {
    const id = generateIdentity("telco");
    telcoCode = createInvitation(x.store, { name: "telco" }).code;
    expect(telcoCode).toMatch(/^inv_[A-Za-z0-9_-]{43}$/);
    const r = await register(x, id, telcoCode);
    expect(r.status).toBe(201);
    const inv = x.store.listInvitations().filter((i) => i.name === "telco");
    expect(inv.length).toBe(1);
    expect(Buffer.from(inv[0]?.usedBy ?? []).toString("hex")).toBe(Buffer.from(id.signing.publicKey).toString("hex"));
    const reg = [...x.store.ledgerRows()].filter((e) => e.kind === "party.registered").map((e) => JSON.parse(e.body) as Record<string, unknown>);
    expect(reg).toEqual([{ name: "telco", signingKey: Buffer.from(id.signing.publicKey).toString("hex").slice(0, 16), admission: "invitation" }]);
    // Nowhere a code: not in the ledger, not in the invitations (only its hash, which is not listed).
    expect([...x.store.ledgerRows()].map((e) => e.body).join("\n")).not.toContain(telcoCode);
    expect(JSON.stringify(x.store.listInvitations())).not.toContain(telcoCode);
    // Its agent starts with the registered key: no invitation needed (none is made).
    telco = await startParty("telco", x.url, pool, { store: openStore(":memory:"), identity: id, dataDir: mkdtempSync(join(tmpdir(), "umbra-f09-telco-")) });
    expect(x.store.listInvitations().length).toBe(1);
  });

  it("a name taken by another key, a code for another name, a used code, an expired code: refused, the code left as it was", async () => {
    const mallory = generateIdentity("mallory");
    const forMallory = inviteAt(x.url, "mallory") as string;
    const forTelco = inviteAt(x.url, "telco-eu") as string;
    const before = exchangeSnapshot(x);
    // telco's name with mallory's key (and mallory's own invitation): the name is registered with another key.
    const squat = await register(x, generateIdentity("telco"), forMallory);
    expect(squat.status).toBe(409);
    expect(squat.body.error?.code).toBe("UMBRA_ALREADY_EXISTS");
    // An invitation is bound to its name: telco-eu's code does not admit mallory.
    const wrong = await register(x, mallory, forTelco);
    expect(wrong.status).toBe(403);
    expect(wrong.body.error?.code).toBe("UMBRA_INVITATION_INVALID");
    // A made-up code.
    const made = await register(x, mallory, `inv_${"A".repeat(43)}`);
    expect(made.body.error?.code).toBe("UMBRA_INVITATION_INVALID");
    expect(exchangeSnapshot(x)).toBe(before);
    // Mallory's own code still admits mallory (nothing above used it), once.
    expect((await register(x, mallory, forMallory)).status).toBe(201);
    const again = await register(x, generateIdentity("mallory2"), forMallory, "mallory2");
    expect(again.body.error?.code).toBe("UMBRA_INVITATION_INVALID");
    // An expired one.
    const short = createInvitation(x.store, { name: "late", expiresInMs: 1 });
    while (Date.now() <= short.expiresAt) await new Promise((r) => setTimeout(r, 2));
    const beforeLate = exchangeSnapshot(x);
    const late = await register(x, generateIdentity("late"), short.code);
    expect(late.status).toBe(403);
    expect(late.body.error?.code).toBe("UMBRA_INVITATION_INVALID");
    expect(exchangeSnapshot(x)).toBe(beforeLate);
  });

  it("a name sharing a dataset namespace with a party's (or a pending invitation's) is refused, invitation or not", async () => {
    const code = createInvitation(x.store, { name: "acme.data" }).code;
    const before = exchangeSnapshot(x);
    for (const name of ["telco.customers", "TELCO", "Telco.x"]) {
      const r = await register(x, generateIdentity(name));
      expect(r.status, name).toBe(409);
      expect(r.body.error?.code, name).toBe("UMBRA_NAME_CONFLICT");
    }
    // An invitation is refused for such a name too, and for one overlapping a pending invitation's.
    expect(() => createInvitation(x.store, { name: "telco.customers" })).toThrow(expect.objectContaining({ code: "UMBRA_NAME_CONFLICT" }));
    expect(() => createInvitation(x.store, { name: "acme" })).toThrow(expect.objectContaining({ code: "UMBRA_NAME_CONFLICT" }));
    expect(() => createInvitation(x.store, { name: "telco" })).toThrow(expect.objectContaining({ code: "UMBRA_ALREADY_EXISTS" }));
    expect(exchangeSnapshot(x)).toBe(before);
    // acme.data registers; then "acme" (its "."-prefix) cannot, whatever invitation it holds.
    expect((await register(x, generateIdentity("acme.data"), code)).status).toBe(201);
    const after = exchangeSnapshot(x);
    const r = await register(x, generateIdentity("acme"), `inv_${"B".repeat(43)}`);
    expect(r.body.error?.code).toBe("UMBRA_NAME_CONFLICT");
    expect(exchangeSnapshot(x)).toBe(after);
  });

  it("a dataset outside its owner's namespace, or over another owner's id, is refused; telco's own registration then goes through", async () => {
    const eve = await handParty(x, "eve");
    const squat = { ...descriptor("eve", "customers.csv", "telco.customers.csv"), rowCount: 1_000_000 };
    const policy = { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: "any", queryBudget: 10, budgetUnit: "jobs" };
    // A legacy row (from before namespaces) that another owner registered.
    x.store.putDataset({ id: "eve.legacy", owner: "telco", name: "legacy", schema: [{ name: "k", type: "Utf8" }], rowCount: 1, contentHash: "ab".repeat(32) });
    const before = exchangeSnapshot(x);
    const outside = await signedRequest(x.url, eve, "POST", "/v1/datasets", { body: { descriptor: squat, policy } });
    expect(outside.status).toBe(403);
    expect(outside.body.error?.code).toBe("UMBRA_DATASET_NAMESPACE");
    const bare = await signedRequest(x.url, eve, "POST", "/v1/datasets", { body: { descriptor: descriptor("eve", "x", "eve."), policy } });
    expect(bare.status).toBe(403);
    expect(bare.body.error?.code).toBe("UMBRA_DATASET_NAMESPACE");
    const asTelco = await signedRequest(x.url, eve, "POST", "/v1/datasets", { body: { descriptor: descriptor("telco", "customers.csv"), policy } });
    expect(asTelco.status).toBe(403);
    expect(asTelco.body.error?.code).toBe("UMBRA_FORBIDDEN");
    const over = await signedRequest(x.url, eve, "POST", "/v1/datasets", { body: { descriptor: descriptor("eve", "legacy"), policy } });
    expect(over.status).toBe(409);
    expect(over.body.error?.code).toBe("UMBRA_ALREADY_EXISTS");
    expect(exchangeSnapshot(x)).toBe(before);
    // Eve's own namespace works; telco's real file registers under its id.
    expect((await signedRequest(x.url, eve, "POST", "/v1/datasets", { body: { descriptor: descriptor("eve", "mine.csv"), policy } })).status).toBe(201);
    writeFileSync(join(telco.dataDir, "customers.csv"), "k\na\nb\nc\n");
    const real = await api<{ id: string; rows: number }>(telco.url, "POST", "/v1/datasets", { file: "customers.csv", policy });
    expect(real.status).toBe(201);
    expect(real.body).toMatchObject({ id: "telco.customers.csv", rows: 3 });
    expect(x.store.getDataset("telco.customers.csv")?.owner).toBe("telco");
  });

  it("a registered party restarts with its key and no invitation, or with its used one", async () => {
    const invitations = x.store.listInvitations().length;
    await telco.agent.stop();
    telco = await startParty("telco", x.url, pool, { store: telco.store, identity: telco.identity, dataDir: telco.dataDir });
    const again = await register(x, telco.identity, telcoCode);
    expect(again.status).toBe(200);
    expect(x.store.listInvitations().length).toBe(invitations);
    expect([...x.store.ledgerRows()].filter((e) => e.kind === "party.registered" && (JSON.parse(e.body) as { name: string }).name === "telco").length).toBe(1);
  });

  it("an exchange started with open registration admits a new name without a code (ledger: open); reserved names still refused", async () => {
    const open = await startExchange({ openRegistration: true });
    try {
      const r = await register(open, generateIdentity("newbie"));
      expect(r.status).toBe(201);
      const body = JSON.parse([...open.store.ledgerRows()].find((e) => e.kind === "party.registered")?.body ?? "{}") as Record<string, unknown>;
      expect(body["admission"]).toBe("open");
      const before = exchangeSnapshot(open);
      const ex = await register(open, generateIdentity("exchange"));
      expect(ex.body.error?.code).toBe("UMBRA_NAME_RESERVED");
      expect(exchangeSnapshot(open)).toBe(before);
    } finally {
      await open.close();
    }
  });
});

describe("the operator's commands, and a party without an invitation, as processes", () => {
  const dir = mkdtempSync(join(tmpdir(), "umbra-f09-"));
  const db = join(dir, "exchange.db");
  beforeAll(() => {
    const s = openStore(db);
    s.putIdentity(storedIdentityJSON(publicIdentity(generateIdentity("exchange"))));
    s.close();
  });

  it("umbra exchange invite prints a code once; exchange parties lists names and times, never a code", async () => {
    const inv = await umbra("exchange", "invite", "--name", "acme", "--db", db, "--expires", "12h", "--json");
    expect(inv.stderr).toBe("");
    expect(inv.status).toBe(0);
    const got = JSON.parse(inv.stdout) as { name: string; code: string; expiresAt: string };
    expect(got.name).toBe("acme");
    expect(got.code).toMatch(/^inv_[A-Za-z0-9_-]{43}$/);
    const text = await umbra("exchange", "invite", "--name", "bolt", "--db", db);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^invitation for "bolt", single use, valid until \S+Z:\n {2}inv_[A-Za-z0-9_-]{43}\n/);
    const codeB = /\n {2}(inv_[A-Za-z0-9_-]{43})\n/.exec(text.stdout)?.[1] as string;
    const list = await umbra("exchange", "parties", "--db", db, "--json");
    expect(list.status).toBe(0);
    const v = JSON.parse(list.stdout) as { parties: unknown[]; invitations: { name: string; expired: boolean }[] };
    expect(v.parties).toEqual([]);
    expect(v.invitations.map((i) => [i.name, i.expired])).toEqual([["acme", false], ["bolt", false]]);
    for (const out of [list.stdout, (await umbra("exchange", "parties", "--db", db)).stdout]) {
      expect(out).not.toContain(got.code);
      expect(out).not.toContain(codeB);
    }
  });

  it("clear refusals: a reserved name, a missing database, a bad duration, a bad job timeout", async () => {
    const reserved = await umbra("exchange", "invite", "--name", "exchange", "--db", db);
    expect(reserved.status).toBe(1);
    expect(reserved.stderr).toMatch(/^umbra: UMBRA_NAME_RESERVED: this party name is reserved: choose another\n$/);
    const missing = await umbra("exchange", "parties", "--db", join(dir, "nope.db"));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/UMBRA_NOT_FOUND: no exchange database at .*give the --db that umbra exchange start uses/);
    const bad = await umbra("exchange", "invite", "--name", "acme2", "--db", db, "--expires", "100d");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--expires needs a duration such as 7d/);
    const timeout = await umbra("exchange", "start", "--port", "0", "--db", join(dir, "never.db"), "--job-timeout", "10x");
    expect(timeout.status).toBe(2);
    expect(timeout.stderr).toMatch(/--job-timeout needs a duration such as 7d, 12h or 30m \(more than 0, at most 30d\)/);
  });

  it("umbra party start without --invite is refused by the exchange with what to do; with it, it registers", async () => {
    const xdb = join(dir, "x2", "exchange.db");
    const node = spawn(process.execPath, [cli, "exchange", "start", "--port", "0", "--db", xdb], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        node.stdout.on("data", (c: Buffer) => {
          out += c.toString("utf8");
          const m = / listening at (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1] as string);
        });
        node.once("exit", (code) => reject(new Error(`exchange exited ${code}`)));
      });
      const without = await umbra("party", "start", "--name", "acme", "--exchange", url, "--port", "0", "--db", join(dir, "acme", "acme.db"), "--data", dir);
      expect(without.status).toBe(1);
      expect(without.stderr).toMatch(/umbra: UMBRA_INVITATION_REQUIRED: .*--invite CODE/);
      const badCode = await umbra("party", "start", "--name", "acme", "--exchange", url, "--invite", "short", "--db", join(dir, "acme", "acme.db"));
      expect(badCode.status).toBe(2);
      expect(badCode.stderr).toMatch(/--invite needs the invitation code/);
      const inv = JSON.parse((await umbra("exchange", "invite", "--name", "acme", "--db", xdb, "--json")).stdout) as { code: string };
      const party = spawn(process.execPath, [cli, "party", "start", "--name", "acme", "--exchange", url, "--invite", inv.code, "--port", "0", "--db", join(dir, "acme", "acme.db"), "--data", dir], { stdio: ["ignore", "pipe", "pipe"] });
      const listening = await new Promise<boolean>((resolve) => {
        let out = "";
        party.stdout.on("data", (c: Buffer) => {
          out += c.toString("utf8");
          if (/ listening at /.test(out)) resolve(true);
        });
        party.once("exit", () => resolve(false));
      });
      expect(listening).toBe(true);
      party.kill("SIGTERM");
      expect(await new Promise((r) => party.once("exit", (code) => r(code)))).toBe(0);
      const list = JSON.parse((await umbra("exchange", "parties", "--db", xdb, "--json")).stdout) as { parties: { name: string; invited: boolean; fingerprint: string }[]; invitations: unknown[] };
      expect(list.parties.map((p) => [p.name, p.invited])).toEqual([["acme", true]]);
      expect(list.parties[0]?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
      expect(list.invitations).toEqual([]);
    } finally {
      node.kill("SIGTERM");
      await new Promise((r) => node.once("exit", r));
    }
  }, 60_000);
});
