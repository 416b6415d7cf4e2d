/**
 * The README's "Bring your own data" walkthrough, run as written: the shell
 * block between `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->`
 * is run by bash (errexit, pipefail) from a folder laid out like a clone
 * (its dist/ is this checkout's), so it starts a real exchange and two real
 * party agents, registers a dataset, runs jobs and verifies the ledger. Its
 * results are then checked against the same computation in plain JS on the
 * files it made. A README edit that breaks a command fails this test.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..");
const readme = readFileSync(join(repo, "README.md"), "utf8");
const root = mkdtempSync(join(tmpdir(), "umbra-walkthrough-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The walkthrough's shell block. */
function walkthrough(): string {
  const m = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  if (!m) throw new Error("README.md has no walkthrough block between <!-- walkthrough:start --> and <!-- walkthrough:end -->");
  return m[1] as string;
}

/** Rows of a small CSV (no quoted fields). */
function csv(file: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(file, "utf8").trim().split(/\r?\n/);
  const cols = (head as string).split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i] as string, v])));
}

describe("the README walkthrough", () => {
  it("runs as written, and its results equal a plain join of its files", () => {
    const clone = join(root, "umbra");
    mkdirSync(clone);
    symlinkSync(join(repo, "dist"), join(clone, "dist"));
    writeFileSync(join(clone, "package.json"), readFileSync(join(repo, "package.json")));
    const script = join(root, "walkthrough.sh");
    // The EXIT trap stops whatever the block left running if a command fails.
    writeFileSync(script, `set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${walkthrough()}`);
    const r = spawnSync("bash", [script], { cwd: clone, encoding: "utf8", timeout: 300_000, env: { ...process.env, UMBRA_TOKEN: "", UMBRA_KEY_PASSPHRASE: "" } });
    const shown = `exit ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
    expect(r.status, shown).toBe(0);
    expect(r.stderr, shown).not.toMatch(/\n\s+at /);

    const work = join(root, "umbra-walkthrough");
    const digits = (s: string) => s.replace(/[^0-9]/g, "");
    const bank = csv(join(work, "bank", "customers.csv"));
    const telco = new Set(csv(join(work, "telco", "subscribers.csv")).map((r) => digits(r["phone"] as string)));
    const expected = bank.filter((r) => telco.has(digits(r["phone"] as string))).length;
    expect(csv(join(work, "bank", "matches.csv")).length).toBe(expected);

    // AVG(monthly_spend) per risk grade over the join, every grade above k = 10.
    const spend = new Map(csv(join(work, "telco", "subscribers.csv")).map((r) => [digits(r["phone"] as string), Number(r["monthly_spend"])]));
    const sums = new Map<string, { n: number; sum: number }>();
    for (const b of bank) {
      const v = spend.get(digits(b["phone"] as string));
      if (v === undefined) continue;
      const g = sums.get(b["risk_grade"] as string) ?? { n: 0, sum: 0 };
      sums.set(b["risk_grade"] as string, { n: g.n + 1, sum: g.sum + v });
    }
    const byGrade = csv(join(work, "bank", "spend-by-grade.csv"));
    expect(byGrade.map((g) => g["risk_grade"]).sort()).toEqual([...sums.keys()].sort());
    for (const g of byGrade) {
      const o = sums.get(g["risk_grade"] as string) as { n: number; sum: number };
      expect(Number(g["count"])).toBe(o.n);
      expect(Math.abs(Number(g["avg_monthly_spend"]) - o.sum / o.n)).toBeLessThan(1e-9);
    }
    expect(r.stdout).toMatch(/ledger verified: \d+ entries/);
  });
});
