/**
 * Every protocol's chaos case at a size: `keys` is the psi buyer's and
 * provider's row count; the slower protocols take a fixed fraction of it so
 * one job of each runs for a comparable time (seconds, not minutes).
 */
import type { ChaosCase, ChaosProtocol } from "./case.js";
import { federatedAggregateCase, joinAggregateCase } from "./cases-aggregate.js";
import { psiCase } from "./cases-psi.js";

/** Rows per side for each protocol, as a fraction of `--keys`. */
export const SIZE_FRACTION: Readonly<Record<ChaosProtocol, number>> = {
  psi: 1,
  "psi-cardinality": 1,
  lookup: 1 / 4,
  "join-aggregate": 1 / 10,
  "federated-aggregate": 1 / 2,
};

export const rowsFor = (protocol: ChaosProtocol, keys: number): number => Math.max(50, Math.round(keys * SIZE_FRACTION[protocol]));

export function buildCase(protocol: ChaosProtocol, seed: number, keys: number): ChaosCase {
  const n = rowsFor(protocol, keys);
  switch (protocol) {
    case "psi":
    case "psi-cardinality":
    case "lookup":
      return psiCase(protocol, seed, n);
    case "join-aggregate":
      return joinAggregateCase(seed, n);
    case "federated-aggregate":
      return federatedAggregateCase(seed, n);
  }
}
