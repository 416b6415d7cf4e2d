/**
 * `npm run bench`: the group backends and the worker pool.
 *
 * 1. One thread, per backend: hash-to-group and variable-base multiply of
 *    received (strictly validated) elements, per element in batches of 1,024, ops/s (benchmark.js: median of its
 *    samples and relative margin of error). Baseline in the same run:
 *    node:crypto X25519 (OpenSSL) with one key import per multiply.
 * 2. The pool: hash·a (a blinded column) with one worker and with all
 *    workers; elements/s, median of repeated runs, speed-up, peak RSS.
 * 3. The ECDH-PSI core per element (H(x)·a, then ·b on the received
 *    elements), all workers, per group: what the bulk path costs end to end.
 *
 * Options: --quick (smaller sizes, for a smoke run), --n N (pool batch size).
 */
import Benchmark from "benchmark";
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { createGroup, CryptoPool, GROUP_BACKENDS, packStrings, type Group, type PackedBytes } from "../engine/index.js";
import { formatTable, median, peakRssMiB, timeIt } from "./table.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const nArg = args.indexOf("--n");
const POOL_N = nArg >= 0 ? Number(args[nArg + 1]) : quick ? 4096 : 32768;
const PSI_N = quick ? 4096 : 100_000;
const REPEATS = quick ? 1 : 3;
const MAX_TIME = quick ? 0.3 : 2;
const dst = new TextEncoder().encode("umbra-bench");

function keys(n: number, tag: string): PackedBytes {
  return packStrings(Array.from({ length: n }, (_, i) => `${tag}-${i.toString(36)}-+86138${String(i).padStart(8, "0")}`));
}

interface OpResult {
  readonly hz: number;
  readonly rme: number;
  readonly samples: number;
}

function bench(fn: () => void): OpResult {
  const b = new Benchmark(fn, { maxTime: MAX_TIME, minSamples: 5 });
  b.run();
  const secs = b.stats.sample;
  return { hz: 1 / median(secs), rme: b.stats.rme, samples: secs.length };
}

const BATCH = 1024;

/** Per-element rates of the batch forms (what the pool's workers run), batches of 1,024 on this thread. */
function singleThread(group: Group): { hash: OpResult; multiply: OpResult } {
  const msgs = keys(BATCH, "single");
  const s = group.randomScalar();
  const pts = group.hashToGroupBatch(msgs, dst);
  const perElement = (r: OpResult): OpResult => ({ ...r, hz: r.hz * BATCH });
  const hash = perElement(bench(() => group.hashToGroupBatch(msgs, dst)));
  // Received elements: strict decode of each, then multiply (what a peer's batch costs).
  const multiply = perElement(bench(() => group.multiplyBatch(s, pts)));
  return { hash, multiply };
}

function nodeCryptoX25519(): OpResult {
  // OpenSSL X25519 through node:crypto, importing each peer element as a key object.
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), randomBytes(32)]), format: "der", type: "pkcs8" });
  const peers = Array.from({ length: 256 }, () => {
    const k = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), randomBytes(32)]), format: "der", type: "pkcs8" });
    return createPublicKey(k).export({ format: "der", type: "spki" });
  });
  let i = 0;
  return bench(() => {
    const pub = createPublicKey({ key: peers[i++ & 255] as Buffer, format: "der", type: "spki" });
    diffieHellman({ privateKey: priv, publicKey: pub });
  });
}

async function poolThroughput(spec: { group: "ristretto255" | "x25519"; backend?: "libsodium" | "sodium-native" }, threads: number, n: number) {
  const pool = new CryptoPool({ threads, inlineBelow: 0 });
  const group = await createGroup(spec);
  const msgs = keys(n, "pool");
  const a = group.randomScalar();
  await pool.hashToGroup(spec, keys(threads * 4096, "warm"), dst, a); // start and warm every worker
  const times: number[] = [];
  for (let r = 0; r < REPEATS; r++) times.push(await timeIt(() => pool.hashToGroup(spec, msgs, dst, a)));
  await pool.close();
  return median(times);
}

async function psiCore(spec: { group: "ristretto255" | "x25519"; backend?: "libsodium" | "sodium-native" }, n: number) {
  const pool = new CryptoPool();
  const group = await createGroup(spec);
  const msgs = keys(n, "psi");
  const a = group.randomScalar();
  const b = group.randomScalar();
  await pool.hashToGroup(spec, keys(pool.threads * 4096, "warm"), dst, a);
  const times: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    times.push(
      await timeIt(async () => {
        const blinded = await pool.hashToGroup(spec, msgs, dst, a); // one side: H(x)·a
        await pool.multiply(spec, b, blinded); // the other side: validate, ·b
      }),
    );
  }
  await pool.close();
  return median(times);
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  console.log(`# Umbra group benchmark — Node ${process.version}, ${cores} cores${quick ? " (quick)" : ""}\n`);

  console.log(`## One thread, ops/s per element (batches of ${BATCH}; benchmark.js, median of samples)\n`);
  const rows: string[][] = [];
  for (const b of GROUP_BACKENDS) {
    const g = await createGroup(b);
    const r = singleThread(g);
    rows.push([g.id, g.backend, fmt(r.hash.hz), fmt(r.multiply.hz), `±${r.hash.rme.toFixed(1)}% / ±${r.multiply.rme.toFixed(1)}%`]);
  }
  const base = nodeCryptoX25519();
  rows.push(["x25519 (baseline)", "node:crypto OpenSSL, key import per op", "—", fmt(base.hz), `±${base.rme.toFixed(1)}%`]);
  console.log(formatTable(["group", "backend", "hash-to-group", "multiply (validated)", "rme"], rows));

  console.log(`\n## Pool: hash-to-group · scalar over ${POOL_N.toLocaleString("en-US")} keys, median of ${REPEATS}\n`);
  const poolRows: string[][] = [];
  for (const spec of [{ group: "ristretto255", backend: "libsodium" }, { group: "x25519", backend: "sodium-native" }] as const) {
    const one = await poolThroughput(spec, 1, POOL_N);
    const all = await poolThroughput(spec, cores, POOL_N);
    poolRows.push([`${spec.group}/${spec.backend}`, "1", fmt(POOL_N / one), `${one.toFixed(2)} s`, "1.00x"]);
    poolRows.push([`${spec.group}/${spec.backend}`, String(cores), fmt(POOL_N / all), `${all.toFixed(2)} s`, `${(one / all).toFixed(2)}x`]);
  }
  console.log(formatTable(["group/backend", "workers", "elements/s", "median time", "vs 1 worker"], poolRows));

  console.log(`\n## ECDH-PSI core, ${PSI_N.toLocaleString("en-US")} elements, all ${cores} workers: H(x)·a, then validate and ·b\n`);
  const psiRows: string[][] = [];
  let ristrettoTime = 0;
  for (const spec of [{ group: "ristretto255", backend: "libsodium" }, { group: "x25519", backend: "sodium-native" }] as const) {
    const t = await psiCore(spec, PSI_N);
    if (spec.group === "ristretto255") ristrettoTime = t;
    psiRows.push([`${spec.group}/${spec.backend}`, `${t.toFixed(2)} s`, fmt(PSI_N / t), ristrettoTime > 0 ? `${(ristrettoTime / t).toFixed(2)}x` : "—"]);
  }
  console.log(formatTable(["group/backend", "median time", "elements/s", "vs ristretto255/libsodium"], psiRows));
  console.log(`\npeak RSS ${peakRssMiB().toFixed(0)} MiB (main thread and workers share the process)`);
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString("en-US");
}

await main();
