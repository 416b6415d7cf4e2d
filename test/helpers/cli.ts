/** The built CLI (dist/node/cli.js) run as a child process, as a user runs `umbra`. */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/node/cli.js", import.meta.url));

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** The working folder (default: this process's). */
  readonly cwd?: string;
  /** Kill the run (SIGKILL) after this long; its status is then null. Default: no limit (the test's own timeout applies). */
  readonly timeoutMs?: number;
}

/**
 * Runs `umbra ARGS` to the end (`env` adds to this process's), asynchronously
 * (so nodes in this process keep serving and several runs can overlap);
 * resolves once the process has exited and its stdout and stderr are read to
 * the end.
 */
export function umbra(args: readonly string[], env: NodeJS.ProcessEnv = {}, options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = options.timeoutMs !== undefined ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
