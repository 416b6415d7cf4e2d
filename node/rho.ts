/**
 * Exact zCDP ρ arithmetic for privacy budgets (node/policy.ts): ρ as a
 * rational "num/den" in lowest terms, so that what is spent adds up exactly
 * and a budget is never exceeded by rounding (0.1 + 0.2 is 3/10 here). The
 * ρ of a federated-aggregate or join-aggregate job is its
 * `params.aggregate.dp.rho` (DP_PROTOCOLS: the jobs a privacy budget
 * charges, and refuses without dp); why
 * ρ adds up over jobs: Bun and Steinke 2016 (zCDP composes additively),
 * docs/differential-privacy.md.
 */
import { rational, type Rational } from "../engine/dp/index.js";
import { parseRho, ProtocolId } from "../protocols/index.js";
import type { JobRequest } from "./job-request.js";

export type { Rational };

/** A ρ as written in a policy or request ("num/den", decimal, number): exact, positive. */
export function rhoOf(x: unknown): Rational {
  return parseRho(x);
}

/** "num/den". */
export function rhoText(r: Rational): string {
  return `${r.num}/${r.den}`;
}

/** A stored "num/den" (0 allowed). */
export function storedRho(x: string): Rational {
  const [n, d] = x.split("/");
  return rational(BigInt(n ?? "0"), BigInt(d ?? "1"), "ρ");
}

export function addRho(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den + b.num * a.den, a.den * b.den, "ρ");
}

/** a − b, or 0 when b ≥ a. */
export function subtractRho(a: Rational, b: Rational): Rational {
  const n = a.num * b.den - b.num * a.den;
  return n <= 0n ? { num: 0n, den: 1n } : rational(n, a.den * b.den, "ρ");
}

/** a > b. */
export function rhoExceeds(a: Rational, b: Rational): boolean {
  return a.num * b.den > b.num * a.den;
}

/** The protocols whose jobs declare dp and are charged to a dataset's privacy budget (and refused on one without dp). */
export const DP_PROTOCOLS: ReadonlySet<ProtocolId> = new Set([ProtocolId.FederatedAggregate, ProtocolId.JoinAggregate]);

/** The ρ a job declares (params.aggregate.dp of a federated-aggregate or join-aggregate job), or undefined. */
export function jobRho(request: JobRequest): Rational | undefined {
  if (!DP_PROTOCOLS.has(request.protocol)) return undefined;
  const dp = request.params.aggregate?.dp;
  return dp === undefined ? undefined : rhoOf(dp.rho);
}
