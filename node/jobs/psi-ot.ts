/**
 * psi-ot as a node job: the buyer and the provider run protocols/psi-ot's
 * roles in their agents; the exchange only relays. As for psi, the job's
 * minimum intersection is the buyer's to enforce and the declared key count
 * the provider's (see JobLimits). A policy allows psi-ot only by naming it.
 */
import { keysFromTable, takeRows } from "../../engine/columns/index.js";
import { psiOtBuyer, psiOtProvider, ProtocolId, type PsiOtBuyerState, type PsiOtParams, type PsiOtProviderState } from "../../protocols/index.js";
import { twoParties, type JobPlayer, type JobSpec, type NodeProtocol, type PartyResources, type PartyRole } from "./protocol.js";

function player(spec: JobSpec, party: PartyRole, r: PartyResources): JobPlayer {
  const limits = spec.limits ?? {};
  const params: PsiOtParams = {
    job: spec.id,
    ...(limits.minIntersection !== undefined ? { minIntersection: limits.minIntersection } : {}),
    ...(party === "provider" && limits.maxBuyerKeys !== undefined ? { maxPeerSetSize: limits.maxBuyerKeys } : {}),
  };
  const keys = keysFromTable(r.table, spec.keyColumns, { ...spec.normalise, source: `${party} dataset` });
  const ctx = { pool: r.pool, ...(r.onProgress ? { onProgress: r.onProgress } : {}) };
  return party === "buyer" ? { name: "buyer", role: psiOtBuyer, init: { params, keys }, ctx } : { name: "provider", role: psiOtProvider, init: { params, keys }, ctx };
}

export const psiOtJob: NodeProtocol = {
  protocol: ProtocolId.PsiOt,
  parties: twoParties,
  player: async (spec, party, r) => player(spec, party, r),
  result(_spec, state, table) {
    return { kind: "table", table: takeRows(table, psiOtBuyer.result(state as PsiOtBuyerState).matchedRows) };
  },
  buyerKeysSeen(state) {
    const s = state as PsiOtProviderState;
    return s.helloReceived ? s.peerSetSize : undefined;
  },
};
