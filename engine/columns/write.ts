/**
 * Writing a table to a file, the format chosen by extension: `.arrow`,
 * `.feather`, `.ipc` (Arrow IPC file), `.arrows` (Arrow IPC stream), `.csv`,
 * `.parquet` (built in memory: see parquet-write.ts).
 */
import type { Table } from "apache-arrow";
import { writeCsv } from "./csv.js";
import { FileFormat, formatFromPath } from "./files.js";
import { writeArrowIPC } from "./ipc.js";
import { writeParquet } from "./parquet-write.js";
import type { BatchInput } from "./source.js";

/**
 * Writes a table (or any sequence of record batches) to `path`, batch by batch.
 *
 * @throws UnsupportedFormatError for an unknown extension.
 * @throws UnwritableFileError when the file cannot be opened or written.
 * @throws UnsupportedTypeError (CSV, Parquet) for a column type the format cannot hold.
 */
export async function writeTable(path: string, table: Table | BatchInput): Promise<void> {
  const format = formatFromPath(path);
  switch (format) {
    case FileFormat.ArrowIpc:
      return writeArrowIPC(path, table, { format: "file" });
    case FileFormat.ArrowStream:
      return writeArrowIPC(path, table, { format: "stream" });
    case FileFormat.Csv:
      return writeCsv(path, table);
    case FileFormat.Parquet:
      return writeParquet(path, table);
  }
}
