export { ClusterPool, connectRedis, type ClusterOptions, type ClusterStats } from "./cluster-pool.js";
export { startClusterWorker, type ClusterWorker, type ClusterWorkerOptions } from "./worker.js";
export { ClusterError, ClusterErrorCode } from "./errors.js";
export { CLUSTER_KEY_BYTES } from "./seal.js";
export { MAX_CHUNK_ELEMENTS } from "./chunk-task.js";
