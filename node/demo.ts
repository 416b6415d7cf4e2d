/**
 * `umbra demo --local`: the engine alone on generated sample data (the node
 * demo, `umbra demo` / `npm run demo`, is in node/commands/demo.ts).
 *
 * A bank (the buyer) and a telco (the provider) each hold a customer file
 * keyed by phone number, written differently on each side. Playing both roles
 * in this process, the demo:
 *
 *  1. writes the two sample files (CSV for the bank, Arrow IPC for the telco)
 *     and streams them back through the column layer, normalising the phone
 *     numbers to digits;
 *  2. blinds both key columns with fresh secret scalars in the worker pool
 *     (x25519 bulk group, ECDH-PSI's H(x)^a and H(y)^b), crosses the blinded
 *     sets and counts equal doubly-blinded elements — the intersection size,
 *     computed without either side's keys leaving it in the clear;
 *  3. runs RFC 9497 OPRF over the columns: the telco evaluates its column
 *     under its product key, the bank blinds its keys, the telco
 *     blind-evaluates, the bank finalises — the bank recognises exactly its
 *     matched customers;
 *  4. checks both against the plaintext join and prints what it did.
 *
 * The multi-party protocols with their messages (the psi and lookup
 * protocols) build on these same calls.
 */
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Table, tableFromArrays, Utf8, vectorFromArray } from "apache-arrow";
import {
  closePool,
  concatKeyColumns,
  createGroup,
  getPool,
  keysFromBatch,
  oprf,
  readBatches,
  writeArrowIPC,
  writeCsv,
  type KeyColumn,
  type PackedBytes,
} from "../engine/index.js";

export interface DemoOptions {
  /** Bank customers (default 10,000). */
  readonly buyerRows?: number;
  /** Telco subscribers (default 30,000). */
  readonly providerRows?: number;
  /** Where the sample files go (default: a new temporary folder). */
  readonly dir?: string;
  /** Where the demo prints (default stdout). */
  readonly out?: (line: string) => void;
}

export interface DemoResult {
  readonly dir: string;
  readonly intersection: number;
  readonly plaintextIntersection: number;
  readonly oprfMatches: number;
}

/** A deterministic generator so every run shows the same data. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const phoneDigits = (i: number): string => `138${String(10_000_000 + i * 7919 % 90_000_000).padStart(8, "0")}`;

function generate(buyerRows: number, providerRows: number) {
  const rnd = lcg(2026);
  const shared = Math.floor(buyerRows * 0.3);
  // Bank: "138 1234 5678" style, some duplicates and missing phones.
  const bankPhone: (string | null)[] = [];
  const bankGrade: string[] = [];
  for (let i = 0; i < buyerRows; i++) {
    const id = i < shared ? i : 1_000_000 + i;
    const d = phoneDigits(id);
    bankPhone.push(rnd() < 0.01 ? null : `+86 ${d.slice(0, 3)} ${d.slice(3, 7)} ${d.slice(7)}`);
    bankGrade.push("ABCDE"[Math.floor(rnd() * 5)] as string);
  }
  for (let i = 0; i < buyerRows / 100; i++) {
    bankPhone.push(`+86${phoneDigits(i)}`); // the same customer entered twice
    bankGrade.push("A");
  }
  // Telco: "+86-138-1234-5678" style.
  const telcoPhone: string[] = [];
  const telcoSpend = new Float64Array(providerRows);
  for (let i = 0; i < providerRows; i++) {
    const id = i < shared ? i : 5_000_000 + i;
    const d = phoneDigits(id);
    telcoPhone.push(`+86-${d.slice(0, 3)}-${d.slice(3, 7)}-${d.slice(7)}`);
    telcoSpend[i] = Math.round(rnd() * 50_000) / 100;
  }
  return {
    bank: tableFromArrays({ phone: bankPhone, grade: bankGrade }),
    telco: tableFromArrays({ phone: telcoPhone, monthly_spend: telcoSpend }),
  };
}

/** Streams a file's key column batch by batch into one packed column. */
async function readKeys(path: string, column: string): Promise<{ keys: KeyColumn; rows: number; batches: number }> {
  const parts: KeyColumn[] = [];
  let rows = 0;
  for await (const batch of readBatches(path, { batchSize: 8192 })) {
    parts.push(keysFromBatch(batch, [column], { digitsOnly: true, source: `file "${path.split("/").pop() ?? path}"` }));
    rows += batch.numRows;
  }
  return { keys: concatKeyColumns(parts), rows, batches: parts.length };
}

/** The distinct non-null keys of a column, packed (ECDH-PSI blinds each distinct key once). */
function distinctKeys(k: KeyColumn): { packed: PackedBytes; values: string[] } {
  const dec = new TextDecoder();
  const seen = new Set<string>();
  for (let i = 0; i < k.length; i++) {
    if (!k.valid[i]) continue;
    seen.add(dec.decode(k.data.subarray(k.offsets[i], k.offsets[i + 1])));
  }
  const values = [...seen];
  const enc = new TextEncoder();
  const bytes = values.map((v) => enc.encode(v));
  const offsets = new Uint32Array(bytes.length + 1);
  let total = 0;
  bytes.forEach((b, i) => {
    total += b.length;
    offsets[i + 1] = total;
  });
  const data = new Uint8Array(total);
  bytes.forEach((b, i) => data.set(b, offsets[i] ?? 0));
  return { packed: { data, offsets }, values };
}

