/**
 * Arrow IPC in and out, batch by batch.
 *
 * Reading opens a file handle and lets apache-arrow's `RecordBatchReader`
 * read it: the IPC *file* layout (magic "ARROW1" at both ends, footer with
 * block offsets) through random access, the IPC *stream* layout
 * sequentially; either way one record batch is in memory at a time.
 * Writing feeds batches to a `RecordBatchFileWriter`/`RecordBatchStreamWriter`
 * and flushes the bytes each batch produced to the file before taking the
 * next batch, so output memory stays flat too.
 */
import { type FileHandle } from "node:fs/promises";
import {
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Table,
  util,
  type Schema,
} from "apache-arrow";
import { InvalidArgumentError, UmbraError, UnreadableFileError, UnwritableFileError } from "../errors.js";
import { closeAfterWrite, closeQuietly, describeFile, openForRead, openForWrite, readAt } from "./files.js";
import { projectBatch, projectSchema, type BatchSource, type BatchInput } from "./source.js";

/** The IPC file magic, "ARROW1". */
const MAGIC = new Uint8Array([0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]);

/** True when `head` starts with the IPC file magic "ARROW1". */
export function hasArrowFileMagic(head: Uint8Array): boolean {
  if (head.length < MAGIC.length) return false;
  for (let i = 0; i < MAGIC.length; i++) if (head[i] !== MAGIC[i]) return false;
  return true;
}

function corrupt(path: string, err: unknown): UmbraError {
  if (err instanceof UmbraError) return err;
  return new UnreadableFileError(`${describeFile(path)} is not a valid Arrow IPC file or stream`, { cause: err });
}

/**
 * Opens an Arrow IPC file or stream and returns its schema and a generator of
 * its record batches (as stored; IPC batches are not re-chunked).
 *
 * @param path the file to read.
 * @param columns optional projection: only these columns, in this order.
 * @throws UnreadableFileError when the file cannot be opened or is not Arrow IPC.
 * @throws MissingColumnError when a projected column is absent.
 */
export async function openIpcSource(path: string, columns?: readonly string[]): Promise<BatchSource> {
  const handle = await openForRead(path);
  let reader: Awaited<ReturnType<typeof RecordBatchReader.from>>;
  let schema: Schema;
  try {
    const { size } = await handle.stat();
    if (size === 0) throw new UnreadableFileError(`${describeFile(path)} is empty`);
    // The reader detects the layout itself; we read the magic to reject
    // garbage early with a clear error rather than deep in a flatbuffer.
    const head = await readAt(handle, 0, 8);
    if (!hasArrowFileMagic(head) && !looksLikeIpcStream(head)) {
      throw new UnreadableFileError(`${describeFile(path)} is not a valid Arrow IPC file or stream`);
    }
    reader = await RecordBatchReader.from(handle);
    await reader.open();
    schema = reader.schema;
    if (schema === undefined || schema === null) {
      throw new UnreadableFileError(`${describeFile(path)} has no Arrow schema`);
    }
  } catch (err) {
    await closeQuietly(handle);
    throw corrupt(path, err);
  }
  const projected = projectSchema(schema, columns, describeFile(path));
  async function* batches(): AsyncGenerator<RecordBatch> {
    try {
      for await (const batch of reader) {
        yield projected === schema ? batch : projectBatch(batch, projected);
      }
    } catch (err) {
      throw corrupt(path, err);
    } finally {
      try {
        await reader.cancel();
      } catch {
        // the reader may already have closed its source
      }
      await closeQuietly(handle);
    }
  }
  return { schema: projected, batches: batches() };
}

/**
 * An IPC stream starts with a message: the continuation marker 0xFFFFFFFF and
 * a positive metadata length (or, in the pre-0.15 layout, the length alone).
 */
function looksLikeIpcStream(head: Uint8Array): boolean {
  if (head.length < 8) return false;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const first = view.getInt32(0, true);
  if (first === -1) return view.getInt32(4, true) > 0;
  return first > 0;
}

/** Options of {@link writeArrowIPC}. */
export interface WriteIpcOptions {
  /** "file" (random-access layout with footer, the default) or "stream". */
  readonly format?: "file" | "stream";
}

/**
 * Writes a table or a sequence of record batches as an Arrow IPC file or
 * stream, one batch at a time: the bytes of each batch reach the file before
 * the next batch is pulled from `input`.
 *
 * All batches must have the same fields (names and types) as the first one.
 * An empty iterable (no batches, so no schema) is refused; pass a Table to
 * write an empty one.
 *
 * @throws UnreadableFileError when the file cannot be opened or written.
 * @throws InvalidArgumentError when batches disagree on the schema, or nothing is given.
 */
