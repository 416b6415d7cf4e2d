/**
 * A party agent's data folder: which files in it may be read (a name checked
 * lexically, then with every link followed, then the folders' owners and
 * modes, then the file's type), how the CLI's names map into it, the data
 * files it holds (names, sizes and times only, for the console), and what
 * registering a file with a policy makes of them — the dataset's descriptor
 * and parsed policy — shared by registration (POST /v1/datasets) and the
 * console's dry run (POST /v1/datasets/check), which registers nothing.
 */
import { constants, closeSync, fstatSync, lstatSync, openSync, readdirSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, normalize, relative, sep } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { formatFromPath } from "../../engine/columns/index.js";
import { describeDataset, type DatasetDescriptor } from "../catalog.js";
import { fileKeyShapes, type KeyShape } from "../key-shape.js";
import { parsePolicy, type UsagePolicy } from "../policy.js";

/** A data file as GET /v1/files lists it. */
export interface DataFileEntry {
  /** Relative to the data folder, with "/" between folders. */
  readonly name: string;
  readonly bytes: number;
  /** ISO 8601. */
  readonly modifiedAt: string;
}

/** A file to register, found in the data folder. */
export interface LocatedFile {
  /** The dataset id it registers under. */
  readonly id: string;
  /** The file's name relative to the data folder. */
  readonly name: string;
  /** The file, with every link followed. */
  readonly path: string;
}

/** What registering a file with a policy makes of them (nothing stored yet). */
export interface PreparedDataset extends LocatedFile {
  readonly descriptor: DatasetDescriptor;
  readonly policy: UsagePolicy;
}

/** The stage of {@link DataFolder.prepare} under way: reading the file, or checking the policy against it. */
export type PrepareStage = "file" | "policy";

/** The most files GET /v1/files lists, and how deep it looks into subfolders. */
export const MAX_LISTED_FILES = 1000;
const MAX_LIST_DEPTH = 4;

export interface DataFolder {
  /** The data folder with every link followed. */
  readonly root: string;
  /** A data file inside the folder, checked (see this file's header): its real path. */
  file(name: string): string;
  /** A file as the CLI names it (relative to the folder, or an absolute path inside it): its name relative to the folder. */
  name(file: string): string;
  /** The dataset id a file registers under. */
  datasetId(file: string): string;
  /** The data files (by extension: Arrow, CSV, Parquet) in the folder and its subfolders, no hidden ones, no link out of it. */
  list(): DataFileEntry[];
  /** A file as the CLI or the console names it, found and checked: {@link name} then {@link file}. */
  locate(file: string): LocatedFile;
  /**
   * The descriptor and parsed policy registering a located file with `policy`
   * would send (reads the file; stores nothing); `onStage` hears each stage
   * as it starts, so a caller can tell the file's problems from the policy's.
   */
  prepare(located: LocatedFile, policy: unknown, onStage?: (stage: PrepareStage) => void): Promise<PreparedDataset>;
}

