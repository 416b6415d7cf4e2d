/**
 * The chaos harness (bench/chaos, `npm run chaos`) in small: for psi and for
 * join-aggregate, the undisturbed job, then one trial per victim — the
 * exchange, the buyer, the provider — killed with SIGKILL while the job runs
 * and restarted with the same arguments, on real processes of the built CLI.
 * Each job must succeed with the plaintext answer, `umbra audit verify` must
 * pass and the ledger must hold each of the job's events once. First, the
 * harness's own checks, each shown to catch what it is for.
 */
import { createServer, connect, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Table, Utf8, vectorFromArray } from "apache-arrow";
import { buildCase } from "../bench/chaos/cases.js";
import { compareRows } from "../bench/chaos/case.js";
import { normaliseKey } from "../bench/chaos/data.js";
import { duplicateEntries, type LedgerLine } from "../bench/chaos/ledger-check.js";
import { startProxy } from "../bench/chaos/proxy.js";
import { describeTrial } from "../bench/chaos/report.js";
import { runTrial, type TrialOutcome } from "../bench/chaos/trial.js";

const SEED = 20_260;
/** psi: 20,000 rows a side; join-aggregate: 2,000 (cases.ts). */
const KEYS = 20_000;

describe("the chaos harness's checks", () => {
  const entries: LedgerLine[] = [
    { seq: 1, kind: "job.submitted", body: {} },
    { seq: 2, kind: "job.step", body: { step: "accepted", by: "telco" } },
    { seq: 3, kind: "job.step", body: { step: "psi.blinded", from: "bank", to: "telco", size: 10, digest: "aa" } },
    { seq: 4, kind: "job.step", body: { step: "charged", by: "telco", units: 5 } },
    { seq: 5, kind: "job.result", body: { digest: "ff" } },
  ];

  it("a ledger with each event once has no duplicate", () => {
    expect(duplicateEntries(entries, true)).toEqual([]);
  });

  it("a second accepted step, a message recorded twice and a second ending entry are each named", () => {
    const twice = [...entries, { seq: 6, kind: "job.step", body: { step: "accepted", by: "telco" } }, { ...entries[2], seq: 7 } as LedgerLine, { seq: 8, kind: "job.failed", body: {} }];
    expect(duplicateEntries(twice, true)).toEqual(["ending entries: job.result (seq 5), job.failed (seq 8)", '2 "accepted" steps by telco', "1 job.step digests recorded more than once"]);
  });

  it("a succeeded job without its job.result entry is named", () => {
    expect(duplicateEntries(entries.slice(0, 4), true)).toEqual(["ending entries: none"]);
  });

  it("a result with a row missing differs from the plaintext answer", () => {
    expect(compareRows(["a|1", "b|2"], ["a|1", "b|2", "b|2"])).toBe("2 rows, expected 3: 0 unexpected, 1 missing");
  });

  describe("a psi case's plaintext answer", () => {
    const c = buildCase("psi", SEED, 200);
    const lines = (party: string, file: string) => (c.files[party]?.[file] ?? "").trim().split("\n").slice(1).map((l) => l.split(","));
    const provider = new Set(lines("telco", "subscribers.csv").map((r) => normaliseKey(r[0] || null)));
    const matching = lines("bank", "customers.csv").filter((r) => normaliseKey(r[0] || null) !== null && provider.has(normaliseKey(r[0] || null)));
    const table = (rows: string[][]) => new Table({ k: vectorFromArray(rows.map((r) => r[0] ?? null), new Utf8()), tag: vectorFromArray(rows.map((r) => r[1] ?? null), new Utf8()) });

    it("the buyer's matching rows, read from the files, equal it", () => {
      expect(c.compare(table(matching))).toBe("");
    });

    it("with one row's value changed they differ from it", () => {
      const changed = matching.map((r, i) => (i === 0 ? [r[0] ?? "", `${r[1] ?? ""}0`] : r));
      expect(c.compare(table(changed))).toBe(`${matching.length} rows, expected ${matching.length}: 1 unexpected, 1 missing`);
    });
  });

  describe("the proxy", () => {
    let echo: Server;
    beforeAll(async () => {
      echo = createServer((s) => s.on("error", () => undefined).pipe(s));
      await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    });
    afterAll(() => new Promise<void>((r) => echo.close(() => r())));

    it("forwards bytes, then a cut closes the open connection", async () => {
      const address = echo.address();
      const proxy = await startProxy(typeof address === "object" && address ? address.port : 0);
      const s = connect({ host: "127.0.0.1", port: proxy.port });
      const echoed = await new Promise<string>((r) => s.once("data", (d) => r(d.toString())).write("ping"));
      const closed = new Promise<boolean>((r) => s.once("close", () => r(true)));
      s.on("error", () => undefined);
      proxy.cut(0);
      expect([echoed, await closed, proxy.dropped]).toEqual(["ping", true, 1]);
      await proxy.close();
    });
  });
});

/** How a job ended: its state and reason, what differs from the plaintext answer, the ledger's verification and duplicates. */
const endOf = (t: TrialOutcome) => ({ state: t.state, reason: t.reason, resultNote: t.resultNote, ledgerVerified: t.ledgerVerified, duplicates: t.duplicates });
const SUCCEEDED = { state: "succeeded", reason: null, resultNote: "", ledgerVerified: true, duplicates: [] };

for (const protocol of ["psi", "join-aggregate"] as const) {
  describe(`chaos: ${protocol} with a process killed mid-job`, () => {
    const c = buildCase(protocol, SEED, KEYS);
    let undisturbed: TrialOutcome;

    beforeAll(async () => {
      undisturbed = await runTrial(c, { disturbance: "none", trial: 0, seed: SEED, baselineSeconds: 0, deadlineSeconds: 150, say: () => undefined });
    }, 180_000);

    it("undisturbed: the job succeeds with the plaintext answer and a clean ledger", () => {
      expect(endOf(undisturbed), describeTrial(undisturbed)).toEqual(SUCCEEDED);
    });

    for (const victim of ["exchange", "buyer", "provider"] as const) {
      it(`the ${victim} killed (SIGKILL) and restarted with the same arguments: the job succeeds with the plaintext answer, each ledger event once`, async () => {
        // Killed as soon as the job runs (a condition, not a moment: `npm run chaos` draws moments across the whole job).
        const t = await runTrial(c, { disturbance: victim, trial: 1, seed: SEED, baselineSeconds: undisturbed.seconds, killWhenRunning: true, deadlineSeconds: 60 + 5 * undisturbed.seconds, say: () => undefined });
        expect({ midJob: t.midJob, ...endOf(t) }, describeTrial(t)).toEqual({ midJob: true, ...SUCCEEDED });
      }, 240_000);
    }
  });
}
