/**
 * Nodes as real processes for the tests: `umbra ARGS` spawned from the built
 * CLI, resolved once it prints its listening line, stopped by a signal.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { CLI } from "./cli.js";

export interface NodeProcess {
  readonly child: ChildProcess;
  /** The address from its listening line. */
  url: string;
  /** Everything it printed on stdout so far (its start lines). */
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

/** Starts `umbra ARGS` and resolves once it prints its listening line (rejects after 20 s or when it exits first). */
export function startNode(...args: string[]): Promise<NodeProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    const node: NodeProcess = { child, exited, url: "", stdout: "", stderr: "" };
    child.stderr.on("data", (c: Buffer) => (node.stderr += c.toString("utf8")));
    const timer = setTimeout(() => reject(new Error(`no listening line from: ${args.join(" ")}\n${node.stderr}`)), 20_000);
    child.stdout.on("data", (c: Buffer) => {
      node.stdout += c.toString("utf8");
      const m = / listening at (http:\/\/\S+)/.exec(node.stdout);
      if (m && !node.url) {
        clearTimeout(timer);
        node.url = m[1] as string;
        resolve(node);
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening: ${node.stderr}`)));
  });
}

/** Sends `signal` (SIGTERM by default) and resolves with the exit code; a node already gone resolves at once. */
export async function stopNode(n: NodeProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (!n || n.child.exitCode !== null || n.child.signalCode !== null) return n?.child.exitCode ?? null;
  n.child.kill(signal);
  return n.exited;
}