export function dataFolder(dataDir: string, owner: string): DataFolder {
  const root = (() => {
    try {
      return realpathSync(dataDir);
    } catch {
      return normalize(dataDir);
    }
  })();

  const file = (name: string): string => {
    if (isAbsolute(name) || name.includes("\0")) throw new UmbraError("UMBRA_FORBIDDEN", "dataset files are named relative to the data folder");
    const p = normalize(join(dataDir, name));
    const rel = relative(dataDir, p);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) throw new UmbraError("UMBRA_FORBIDDEN", "dataset files must be inside the data folder");
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      throw new UmbraError("UMBRA_NOT_FOUND", `no file "${name}" in the data folder (${root}): a dataset file is named relative to it (or by an absolute path inside it); start the party with --data DIR to serve another folder`);
    }
    if (!real.startsWith(root + sep)) throw new UmbraError("UMBRA_FORBIDDEN", `"${name}" leads out of the data folder (a symbolic link); dataset files must be inside it`);
    // The check above and the read that follows are two steps: whoever could rename or replace something on
    // the way between them could swap in a link out of the folder. So every folder from the data folder down to
    // the file must be writable by this user alone (as ssh asks of its own folders).
    for (let dir = dirname(real); ; dir = dirname(dir)) {
      const st = statSync(dir);
      const uid = process.getuid?.();
      if ((st.mode & 0o022) !== 0 || (uid !== undefined && st.uid !== uid && st.uid !== 0)) {
        const shown = dir === root ? "the data folder" : `the folder "${relative(root, dir)}" of the data folder`;
        throw new UmbraError("UMBRA_FORBIDDEN", `${shown} can be written by other users, who could swap a file for a link out of it while it is read; run chmod go-w on it`);
      }
      if (dir === root || dir === dirname(dir)) break;
    }
    let fd: number | undefined;
    try {
      fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK);
      if (!fstatSync(fd).isFile()) throw new UmbraError("UMBRA_FORBIDDEN", `"${name}" is not a regular file`);
    } catch (err) {
      if (err instanceof UmbraError) throw err;
      throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read "${name}" in the data folder`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return real;
  };

  const name = (f: string): string => {
    if (!isAbsolute(f)) return f;
    const candidates = [normalize(f)];
    try {
      candidates.push(realpathSync(f));
    } catch {
      // not there: the lexical path is all there is
    }
    for (const c of candidates) {
      for (const r of [normalize(dataDir), root]) {
        const rel = relative(r, c);
        if (rel !== "" && !rel.startsWith("..") && !isAbsolute(rel)) return rel;
      }
    }
    throw new UmbraError("UMBRA_FORBIDDEN", `the file is outside this party's data folder (${root}): copy it into that folder, or start the party with --data DIR naming the folder that holds it`);
  };

  const datasetId = (f: string) => `${owner}.${f.replace(/[^A-Za-z0-9._-]/g, "_")}`.slice(0, 128);

  const isDataFile = (n: string): boolean => {
    try {
      formatFromPath(n);
      return true;
    } catch {
      return false;
    }
  };

  const list = (): DataFileEntry[] => {
    const out: DataFileEntry[] = [];
    const walk = (dir: string, prefix: string, depth: number): void => {
      let entries: string[];
      try {
        entries = readdirSync(dir).sort();
      } catch {
        return;
      }
      for (const e of entries) {
        if (out.length >= MAX_LISTED_FILES) return;
        // No hidden file or folder (a token file, a database folder such as .umbra).
        if (e.startsWith(".")) continue;
        const full = join(dir, e);
        let st;
        try {
          const l = lstatSync(full);
          if (l.isSymbolicLink()) {
            // A link is listed only when it stays inside the folder, as file() will check.
            const real = realpathSync(full);
            if (!real.startsWith(root + sep)) continue;
          }
          st = statSync(full);
        } catch {
          continue;
        }
        const rel = prefix === "" ? e : `${prefix}/${e}`;
        if (st.isDirectory()) {
          if (depth < MAX_LIST_DEPTH && !lstatSync(full).isSymbolicLink()) walk(full, rel, depth + 1);
        } else if (st.isFile() && isDataFile(e)) {
          out.push({ name: rel, bytes: st.size, modifiedAt: new Date(st.mtimeMs).toISOString() });
        }
      }
    };
    walk(root, "", 0);
    return out;
  };

  const locate = (f: string): LocatedFile => {
    const n = name(f);
    return { name: n, path: file(n), id: datasetId(n) };
  };

  const prepare = async (at: LocatedFile, policyDoc: unknown, onStage?: (stage: PrepareStage) => void): Promise<PreparedDataset> => {
    onStage?.("file");
    const described = await describeDataset({ id: at.id, owner, name: at.name, table: at.path });
    onStage?.("policy");
    const policy = parsePolicy(policyDoc, described.schema);
    onStage?.("file");
    // Each key column's shape (a class, never a value): a buyer's agent warns when its own keys' differ.
    const shapes = await fileKeyShapes(at.path, [...new Set(policy.keyColumns.flatMap((k) => (typeof k === "string" ? [k] : [...k])))]);
    const descriptor = { ...described, schema: described.schema.map((c) => (shapes.has(c.name) ? { ...c, keyShape: shapes.get(c.name) as KeyShape } : c)) };
    return { ...at, descriptor, policy };
  };

  return { root, file, name, datasetId, list, locate, prepare };
}
