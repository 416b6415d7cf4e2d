/**
 * Data asset certificates (issue 11, item 2) against real servers: a
 * registration yields one, the owner's agent and any buyer the catalog shows
 * the dataset to can fetch it, and `umbra certificate verify` checks it
 * offline with only the exchange's public key — refusing every forgery, and
 * with --data telling the certified file from another.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { certificateCommand } from "../node/commands/certificate.js";
import { datasetCommand } from "../node/commands/datasets.js";
import { generateIdentity } from "../node/identity.js";
import { entryHash } from "../node/ledger.js";
import { signTreeHead } from "../node/log/head.js";
import { verifyCertificate, type DatasetCertificate } from "../node/log/certificate.js";
import { canonicalJson } from "../node/store.js";
import { api, startNodes, tokenFileOf, type TestNodes, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let telco: TestParty;
let bank: TestParty;
let shop: TestParty;
const dir = mkdtempSync(join(tmpdir(), "umbra-cert-"));
let key: string;

async function cli(fn: typeof certificateCommand, args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await fn(args, { out: (l) => void out.push(l), err: (l) => void err.push(l) });
  return { code, out, err };
}
const api_ = (p: TestParty): string[] => ["--party", p.url, "--token-file", tokenFileOf(p)];

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank", "shop"]);
  [telco, bank, shop] = nodes.parties as [TestParty, TestParty, TestParty];
  key = Buffer.from(nodes.x.publicKey).toString("hex");
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone,plan,spend\n1,gold,10.5\n2,basic,3\n3,gold,7\n");
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("data asset certificates", () => {
  let certFile: string;
  let cert: DatasetCertificate;

  it("registering a dataset yields a certificate of what was registered, in the exchange's log", async () => {
    certFile = join(dir, "subs.cert.json");
    const policy = JSON.stringify({ allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] });
    const r = await cli(datasetCommand, ["register", "--file", "subs.csv", "--policy", policy, "--certificate-out", certFile, ...api_(telco)]);
    expect(r.code).toBe(0);
    expect(r.out[1]).toMatch(/^certified: entry \d+ of the exchange's signed log \(\d+ entries\); certificate written to /);
    cert = JSON.parse(readFileSync(certFile, "utf8")) as DatasetCertificate;
    const v = verifyCertificate(cert, nodes.x.publicKey);
    const d = nodes.x.store.getDataset("telco.subs.csv");
    expect(v.subject).toEqual({
      dataset: "telco.subs.csv",
      owner: "telco",
      name: "subs.csv",
      schema: [
        // A CSV's columns are text unless typed (node/catalog.ts).
        { name: "phone", type: "Utf8" },
        { name: "plan", type: "Utf8" },
        { name: "spend", type: "Utf8" },
      ],
      rows: 3,
      contentHash: d?.contentHash,
      policyVersion: 1,
      policyDigest: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // The owner's agent kept it.
    expect(telco.store.log.certificate("telco.subs.csv")?.seq).toBe(v.seq);
  });

  it("umbra certificate verify: offline, with only the exchange's key; --data tells the certified file from another", async () => {
    const ok = await cli(certificateCommand, ["verify", certFile, "--exchange-key", key, "--data", join(telco.dataDir, "subs.csv")]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("certificate verified: signed by the exchange's key and included in its signed log");
    expect(ok.out.at(-1)).toBe("the data in subs.csv is the certified content (schema, rows and content hash)");
    const other = join(dir, "other.csv");
    writeFileSync(other, "phone,plan,spend\n1,gold,10.5\n2,basic,3\n3,gold,7.01\n");
    const bad = await cli(certificateCommand, ["verify", certFile, "--exchange-key", key, "--data", other, "--json"]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out[0] as string)).toMatchObject({ ok: false, dataMatches: false, dataMismatches: ["content hash"] });
  });

  it("refuses every forgery, naming the check that failed", async () => {
    const attacker = generateIdentity("exchange");
    const e = cert.entry;
    const reSigned = (body: object) => {
      const hash = entryHash({ seq: e.seq, at: e.at, kind: e.kind, job: null, body: JSON.parse(canonicalJson(body as never)), prevHash: e.prevHash });
      return { ...e, body, hash };
    };
    const cases: [string, unknown][] = [
      ["its ledger entry is malformed, or its hash or the exchange's signature on it is wrong", { ...cert, entry: { ...e, body: { ...e.body, rows: 3000 } } }],
      ["its ledger entry is malformed, or its hash or the exchange's signature on it is wrong", { ...cert, entry: reSigned({ ...e.body, rows: 3000 }) }],
      ["its tree head is malformed or not signed by the exchange's key", { ...cert, head: signTreeHead(attacker.signing.secretKey, cert.head) }],
      ["its tree head is malformed or not signed by the exchange's key", { ...cert, head: { ...cert.head, size: cert.head.size + 1 } }],
      ["its inclusion proof is malformed", { ...cert, inclusion: ["xyz"] }],
      ["its entry is not in the log its tree head signs (the inclusion proof fails)", { ...cert, inclusion: [...cert.inclusion].reverse().concat("00".repeat(32)) }],
      ["its type is not umbra.v1.dataset-certificate", { ...cert, certificate: "other" }],
      ["it is not a certificate (it needs exactly certificate, entry, head and inclusion)", { ...cert, extra: 1 }],
    ];
    for (const [problem, forged] of cases) {
      const f = join(dir, "forged.json");
      writeFileSync(f, JSON.stringify(forged));
      const r = await cli(certificateCommand, ["verify", f, "--exchange-key", key]);
      expect([r.code, r.err[0]]).toEqual([1, `UMBRA_INVALID_CERTIFICATE: the certificate does not verify: ${problem}`]);
    }
    // Under another key, the genuine one fails too.
    const r = await cli(certificateCommand, ["verify", certFile, "--exchange-key", Buffer.from(attacker.signing.publicKey).toString("hex"), "--json"]);
    expect([r.code, JSON.parse(r.out[0] as string).code]).toEqual([1, "UMBRA_INVALID_CERTIFICATE"]);
  });

  it("a buyer the catalog shows the dataset to fetches a fresh certificate (umbra certificate show); another party gets not found", async () => {
    const out = join(dir, "bank-view.json");
    const r = await cli(certificateCommand, ["show", "--dataset", "telco.subs.csv", "--out", out, ...api_(bank)]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe("dataset        telco.subs.csv (file subs.csv) of telco");
    expect(r.out.at(-1)).toBe(`verify it anywhere: umbra certificate verify ${out} --exchange-key ${key}`);
    const fresh = JSON.parse(readFileSync(out, "utf8")) as DatasetCertificate;
    expect(fresh.entry).toEqual(cert.entry);
    expect(fresh.head.size).toBeGreaterThanOrEqual(cert.head.size);
    const hidden = await api<{ error: { code: string } }>(shop.url, "GET", "/v1/datasets/telco.subs.csv/certificate");
    expect([hidden.status, hidden.body.error.code]).toEqual([404, "UMBRA_NOT_FOUND"]);
  });

  it("a new policy version is certified anew; the old certificate still verifies, for its version", async () => {
    const policy = JSON.stringify({ allowedProtocols: ["psi", "psi-cardinality"], keyColumns: ["phone"], allowedBuyers: ["bank", "shop"] });
    const r = await cli(datasetCommand, ["register", "--file", "subs.csv", "--policy", policy, "--update", "--json", ...api_(telco)]);
    expect(r.code).toBe(0);
    const v2 = verifyCertificate((JSON.parse(r.out[0] as string) as { certificate: unknown }).certificate, nodes.x.publicKey);
    expect(v2.subject.policyVersion).toBe(2);
    expect(v2.subject.policyDigest).not.toBe(verifyCertificate(cert, nodes.x.publicKey).subject.policyDigest);
    expect((await cli(certificateCommand, ["verify", certFile, "--exchange-key", key])).code).toBe(0);
    const shown = await cli(certificateCommand, ["show", "--dataset", "telco.subs.csv", "--json", ...api_(shop)]);
    expect(verifyCertificate((JSON.parse(shown.out[0] as string) as { certificate: unknown }).certificate, nodes.x.publicKey).subject.policyVersion).toBe(2);
  });
});
