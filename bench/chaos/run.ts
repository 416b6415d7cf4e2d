/**
 * The chaos run: for each protocol, its case (seeded data and plaintext
 * answer), the undisturbed run first (its duration is the window the kill
 * moments are drawn from), then `trials` trials per victim. A protocol whose
 * undisturbed run fails has no window: its victims are not tried, and the
 * run fails.
 */
import { buildCase } from "./cases.js";
import type { ChaosProtocol } from "./case.js";
import { runTrial, type TrialOutcome, type Victim } from "./trial.js";

export interface ChaosOptions {
  readonly protocols: readonly ChaosProtocol[];
  readonly victims: readonly Victim[];
  readonly trials: number;
  readonly seed: number;
  /** The psi buyer's and provider's rows (the other protocols take a fraction, cases.ts). */
  readonly keys: number;
  /** Give up on a disturbed job this long after submission; default 60 s + 5 × the undisturbed run. */
  readonly deadlineSeconds?: number;
  /** The part of the undisturbed duration the kill moments are drawn from (default [0, 1]). */
  readonly window?: readonly [number, number];
  /** Keep a failed trial's folder. */
  readonly keep?: boolean;
  readonly say: (line: string) => void;
  /** Told of each trial as it ends. */
  readonly onTrial?: (t: TrialOutcome) => void;
}

export interface ProtocolRun {
  readonly protocol: ChaosProtocol;
  readonly summary: string;
  readonly undisturbed: TrialOutcome;
  readonly trials: readonly TrialOutcome[];
}

export async function runChaos(o: ChaosOptions): Promise<ProtocolRun[]> {
  const runs: ProtocolRun[] = [];
  for (const protocol of o.protocols) {
    const c = buildCase(protocol, o.seed, o.keys);
    o.say(`\n${protocol}: ${c.summary}`);
    const undisturbed = await runTrial(c, { disturbance: "none", trial: 0, seed: o.seed, baselineSeconds: 0, deadlineSeconds: 900, keep: o.keep ?? false, say: o.say });
    o.onTrial?.(undisturbed);
    const trials: TrialOutcome[] = [];
    if (undisturbed.ok) {
      const deadlineSeconds = o.deadlineSeconds ?? 60 + 5 * undisturbed.seconds;
      for (const victim of o.victims) {
        for (let t = 1; t <= o.trials; t++) {
          const outcome = await runTrial(c, { disturbance: victim, trial: t, seed: o.seed, baselineSeconds: undisturbed.seconds, deadlineSeconds, ...(o.window ? { window: o.window } : {}), keep: o.keep ?? false, say: o.say });
          trials.push(outcome);
          o.onTrial?.(outcome);
        }
      }
    }
    runs.push({ protocol, summary: c.summary, undisturbed, trials });
  }
  return runs;
}

/** Every undisturbed run and every trial passed. */
export const allPassed = (runs: readonly ProtocolRun[]): boolean => runs.every((r) => r.undisturbed.ok && r.trials.every((t) => t.ok));
