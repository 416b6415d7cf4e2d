/**
 * `npm run bench:log`: what the transparency log costs (node/log/).
 *
 * 1. Appending ledger entries to a store file: entries/s of appendEntry (the
 *    entry, its chain hash and signature, and its leaf and completed subtrees
 *    in the same transaction), against the hash chain alone in the same run
 *    (the same entry hashed, signed and inserted, no tree): the log's
 *    overhead per entry.
 * 2. At a log of N entries: a signed tree head, an inclusion proof of a random
 *    entry and a consistency proof from a random earlier size, each from the
 *    stored subtrees (µs, median of 200), and their verification; against the
 *    root recomputed from every leaf (what a log without stored nodes costs
 *    per answer). Proof sizes in bytes.
 * 3. umbra audit verify's pass over the N entries (chain, signatures, every
 *    tree node), seconds and peak RSS.
 *
 * Options: --quick (N = 2,000).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity } from "../node/identity.js";
import { appendEntry, entryHash, GENESIS_HASH, LedgerKind, verifyLedger } from "../node/ledger.js";
import { consistencyProofOf, currentTreeHead, inclusionProofOf, treeSize } from "../node/log/head.js";
import { signHex } from "../node/log/keys.js";
import { leafHash, memoryNodes, treeRoot, verifyConsistency, verifyInclusion } from "../node/log/merkle.js";
import { entryLeafHash, listEntries } from "../node/ledger.js";
import { canonicalJson, openStore } from "../node/store.js";
import { formatTable, median, peakRssMiB, timeIt } from "./table.js";

const quick = process.argv.includes("--quick");
const SIZES = quick ? [2_000] : [10_000, 100_000];
const REPEATS = quick ? 1 : 3;
const id = generateIdentity("exchange");
const dir = mkdtempSync(join(tmpdir(), "umbra-log-bench-"));
const body = (i: number) => ({ protocol: "psi", buyer: "bank", dataset: "telco.subs.csv", cost: 1, request: i.toString(16).padStart(64, "0") });

function micros(fn: () => void, n = 200): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return median(xs);
}

const rows: string[][] = [];
const answers: string[][] = [];
const audits: string[][] = [];
let file = 0;
for (const n of SIZES) {
  const withTree: number[] = [];
  const chainOnly: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const a = openStore(join(dir, `log-${++file}.db`));
    withTree.push(n / (await timeIt(() => a.transaction(() => {
      for (let i = 0; i < n; i++) appendEntry(a, id.signing, { kind: LedgerKind.JobSubmitted, job: `job-${i}`, body: body(i) });
    }))));
    a.close();
    const b = openStore(join(dir, `log-${++file}.db`));
    chainOnly.push(n / (await timeIt(() => b.transaction(() => {
      let prev = GENESIS_HASH;
      for (let i = 0; i < n; i++) {
        const seq = i + 1;
        const fields = { seq, at: Date.now(), kind: "job.submitted", job: `job-${i}`, body: JSON.parse(canonicalJson(body(i))), prevHash: prev };
        const hash = entryHash(fields);
        b.insertLedgerRow({ seq, at: fields.at, kind: fields.kind, job: fields.job, body: canonicalJson(body(i)), prev_hash: prev, hash, signature: signHex(id.signing.secretKey, Buffer.from(hash, "hex")) });
        prev = hash;
      }
    }))));
    b.close();
  }
  const t = median(withTree);
  const c = median(chainOnly);
  rows.push([n.toLocaleString("en"), Math.round(t).toLocaleString("en"), Math.round(c).toLocaleString("en"), `${((c / t - 1) * 100).toFixed(0)} %`]);

  // 2. Answers at size n (the last file written with the tree).
  const store = openStore(join(dir, `log-${file - 1}.db`));
  const size = treeSize(store);
  const head = currentTreeHead(store, id.signing.secretKey, Date.now());
  const rand = (k: number) => 1 + Math.floor(Math.random() * k);
  const leaves = listEntries(store).map((e) => entryLeafHash(e));
  const root = new Uint8Array(Buffer.from(head.root, "hex"));
  const seq = rand(size);
  const inc = inclusionProofOf(store, seq, size).map((h) => new Uint8Array(Buffer.from(h, "hex")));
  const m = rand(size - 1);
  const cons = consistencyProofOf(store, m, size).map((h) => new Uint8Array(Buffer.from(h, "hex")));
  const oldRoot = treeRoot(memoryNodes(leaves), m);
  answers.push([
    size.toLocaleString("en"),
    micros(() => currentTreeHead(store, id.signing.secretKey, Date.now())).toFixed(0),
    micros(() => inclusionProofOf(store, rand(size), size)).toFixed(0),
    micros(() => consistencyProofOf(store, rand(size - 1), size)).toFixed(0),
    micros(() => verifyInclusion(leaves[seq - 1] as Uint8Array, seq - 1, size, inc, root)).toFixed(0),
    micros(() => verifyConsistency(m, size, oldRoot, root, cons)).toFixed(0),
    micros(() => treeRoot(memoryNodes(leaves), size), 5).toFixed(0),
    `${inc.length * 32} / ${cons.length * 32}`,
  ]);
  void leafHash;

  // 3. audit verify over the n entries.
  const before = peakRssMiB();
  const secs = await timeIt(() => {
    const v = verifyLedger(store, id.signing.publicKey, { heads: [head] });
    if (!v.ok) throw new Error("the bench's ledger does not verify");
  });
  audits.push([size.toLocaleString("en"), secs.toFixed(2), `${Math.round(Math.max(before, peakRssMiB()))}`]);
  store.close();
}
rmSync(dir, { recursive: true, force: true });

console.log(`\n1. Appending entries to a store file (one transaction per size; median of ${REPEATS})\n`);
console.log(formatTable(["entries", "log: entries/s", "chain only: entries/s", "log overhead"], rows));
console.log("\n2. Answers at a log of N entries (µs, median of 200; recomputing the root: of 5)\n");
console.log(formatTable(["N", "signed head", "inclusion proof", "consistency proof", "verify inclusion", "verify consistency", "root from all leaves", "proof bytes (incl. / cons.)"], answers));
console.log("\n3. umbra audit verify (chain, signatures, every tree node, one head)\n");
console.log(formatTable(["N", "seconds", "peak RSS MiB"], audits));
