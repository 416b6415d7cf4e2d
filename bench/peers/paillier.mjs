// Peer adapter: paillier-bigint 3.4.3 (pure JS Paillier over native BigInt, one thread),
// the additively homomorphic scheme FATE-style federated stacks use, on a SUM.
//
// Plain JavaScript ESM, loaded by Node directly. Install its dependency first:
//   npm --prefix bench/peers ci --ignore-scripts
//
// Smoke test:  node bench/peers/paillier.mjs 200 [BITS]

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Installed npm version of paillier-bigint, e.g. "3.4.3". */
export async function paillierVersion() {
  const pkgPath = require.resolve("paillier-bigint/package.json");
  return JSON.parse(await readFile(pkgPath, "utf8")).version;
}

const secondsSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * Key generation alone: `seconds` to generate one `bits`-bit modulus key pair.
 * Returns the keys too, for runPaillierSum.
 */
export async function paillierKeygen(bits = 2048) {
  const paillier = await import("paillier-bigint");
  const t0 = process.hrtime.bigint();
  const { publicKey, privateKey } = await paillier.generateRandomKeys(bits);
  return { seconds: secondsSince(t0), bits, publicKey, privateKey };
}

/**
 * Encrypts every value (signed integers: m < 0 is encoded as n + m), adds all the
 * ciphertexts homomorphically (one modular multiplication mod n^2 each), decrypts
 * the total and maps it back to (−n/2, n/2]. Each phase is timed on its own.
 *
 * @param {object} opts
 * @param {readonly bigint[]} opts.values
 * @param {object} opts.keys  the result of paillierKeygen
 */
export async function runPaillierSum({ values, keys }) {
  const { publicKey, privateKey } = keys;
  const n = publicKey.n;
  const encode = (v) => (v < 0n ? n + v : v);

  let t = process.hrtime.bigint();
  const cts = new Array(values.length);
  for (let i = 0; i < values.length; i++) cts[i] = publicKey.encrypt(encode(values[i]));
  const encryptSeconds = secondsSince(t);

  t = process.hrtime.bigint();
  let acc = cts[0];
  for (let i = 1; i < cts.length; i++) acc = publicKey.addition(acc, cts[i]);
  const addSeconds = secondsSince(t);

  t = process.hrtime.bigint();
  let total = privateKey.decrypt(acc);
  if (total > n / 2n) total -= n;
  const decryptSeconds = secondsSince(t);

  let expected = 0n;
  for (const v of values) expected += v;
  return {
    library: "paillier-bigint",
    version: await paillierVersion(),
    bits: keys.bits,
    values: values.length,
    encryptSeconds,
    addSeconds,
    additions: Math.max(0, cts.length - 1),
    decryptSeconds,
    // A ciphertext is an element of Z*_{n^2}: 2·bits bits.
    ciphertextBytes: Math.ceil((publicKey._n2 ?? n * n).toString(16).length / 2),
    total,
    correct: total === expected,
  };
}

// ---- CLI smoke test -----------------------------------------------------------------
if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 200);
  const bits = Number(process.argv[3] ?? 2048);
  const keys = await paillierKeygen(bits);
  const values = Array.from({ length: count }, (_, i) => BigInt(((i * 2654435761) % 2 ** 31) - 2 ** 30) * 512n);
  const r = await runPaillierSum({ values, keys });
  console.log(JSON.stringify({ keygenSeconds: keys.seconds, ...r, total: String(r.total) }));
  if (!r.correct) process.exitCode = 1;
}
