/**
 * Every protocol the node runs, by protocol id: one line per protocol. The
 * party agent and the exchange look a job's protocol up here and drive it
 * through the one NodeProtocol interface (node/jobs/protocol.ts).
 */
import type { NodeProtocol } from "./protocol.js";
import { federatedAggregateJob } from "./federated-aggregate.js";
import { joinAggregateJob } from "./join-aggregate.js";
import { lookupJob } from "./lookup.js";
import { psiCardinalityJob, psiJob } from "./psi.js";
import { psiOtJob } from "./psi-ot.js";

const BUILT_IN: readonly NodeProtocol[] = [psiJob, psiCardinalityJob, psiOtJob, lookupJob, joinAggregateJob, federatedAggregateJob];

const modules = new Map<string, NodeProtocol>(BUILT_IN.map((m) => [m.protocol, m]));

/** The node module of a protocol, if the node runs it. */
export function nodeProtocolFor(protocol: string): NodeProtocol | undefined {
  return modules.get(protocol);
}

/** Adds (or replaces) a protocol, e.g. from a test or an extension. */
export function registerNodeProtocol(m: NodeProtocol): void {
  modules.set(m.protocol, m);
}
