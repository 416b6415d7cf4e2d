/**
 * `npm run bench:dp-samplers`: draws per second of engine/dp's exact
 * samplers (issue 13), per law and scale, in batches on one thread — from
 * node:crypto (the default) and from the seeded ChaCha20 source the tests
 * use. Peer in the same run: node:crypto randomInt alone (one uniform
 * integer per call), the floor of what any sampler drawing from it costs.
 * (`npm run bench:dp` is the accuracy and overhead bench, dp-accuracy.bench.ts.)
 *
 * Options: --quick (fewer draws, for a smoke run).
 */
import { randomInt } from "node:crypto";
import {
  cryptoUniformSource,
  sampleDiscreteGaussianBatch,
  sampleDiscreteLaplaceBatch,
  sampleSkellamBatch,
  seededUniformSource,
  type UniformSource,
} from "../engine/index.js";
import { formatTable, median } from "./table.js";

const quick = process.argv.includes("--quick");
const DRAWS = quick ? 20_000 : 200_000;
const REPEATS = quick ? 1 : 3;

function rate(f: () => unknown, draws: number): number {
  const times: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = process.hrtime.bigint();
    f();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return draws / median(times);
}

/** [law, scale, draws per run as a fraction of DRAWS (the slow cases draw fewer), batch sampler] */
const cases: [string, string, number, (n: number, rng: UniformSource) => unknown][] = [
  ["discrete Gaussian", "σ² = 1", 1, (n, rng) => sampleDiscreteGaussianBatch(1n, 1n, n, rng)],
  ["discrete Gaussian", "σ² = 1000", 1, (n, rng) => sampleDiscreteGaussianBatch(1000n, 1n, n, rng)],
  ["discrete Gaussian", "σ² = 10^12 (BigInt acceptance)", 0.1, (n, rng) => sampleDiscreteGaussianBatch(10n ** 12n, 1n, n, rng)],
  ["discrete Laplace", "t = 1", 1, (n, rng) => sampleDiscreteLaplaceBatch(1n, 1n, n, rng)],
  ["discrete Laplace", "t = 1000", 1, (n, rng) => sampleDiscreteLaplaceBatch(1000n, 1n, n, rng)],
  ["Skellam", "μ = 2", 1, (n, rng) => sampleSkellamBatch(2n, 1n, n, rng)],
  ["Skellam", "μ = 50", 0.1, (n, rng) => sampleSkellamBatch(50n, 1n, n, rng)],
  ["Skellam", "μ = 1000", 0.01, (n, rng) => sampleSkellamBatch(1000n, 1n, n, rng)],
];

const rows: string[][] = [];
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
for (const [law, scale, fraction, run] of cases) {
  const draws = Math.max(1, Math.round(DRAWS * fraction));
  const crypto = cryptoUniformSource({ bufferBytes: 4096 });
  const seeded = seededUniformSource("bench");
  rows.push([law, scale, String(draws), fmt(rate(() => run(draws, crypto), draws)), fmt(rate(() => run(draws, seeded), draws))]);
}
rows.push(["peer: node:crypto randomInt(6)", "—", String(DRAWS), fmt(rate(() => { for (let i = 0; i < DRAWS; i++) randomInt(6); }, DRAWS)), "—"]);

console.log(`engine/dp samplers, one thread, median of ${REPEATS} run(s), draws/s\n`);
console.log(formatTable(["law", "scale", "draws", "node:crypto", "seeded ChaCha20"], rows));
