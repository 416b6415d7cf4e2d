/**
 * `umbra policy init|check` as a user runs them (the built CLI): check lists
 * every problem of a broken policy at once, each naming its field and what
 * to do; init writes, for each protocol, an example that check, the docs and
 * `umbra dataset register` all take as written. docs/policy.md, the files in
 * examples/policies/ and init's output are the same examples, and the docs'
 * field table is the schema's; both servers' OpenAPI documents describe
 * every field of a policy. A registration with an empty policy is refused
 * by a real party agent and exchange, and records nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { ProtocolId } from "../protocols/index.js";
import { PolicySchema } from "../node/schemas/policy.js";
import { ALLOWS_NOTHING } from "../node/policy.js";
import { ExchangeClient, ExchangeError } from "../node/server/client.js";
import { umbra } from "./helpers/cli.js";
import { partyHeaders, startNodes, tokenFileOf, type TestNodes, type TestParty } from "./helpers/nodes.js";
import { exchangeSnapshot, snapshot } from "./security/kit.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-policy-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const repo = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");
const PROTOCOLS = Object.values(ProtocolId);
const FIELD_LIST = "(the fields are allowedProtocols, outputColumns, keyColumns, allowedBuyers, minGroupSize, queryBudget, budgetUnit, expiresAt, minIntersection, privacyBudget, //)";

/** Writes `text` to a fresh file and runs `umbra policy check` on it. */
async function check(name: string, text: string, ...flags: string[]) {
  const file = join(dir, name);
  writeFileSync(file, text);
  return umbra(["policy", "check", file, ...flags]);
}

/** The problems `policy check` listed on stderr, one per line ("path: message"). */
const problems = (stderr: string): string[] =>
  stderr
    .split("\n")
    .filter((l) => l.startsWith("  "))
    .map((l) => l.slice(2));

describe("umbra policy check", () => {
  it.each<[string, unknown, string[]]>([
    [
      "an empty policy",
      {},
      [
        'allowedProtocols: the policy allows nothing: add at least one protocol under allowedProtocols (psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate), e.g. "allowedProtocols": ["psi"]; umbra policy init --protocol psi writes an example',
      ],
    ],
    [
      "an unknown field that is a near miss",
      { allowedProtocols: ["psi"], keyColumn: ["phone"] },
      [`"keyColumn": unknown field: did you mean keyColumns? ${FIELD_LIST}`],
    ],
    [
      "a guessed field name",
      { protocols: ["psi"] },
      [
        `"protocols": unknown field: did you mean allowedProtocols? ${FIELD_LIST}`,
        'allowedProtocols: the policy allows nothing: add at least one protocol under allowedProtocols (psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate), e.g. "allowedProtocols": ["psi"]; umbra policy init --protocol psi writes an example',
      ],
    ],
    [
      "wrong types",
      { allowedProtocols: "psi", minGroupSize: "10" },
      ["allowedProtocols: must be an array of the protocols a buyer may run on the dataset (psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate); at least one", "minGroupSize: must be an integer"],
    ],
    ["a negative k", { allowedProtocols: ["join-aggregate"], minGroupSize: -3 }, ["minGroupSize: must be between 1 and 1000000000"]],
    [
      "an unknown protocol, and one misspelt",
      { allowedProtocols: ["psi", "sql", "join_aggregate"] },
      [
        'allowedProtocols[1]: must be one of "psi", "psi-cardinality", "psi-ot", "lookup", "federated-aggregate", "join-aggregate"',
        'allowedProtocols[2]: must be one of "psi", "psi-cardinality", "psi-ot", "lookup", "federated-aggregate", "join-aggregate" (did you mean "join-aggregate"?)',
      ],
    ],
    [
      "several problems at once",
      { allowedProtocol: ["psi"], keyColumns: ["phone", "phone"], allowedBuyers: "all", minGroupSize: 0, budgetUnit: "job", expiresAt: "2030-02-30T00:00:00Z" },
      [
        `"allowedProtocol": unknown field: did you mean allowedProtocols? ${FIELD_LIST}`,
        'allowedProtocols: the policy allows nothing: add at least one protocol under allowedProtocols (psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate), e.g. "allowedProtocols": ["psi"]; umbra policy init --protocol psi writes an example',
        "keyColumns[1]: duplicate entry",
        `allowedBuyers: must be "any" or an array of the buyers' party names (as they registered at the exchange) that may use the dataset`,
        "minGroupSize: must be between 1 and 1000000000",
        'budgetUnit: must be one of "keys", "jobs" (did you mean "jobs"?)',
        "expiresAt: is not a valid date-time",
      ],
    ],
  ])("refuses %s, naming every problem (exit 1, no stack)", async (name, policy, expected) => {
    const file = `${name.replace(/\W+/g, "-")}.json`;
    const r = await check(file, JSON.stringify(policy));
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe(`umbra: UMBRA_INVALID_POLICY: ${file}: ${expected.length} problem${expected.length === 1 ? "" : "s"}:`);
    expect(problems(r.stderr)).toEqual(expected);
    expect(r.stderr).not.toContain("    at ");
    expect(r.stdout).toBe("");
  });

  it("--json gives {ok, errors: [{path, message}]} with every problem, exit 1", async () => {
    const r = await check("json.json", JSON.stringify({ allowedProtocols: ["psi"], minGroupSize: -3, queryBudget: -1 }), "--json");
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      errors: [
        { path: "minGroupSize", message: "must be between 1 and 1000000000" },
        { path: "queryBudget", message: "must be at least 0" },
      ],
      warnings: [],
    });
  });

  it("a file that is not JSON is refused with where the parser stopped, never its text", async () => {
    const r = await check("trailing-comma.json", '{\n  "allowedProtocols": ["psi"],\n}\n');
    expect([r.status, problems(r.stderr)]).toEqual([1, ['policy: is not valid JSON at line 3, column 1: a policy is a JSON object (write notes in a "//" field: JSON has no comments)']]);
  });

  it("--data checks every column the policy names against the data file's header", async () => {
    const data = join(dir, "mobiles.csv");
    writeFileSync(data, "mobile,plan\n1,a\n");
    const r = await umbra(["policy", "check", fileURLToPath(new URL("../examples/policies/lookup.json", import.meta.url)), "--data", data]);
    expect([r.status, problems(r.stderr)]).toEqual([1, ['outputColumns[1]: column "monthly_spend" is not in the dataset\'s schema', 'keyColumns[0]: column "phone" is not in the dataset\'s schema']]);
  });

  it("a good policy prints what it allows, and warns of what it likely forgot", async () => {
    const r = await check("psi-no-key.json", JSON.stringify({ allowedProtocols: ["psi"], allowedBuyers: "any" }));
    expect([r.status, r.stdout.trim()]).toEqual([0, "ok: allows psi to any buyer; keys none; output columns none; budget 100 jobs per buyer; expires never"]);
    expect(r.stderr.trim()).toBe('warning: keyColumns: psi joins on a key and the policy names none: list the column(s) a buyer may join on, e.g. ["phone"]');
  });
});

