/**
 * `umbra worker`: a cluster worker (engine/cluster) — takes chunk tasks from
 * the party's Redis until SIGINT / SIGTERM; and `umbra worker new-key`, which
 * creates the cluster key file the coordinator (`--cluster`) and its workers
 * share. Also the `--cluster URL --cluster-key FILE` options every command
 * that computes takes, turned into a ClusterPool.
 */
import { randomBytes } from "node:crypto";
import { UmbraError } from "../../engine/errors.js";
import { ClusterPool, startClusterWorker, CLUSTER_KEY_BYTES } from "../../engine/cluster/index.js";
import { createSecretFile, readSecretFile } from "../secret-file.js";
import { parseOptions, UsageError, type CommandIO, type Options, processIO } from "./args.js";

export const WORKER_USAGE = `  worker --redis URL --cluster-key FILE [--threads N] [--queue NAME] [--lock-ms MS] [--json]
                 a cluster worker: takes chunks of a party's work (hash-and-blind keys,
                 raise points) from the BullMQ queue on the party's Redis and runs them
                 on N threads (default: every core) until SIGINT / SIGTERM; any number
                 on any number of machines (docs/scale.md). A worker killed mid-chunk
                 loses it to another after --lock-ms (default 30000). Chunks and results
                 are sealed with the cluster key: Redis never holds a key or a scalar
                 in the clear. Redis's password: in the URL, or (kept off the command
                 line, which other users see) in the environment as UMBRA_REDIS_PASSWORD.
                 --json: one JSON line per event. Prints "worker ready" when it takes work.
  worker new-key FILE
                 create a cluster key file (32 random bytes, hex, mode 0600; an existing
                 file is never overwritten): copy it to the party's coordinator and to
                 every worker machine
`;

/** The options of a command that may hand its group work to a cluster. */
export const CLUSTER_OPTIONS = { "--cluster": "string", "--cluster-key": "string" } as const;

/** Reads a cluster key file (64 hex digits), refusing an unsafe or malformed one. */
export function readClusterKey(path: string): Uint8Array {
  const text = readSecretFile(path, "cluster key file");
  if (text === undefined) throw new UmbraError("UMBRA_NOT_FOUND", `no cluster key file at "${path}": create one with umbra worker new-key ${path}`);
  const hex = text.trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new UmbraError("UMBRA_INVALID_KEY_FILE", `the cluster key file "${path}" must hold 64 hex digits (umbra worker new-key writes one)`);
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

/** A ClusterPool when --cluster is given (it needs --cluster-key), else undefined: the in-process pool. */
export async function clusterPoolOption(o: Options, usage: string, threads?: number): Promise<ClusterPool | undefined> {
  const url = o.get("--cluster");
  if (url === undefined) {
    if (o.has("--cluster-key")) throw new UsageError("--cluster-key goes with --cluster URL (the party's Redis)", usage);
    return undefined;
  }
  const file = o.get("--cluster-key");
  if (file === undefined) throw new UsageError("--cluster needs --cluster-key FILE (umbra worker new-key creates one; its workers hold the same)", usage);
  return ClusterPool.connect({ redis: url, key: readClusterKey(file), ...redisPassword(), ...(threads ? { threads } : {}) });
}

/** Redis's password from UMBRA_REDIS_PASSWORD, when set (a URL's own password wins). */
function redisPassword(): { password?: string } {
  const p = process.env["UMBRA_REDIS_PASSWORD"];
  return p !== undefined && p !== "" ? { password: p } : {};
}

function positive(o: Options, name: string, usage: string, max: number): number | undefined {
  const v = o.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${name} needs a whole number from 1 to ${max}`, usage);
  return n;
}

export async function workerCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${WORKER_USAGE}`;
  if (args[0] === "new-key") {
    const file = args[1];
    if (file === undefined || args.length > 2) throw new UsageError("worker new-key needs one FILE", usage);
    createSecretFile(file, `${randomBytes(CLUSTER_KEY_BYTES).toString("hex")}\n`, "cluster key file");
    io.out(`created the cluster key file ${file}: copy it (mode 0600) to the coordinator and to every worker`);
    return 0;
  }
  const o = parseOptions(args, { "--redis": "string", "--cluster-key": "string", "--threads": "string", "--queue": "string", "--lock-ms": "string", "--json": "flag" }, usage);
  if (o === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const redis = o.require("--redis", "is required: the party's Redis, e.g. redis://:PASSWORD@10.0.0.5:6379");
  const key = readClusterKey(o.require("--cluster-key", "is required: the cluster key file (umbra worker new-key FILE)"));
  const threads = positive(o, "--threads", usage, 1024);
  const lock = positive(o, "--lock-ms", usage, 3_600_000);
  const queue = o.get("--queue");
  if (queue !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(queue)) throw new UsageError("--queue needs 1 to 64 of [A-Za-z0-9._-]", usage);
  const json = o.has("--json");
  const say = (event: string, fields: Record<string, unknown>, text: string): void => io.out(json ? JSON.stringify({ event, ...fields }) : text);
  const worker = await startClusterWorker({
    redis,
    key,
    ...redisPassword(),
    ...(threads ? { threads } : {}),
    ...(lock ? { lockDurationMs: lock } : {}),
    ...(queue ? { queue } : {}),
    onStart: () => say("chunk-start", {}, "chunk taken"),
    onChunk: (e) => say("chunk", e, `chunk ${e.ok ? "done" : "failed"}: ${e.elements} elements in ${e.ms} ms`),
  });
  say("ready", { threads: threads ?? null }, "worker ready");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await worker.close();
  const s = worker.stats();
  say("stopped", s, `worker stopped: ${s.chunks} chunks, ${s.elements} elements`);
  return 0;
}
