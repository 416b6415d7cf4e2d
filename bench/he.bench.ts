/**
 * `npm run bench:he`: homomorphic aggregation (engine/he, BFV through
 * node-seal) — encryption throughput with one worker and with every worker,
 * ciphertext bytes per value, a federated SUM+AVG of 3 providers × 10^6 rows
 * end to end (runFederatedAggregate, all roles in one process; exact, and
 * approximate with CKKS beside it), the same SUM with every row encrypted,
 * and paillier-bigint on the same SUM, measured on a sample and extrapolated
 * (labelled as such), for the ratio.
 *
 * Each case runs in a child process (bench/he-case.ts) so that its peak RSS
 * is its own. paillier-bigint lives outside Umbra's dependency tree, in
 * bench/peers (installed here with --ignore-scripts if missing).
 *
 * Options: --quick (10^4 rows per provider, 2 runs, a 20-value Paillier sample),
 * --no-paillier
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { formatTable, median } from "./table.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const withPeer = !args.includes("--no-paillier");
const rows = quick ? 10_000 : 1_000_000;
const reps = quick ? 2 : 3;
const sample = quick ? 20 : 200;
const PROVIDERS = 3;
const cores = availableParallelism();

const caseFile = fileURLToPath(new URL("./he-case.js", import.meta.url));
const peersDir = fileURLToPath(new URL("../../bench/peers/", import.meta.url));

function runCase<T>(...caseArgs: string[]): T {
  process.stderr.write(`  running ${caseArgs.join(" ")} …\n`);
  const r = spawnSync(process.execPath, [caseFile, ...caseArgs], { encoding: "utf8", maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`case ${caseArgs.join(" ")} failed:\n${r.stderr}`);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as T;
}

function ensurePeer(): boolean {
  if (existsSync(`${peersDir}node_modules/paillier-bigint`)) return true;
  process.stderr.write("installing paillier-bigint for the bench (npm --prefix bench/peers ci --ignore-scripts) …\n");
  const r = spawnSync("npm", ["--prefix", peersDir, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], { stdio: "inherit" });
  return r.status === 0;
}

interface EncryptResult {
  readonly seconds: number[];
  readonly rows: number;
  readonly threads: number;
  readonly polyModulusDegree: number;
  readonly slotCount: number;
  readonly primes: number;
  readonly plainModuli: number[];
  readonly coeffModulusBits: number;
  readonly columnBytes: number;
  readonly blockFreshBytes: number;
  readonly blockRerandBytes: number;
  readonly peakMiB: number;
}
interface FaResult {
  readonly seconds: number;
  readonly bytesSent: number;
  readonly peakMiB: number;
}
interface FaApproxResult extends FaResult {
  readonly sumError: number;
  readonly sumBound: number;
  readonly avgError: number;
  readonly avgBound: number;
  readonly countError: number;
  readonly countBound: number;
  readonly countRounded: boolean;
}
interface FaRowsResult {
  readonly seconds: number;
  readonly keygenSeconds: number;
  readonly encryptSeconds: number;
  readonly addSeconds: number;
  readonly sumSlotsSeconds: number;
  readonly decryptSeconds: number;
  readonly threads: number;
  readonly polyModulusDegree: number;
  readonly primes: number;
  readonly ciphertextBytesPerProvider: number;
  readonly peakMiB: number;
}
interface PaillierResult {
  readonly version: string;
  readonly keygenSeconds: number;
  readonly encryptSeconds: number;
  readonly addSeconds: number;
  readonly additions: number;
  readonly decryptSeconds: number;
  readonly ciphertextBytes: number;
  readonly sample: number;
  readonly peakMiB: number;
}

const secs = (s: number): string =>
  s >= 100 ? `${s.toFixed(0)} s` : s >= 1 ? `${s.toFixed(2)} s` : s >= 1e-3 ? `${(s * 1e3).toFixed(1)} ms` : `${(s * 1e6).toFixed(1)} µs`;
const count = (n: number): string => Math.round(n).toLocaleString("en-US");
const mib = (m: number): string => `${m.toFixed(0)} MiB`;
const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
const human = (s: number): string => (s >= 86_400 ? `${secs(s)} (${(s / 86_400).toFixed(1)} days)` : s >= 3600 ? `${secs(s)} (${(s / 3600).toFixed(1)} h)` : secs(s));

function main(): void {
  console.log(`# Umbra HE aggregation benchmark — Node ${process.version}, ${cores} cores${quick ? " (quick)" : ""}\n`);
  console.log(`Values: signed 64-bit integers in [−2^40, 2^40] (the extremes included), declared maxAbsValue 2^40. Medians of ${reps} runs where stated.\n`);

  // 1. Encryption throughput.
  const threadCounts = [...new Set([1, cores])];
  const enc = threadCounts.map((t) => runCase<EncryptResult>("encrypt", String(t), String(rows), String(reps)));
  const e0 = enc[0] as EncryptResult;
  console.log(
    `## 1. encryption throughput: CryptoPool.heEncrypt of ${count(rows)} values (parameters createHeContext picks for maxAbsValue 2^40, maxRows ${count(rows)})\n`,
  );
  console.log(`BFV N = ${e0.polyModulusDegree} (${count(e0.slotCount)} slots), ${e0.primes} CRT plaintext primes (${e0.plainModuli.join(", ")}), coefficient modulus ${e0.coeffModulusBits} bits.\n`);
  console.log(
    formatTable(
      ["workers", `median time (${reps} runs)`, "values/s", "ciphertext bytes / value", "peak RSS"],
      enc.map((r) => {
        const m = median(r.seconds);
        return [String(r.threads), secs(m), count(r.rows / m), (r.columnBytes / r.rows).toFixed(1), mib(r.peakMiB)];
      }),
    ),
  );
  console.log(
    `\nOne full block of ${count(e0.slotCount)} values: fresh ${count(e0.blockFreshBytes)} bytes (${(e0.blockFreshBytes / e0.slotCount).toFixed(1)} B/value); ` +
      `after reRandomize (fresh encryption of zero added, switched to the last modulus: what the key holder receives) ${count(e0.blockRerandBytes)} bytes (${(e0.blockRerandBytes / e0.slotCount).toFixed(1)} B/value). ` +
      `The per-value figure in the table includes the padding of the last, partly filled block.`,
  );

  // 2. Federated SUM+AVG end to end, and the encrypt-every-row variant.
  const fa = runCase<FaResult>("fa", String(rows));
  const fr = runCase<FaRowsResult>("fa-rows", String(rows));
  const fx = runCase<FaApproxResult>("fa-approx", String(rows));
  console.log(`\n## 2. federated SUM+AVG, ${PROVIDERS} providers × ${count(rows)} rows, end to end, all roles in one process\n`);
  console.log(
    formatTable(
      ["variant", "wall time", "bytes sent (all roles)", "peak RSS"],
      [
        ["runFederatedAggregate, exact (each provider aggregates locally, encrypts its small vector, pairwise masks; exchange adds, re-randomises; buyer decrypts)", secs(fa.seconds), mb(fa.bytesSent), mib(fa.peakMiB)],
        ["the same, approximate: true (CKKS N = 8192, real-valued masks 2^20 × each slot's bound; results with error bounds)", secs(fx.seconds), mb(fx.bytesSent), mib(fx.peakMiB)],
        [
          `encrypt every row: 3 × pool.heEncrypt(${count(rows)} values), heAdd, sumSlots, reRandomize, decryptSums (${fr.threads} workers; N = ${fr.polyModulusDegree}, ${fr.primes} primes)`,
          secs(fr.seconds),
          `${mb(fr.ciphertextBytesPerProvider)} per provider`,
          mib(fr.peakMiB),
        ],
      ],
    ),
  );
  const e = (x: number): string => x.toExponential(2);
  console.log(
    `\nApproximate (CKKS) results against the exact totals: SUM error ${e(fx.sumError)} within its bound ${e(fx.sumBound)}; ` +
      `AVG error ${e(fx.avgError)} within ${e(fx.avgBound)}; COUNT ${fx.countRounded ? "rounded, exact (bound below 0.5)" : `error ${e(fx.countError)} within ${e(fx.countBound)} (bound ≥ 0.5: reported as approximate)`}.`,
  );
  console.log(
    `Encrypt-every-row breakdown: keys ${secs(fr.keygenSeconds)}, encryption ${secs(fr.encryptSeconds)}, heAdd ${secs(fr.addSeconds)}, sumSlots ${secs(fr.sumSlotsSeconds)}, re-randomise + decrypt ${secs(fr.decryptSeconds)}.`,
  );
  console.log(`Target (issue 5): ${PROVIDERS} × 10^6 rows SUM+AVG end to end in ≤ 10 s on this machine${quick ? " (not measured at this size: --quick)" : `: runFederatedAggregate ${secs(fa.seconds)} — ${fa.seconds <= 10 ? "met" : "NOT met"}`}.`);

  // 3. paillier-bigint.
  if (!withPeer || !ensurePeer()) {
    console.log("\n(paillier-bigint skipped)");
    return;
  }
  const p = runCase<PaillierResult>("paillier", String(sample));
  const n = PROVIDERS * rows;
  const perEnc = p.encryptSeconds / p.sample;
  const perAdd = p.additions > 0 ? p.addSeconds / p.additions : 0;
  const extrapolated = n * perEnc + (n - 1) * perAdd + p.decryptSeconds;
  console.log(`\n## 3. paillier-bigint ${p.version} (2048-bit modulus, pure JS, one thread) on the same SUM\n`);
  console.log(
    formatTable(
      ["step", "measured", `for ${count(n)} values`],
      [
        ["key generation (2048-bit), once", secs(p.keygenSeconds), secs(p.keygenSeconds)],
        [`encrypt: measured on ${p.sample} values, extrapolated`, `${secs(perEnc)} / value`, human(n * perEnc)],
        [`homomorphic add: measured on ${p.additions} additions, extrapolated`, `${secs(perAdd)} / add`, human((n - 1) * perAdd)],
        ["decrypt the total", secs(p.decryptSeconds), secs(p.decryptSeconds)],
        [`total (keys excluded): measured on ${p.sample} values, EXTRAPOLATED`, "", human(extrapolated)],
      ],
    ),
  );
  console.log(
    `\nCiphertext: ${count(p.ciphertextBytes)} bytes per value (Umbra fresh: ${(e0.columnBytes / e0.rows).toFixed(1)} B/value). ` +
      `Ratio paillier-bigint (extrapolated, encrypt + add + decrypt) / Umbra encrypt-every-row (measured, keys included): ${(extrapolated / fr.seconds).toFixed(0)}x; ` +
      `/ Umbra runFederatedAggregate: ${(extrapolated / fa.seconds).toFixed(0)}x.`,
  );
}

main();
