/**
 * --epsilon's conversion (node/epsilon.ts): ε at δ → the largest ρ of four
 * significant digits, rounded down, with epsilonFromRho(ρ, δ) ≤ ε — so the
 * guarantee holds and the next step up would break it; monotonic in ε and
 * in δ; bad ε and δ refused. And the CLI: `umbra aggregate --epsilon`
 * prints the converted ρ, --epsilon with --rho (or --delta alone) is a usage
 * error.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { epsilonFromRho, rationalToNumber } from "../engine/dp/index.js";
import { InvalidArgumentError } from "../engine/errors.js";
import { aggregateCommand } from "../node/commands/aggregate.js";
import { DEFAULT_DELTA, rhoForEpsilon } from "../node/epsilon.js";

const EPSILONS = [0.01, 0.1, 0.5, 1, 2, 5, 10, 50];
/** The significant decimal digits of num/den (a terminating decimal): num·10^k/den for the least k that makes it an integer, trailing zeros stripped. */
const significant = (num: bigint, den: bigint): number => {
  let k = 0n;
  while ((num * 10n ** k) % den !== 0n) k++;
  return String((num * 10n ** k) / den).replace(/0+$/, "").length;
};

describe("rhoForEpsilon", () => {
  it("round trip: the ρ chosen meets ε, and one more unit in its last digit would not", () => {
    for (const delta of [1e-6, 1e-9]) {
      for (const eps of EPSILONS) {
        const rho = rhoForEpsilon(eps, delta);
        const x = rationalToNumber(rho);
        expect(epsilonFromRho(x, delta)).toBeLessThanOrEqual(eps);
        const unit = 10 ** (Math.floor(Math.log10(x)) - 3);
        expect(epsilonFromRho(x + unit, delta), `ε ${eps}, ρ ${rho.num}/${rho.den}`).toBeGreaterThan(eps);
      }
    }
  });

  it("gives a simple fraction: at most four significant digits", () => {
    for (const eps of EPSILONS) {
      const { num, den } = rhoForEpsilon(eps);
      expect(significant(num, den), `${num}/${den}`).toBeLessThanOrEqual(4);
    }
  });

  it("is monotonic: a larger ε (or a larger δ) never gives a smaller ρ", () => {
    const rhos = EPSILONS.map((e) => rationalToNumber(rhoForEpsilon(e)));
    expect(rhos).toEqual([...rhos].sort((a, b) => a - b));
    expect(rationalToNumber(rhoForEpsilon(1, 1e-9))).toBeLessThan(rationalToNumber(rhoForEpsilon(1, DEFAULT_DELTA)));
  });

  it("matches a known value: ε = 1 at δ = 1e-6 is ρ = 0.02435, just below 0.025 (whose ε is 1.014, test/dp-accounting)", () => {
    expect(rhoForEpsilon(1)).toEqual({ num: 487n, den: 20_000n });
  });

  it("refuses ε ≤ 0, NaN and ∞, and δ outside (0, 1)", () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => rhoForEpsilon(bad)).toThrow(InvalidArgumentError);
    for (const bad of [0, 1, -1e-6, Number.NaN]) expect(() => rhoForEpsilon(1, bad)).toThrow(InvalidArgumentError);
  });
});

describe("umbra aggregate --epsilon", () => {
  const dir = mkdtempSync(join(tmpdir(), "umbra-dp-epsilon-"));
  for (const [i, rows] of [["a,10", "b,20"], ["a,30", "a,40"]].entries()) writeFileSync(join(dir, `p${i}.csv`), `g,v\n${rows.join("\n")}\n`);
  const args = ["--provider", join(dir, "p0.csv"), "--provider", join(dir, "p1.csv"), "--agg", "count,sum(v)", "--max-abs-value", "100", "--min-group-size", "1", "--out", join(dir, "out.csv")];
  const run = async (...more: string[]) => {
    const lines: string[] = [];
    const code = await aggregateCommand([...args, ...more], { out: (l) => void lines.push(l), err: (l) => void lines.push(l) });
    return { code, text: lines.join("\n") };
  };

  it("runs with the ρ converted from ε at δ = 1e-6", async () => {
    const r = await run("--epsilon", "1");
    expect(r.code).toBe(0);
    expect(r.text).toContain("differential privacy: ρ = 487/20000 zCDP (ε = 1.00 at δ = 1e-6)");
  });

  it("notes the conversion at the --delta given", async () => {
    const r = await run("--epsilon", "1", "--delta", "1e-9");
    expect(r.text).toContain(`--epsilon 1 at δ = 1e-9: ρ = ${rhoForEpsilon(1, 1e-9).num}/${rhoForEpsilon(1, 1e-9).den} zCDP`);
  });

  it("refuses --epsilon together with --rho", async () => {
    await expect(run("--epsilon", "1", "--rho", "1/10")).rejects.toThrow(/--rho and --epsilon .* give one of them/);
  });

  it("refuses --delta without --epsilon", async () => {
    await expect(run("--rho", "1/10", "--delta", "1e-6")).rejects.toThrow(/--delta applies to --epsilon only/);
  });

  it("refuses an --epsilon that is not a positive number", async () => {
    await expect(run("--epsilon", "0")).rejects.toThrow(/--epsilon needs a positive number/);
  });
});
