/**
 * psi and psi-cardinality as node jobs: the buyer and the provider run
 * protocols/psi.ts's roles in their agents; the exchange only relays. The
 * job's minimum intersection is the buyer's to enforce, the declared key
 * count the provider's (see JobLimits).
 */
import { takeRows, keysFromTable } from "../../engine/columns/index.js";
import { psiBuyer, psiProvider, ProtocolId, PsiMode, type PsiBuyerState, type PsiProviderState, type PsiParams } from "../../protocols/index.js";
import { twoParties, type JobSpec, type NodeProtocol, type PartyRole, type PartyResources, type JobPlayer } from "./protocol.js";

function player(spec: JobSpec, party: PartyRole, r: PartyResources): JobPlayer {
  const limits = spec.limits ?? {};
  const params: PsiParams = {
    job: spec.id,
    mode: spec.protocol === ProtocolId.Psi ? PsiMode.Intersection : PsiMode.Cardinality,
    ...(limits.minIntersection !== undefined ? { minIntersection: limits.minIntersection } : {}),
    // The provider refuses a buyer hello announcing more distinct keys than the job allows.
    ...(party === "provider" && limits.maxBuyerKeys !== undefined ? { maxPeerSetSize: limits.maxBuyerKeys } : {}),
  };
  const keys = keysFromTable(r.table, spec.keyColumns, { ...spec.normalise, source: `${party} dataset` });
  const ctx = { pool: r.pool, ...(r.onProgress ? { onProgress: r.onProgress } : {}) };
  return party === "buyer" ? { name: "buyer", role: psiBuyer, init: { params, keys }, ctx } : { name: "provider", role: psiProvider, init: { params, keys }, ctx };
}

const module = (protocol: typeof ProtocolId.Psi | typeof ProtocolId.PsiCardinality): NodeProtocol => ({
  protocol,
  parties: twoParties,
  player: async (spec, party, r) => player(spec, party, r),
  result(_spec, state, table) {
    const r = psiBuyer.result(state as PsiBuyerState);
    return r.mode === "cardinality" ? { kind: "count", count: r.count } : { kind: "table", table: takeRows(table, r.matchedRows) };
  },
  buyerKeysSeen(state) {
    const s = state as PsiProviderState;
    return s.helloReceived ? s.peerSetSize : undefined;
  },
});

export const psiJob = module(ProtocolId.Psi);
export const psiCardinalityJob = module(ProtocolId.PsiCardinality);
