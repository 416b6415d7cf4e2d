/**
 * The attack tests' kit: what a node stores, as one comparable value, so that
 * a test shows a refused attack left the store and the ledger as they were.
 */
import type { Store } from "../../node/store.js";

const hex = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString("hex"));

/**
 * Everything a refused request must leave unchanged in a node's store:
 * parties and their keys, datasets, every policy version, jobs with their
 * states, steps and results, budgets, persisted role states, and the ledger
 * (every entry's hash).
 */
export function snapshot(store: Store): string {
  const jobs = store.listJobs();
  const datasets = store.listDatasets();
  return JSON.stringify({
    parties: store.listParties().map((p) => [p.name, p.role, hex(p.signingPublicKey), hex(p.boxPublicKey), hex(p.maskPublicKey)]),
    datasets: datasets.map((d) => [d.id, d.owner, d.name, d.rowCount, d.contentHash]),
    policies: datasets.map((d) => store.listPolicies(d.id).map((p) => [p.version, JSON.stringify(p.policy)])),
    budgets: datasets.map((d) => store.listBudgets(d.id).map((b) => [b.datasetId, b.buyer, b.remaining])),
    jobs: jobs.map((j) => [j.id, j.protocol, j.state, j.reason, store.listSteps(j.id).length, store.getResult(j.id)?.digest ?? null]),
    ledger: [...store.ledgerRows()].map((r) => r.hash),
  });
}

/** The ledger's entries of one kind (bodies parsed), in order. */
export function ledgerKinds(store: Store): string[] {
  return [...store.ledgerRows()].map((r) => r.kind);
}
