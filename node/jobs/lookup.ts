/**
 * lookup as a node job: the buyer and the provider run protocols/lookup.ts's
 * roles in their agents; the exchange only relays. The provider evaluates
 * with its key for the product version of its dataset's policy, against the
 * table it prepared (node/server/party.ts keeps a few prepared tables); the
 * buyer's budget bounds the keys it may query.
 */
import { keysFromTable } from "../../engine/columns/index.js";
import { joinLabels, lookupBuyer, lookupProvider, ProtocolError, ProtocolId, type LookupBuyerState, type LookupProviderState } from "../../protocols/index.js";
import { twoParties, type NodeProtocol } from "./protocol.js";

export const lookupJob: NodeProtocol = {
  protocol: ProtocolId.Lookup,
  parties: twoParties,

  async player(spec, party, r) {
    const lk = r.lookup;
    if (!lk) throw new ProtocolError(`a lookup ${party} needs the job's product version`);
    const minIntersection = spec.limits?.minIntersection;
    const params = { job: spec.id, product: lk.product, version: lk.version, ...(minIntersection !== undefined ? { minIntersection } : {}) };
    const ctx = { pool: r.pool, ...(r.onProgress ? { onProgress: r.onProgress } : {}) };
    if (party === "buyer") return { name: "buyer", role: lookupBuyer, init: { params, keys: keysFromTable(r.table, spec.keyColumns, { ...spec.normalise, source: "buyer dataset" }) }, ctx };
    return { name: "provider", role: lookupProvider, init: { params, secretKey: lk.secretKey, budgetRemaining: lk.budgetRemaining }, ctx: { ...ctx, prepared: lk.prepared } };
  },

  result(_spec, state, table) {
    return { kind: "table", table: joinLabels(table, lookupBuyer.result(state as LookupBuyerState)).table };
  },

  buyerKeysSeen(state) {
    const s = state as LookupProviderState;
    return s.helloReceived ? s.queryCount : undefined;
  },
};
