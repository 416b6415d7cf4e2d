/**
 * examples/differencing (npm run example:differencing), run as built: the
 * differencing attack recovers the target's salary exactly without DP; with
 * DP at the documented ε = 1 (δ = 1e-6) the example states the ρ that ε
 * converts to and the noise σ of each sum, which follow from ρ and the
 * salary bound alone (the noise itself is drawn from node:crypto, so the
 * recovered value is not asserted).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../dist/examples/differencing/main.js", import.meta.url));
let run: { status: number | null; stdout: string; stderr: string };

beforeAll(async () => {
  run = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}, 120_000);

describe("examples/differencing", () => {
  it("exits 0 with nothing on stderr", () => {
    expect([run.status, run.stderr]).toEqual([0, ""]);
  });

  it("without DP, Q1 − Q2 is the target's salary exactly", () => {
    expect(run.stdout).toContain("Q1 − Q2 = 87,400\n  the target's salary is 87,400: recovered exactly: yes");
  });

  it("with DP at ε = 1 (δ = 1e-6), states ρ = 487/20000 and each sum's noise σ = Δ/√(ρ·0.999) for Δ = 200,000", () => {
    expect(run.stdout).toMatch(/each query ε = 1 at δ = 1e-6 \(ρ = 487\/20000 zCDP;[^\n]*\n {2}each sum's noise: σ = 1,282,324 /);
  });
});
