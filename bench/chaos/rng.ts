/**
 * The chaos harness's seeded randomness: mulberry32 (Tommy Ettinger), and a
 * 32-bit seed derived from the run's seed and a label (a protocol's data, a
 * trial's kill moment), so each draw replays with the same `--seed` whatever
 * else the run includes.
 */
import { createHash } from "node:crypto";
import { prng } from "../../examples/common.js";

/** Uniform in [0, 1). */
export type Rng = () => number;

/** mulberry32, the one the examples use (examples/common.ts). */
export const mulberry32: (seed: number) => Rng = prng;

/** A generator for one purpose of a run: seeded by SHA-256 of the run's seed and the label. */
export function rngFor(seed: number, label: string): Rng {
  return mulberry32(createHash("sha256").update(`${seed}/${label}`).digest().readUInt32LE(0));
}

/** An integer in [0, n). */
export const below = (r: Rng, n: number): number => Math.floor(r() * n);

/** A fresh seed for a run that was given none (printed, so it replays). */
export const randomSeed = (): number => Math.floor(Math.random() * 2 ** 31);