function elementSet(points: Uint8Array, size: number): Set<string> {
  const s = new Set<string>();
  const buf = Buffer.from(points.buffer, points.byteOffset, points.byteLength);
  for (let o = 0; o < buf.length; o += size) s.add(buf.toString("latin1", o, o + size));
  return s;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const say = options.out ?? ((line: string) => console.log(line));
  const buyerRows = options.buyerRows ?? 10_000;
  const providerRows = options.providerRows ?? 30_000;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "umbra-demo-")));
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const ms = (t: number) => `${((performance.now() - t) / 1000).toFixed(2)} s`;

  say("Umbra demo — the engine on generated sample data (both roles in this process)\n");
  const { bank, telco } = generate(buyerRows, providerRows);
  const bankFile = join(dir, "bank-customers.csv");
  const telcoFile = join(dir, "telco-subscribers.arrow");
  await writeCsv(bankFile, bank);
  await writeArrowIPC(telcoFile, telco);
  say(`1. Sample data in ${dir}`);
  say(`   bank-customers.csv        ${bank.numRows.toLocaleString("en-US")} rows (phone like "+86 138 1234 5678", some missing, some repeated)`);
  say(`   telco-subscribers.arrow   ${telco.numRows.toLocaleString("en-US")} rows (phone like "+86-138-1234-5678")`);

  let t = performance.now();
  const bankKeys = await readKeys(bankFile, "phone");
  const telcoKeys = await readKeys(telcoFile, "phone");
  const bankSet = distinctKeys(bankKeys.keys);
  const telcoSet = distinctKeys(telcoKeys.keys);
  say(`   streamed back in ${bankKeys.batches} + ${telcoKeys.batches} Arrow batches; phones normalised to digits: ` +
    `${bankSet.values.length.toLocaleString("en-US")} distinct bank keys, ${telcoSet.values.length.toLocaleString("en-US")} telco keys (${ms(t)})`);

  // 2. ECDH-PSI core in the pool.
  const pool = getPool();
  const spec = { group: "x25519" as const };
  const group = await createGroup(spec);
  const dst = new TextEncoder().encode(`umbra-demo/psi/${Date.now()}`);
  const a = group.randomScalar(); // bank's secret
  const b = group.randomScalar(); // telco's secret
  t = performance.now();
  const [bankA, telcoB] = await Promise.all([pool.hashToGroup(spec, bankSet.packed, dst, a), pool.hashToGroup(spec, telcoSet.packed, dst, b)]);
  const [bankAB, telcoBA] = await Promise.all([pool.multiply(spec, b, bankA), pool.multiply(spec, a, telcoB)]);
  const telcoDouble = elementSet(telcoBA, 32);
  let intersection = 0;
  for (let o = 0; o < bankAB.length; o += 32) if (telcoDouble.has(Buffer.from(bankAB.subarray(o, o + 32)).toString("latin1"))) intersection++;
  const psiTime = ms(t);
  const elements = 2 * (bankSet.values.length + telcoSet.values.length);
  say(`\n2. ECDH-PSI blinding on ${pool.threads} worker threads (x25519 group, sodium-native): ${elements.toLocaleString("en-US")} hash/multiply operations in ${psiTime}`);
  say(`   each side sent ${(bankA.length / 1024).toFixed(0)} KiB / ${(telcoB.length / 1024).toFixed(0)} KiB of blinded elements; intersection size: ${intersection.toLocaleString("en-US")}`);

  // 3. OPRF over the columns (ristretto255, RFC 9497).
  t = performance.now();
  const { secretKey } = oprf.deriveKeyPair(new Uint8Array(32).fill(42), new TextEncoder().encode("telco/phone-spend/v1"));
  const telcoTags = elementSet(await pool.oprfEvaluate(secretKey, telcoSet.packed), 64);
  const ristretto = await createGroup({ group: "ristretto255" });
  const n = bankSet.values.length;
  const blinds = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) blinds.set(ristretto.randomScalar(), i * 32);
  const blinded = await pool.oprfBlind(bankSet.packed, blinds);
  const evaluated = await pool.multiply({ group: "ristretto255" }, secretKey, blinded); // the telco's BlindEvaluate
  const outputs = await pool.oprfFinalize(bankSet.packed, blinds, evaluated);
  let oprfMatches = 0;
  const matched: string[] = [];
  for (let i = 0; i < n; i++) {
    if (telcoTags.has(Buffer.from(outputs.subarray(i * 64, i * 64 + 64)).toString("latin1"))) {
      oprfMatches++;
      matched.push(bankSet.values[i] as string);
    }
  }
  say(`\n3. RFC 9497 OPRF: the telco evaluated ${telcoSet.values.length.toLocaleString("en-US")} keys under its product key; ` +
    `the bank blinded ${n.toLocaleString("en-US")} keys, the telco blind-evaluated them, the bank finalised (${ms(t)})`);
  say(`   the bank recognises ${oprfMatches.toLocaleString("en-US")} of its customers among the telco's tags`);
  const outFile = join(dir, "bank-matched-phones.csv");
  await writeCsv(outFile, new Table({ phone: vectorFromArray(matched, new Utf8()) }));
  say(`   written: ${outFile}`);

  // 4. The plaintext join, as the oracle.
  const telcoPlain = new Set(telcoSet.values);
  const plaintextIntersection = bankSet.values.filter((v) => telcoPlain.has(v)).length;
  const ok = plaintextIntersection === intersection && plaintextIntersection === oprfMatches;
  say(`\n4. Plaintext join of the same files: ${plaintextIntersection.toLocaleString("en-US")} shared customers — ${ok ? "the secure results agree" : "MISMATCH"}`);
  say(`\nDone in ${ms(t0)}.`);
  await closePool();
  return { dir, intersection, plaintextIntersection, oprfMatches };
}
