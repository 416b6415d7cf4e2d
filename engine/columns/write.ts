/**
 * Writing a table to a file, the format chosen by extension: `.arrow`,
 * `.feather`, `.ipc` (Arrow IPC file), `.arrows` (Arrow IPC stream), `.csv`.
 * Parquet output is not supported.
 */
import type { Table } from "apache-arrow";
import { UnsupportedFormatError } from "../errors.js";
import { writeCsv } from "./csv.js";
import { FileFormat, describeFile, formatFromPath } from "./files.js";
import { writeArrowIPC } from "./ipc.js";
import type { BatchInput } from "./source.js";

/**
 * Writes a table (or any sequence of record batches) to `path`, batch by batch.
 *
 * @throws UnsupportedFormatError for `.parquet` or an unknown extension.
 * @throws UnreadableFileError when the file cannot be opened or written.
 * @throws UnsupportedTypeError (CSV) for a column type CSV cannot hold.
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
      throw new UnsupportedFormatError(`${describeFile(path)}: writing Parquet is not supported (write .arrow, .arrows or .csv)`);
  }
}
