/**
 * npm run plan:scale -- --keys 1e9 --workers 64 [--threads 1] [--hours 1]
 * [--key-bytes 12] [--measured FILE] [--json]
 *
 * The capacity model of docs/scale.md for an ECDH-PSI (or the join of a
 * join-aggregate) of K keys per side, each party with W cluster workers of T
 * threads: from per-thread throughput and the coordination overhead measured
 * by `npm run bench:cluster` (its --json line, given with --measured; by
 * default the figures measured on the reference machine, below), it prints
 * the job's time, the workers needed for a job of --hours, the bytes between
 * the parties and through each party's Redis, Redis's memory and the
 * coordinator's.
 *
 * The model. Each party hashes-and-blinds its K keys and raises the other's
 * K blinded points: 2K scalar multiplications, spread over W·T threads at r
 * per second each, times the measured coordination overhead c; plus the
 * coordinator's own per-key work (de-duplication, the match), measured as s
 * seconds per key on one core. Bytes between the parties: the buyer sends K
 * points of 32 bytes, the provider 2K. Through Redis (each party): a key's
 * bytes + 4 (its offset) in, 32 out for the hash; 32 in and 32 out for the
 * raise; 28 bytes of seal per chunk. Redis holds at most maxInFlight chunks
 * per call in and out (it does not grow with K); the coordinator holds its
 * own and the other's points and an index over one of them: ~m bytes per key.
 */
import { readFileSync } from "node:fs";

/** Measured on the reference machine (2 cores, bench:cluster at 10^6, psi, 2026-12-06): see docs/scale.md. */
export const REFERENCE = {
  /** Scalar multiplications per second per worker thread (hash-and-blind and raise alike): 4·10^6 / 415.5 s on one worker. */
  opsPerThreadSecond: 9_627,
  /** Cluster time ÷ in-process time with the same total threads: 218.5 s / 211.8 s. */
  overhead: 1.032,
  /** Coordinator seconds per key for what stays local (de-duplication, match): the in-process run's time beyond its multiplications. */
  localSecondsPerKey: 2e-6,
  /** Coordinator peak memory per key per side, bytes: 1,670 MiB for both sides of 10^6 in one process. */
  coordinatorBytesPerKey: 876,
  /** Redis's peak memory during a call, bytes (independent of K): 8.5 MiB. */
  redisPeakBytes: 9 * 2 ** 20,
  chunkElements: 4096,
};

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const num = (name: string, fallback: number): number => {
  const v = option(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number (e.g. 1e9)`);
  return n;
};

const ref = { ...REFERENCE };
const measured = option("--measured");
if (measured !== undefined) {
  // The last JSON line of `npm run bench:cluster -- --json`.
  const line = readFileSync(measured, "utf8").trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`${measured} holds no JSON line from npm run bench:cluster -- --json`);
  const rows = (JSON.parse(line) as { rows: { protocol: string; n: number; workers: number; seconds: number; elementsPerSecondPerWorker?: number; peakMiB: number; redisPeakMiB?: number }[] }).rows.filter((r) => r.protocol === "psi");
  const one = rows.find((r) => r.workers === 1);
  const two = rows.find((r) => r.workers === 2);
  const local = rows.find((r) => r.workers === 0);
  if (!one || !two || !local) throw new Error(`${measured}: needs psi rows in process and with 1 and 2 workers`);
  ref.opsPerThreadSecond = (4 * one.n) / one.seconds; // both parties' 2n multiplications on one worker thread
  ref.overhead = two.seconds / local.seconds;
  ref.coordinatorBytesPerKey = (local.peakMiB * 2 ** 20) / (2 * local.n);
  ref.redisPeakBytes = Math.max(one.redisPeakMiB ?? 0, two.redisPeakMiB ?? 0) * 2 ** 20;
}

const keys = num("--keys", 1e8);
const workers = num("--workers", 16);
const threads = num("--threads", 1);
const hours = num("--hours", 1);
const keyBytes = num("--key-bytes", 12);

const opsPerParty = 2 * keys;
const computeSeconds = (opsPerParty / (workers * threads * ref.opsPerThreadSecond)) * ref.overhead;
const localSeconds = keys * ref.localSecondsPerKey;
const seconds = computeSeconds + localSeconds;
const budget = hours * 3600 - localSeconds;
const workersForBudget = budget > 0 ? Math.ceil((opsPerParty * ref.overhead) / (budget * threads * ref.opsPerThreadSecond)) : Infinity;
const chunks = Math.ceil(keys / ref.chunkElements);
const redisIn = keys * (keyBytes + 4) + keys * 32 + 2 * chunks * 28;
const redisOut = keys * 32 + keys * 32 + 2 * chunks * 28;
const plan = {
  keysPerSide: keys,
  workersPerParty: workers,
  threadsPerWorker: threads,
  hours: seconds / 3600,
  workersPerPartyFor: { hours, workers: workersForBudget },
  bytesBuyerToProvider: keys * 32,
  bytesProviderToBuyer: 2 * keys * 32,
  bytesThroughRedisPerParty: { toWorkers: redisIn, fromWorkers: redisOut },
  redisPeakBytes: ref.redisPeakBytes,
  coordinatorBytes: keys * ref.coordinatorBytesPerKey,
  model: ref,
};

const gb = (b: number): string => (b >= 1e12 ? `${(b / 1e12).toFixed(2)} TB` : b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : `${(b / 1e6).toFixed(1)} MB`);
if (args.includes("--json")) console.log(JSON.stringify(plan));
else {
  console.log(`ECDH-PSI of ${keys.toExponential(0)} × ${keys.toExponential(0)} keys, ${workers} workers × ${threads} thread(s) per party:`);
  console.log(`  time                          ${(seconds / 3600).toFixed(2)} h (${(computeSeconds / 3600).toFixed(2)} h on the workers, ${(localSeconds / 3600).toFixed(2)} h on the coordinator)`);
  console.log(`  workers per party for ${hours} h    ${Number.isFinite(workersForBudget) ? workersForBudget : "impossible: the coordinator's own work alone takes longer"} (× ${threads} thread(s))`);
  console.log(`  between the parties           buyer → provider ${gb(plan.bytesBuyerToProvider)}, provider → buyer ${gb(plan.bytesProviderToBuyer)}`);
  console.log(`  through each party's Redis    ${gb(redisIn)} to workers, ${gb(redisOut)} back`);
  console.log(`  Redis memory (peak)           ${gb(ref.redisPeakBytes)} (bounded by chunks in flight, not by K)`);
  console.log(`  coordinator memory            ${gb(plan.coordinatorBytes)} (its and the other's points, the index)`);
  console.log(`  model: ${Math.round(ref.opsPerThreadSecond).toLocaleString("en-US")} multiplications/s per thread, overhead ${ref.overhead.toFixed(3)}x${measured ? ` (from ${measured})` : " (reference machine)"}`);
}
