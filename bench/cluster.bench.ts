/**
 * npm run bench:cluster — psi and join-aggregate at N keys per side (default
 * 10^6) in process on 2 threads, then in cluster mode with 1 and with 2
 * `umbra worker` processes of one thread each on a private Redis (AOF on):
 * time, speed-up of 2 workers over 1, coordination overhead against the
 * in-process run with the same total threads, chunks, elements per second
 * per worker, sealed bytes through Redis, Redis's peak memory, the
 * coordinator's peak RSS, and whether every result equals the in-process one.
 * One run per case (each in its own process, a fresh Redis per cluster case).
 *
 * Options: --sizes 1000000[,…] (even), --protocols psi,ja, --quick (20,000),
 * --json (one JSON line at the end, for npm run plan:scale -- --measured FILE).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRedis } from "./cluster/redis-server.js";
import { formatTable } from "./table.js";

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, "..", "node", "cli.js");
const CASE = join(here, "cluster", "case.js");
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes("--quick");
const sizes = (option("--sizes") ?? (quick ? "20000" : "1000000")).split(",").map(Number);
const protocols = (option("--protocols") ?? "psi,ja").split(",");
if (sizes.some((s) => !Number.isSafeInteger(s) || s < 2 || s % 2 !== 0)) throw new Error("--sizes needs comma-separated even integers");
if (protocols.some((p) => p !== "psi" && p !== "ja")) throw new Error("--protocols takes psi and/or ja");

interface CaseResult {
  readonly seconds: number;
  readonly digest: string;
  readonly peakMiB: number;
  readonly cluster?: { readonly chunks: number; readonly bytesOut: number; readonly bytesIn: number; readonly duplicates: number };
}

function runCase(argv: string[]): Promise<CaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CASE, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop() as string) as CaseResult) : reject(new Error(`case ${argv.join(" ")} exited ${code}`))));
  });
}

interface WorkerProcess {
  stop(): Promise<{ chunks: number; elements: number }>;
}

function startWorker(redis: string, keyFile: string): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, "worker", "--redis", redis, "--cluster-key", keyFile, "--threads", "1", "--json"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`worker exited ${code} before it was ready`)));
    child.stdout.on("data", (c: Buffer) => {
      const was = out.includes('"event":"ready"');
      out += c.toString("utf8");
      if (!was && out.includes('"event":"ready"')) {
        resolve({
          stop: () =>
            new Promise((res) => {
              child.removeAllListeners("exit");
              child.once("exit", () => {
                const line = out.split("\n").find((l) => l.includes('"event":"stopped"'));
                const s = line ? (JSON.parse(line) as { chunks: number; elements: number }) : { chunks: 0, elements: 0 };
                res({ chunks: s.chunks, elements: s.elements });
              });
              child.kill("SIGTERM");
            }),
        });
      }
    });
  });
}

interface Row {
  protocol: string;
  n: number;
  mode: string;
  seconds: number;
  digest: string;
  peakMiB: number;
  workers: number;
  chunks?: number;
  elementsPerSecondPerWorker?: number;
  bytesOut?: number;
  bytesIn?: number;
  redisPeakMiB?: number;
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), "umbra-bench-cluster-"));
const keyFile = join(dir, "cluster.key");
writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
try {
  for (const protocol of protocols) {
    for (const n of sizes) {
      const local = await runCase([protocol, String(n), "local", "2"]);
      rows.push({ protocol, n, mode: "in process, 2 threads", workers: 0, ...local });
      process.stderr.write(`${protocol} ${n} in process: ${local.seconds.toFixed(2)} s\n`);
      for (const w of [1, 2]) {
        const redis = await startRedis();
        try {
          const workers = await Promise.all(Array.from({ length: w }, () => startWorker(redis.url, keyFile)));
          const r = await runCase([protocol, String(n), "cluster", redis.url, keyFile]);
          const stats = await Promise.all(workers.map((x) => x.stop()));
          const elements = stats.reduce((s, x) => s + x.elements, 0);
          rows.push({
            protocol,
            n,
            mode: `cluster, ${w} worker${w > 1 ? "s" : ""} × 1 thread`,
            workers: w,
            seconds: r.seconds,
            digest: r.digest,
            peakMiB: r.peakMiB,
            chunks: r.cluster?.chunks ?? 0,
            elementsPerSecondPerWorker: elements / r.seconds / w,
            bytesOut: r.cluster?.bytesOut ?? 0,
            bytesIn: r.cluster?.bytesIn ?? 0,
            redisPeakMiB: (await redis.peakMemory()) / 2 ** 20,
          });
          process.stderr.write(`${protocol} ${n} cluster ${w}: ${r.seconds.toFixed(2)} s\n`);
        } finally {
          await redis.stop();
        }
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const mb = (b?: number): string => (b === undefined ? "" : `${(b / 1e6).toFixed(1)} MB`);
const table = rows.map((r) => {
  const base = rows.find((x) => x.protocol === r.protocol && x.n === r.n && x.workers === 0) as Row;
  const one = rows.find((x) => x.protocol === r.protocol && x.n === r.n && x.workers === 1);
  return [
    r.protocol === "ja" ? "join-aggregate" : "psi",
    r.n.toLocaleString("en-US"),
    r.mode,
    `${r.seconds.toFixed(2)} s`,
    r.workers === 2 && one ? `${(one.seconds / r.seconds).toFixed(2)}x` : "",
    r.workers > 0 ? `${(r.seconds / base.seconds).toFixed(3)}x` : "",
    r.chunks !== undefined ? r.chunks.toLocaleString("en-US") : "",
    r.elementsPerSecondPerWorker !== undefined ? Math.round(r.elementsPerSecondPerWorker).toLocaleString("en-US") : "",
    r.bytesOut !== undefined ? `${mb(r.bytesOut)} / ${mb(r.bytesIn)}` : "",
    r.redisPeakMiB !== undefined ? `${r.redisPeakMiB.toFixed(1)} MiB` : "",
    `${Math.round(r.peakMiB)} MiB`,
    r.digest === base.digest ? "yes" : "NO",
  ];
});
console.log(
  formatTable(["protocol", "N per side", "run", "time", "2 workers / 1", "vs in process", "chunks", "elements/s per worker", "bytes to / from Redis", "Redis peak", "coordinator peak RSS", "result = in process"], table),
);
if (args.includes("--json")) console.log(JSON.stringify({ bench: "cluster", rows }));
if (rows.some((r) => r.digest !== (rows.find((x) => x.protocol === r.protocol && x.n === r.n && x.workers === 0) as Row).digest)) process.exitCode = 1;
