/**
 * One HE benchmark case, run in its own process so its peak RSS is its own
 * (`node dist/bench/he-case.js KIND ARGS…`). Prints one line of JSON.
 *
 *   encrypt THREADS ROWS REPS   CryptoPool({ threads }).heEncrypt of ROWS values, REPS times (after a warm-up)
 *   fa ROWS                     runFederatedAggregate SUM+AVG, 3 providers × ROWS rows
 *   fa-approx ROWS              the same with approximate: true (CKKS), its error checked against its bound
 *   fa-rows ROWS                "encrypt every row": 3 × heEncrypt(ROWS), heAdd, sumSlots, reRandomize, decryptSums
 *   paillier SAMPLE             paillier-bigint 2048-bit: keygen, then SAMPLE encryptions and additions
 *
 * Every case draws the same values: provider p's row i is a deterministic
 * pseudo-random signed integer in [−2^40, 2^40] (an Int64 column "amount").
 * Inputs are generated before any timing starts.
 */
import { resourceUsage } from "node:process";
import { makeVector, Table } from "apache-arrow";
import { CryptoPool, closePool, createHeContext, getPool, valuesFromArrow, type HeContextOptions } from "../engine/index.js";
import { runFederatedAggregate } from "../protocols/index.js";

const [kind, a1, a2, a3] = process.argv.slice(2);

const MAX_ABS = 2n ** 40n;
const PROVIDERS = 3;
const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const peakMiB = (): number => resourceUsage().maxRSS / 1024;

/** xorshift-style deterministic values in [−2^40, 2^40]. */
function column(provider: number, rows: number): BigInt64Array {
  const out = new BigInt64Array(rows);
  let s = (0x9e3779b9 ^ (provider * 0x85ebca6b)) >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  for (let i = 0; i < rows; i++) {
    // 41 random bits → [0, 2^41], shifted to [−2^40, 2^40].
    const hi = next() & 0x1ffff; // 17 bits
    const lo = next() & 0xffffff; // 24 bits
    out[i] = ((BigInt(hi) << 24n) | BigInt(lo)) - MAX_ABS;
  }
  out[0] = MAX_ABS; // extremes included
  if (rows > 1) out[1] = -MAX_ABS;
  return out;
}

function total(cols: readonly BigInt64Array[]): bigint {
  let t = 0n;
  for (const c of cols) for (let i = 0; i < c.length; i++) t += c[i] as bigint;
  return t;
}

async function encryptCase(threads: number, rows: number, reps: number): Promise<Record<string, unknown>> {
  const options: HeContextOptions = { maxAbsValue: MAX_ABS, maxRows: rows };
  const he = await createHeContext(options);
  const keys = he.generateKeys({ galois: false });
  const values = column(0, rows);
  const pool = new CryptoPool({ threads });
  try {
    // Warm-up: every worker loads SEAL and builds its context and key.
    await pool.heEncrypt(options, keys.publicKey, values.slice(0, Math.min(rows, he.params.slotCount * threads * 2)));
    const seconds: number[] = [];
    let bytes = 0;
    for (let r = 0; r < reps; r++) {
      const copy = values.slice(); // heEncrypt transfers its chunks
      const t0 = now();
      const ct = await pool.heEncrypt(options, keys.publicKey, copy);
      seconds.push(now() - t0);
      bytes = ct.length;
    }
    // One full block, fresh and after re-randomisation (which also switches to the last modulus).
    const block = he.params.slotCount;
    const fresh = he.encryptColumn(values.slice(0, block), keys.publicKey);
    const rerand = he.reRandomize(fresh, keys.publicKey);
    return {
      seconds,
      rows,
      threads,
      polyModulusDegree: he.params.polyModulusDegree,
      slotCount: block,
      primes: he.params.plainModuli.length,
      plainModuli: he.params.plainModuli,
      coeffModulusBits: he.params.coeffModulusBits,
      columnBytes: bytes,
      blockFreshBytes: fresh.length,
      blockRerandBytes: rerand.length,
      peakMiB: peakMiB(),
    };
  } finally {
    await pool.close();
    he.dispose();
  }
}

const tables = (rows: number): { cols: BigInt64Array[]; tables: Table[] } => {
  const cols = Array.from({ length: PROVIDERS }, (_, p) => column(p, rows));
  return { cols, tables: cols.map((c) => new Table({ amount: makeVector(c) })) };
};

async function faCase(rows: number): Promise<Record<string, unknown>> {
  const { cols, tables: ts } = tables(rows);
  const expected = total(cols);
  const t0 = now();
  const r = await runFederatedAggregate({
    providers: ts.map((table) => ({ table })),
    aggregates: [{ fn: "sum", column: "amount" }, { fn: "avg", column: "amount" }],
    maxAbsValue: MAX_ABS,
  });
  const seconds = now() - t0;
  const cell = r.result.cells[0];
  const got = cell?.columns["amount"]?.sum;
  if (got !== expected) throw new Error(`wrong sum: ${String(got)} ≠ ${expected}`);
  const avg = cell?.columns["amount"]?.avg ?? Number.NaN;
  const bytesSent = Object.values(r.stats.bytesSent).reduce((a, b) => a + b, 0);
  return { seconds, rows, providers: PROVIDERS, sum: String(expected), avg, bytesSent, peakMiB: peakMiB() };
}

