/**
 * File formats by extension, and opening files with errors that name the
 * file's base name and the OS reason code (ENOENT, EACCES, …) — never a full
 * path beyond the base name, never file contents. Internal to engine/columns.
 */
import { constants as fsConstants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename, extname } from "node:path";
import { UnreadableFileError, UnsupportedFormatError, UnwritableFileError } from "../errors.js";

/** The formats the column layer knows, as an `as const` object with a derived union. */
export const FileFormat = {
  /** Arrow IPC, file or stream layout (detected by the "ARROW1" magic). */
  ArrowIpc: "arrow-ipc",
  /** Arrow IPC stream layout (`.arrows`). */
  ArrowStream: "arrow-stream",
  Csv: "csv",
  Parquet: "parquet",
} as const;
export type FileFormat = (typeof FileFormat)[keyof typeof FileFormat];

const BY_EXTENSION: Readonly<Record<string, FileFormat>> = {
  ".arrow": FileFormat.ArrowIpc,
  ".feather": FileFormat.ArrowIpc,
  ".ipc": FileFormat.ArrowIpc,
  ".arrows": FileFormat.ArrowStream,
  ".csv": FileFormat.Csv,
  ".parquet": FileFormat.Parquet,
};

/**
 * The format of a file, chosen by its extension (case-insensitive).
 * @throws UnsupportedFormatError for any other extension.
 */
export function formatFromPath(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  const format = BY_EXTENSION[ext];
  if (format === undefined) {
    throw new UnsupportedFormatError(
      `${describeFile(path)}: unsupported file extension "${ext || "(none)"}" (files are read and written as .arrow, .feather, .ipc, .arrows, .csv or .parquet)`,
    );
  }
  return format;
}

/** How errors refer to a file: its base name only. */
export function describeFile(path: string): string {
  return `file "${basename(path)}"`;
}

/** The OS reason code of a Node fs error (ENOENT, EACCES, EISDIR, …), if it has one. */
export function osCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

/** Wraps an fs error as UnreadableFileError("cannot <verb> file "x": ENOENT"). */
export function fileError(path: string, verb: string, err: unknown): UnreadableFileError {
  const code = osCode(err) ?? "unknown reason";
  return new UnreadableFileError(`cannot ${verb} ${describeFile(path)}: ${code}`, { cause: err });
}

/**
 * Opens a file for reading and checks that it is a regular file.
 * @throws UnreadableFileError naming the base name and the OS code.
 */
export async function openForRead(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    throw fileError(path, "open", err);
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
  } catch (err) {
    await closeQuietly(handle);
    throw fileError(path, "open", err);
  }
  return handle;
}

/**
 * Opens (creating or truncating) a file for writing, mode 0600.
 * @throws UnwritableFileError naming the base name and the OS code.
 */
export async function openForWrite(path: string): Promise<FileHandle> {
  const posix = process.platform !== "win32";
  let handle: FileHandle;
  try {
    // Results are private: a new file is created readable by its owner only. A symbolic link is not
    // followed (another user's link in a shared folder would send the rows into a file it can read).
    handle = await open(path, posix ? fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW : "w", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") throw new UnwritableFileError(`${describeFile(path)}: is a symbolic link; write to a file of your own instead`);
    throw new UnwritableFileError(`cannot open ${describeFile(path)} for writing: ${osCode(err) ?? "unknown reason"}`, { cause: err });
  }
  if (posix) {
    const uid = process.getuid?.();
    const st = await handle.stat();
    if (uid !== undefined && st.uid !== uid) {
      await closeQuietly(handle);
      throw new UnwritableFileError(`${describeFile(path)}: belongs to another user, who could read what is written to it; write to a file of your own instead`);
    }
    // An existing file of ours is made private too.
    await handle.chmod(0o600);
  }
  return handle;
}

/** Closes a handle, ignoring errors (already closed, or closing after a failure). */
export async function closeQuietly(handle: FileHandle): Promise<void> {
  try {
    await handle.close();
  } catch {
    // already closed or unusable: nothing more to release
  }
}

/** Reads up to `length` bytes at `position` (fewer at end of file). */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Closes a file that was written; a failure to flush is an UnwritableFileError naming the file. */
export async function closeAfterWrite(handle: FileHandle, path: string): Promise<void> {
  try {
    await handle.close();
  } catch (err) {
    throw new UnwritableFileError(`cannot write ${describeFile(path)}`, { cause: err });
  }
}
