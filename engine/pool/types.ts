/**
 * The pool's options and what its work modules (he-work.ts, column-work.ts)
 * are given by the pool: its sizes and its workers.
 */
import type { Piscina } from "piscina";
import type { GroupId, BackendId } from "../group/types.js";
import type { HeContext } from "../he/bfv.js";
import type { HeContextOptions } from "../he/params.js";
import type { HeTask } from "../he/task.js";
import type { ColumnTask } from "./column-task.js";
import type { OtTask } from "./ot-task.js";
import type { PoolTask, TaskResult } from "./tasks.js";

export interface PoolOptions {
  /** Worker threads (default: the available cores). */
  readonly threads?: number;
  /** Elements per task sent to a worker (default 4,096). */
  readonly chunkSize?: number;
  /** Batches with fewer elements run on the calling thread (default 512). Set 0 to always use workers. */
  readonly inlineBelow?: number;
  /** Milliseconds an idle worker is kept (default 30,000). */
  readonly idleTimeout?: number;
}

export interface GroupChoice {
  readonly group: GroupId;
  /** Default: the fastest backend for the group. */
  readonly backend?: BackendId;
}

export interface RunOptions {
  /** Called after each finished chunk with (elements done, elements in all). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What CryptoPool hands its work modules: its sizes, whether it is closed, and its workers. */
export interface PoolWorkers {
  readonly threads: number;
  readonly inlineBelow: number;
  /** True once the pool is closed: work is then refused with PoolClosedError. */
  readonly closed: boolean;
  /** Runs one HE task on a worker (`transfer` moved, not copied); a worker's error comes back as its typed error. */
  runHe(task: HeTask, transfer?: ArrayBuffer[]): Promise<Uint8Array>;
  /** Runs one column or OT task on a worker; a worker's error comes back as its typed error. */
  runColumn(task: ColumnTask | OtTask): Promise<Uint8Array>;
  /** The pool's cached host-side HE context for `options`. */
  heContext(options: HeContextOptions): Promise<HeContext>;
  /** The piscina pool, started on first use. */
  piscina(): Piscina<PoolTask, TaskResult>;
}
