/**
 * `npm run bench:psi`: psi (ECDH and psi-ot, the OT-extension PSI) and
 * lookup at 10^4, 10^5 and 10^6 per side — wall time, bytes sent by each
 * role, peak RSS — with @openmined/psi.js on the same inputs in the same run
 * at 10^4 and 10^5, and the ratios.
 *
 * Each case runs in a child process (bench/psi-case.ts) so that its peak RSS
 * is its own. psi.js lives outside Umbra's dependency tree, in bench/peers
 * (installed here with --ignore-scripts if missing).
 *
 * Umbra's cases up to 10^5 per side are the median of 3 runs (each in its
 * own process); 10^6 and psi.js run once.
 *
 * Options: --quick (10^3 and 10^4 only), --no-psijs, --no-lookup, --sizes 10000,100000
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { formatTable } from "./table.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const withPeer = !args.includes("--no-psijs");
const sizesArg = args.indexOf("--sizes");
const sizes = sizesArg >= 0 ? (args[sizesArg + 1] ?? "").split(",").map(Number) : quick ? [1_000, 10_000] : [10_000, 100_000, 1_000_000];
const peerSizes = new Set(quick ? [1_000, 10_000] : [10_000, 100_000]);
const lookupKeys = quick ? 1_000 : 10_000;
const lookupTables = quick ? [10_000] : [10_000, 100_000, 1_000_000];

const caseFile = fileURLToPath(new URL("./psi-case.js", import.meta.url));
const peersDir = fileURLToPath(new URL("../../bench/peers/", import.meta.url));

interface CaseResult {
  readonly seconds: number;
  readonly prepareSeconds?: number;
  readonly bytesBuyerToProvider: number;
  readonly bytesProviderToBuyer: number;
  readonly peakMiB: number;
  readonly version?: string;
}

function runOnce(caseArgs: readonly string[]): CaseResult {
  process.stderr.write(`  running ${caseArgs.join(" ")} …\n`);
  const r = spawnSync(process.execPath, [caseFile, ...caseArgs], { encoding: "utf8", maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`case ${caseArgs.join(" ")} failed:\n${r.stderr}`);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as CaseResult;
}

/** Umbra's cases up to 10^5 run 3 times, each in a fresh process, and report the median time (the largest peak RSS); larger ones and psi.js once. */
function runCase(...caseArgs: string[]): CaseResult {
  const n = Number(caseArgs[1]);
  if (caseArgs[0] === "psijs" || !(n <= 100_000)) return runOnce(caseArgs);
  const runs = [runOnce(caseArgs), runOnce(caseArgs), runOnce(caseArgs)].sort((a, b) => a.seconds - b.seconds);
  return { ...(runs[1] as CaseResult), peakMiB: Math.max(...runs.map((r) => r.peakMiB)) };
}

function ensurePeer(): boolean {
  if (existsSync(`${peersDir}node_modules/@openmined/psi.js`)) return true;
  process.stderr.write("installing @openmined/psi.js for the bench (npm --prefix bench/peers ci --ignore-scripts) …\n");
  const r = spawnSync("npm", ["--prefix", peersDir, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], { stdio: "inherit" });
  return r.status === 0;
}

const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
const secs = (s: number): string => `${s.toFixed(2)} s`;
const count = (n: number): string => n.toLocaleString("en-US");

function main(): void {
  console.log(`# Umbra PSI benchmark — Node ${process.version}, ${availableParallelism()} cores${quick ? " (quick)" : ""}\n`);
  console.log("Inputs: N keys per side, half of them shared. Umbra: all roles in one process on every core, every message protobuf-encoded and decoded; psi with the x25519 group, psi-ot by KKRT16 OT extension.");
  console.log("psi.js: @openmined/psi.js (P-256, C++ → WASM, one thread), Bloom filter, fpr 1e-9, both roles in one process, every message serialised.\n");
  const peer = withPeer && ensurePeer();

  const rows: string[][] = [];
  for (const n of sizes) {
    const u = runCase("psi", String(n));
    const ot = runCase("psi-ot", String(n));
    const c = runCase("psi-cardinality", String(n));
    const p = peer && peerSizes.has(n) ? runCase("psijs", String(n)) : undefined;
    rows.push([
      count(n),
      secs(u.seconds),
      `${mb(u.bytesBuyerToProvider)} / ${mb(u.bytesProviderToBuyer)}`,
      `${u.peakMiB.toFixed(0)} MiB`,
      secs(ot.seconds),
      `${mb(ot.bytesBuyerToProvider)} / ${mb(ot.bytesProviderToBuyer)}`,
      `${ot.peakMiB.toFixed(0)} MiB`,
      `${(u.seconds / ot.seconds).toFixed(1)}x`,
      secs(c.seconds),
      p ? secs(p.seconds) : "—",
      p ? `${mb(p.bytesBuyerToProvider)} / ${mb(p.bytesProviderToBuyer)}` : "—",
      p ? `${p.peakMiB.toFixed(0)} MiB` : "—",
      p ? `${(p.seconds / u.seconds).toFixed(1)}x` : "—",
      p ? `${(p.seconds / ot.seconds).toFixed(1)}x` : "—",
    ]);
  }
  console.log("## psi (intersection) and psi-cardinality\n");
  console.log(
    formatTable(
      [
        "N per side",
        "Umbra psi (ECDH)",
        "bytes buyer→provider / provider→buyer",
        "peak RSS",
        "Umbra psi-ot",
        "psi-ot bytes buyer→provider / provider→buyer",
        "psi-ot peak RSS",
        "ECDH / psi-ot",
        "Umbra psi-cardinality",
        "psi.js",
        "psi.js bytes c→s / s→c",
        "psi.js peak RSS",
        "psi.js / Umbra ECDH",
        "psi.js / psi-ot",
      ],
      rows,
    ),
  );

  if (args.includes("--no-lookup")) return;
  const lrows: string[][] = [];
  for (const t of lookupTables) {
    const r = runCase("lookup", String(lookupKeys), String(t));
    lrows.push([count(t), count(lookupKeys), secs(r.prepareSeconds ?? 0), secs(r.seconds), `${mb(r.bytesBuyerToProvider)} / ${mb(r.bytesProviderToBuyer)}`, `${r.peakMiB.toFixed(0)} MiB`]);
  }
  console.log("\n## lookup (labeled PSI): buyer keys against a prepared table, half of them present\n");
  console.log(formatTable(["prepared rows", "buyer keys", "preparation (once)", "lookup", "bytes buyer→provider / provider→buyer", "peak RSS"], lrows));
}

main();
