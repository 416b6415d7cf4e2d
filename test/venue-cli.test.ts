/**
 * The venue as a user runs it (the built CLI against a real exchange and
 * agents; docs/venue.md's worked example): a provider publishes a product
 * (a broken one lists every problem), a buyer browses and orders it, the
 * provider approves, a job runs under the contract and one without it is
 * refused naming its rule, the contract shows its jobs, and once revoked no
 * job runs under it. Both servers' OpenAPI documents describe the venue's
 * routes.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { umbra } from "./helpers/cli.js";
import { api, partyHeaders, startNodes, tokenFileOf, type TestNodes, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
const dir = mkdtempSync(join(tmpdir(), "umbra-venue-cli-"));
let nodes: TestNodes;
let acme: TestParty;
let bank: TestParty;
let asAcme: string[];
let asBank: string[];
let contract = "";

const product = {
  id: "acme.matching",
  title: "Subscriber matching",
  description: "Which of your customers are our subscribers",
  datasets: ["acme.subs.csv"],
  protocols: ["psi"],
  prices: { currency: "EUR", perJob: 500, perKey: 2 },
  share: "equal",
};

const job = (...more: string[]) => ["job", "submit", "--protocol", "psi", "--input", "cust.csv", "--provider-dataset", "acme.subs.csv", "--key", "phone", ...more];

beforeAll(async () => {
  nodes = await startNodes(pool, ["acme", "bank"]);
  [acme, bank] = nodes.parties as [TestParty, TestParty];
  asAcme = ["--party", acme.url, "--token-file", tokenFileOf(acme)];
  asBank = ["--party", bank.url, "--token-file", tokenFileOf(bank)];
  writeFileSync(join(acme.dataDir, "subs.csv"), "phone\n1\n2\n3\n4\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n5\n");
  const reg = await api(acme.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100 } });
  expect(reg.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("umbra product, order, contract", () => {
  it("publish lists every problem of a broken product, each naming its field", async () => {
    const file = join(dir, "broken.json");
    writeFileSync(file, JSON.stringify({ ...product, datasets: ["acme.subs.csv", "acme.subs.csv"], prices: { currency: "euro", perJob: 5.5 }, shares: "rows" }));
    const r = await umbra(["product", "publish", "--file", file, ...asAcme]);
    expect([r.status, r.stderr.trim()]).toEqual([
      1,
      "umbra: UMBRA_INVALID_PRODUCT: invalid product: " +
        [
          '"shares": unknown field: did you mean share? (the fields are id, title, description, datasets, protocols, outputColumns, prices, share, autoApprove)',
          "datasets[1]: duplicate entry",
          "prices.currency: must be a currency code of 3 capital letters, as ISO 4217 (e.g. EUR, USD)",
          "prices.perJob: must be an integer",
        ].join("; "),
    ]);
  });

  it("publish names a term outside its dataset's policy", async () => {
    const file = join(dir, "lookup.json");
    writeFileSync(file, JSON.stringify({ ...product, protocols: ["psi", "lookup"] }));
    const r = await umbra(["product", "publish", "--file", file, ...asAcme]);
    expect([r.status, r.stderr.trim()]).toEqual([1, "umbra: UMBRA_INVALID_PRODUCT: invalid product: protocols[1]: protocol lookup is not allowed by the policy of datasets[0]"]);
  });

  it("publish, list, order, approve: an active contract", async () => {
    const file = join(dir, "product.json");
    writeFileSync(file, JSON.stringify(product));
    const pub = await umbra(["product", "publish", "--file", file, ...asAcme]);
    expect(pub.stdout).toMatch(/^published acme\.matching version 1 \(digest [0-9a-f]{16}…\)\n$/);
    const list = await umbra(["product", "list", "--json", ...asBank]);
    expect((JSON.parse(list.stdout) as { id: string; prices: unknown }[]).map((p) => [p.id, p.prices])).toEqual([["acme.matching", { currency: "EUR", perJob: 500, perKey: 2, perMatchedRow: 0, perCell: 0 }]]);
    const order = await umbra(["order", "create", "--product", "acme.matching", "--purpose", "fraud screening", "--quota-jobs", "2", "--days", "7", "--json", ...asBank]);
    contract = (JSON.parse(order.stdout) as { id: string }).id;
    const approve = await umbra(["order", "approve", "--order", contract, ...asAcme]);
    expect(approve.stdout).toMatch(new RegExp(`^signed ${contract}: active, 2 jobs until `));
  });

  it("a job without the contract is refused naming the rule; with it, it runs and is counted", async () => {
    const refused = await umbra([...job(), ...asBank]);
    expect([refused.status, refused.stderr.split(" (")[0]]).toEqual([1, "refused: contract-required"]);
    const ran = await umbra([...job("--contract", contract, "--wait", "--json"), ...asBank]);
    const shown = await umbra(["contract", "show", "--contract", contract, "--json", ...asBank]);
    expect([ran.status, (JSON.parse(shown.stdout) as { jobsUsed: number }).jobsUsed]).toEqual([0, 1]);
  });

  it("once revoked, no job runs under it", async () => {
    const revoke = await umbra(["contract", "revoke", "--contract", contract, ...asBank]);
    expect(revoke.stdout.trim()).toBe(`revoked ${contract}: no further job runs under it`);
    const refused = await umbra([...job("--contract", contract), ...asBank]);
    expect([refused.status, refused.stderr.split(" (")[0]]).toEqual([1, "refused: contract-revoked"]);
  });

  it("both servers' OpenAPI documents describe the venue's routes", async () => {
    const xdoc = (await (await fetch(`${nodes.x.url}/documentation/json`)).json()) as { paths: Record<string, unknown> };
    const pdoc = (await (await fetch(`${acme.url}/documentation/json`, { headers: partyHeaders(acme.url) })).json()) as { paths: Record<string, unknown> };
    const venue = (paths: Record<string, unknown>) => Object.keys(paths).filter((p) => /products|orders|contracts/.test(p));
    const contracts = ["/v1/contracts", "/v1/contracts/{id}", "/v1/contracts/{id}/revoke"];
    const products = ["/v1/products", "/v1/products/{id}", "/v1/products/{id}/withdraw"];
    expect([venue(xdoc.paths).sort(), venue(pdoc.paths).sort()]).toEqual([
      [...contracts, "/v1/contracts/{id}/approve", "/v1/contracts/{id}/reject", "/v1/orders", ...products].sort(),
      [...contracts, "/v1/orders", "/v1/orders/{id}/approve", "/v1/orders/{id}/reject", ...products].sort(),
    ]);
    const body = (xdoc.paths["/v1/products"] as { post: { requestBody: { content: { "application/json": { schema: { properties: { product: { properties: object } } } } } } } }).post.requestBody.content["application/json"].schema;
    expect(Object.keys(body.properties.product.properties)).toEqual(["id", "title", "description", "datasets", "protocols", "outputColumns", "prices", "share", "autoApprove"]);
  });
});
