/**
 * Cluster workers as real processes for the tests: `umbra worker … --json`
 * spawned from the built CLI, its event lines collected, waited on by event
 * (never by time), and killed by the test that started it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI } from "./cli.js";

export interface WorkerEvent {
  readonly event: string;
  readonly elements?: number;
  readonly ok?: boolean;
  readonly [k: string]: unknown;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly events: WorkerEvent[];
  stderr: string;
  /** Resolves with the first event (already seen or to come) for which `match` holds. */
  waitFor(match: (e: WorkerEvent, all: readonly WorkerEvent[]) => boolean): Promise<WorkerEvent>;
  /** Finished chunks this worker reported (ok or not). */
  chunks(): WorkerEvent[];
  readonly exited: Promise<number | null>;
}

/** Writes a cluster key file (mode 0600) in `dir`; returns its path and the key. */
export function clusterKeyFile(dir: string, name = "cluster.key"): { path: string; key: Uint8Array } {
  const key = randomBytes(32);
  const path = join(dir, name);
  writeFileSync(path, `${key.toString("hex")}\n`, { mode: 0o600 });
  return { path, key: Uint8Array.from(key) };
}

/** Starts `umbra worker --redis URL --cluster-key FILE --threads 1 --json …extra` and resolves once it prints its ready line. */
export async function startWorker(redis: string, keyFile: string, ...extra: string[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, "worker", "--redis", redis, "--cluster-key", keyFile, "--threads", "1", "--json", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const events: WorkerEvent[] = [];
  const waiters: { match: (e: WorkerEvent, all: readonly WorkerEvent[]) => boolean; resolve: (e: WorkerEvent) => void }[] = [];
  let buffered = "";
  const w: WorkerProcess = {
    child,
    events,
    stderr: "",
    exited,
    chunks: () => events.filter((e) => e.event === "chunk"),
    waitFor: (match) =>
      new Promise((resolve, reject) => {
        const seen = events.find((e, i) => match(e, events.slice(0, i + 1)));
        if (seen) return resolve(seen);
        waiters.push({ match, resolve });
        void exited.then((code) => reject(new Error(`the worker exited (${code}) before the awaited event: ${w.stderr}`)));
      }),
  };
  child.stderr.on("data", (c: Buffer) => (w.stderr += c.toString("utf8")));
  child.stdout.on("data", (c: Buffer) => {
    buffered += c.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line) as WorkerEvent;
      events.push(e);
      for (const waiter of [...waiters]) {
        if (waiter.match(e, events)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(e);
        }
      }
    }
  });
  await w.waitFor((e) => e.event === "ready");
  return w;
}

/** SIGKILLs the workers still running and resolves once they are gone. */
export async function killWorkers(workers: readonly (WorkerProcess | undefined)[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return;
      w.child.kill("SIGKILL");
      await w.exited;
    }),
  );
}
