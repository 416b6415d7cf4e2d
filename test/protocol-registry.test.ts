/**
 * Every protocol id is one coherent entry: a description (who takes part,
 * what each learns, its traits), a node module in the registry that runs it,
 * and an exchange side exactly where the exchange plays a role. A protocol
 * added in one place and forgotten in another fails here.
 */
import { describe, expect, it } from "vitest";
import { protocolDescription, PROTOCOLS, ProtocolId } from "../protocols/index.js";
import { exchangeProtocolFor } from "../node/jobs/exchange-roles.js";
import { nodeProtocolFor } from "../node/jobs/registry.js";

describe("the protocol registry", () => {
  it("describes every protocol id once", () => {
    expect(PROTOCOLS.map((p) => p.id).sort()).toEqual(Object.values(ProtocolId).sort());
  });

  it.each(Object.values(ProtocolId))("%s has a node module, and an exchange side exactly when the exchange plays a role", (id) => {
    const m = nodeProtocolFor(id);
    expect(m?.protocol).toBe(id);
    const withExchange = protocolDescription(id).parties.includes("exchange");
    expect(m?.exchange !== undefined).toBe(withExchange);
    expect(exchangeProtocolFor(id) !== undefined).toBe(withExchange);
  });

  it("a protocol whose buyer brings no keys releases only groups under k (no key budget bounds what it learns)", () => {
    for (const p of PROTOCOLS.filter((d) => !d.buyerKeys)) expect(p.k).toBe(true);
  });
});