async function faApproxCase(rows: number): Promise<Record<string, unknown>> {
  const { cols, tables: ts } = tables(rows);
  const expected = total(cols);
  const t0 = now();
  const r = await runFederatedAggregate({
    providers: ts.map((table) => ({ table })),
    aggregates: [{ fn: "sum", column: "amount" }, { fn: "avg", column: "amount" }],
    maxAbsValue: MAX_ABS,
    approximate: true,
  });
  const seconds = now() - t0;
  const a = r.result.cells[0]?.approx;
  const sum = a?.columns["amount"]?.sum;
  const avg = a?.columns["amount"]?.avg;
  const count = a?.count;
  if (!sum || !avg || !count) throw new Error("no approximate result");
  // The sum is an integer-valued double at this magnitude: its error exactly, in bigint.
  const sumError = Math.abs(Number(BigInt(Math.round(sum.value)) - expected) + (sum.value - Math.round(sum.value)));
  const avgError = Math.abs(avg.value - Number(expected) / (PROVIDERS * rows));
  const countError = Math.abs(count.value - PROVIDERS * rows);
  if (sumError > sum.bound || avgError > avg.bound || countError > count.bound) throw new Error("an approximate result outside its bound");
  const bytesSent = Object.values(r.stats.bytesSent).reduce((x, y) => x + y, 0);
  return {
    seconds,
    rows,
    providers: PROVIDERS,
    bytesSent,
    peakMiB: peakMiB(),
    sumError,
    sumBound: sum.bound,
    avgError,
    avgBound: avg.bound,
    countError,
    countBound: count.bound,
    countRounded: count.rounded,
  };
}

async function faRowsCase(rows: number): Promise<Record<string, unknown>> {
  const { cols, tables: ts } = tables(rows);
  const expected = total(cols);
  const pool = getPool();
  const options: HeContextOptions = { maxAbsValue: MAX_ABS, maxRows: PROVIDERS * rows, maxLength: rows };
  const t0 = now();
  const he = await createHeContext(options);
  try {
    const keys = he.generateKeys();
    const tKeys = now();
    // Each provider encrypts its whole column (in the pool); the providers run concurrently.
    const cts = await Promise.all(ts.map((t) => pool.heEncrypt(options, keys.publicKey, valuesFromArrow(t.getChild("amount") as NonNullable<ReturnType<Table["getChild"]>>).slice())));
    const tEnc = now();
    const sum = await pool.heAdd(options, cts);
    const tAdd = now();
    const one = he.sumSlots(sum, keys.galoisKeys as Uint8Array);
    const tRot = now();
    const out = he.reRandomize(one, keys.publicKey);
    const totals = he.decryptSums(out, keys.secretKey);
    const seconds = now() - t0;
    if (totals[0] !== expected) throw new Error(`wrong sum: ${String(totals[0])} ≠ ${expected}`);
    return {
      seconds,
      keygenSeconds: tKeys - t0,
      encryptSeconds: tEnc - tKeys,
      addSeconds: tAdd - tEnc,
      sumSlotsSeconds: tRot - tAdd,
      decryptSeconds: seconds - (tRot - t0),
      rows,
      providers: PROVIDERS,
      threads: pool.threads,
      polyModulusDegree: he.params.polyModulusDegree,
      primes: he.params.plainModuli.length,
      ciphertextBytesPerProvider: cts[0]?.length ?? 0,
      sum: String(expected),
      avg: Number(expected) / (PROVIDERS * rows),
      peakMiB: peakMiB(),
    };
  } finally {
    he.dispose();
  }
}

async function paillierCase(sample: number): Promise<Record<string, unknown>> {
  const peer = (await import(new URL("../../bench/peers/paillier.mjs", import.meta.url).href)) as {
    paillierKeygen(bits: number): Promise<{ seconds: number; bits: number }>;
    runPaillierSum(o: { values: readonly bigint[]; keys: unknown }): Promise<{
      version: string;
      encryptSeconds: number;
      addSeconds: number;
      additions: number;
      decryptSeconds: number;
      ciphertextBytes: number;
      correct: boolean;
    }>;
  };
  const values = Array.from(column(0, sample));
  const keys = await peer.paillierKeygen(2048);
  const r = await peer.runPaillierSum({ values, keys });
  if (!r.correct) throw new Error("paillier-bigint: wrong sum");
  return { ...r, keygenSeconds: keys.seconds, sample, peakMiB: peakMiB() };
}

async function main(): Promise<Record<string, unknown>> {
  if (kind === "encrypt") return encryptCase(Number(a1), Number(a2), Number(a3 ?? 3));
  if (kind === "fa") return faCase(Number(a1));
  if (kind === "fa-rows") return faRowsCase(Number(a1));
  if (kind === "fa-approx") return faApproxCase(Number(a1));
  if (kind === "paillier") return paillierCase(Number(a1));
  throw new Error(`unknown case ${String(kind)}`);
}

try {
  console.log(JSON.stringify(await main(), (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
} finally {
  await closePool();
}
