export { CryptoPool, getPool, currentPool, closePool, workerFilename } from "./pool.js";
export type { PoolOptions, GroupChoice, RunOptions } from "./types.js";
export { sharedBytes, type SenderTagsInput } from "./ot-work.js";
