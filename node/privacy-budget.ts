/**
 * A dataset's privacy budget as a store holds it (node/policy.ts spends it):
 * the policy's ρ per buyer, and per buyer what it spent and what remains,
 * exact "num/den". The exchange shows it to the dataset's owner (every
 * buyer) and to a buyer (its own line); a provider's agent shows its own
 * copy, the one it checks again before it accepts a job. `umbra dataset
 * budget` prints it with the (ε, δ = 1e-6) of each ρ.
 */
import type { UsagePolicy } from "./policy.js";
import { rhoText, storedRho, subtractRho } from "./rho.js";
import type { Store } from "./store.js";

/** One buyer's line: ρ spent and remaining, "num/den". */
export interface PrivacyBudgetLine {
  readonly buyer: string;
  readonly spent: string;
  readonly remaining: string;
}

/** A dataset's privacy budget view; `budget` null when its policy sets none. */
export interface PrivacyBudgetView {
  readonly dataset: string;
  /** Each buyer's ρ, "num/den", or null: the policy sets no privacyBudget. */
  readonly budget: string | null;
  /** Whose record this is: "exchange" (the exchange's) or "provider" (the dataset owner's agent's own copy). */
  readonly source: "exchange" | "provider";
  readonly buyers: readonly PrivacyBudgetLine[];
}

/**
 * The view of `datasetId` under `policy`: every buyer that spent some ρ and
 * every buyer the policy names (spent 0), in name order — or only `onlyBuyer`.
 */
export function privacyBudgetView(store: Store, datasetId: string, policy: UsagePolicy, source: PrivacyBudgetView["source"], onlyBuyer?: string): PrivacyBudgetView {
  if (policy.privacyBudget === undefined) return { dataset: datasetId, budget: null, source, buyers: [] };
  const budget = storedRho(policy.privacyBudget.rho);
  const spent = new Map(store.listPrivacySpent(datasetId).map((r) => [r.buyer, r.spent]));
  const names = onlyBuyer !== undefined ? [onlyBuyer] : [...new Set([...spent.keys(), ...(Array.isArray(policy.allowedBuyers) ? policy.allowedBuyers : [])])].sort();
  const buyers = names.map((buyer) => {
    const s = storedRho(spent.get(buyer) ?? "0/1");
    return { buyer, spent: rhoText(s), remaining: rhoText(subtractRho(budget, s)) };
  });
  return { dataset: datasetId, budget: rhoText(budget), source, buyers };
}
