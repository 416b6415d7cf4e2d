/**
 * Files that hold secrets: a node's identity key file and a party agent's API
 * token. They are created with mode 0600 in a folder created 0700, exclusively
 * (an existing file is never overwritten), and read only when they are a
 * regular file owned by this user that no other user can read or write — as
 * ssh treats its private keys. A file that fails the check is refused with
 * the command that fixes it; no error names the secret.
 */
import { closeSync, constants, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { UmbraError } from "../engine/errors.js";

export const SecretFileCode = {
  /** The file is readable or writable by other users, or not owned by this user. */
  Permissions: "UMBRA_SECRET_FILE_PERMISSIONS",
  /** The path is not a regular file (a folder, a symbolic link, a device). */
  NotRegular: "UMBRA_SECRET_FILE_NOT_REGULAR",
  /** The file cannot be read or created. */
  Unreadable: "UMBRA_SECRET_FILE_UNREADABLE",
} as const;

/** A secret file that is unsafe to use or cannot be read. */
export class SecretFileError extends UmbraError {
  readonly path: string;
  constructor(code: string, path: string, message: string) {
    super(code, message);
    this.path = path;
  }
}

const isWindows = process.platform === "win32";

/**
 * The contents of a secret file, or undefined when it does not exist.
 * Refuses a symbolic link, a non-regular file, a file of another owner and a
 * file other users may read or write.
 */
export function readSecretFile(path: string, what: string): string | undefined {
  let fd: number;
  try {
    // O_NOFOLLOW: a symbolic link in the last component is refused (ELOOP), not followed.
    fd = openSync(path, constants.O_RDONLY | (isWindows ? 0 : constants.O_NOFOLLOW));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new SecretFileError(SecretFileCode.NotRegular, path, `the ${what} "${path}" is a symbolic link; give the file itself`);
    throw new SecretFileError(SecretFileCode.Unreadable, path, `cannot read the ${what} "${path}" (${code ?? "error"})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SecretFileError(SecretFileCode.NotRegular, path, `the ${what} "${path}" is not a regular file`);
    if (!isWindows) {
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new SecretFileError(SecretFileCode.Permissions, path, `the ${what} "${path}" belongs to another user; it must be this user's own file`);
      if ((st.mode & 0o077) !== 0) {
        throw new SecretFileError(SecretFileCode.Permissions, path, `the ${what} "${path}" can be read or written by other users; run: chmod 600 "${path}"`);
      }
    }
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates a secret file with mode 0600 (its folder 0700 when it is created
 * here), exclusively: an existing file is an error, never overwritten. The
 * bytes are flushed to disk before it returns.
 */
export function createSecretFile(path: string, contents: string, what: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SecretFileError(SecretFileCode.Unreadable, path, `cannot create the folder of the ${what} "${path}" (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (isWindows ? 0 : constants.O_NOFOLLOW), 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretFileError(SecretFileCode.Unreadable, path, code === "EEXIST" ? `the ${what} "${path}" exists already` : `cannot create the ${what} "${path}" (${code ?? "error"})`);
  }
  try {
    writeSync(fd, contents);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
