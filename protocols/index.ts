/**
 * umbra/protocols: the multi-party protocols as transport-free state
 * machines. This module lists them with what each role learns (the leakage
 * each protocol file states and its tests check); the state machines
 * themselves are added one file per protocol.
 */

export const ProtocolId = {
  Psi: "psi",
  PsiCardinality: "psi-cardinality",
  Lookup: "lookup",
  JoinAggregate: "join-aggregate",
  FederatedAggregate: "federated-aggregate",
} as const;
export type ProtocolId = (typeof ProtocolId)[keyof typeof ProtocolId];

export interface ProtocolDescription {
  readonly id: ProtocolId;
  readonly parties: readonly string[];
  readonly buyerLearns: string;
  readonly providerLearns: string;
  readonly exchangeLearns: string;
}

export const PROTOCOLS: readonly ProtocolDescription[] = [
  {
    id: ProtocolId.Psi,
    parties: ["buyer", "provider"],
    buyerLearns: "which of its rows match",
    providerLearns: "the buyer's set size",
    exchangeLearns: "sizes",
  },
  {
    id: ProtocolId.PsiCardinality,
    parties: ["buyer", "provider"],
    buyerLearns: "the intersection size",
    providerLearns: "the buyer's set size",
    exchangeLearns: "sizes",
  },
  {
    id: ProtocolId.Lookup,
    parties: ["buyer", "provider"],
    buyerLearns: "the provider's allowed columns for its matched keys",
    providerLearns: "the number of buyer queries",
    exchangeLearns: "sizes",
  },
  {
    id: ProtocolId.JoinAggregate,
    parties: ["buyer", "provider", "exchange"],
    buyerLearns: "COUNT/SUM/AVG/VAR of provider columns over the join, per group, groups under k suppressed",
    providerLearns: "the buyer's set size",
    exchangeLearns: "the intersection size (and the size of each pseudonymous group)",
  },
  {
    id: ProtocolId.FederatedAggregate,
    parties: ["buyer", "providers (N >= 2)", "exchange"],
    buyerLearns: "COUNT/SUM/AVG/histogram across all providers, per public category",
    providerLearns: "nothing",
    exchangeLearns: "nothing",
  },
];
