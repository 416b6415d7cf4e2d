/**
 * Real `umbra` processes for the chaos harness: the built CLI
 * (dist/node/cli.js) run to the end (`umbra`), or started as a long-lived
 * node (`NodeProcess`: an exchange or a party agent) that logs stdout and
 * stderr to a file, is ready once it prints its listening line, and can be
 * killed with SIGKILL and started again with the same arguments. Every node
 * still running when this process exits is killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

/** dist/node/cli.js: this file runs from dist/bench/chaos (the bench) or from bench/chaos (the test, on the sources). */
export const CLI = (() => {
  const fromDist = fileURLToPath(new URL("../../node/cli.js", import.meta.url));
  return existsSync(fromDist) ? fromDist : fileURLToPath(new URL("../../dist/node/cli.js", import.meta.url));
})();

/** Fastify's line for each request and each answer, at level info. */
const ROUTINE = /^\{"level":30,.*"msg":"(incoming request|request completed)"\}$/;

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `umbra ARGS` to the end (killed after `timeoutMs`, then its status is null). */
export function umbra(args: readonly string[], timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.once("close", (status) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A port the OS reports free on 127.0.0.1 now (for a node that must keep its port across restarts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject).listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a !== "string" ? resolve(a.port) : reject(new Error("no TCP port"))));
    });
  });
}

/** A node: `umbra ARGS` kept running, its output appended to `log`. */
export class NodeProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The URL from its listening line. */
  url = "";
  /** Its whole listening line (the exchange's carries its key fingerprint). */
  line = "";

  constructor(
    readonly name: string,
    readonly args: readonly string[],
    readonly log: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it and resolves once it listens (rejects if it exits first or prints nothing for `timeoutMs`). */
  async start(timeoutMs = 60_000): Promise<void> {
    const child = spawn(process.execPath, [CLI, ...this.args], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        live.delete(child);
        appendFileSync(this.log, `--- chaos: ${this.name} exited (${signal ?? `code ${code}`}) ---\n`);
        resolve();
      }),
    );
    child.stderr?.on("data", (c: Buffer) => appendFileSync(this.log, c));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`${this.name} printed no listening line within ${timeoutMs / 1000} s`)), timeoutMs);
      child.stdout?.on("data", (c: Buffer) => {
        appendFileSync(this.log, c);
        out += c.toString("utf8");
        const m = /^.* listening at (http:\/\/\S+).*$/m.exec(out);
        if (!m) return;
        clearTimeout(timer);
        // A restarted node must come back where the others reach it.
        if (this.url !== "" && this.url !== m[1]) reject(new Error(`${this.name} restarted at another address`));
        this.url = m[1] as string;
        this.line = m[0];
        resolve();
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before listening`));
      });
    });
  }

  /** kill -9, and wait until it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    appendFileSync(this.log, `--- chaos: SIGKILL to ${this.name} ---\n`);
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGTERM");
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The last `lines` lines of its log, each cut to 300 characters, without the routine per-request lines (the harness polls every 200 ms). */
  tail(lines = 15): string {
    if (!existsSync(this.log)) return "(no log)";
    return readFileSync(this.log, "utf8")
      .trimEnd()
      .split("\n")
      .filter((l) => !ROUTINE.test(l))
      .slice(-lines)
      .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l))
      .join("\n");
  }
}