/** The JSON blocks under each "### <protocol>" heading of docs/policy.md. */
function docExamples(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const m of repo("docs/policy.md").matchAll(/^### (\S+)\n[\s\S]*?```json\n([\s\S]*?)```/gm)) out.set(m[1] as string, JSON.parse(m[2] as string));
  return out;
}

describe("umbra policy init", () => {
  it.each(PROTOCOLS)("%s: writes the example of examples/policies/ and docs/policy.md, which policy check passes as written", async (protocol) => {
    const out = join(dir, `init-${protocol}.json`);
    const init = await umbra(["policy", "init", "--protocol", protocol, "--out", out]);
    expect([init.status, init.stdout.split("\n")[0]]).toEqual([0, `wrote ${out}: an example ${protocol} policy; its "//" lines explain each field. Next:`]);
    const written = readFileSync(out, "utf8");
    expect(written).toBe(repo(`examples/policies/${protocol}.json`));
    const { "//": comment, ...fields } = JSON.parse(written) as Record<string, unknown>;
    expect(Array.isArray(comment)).toBe(true);
    expect(docExamples().get(protocol)).toEqual(fields);
    const r = await umbra(["policy", "check", out]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(new RegExp(`^ok: allows ${protocol} to 1 buyer;`));
  });

  it("docs/policy.md has an example for every protocol, and its field table is the schema's: every field, with the schema's default", () => {
    expect([...docExamples().keys()].sort()).toEqual([...PROTOCOLS].sort());
    const rows = [...repo("docs/policy.md").matchAll(/^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|/gm)].map((m) => [m[1], (m[2] as string).trim()]);
    const schema = PolicySchema.properties as Record<string, { default?: unknown }>;
    expect(rows.map((r) => r[0])).toEqual(Object.keys(schema));
    for (const [field, cell] of rows) {
      const d = schema[field as string]?.default;
      if (d !== undefined) expect([field, cell]).toEqual([field, `\`${JSON.stringify(d)}\``]);
    }
  });

  it("refuses to overwrite a file unless --force, and an unknown protocol with the list", async () => {
    const out = join(dir, "exists.json");
    writeFileSync(out, "{}");
    const again = await umbra(["policy", "init", "--protocol", "psi", "--out", out]);
    expect([again.status, again.stderr]).toEqual([1, `umbra: UMBRA_ALREADY_EXISTS: "${out}" exists already: give --force to overwrite it, or another --out\n`]);
    expect(readFileSync(out, "utf8")).toBe("{}");
    const forced = await umbra(["policy", "init", "--protocol", "psi", "--out", out, "--force"]);
    expect([forced.status, readFileSync(out, "utf8")]).toEqual([0, repo("examples/policies/psi.json")]);
    const bad = await umbra(["policy", "init", "--protocol", "sql"]);
    expect([bad.status, bad.stderr.split("\n")[0]]).toEqual([2, "umbra: --protocol needs one of psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate"]);
  });
});

describe("a policy at a real party agent and exchange", () => {
  const pool = new CryptoPool({ threads: 1 });
  let nodes: TestNodes;
  let telco: TestParty;
  let token: string;

  beforeAll(async () => {
    nodes = await startNodes(pool, ["telco"]);
    [telco] = nodes.parties as [TestParty];
    token = tokenFileOf(telco);
    writeFileSync(join(telco.dataDir, "subs.csv"), "phone,plan\n1,a\n2,b\n3,c\n");
  }, 60_000);
  afterAll(async () => {
    await nodes?.close();
    await pool.close();
  });

  const register = (policy: string) => umbra(["dataset", "register", "--party", telco.url, "--token-file", token, "--file", "subs.csv", "--policy", policy]);

  it("dataset register refuses an empty policy (allows nothing), and nothing is registered at the party or the exchange", async () => {
    const before = [snapshot(telco.store), exchangeSnapshot(nodes.x)];
    const r = await register("{}");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'umbra: UMBRA_INVALID_POLICY: invalid policy: allowedProtocols: the policy allows nothing: add at least one protocol under allowedProtocols (psi, psi-cardinality, psi-ot, lookup, federated-aggregate, join-aggregate), e.g. "allowedProtocols": ["psi"]; umbra policy init --protocol psi writes an example\n',
    );
    expect([telco.store.listDatasets(), nodes.x.store.listDatasets()]).toEqual([[], []]);
    expect([snapshot(telco.store), exchangeSnapshot(nodes.x)]).toEqual(before);
  });

  it("the exchange refuses it too, from a client that skips the party agent's check", async () => {
    const before = exchangeSnapshot(nodes.x);
    const descriptor = { id: "telco.direct", owner: "telco", name: "direct.csv", schema: [{ name: "phone", type: "Utf8" }], rowCount: 1, contentHash: "ab".repeat(32), createdAt: "2026-01-01T00:00:00Z" };
    const err = await new ExchangeClient(nodes.x.url, telco.identity).json("POST", "/v1/datasets", { descriptor, policy: { allowedBuyers: "any" } }).then(
      () => undefined,
      (e: unknown) => e as ExchangeError,
    );
    expect([err?.status, err?.code, err?.message]).toEqual([400, "UMBRA_INVALID_POLICY", `invalid policy: allowedProtocols: ${ALLOWS_NOTHING}`]);
    expect(nodes.x.store.getDataset("telco.direct")).toBeUndefined();
    expect(exchangeSnapshot(nodes.x)).toEqual(before);
  });

  it("dataset register takes what policy init wrote, as written (its \"//\" comment is not stored)", async () => {
    const out = join(dir, "register-psi.json");
    expect((await umbra(["policy", "init", "--protocol", "psi", "--out", out])).status).toBe(0);
    const r = await register(`@${out}`);
    expect([r.status, r.stdout.split(":")[0]]).toEqual([0, "registered telco.subs.csv (policy version 1)"]);
    const stored = nodes.x.store.latestPolicy("telco.subs.csv")?.policy as Record<string, unknown>;
    expect([stored["allowedProtocols"], "//" in stored]).toEqual([["psi"], false]);
  });

  it("both servers' OpenAPI documents give the policy's JSON Schema: every field, each with its description", async () => {
    type Schema = { properties?: Record<string, Schema>; description?: string };
    type Doc = { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>> };
    for (const [url, headers] of [
      [nodes.x.url, {}],
      [telco.url, partyHeaders(telco.url)],
    ] as const) {
      const doc = (await (await fetch(`${url}/documentation/json`, { headers })).json()) as Doc;
      const policy = doc.paths["/v1/datasets"]?.["post"]?.requestBody?.content["application/json"]?.schema.properties?.["policy"];
      expect(Object.keys(policy?.properties ?? {})).toEqual(Object.keys(PolicySchema.properties));
      const undescribed = Object.entries(policy?.properties ?? {}).filter(([, s]) => typeof s.description !== "string" || s.description === "");
      expect(undescribed).toEqual([]);
      expect(policy?.description).toContain("docs/policy.md");
    }
  });
});
