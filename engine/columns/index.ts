/**
 * engine/columns — the Arrow column layer through which all data flows.
 *
 * Files in (Arrow IPC file/stream, CSV, Parquet) become Arrow record
 * batches, streamed so memory stays flat; tables go out as Arrow IPC or CSV;
 * key columns become normalised, packed key bytes (`KeyColumn`) for the PSI
 * and join operators.
 */
export { DEFAULT_BATCH_SIZE, openBatches, readBatches, readTable, type ReadOptions, type ReadTableOptions } from "./read.js";
export { writeTable } from "./write.js";
export { writeArrowIPC, type WriteIpcOptions } from "./ipc.js";
export { writeCsv, csvChunks, CsvColumnType, csvLineOfRow, checkCsvDelimiter, describeDelimiter, DEFAULT_CSV_DELIMITER } from "./csv.js";
export { writeParquet } from "./parquet-write.js";
export { FileFormat, formatFromPath } from "./files.js";
export type { BatchInput, BatchSource } from "./source.js";
export {
  concatKeyColumns,
  isKeyType,
  keysFromBatch,
  keysFromTable,
  keysFromTableAsync,
  type KeyColumn,
} from "./keys.js";
export {
  DEFAULT_KEY_NORMALISATION,
  normaliseKey,
  resolveKeyNormalisation,
  type KeyNormalisation,
  type KeyOptions,
} from "./normalise.js";
export { concatTablesHorizontally } from "./concat.js";
export { takeRows } from "./take.js";
export { int64GroupStats, pairCounts, type Int64Column, type Int64GroupStats, type PairCounts } from "./group.js";