export async function writeArrowIPC(path: string, input: BatchInput, options: WriteIpcOptions = {}): Promise<void> {
  const format = options.format ?? "file";
  if (format !== "file" && format !== "stream") {
    throw new InvalidArgumentError(`unknown IPC format "${String(format)}" (expected "file" or "stream")`);
  }
  const writer = format === "file" ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
  const handle = await openForWrite(path);
  const out = new ChunkDrain(writer, handle, path);
  try {
    let schema: Schema | null = null;
    if (input instanceof Table) {
      schema = input.schema;
      writer.reset(undefined, schema);
    }
    for await (const batch of iterateBatches(input)) {
      if (schema === null) {
        schema = batch.schema;
        writer.reset(undefined, schema);
      }
      writer.write(conformBatch(batch, schema));
      await out.drain();
    }
    if (schema === null) throw new InvalidArgumentError("nothing to write: no record batches and no schema");
    writer.close();
    await out.drain();
  } catch (err) {
    try {
      writer.abort();
    } catch {
      // already closed
    }
    await closeQuietly(handle);
    throw err;
  }
  await closeAfterWrite(handle, path);
}

/** Iterates the batches of a Table, an iterable or an async iterable. */
export async function* iterateBatches(input: BatchInput): AsyncGenerator<RecordBatch> {
  if (input instanceof Table) {
    for (const batch of input.batches) yield batch;
  } else if (input instanceof RecordBatch) {
    yield input;
  } else if (Symbol.asyncIterator in input) {
    for await (const batch of input) yield batch;
  } else {
    for (const batch of input) yield batch;
  }
}

/** Checks a batch against the first schema; re-labels it with that schema when only metadata differs. */
function conformBatch(batch: RecordBatch, schema: Schema): RecordBatch {
  if (batch.schema === schema) return batch;
  const a = batch.schema.fields;
  const b = schema.fields;
  const same =
    a.length === b.length &&
    a.every((f, i) => {
      const g = b[i];
      return g !== undefined && f.name === g.name && util.compareTypes(f.type, g.type);
    });
  if (!same) throw new InvalidArgumentError("record batches to write do not all have the same fields and types");
  return new RecordBatch(schema, batch.data);
}

const EMPTY = Symbol("empty");

/**
 * Moves whatever bytes an Arrow writer has produced so far into a file.
 * The writer queues its output synchronously on `write(batch)`; `drain()`
 * takes every chunk already queued (without waiting for more) and writes them
 * with one `writev`, so at most one batch's bytes are ever held.
 */
class ChunkDrain {
  private readonly it: AsyncIterator<Uint8Array>;
  private pending: Promise<IteratorResult<Uint8Array>> | undefined;
  private done = false;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly handle: FileHandle,
    private readonly path: string,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  async drain(): Promise<void> {
    const chunks: Uint8Array[] = [];
    while (!this.done) {
      let next = this.pending;
      if (next === undefined) {
        next = this.it.next();
        // An abort rejects a waiting read; that is handled by the writer's caller.
        next.catch(() => undefined);
        this.pending = next;
      }
      // Promise.race settles with the first already-settled entry in order,
      // so a queued chunk wins over EMPTY, and an empty queue yields EMPTY.
      const r = await Promise.race([next, Promise.resolve(EMPTY)]);
      if (r === EMPTY) break;
      this.pending = undefined;
      if (r.done) {
        this.done = true;
        break;
      }
      chunks.push(r.value);
    }
    if (chunks.length === 0) return;
    try {
      await writeFully(this.handle, chunks);
    } catch (err) {
      throw new UnwritableFileError(`cannot write ${describeFile(this.path)}`, { cause: err });
    }
  }
}

/** Writes all chunks at the handle's current position, retrying after short writes. */
export async function writeFully(handle: FileHandle, chunks: Uint8Array[]): Promise<void> {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  let { bytesWritten } = await handle.writev(chunks);
  if (bytesWritten === total) return;
  // Rare short write: finish chunk by chunk.
  for (const c of chunks) {
    if (bytesWritten >= c.byteLength) {
      bytesWritten -= c.byteLength;
      continue;
    }
    let rest = c.subarray(bytesWritten);
    bytesWritten = 0;
    while (rest.byteLength > 0) {
      const r = await handle.write(rest);
      rest = rest.subarray(r.bytesWritten);
    }
  }
}
