/**
 * `npm run chaos`: kill -9 the exchange, the buyer or a provider in the
 * middle of a job (and cut the parties' connections to the exchange), restart
 * it with the same arguments, and check that the job still succeeds with the
 * exact plaintext answer and a clean ledger — for every protocol, on real
 * processes on loopback. See docs/chaos.md.
 *
 * Options: --trials N (per protocol × victim, default 5), --protocols a,b
 * (default all), --victims exchange,buyer,provider,network (default all),
 * --seed S (default random, printed), --keys N (psi's rows per side, default
 * 120000; the other protocols take a fraction), --deadline S (seconds a
 * disturbed job may take, default 60 + 5 × the undisturbed run), --keep
 * (keep a failed trial's folder), --json (the outcomes as JSON on stdout,
 * progress on stderr). Exit code 1 when any trial fails, 2 on a bad option.
 */
import { availableParallelism } from "node:os";
import { CHAOS_PROTOCOLS, type ChaosProtocol } from "./case.js";
import { randomSeed } from "./rng.js";
import { describeTrial, formatChaosTable, tableRows } from "./report.js";
import { allPassed, runChaos } from "./run.js";
import { VICTIMS, type Victim } from "./trial.js";

const USAGE = `Usage: npm run chaos -- [--trials N] [--protocols a,b] [--victims exchange,buyer,provider,network]
       [--seed S] [--keys N] [--deadline S] [--keep] [--json]
  kill -9 a process of a running job (or cut connections), restart it, and check the job still
  succeeds with the exact plaintext answer and a clean ledger; see docs/chaos.md`;

const VALUED = new Set(["--trials", "--protocols", "--victims", "--seed", "--keys", "--deadline"]);
const FLAGS = new Set(["--keep", "--json"]);

function parse(argv: readonly string[]) {
  for (let i = 0; i < argv.length; i += VALUED.has(argv[i] as string) ? 2 : 1) {
    const a = argv[i] as string;
    if (!VALUED.has(a) && !FLAGS.has(a)) throw new Error(`unknown option ${a}`);
  }
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number, min: number): number => {
    const v = value(name);
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`${name} needs an integer of at least ${min}`);
    return Number(v);
  };
  const list = <T extends string>(name: string, all: readonly T[]): T[] => {
    const v = value(name);
    if (v === undefined) return [...all];
    const xs = v.split(",").map((x) => x.trim());
    const bad = xs.find((x) => !(all as readonly string[]).includes(x));
    if (bad !== undefined) throw new Error(`${name}: "${bad}" is not one of ${all.join(", ")}`);
    return xs as T[];
  };
  const deadline = value("--deadline");
  return {
    trials: int("--trials", 5, 1),
    protocols: list<ChaosProtocol>("--protocols", CHAOS_PROTOCOLS),
    victims: list<Victim>("--victims", VICTIMS),
    seed: int("--seed", randomSeed(), 0),
    keys: int("--keys", 120_000, 100),
    ...(deadline !== undefined ? { deadlineSeconds: int("--deadline", 0, 1) } : {}),
    keep: argv.includes("--keep"),
    json: argv.includes("--json"),
  };
}

async function main(): Promise<number> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let o: ReturnType<typeof parse>;
  try {
    o = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`chaos: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const say = o.json ? (l: string) => console.error(l) : (l: string) => console.log(l);
  const replay = `--seed ${o.seed} --keys ${o.keys} --trials ${o.trials} --protocols ${o.protocols.join(",")} --victims ${o.victims.join(",")}`;
  say(`# Umbra chaos — Node ${process.version}, ${availableParallelism()} cores, seed ${o.seed}`);
  say(`replay: npm run chaos -- ${replay}`);
  const runs = await runChaos({ ...o, say, onTrial: (t) => say(describeTrial(t)) });
  const rows = tableRows(runs);
  const passed = allPassed(runs);
  if (o.json) {
    console.log(JSON.stringify({ seed: o.seed, keys: o.keys, trials: o.trials, passed, rows, runs }, null, 2));
  } else {
    say(`\n${formatChaosTable(rows)}`);
    say(`\nseed ${o.seed}; ${passed ? "every job succeeded with the exact result and a clean ledger" : "SOME TRIALS FAILED (details above)"}; replay: npm run chaos -- ${replay}`);
  }
  return passed ? 0 : 1;
}

process.exitCode = await main();
