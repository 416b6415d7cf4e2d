/**
 * A private redis-server for tests and benches: a free loopback port, a temp
 * folder, AOF on (appendfsync everysec), no RDB snapshots, a password. Started
 * and stopped by the caller; `restart()` stops it (SIGTERM: AOF flushed) and
 * starts it again on the same port and folder. Needs Debian's redis-server
 * (`apt-get install -y redis-server`; .ci/run installs it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  /** Redis's INFO memory used_memory_peak, in bytes. */
  peakMemory(): Promise<number>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

async function ready(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on("error", () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch {
      r.disconnect();
      await new Promise((res) => setTimeout(res, 50)); // polling a starting server: the condition is PING answering
    }
  }
  throw new Error("redis-server did not start");
}

export async function startRedis(): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), "umbra-redis-"));
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  const url = `redis://:${password}@127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--requirepass", password, "--maxmemory-policy", "noeviction"], { stdio: "ignore" });
    await ready(url);
  };
  const halt = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((res) => {
      c.once("exit", () => res());
      c.kill("SIGTERM");
    });
  };
  await launch();
  return {
    url,
    port,
    peakMemory: async () => {
      const r = new Redis(url);
      try {
        const info = await r.info("memory");
        return Number(/used_memory_peak:(\d+)/.exec(info)?.[1] ?? 0);
      } finally {
        r.disconnect();
      }
    },
    restart: async () => {
      await halt();
      await launch();
    },
    stop: async () => {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
