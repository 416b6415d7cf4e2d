/**
 * `--config FILE` for `umbra exchange start` and `umbra party start`: the
 * same options as the flags, from a TOML file (.toml) or a JSON one (.json).
 * A key is a flag's name without its leading dashes (`port = 7302`,
 * `data = "./data"`, `open-registration = true`); a list (`allowed-host`)
 * may be an array. A flag given on the command line overrides the file. A
 * relative path in the file is taken from the file's folder, so a config
 * file means the same from wherever it is used. docs/configuration.md.
 */
import { readFileSync, statSync, type Stats } from "node:fs";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { UmbraError } from "../../engine/errors.js";
import { nearest } from "../schemas/check.js";
import { Options, type OptionSpec } from "./args.js";

/** The option that names the file; never a key in it. */
export const CONFIG_OPTION = { "--config": "string" } as const;

/** Options whose value is a path: relative ones in a config file are taken from its folder. */
const PATH_OPTIONS: readonly string[] = ["--db", "--data", "--key-file", "--key-passphrase-file", "--tls-cert", "--tls-key", "--token-file"];

/** A config file that cannot be read or says something the command does not take (code UMBRA_INVALID_CONFIG). */
export class InvalidConfigError extends UmbraError {
  constructor(file: string, problem: string) {
    super("UMBRA_INVALID_CONFIG", `config file "${basename(file)}": ${problem}`);
  }
}

/** Largest config file read (a config is a few lines: a bigger one is a mistake, or a trap). */
export const MAX_CONFIG_BYTES = 1 << 20;

/** The document in a config file, by its extension. */
function readDocument(file: string): unknown {
  const ext = extname(file).toLowerCase();
  if (ext !== ".toml" && ext !== ".json") throw new InvalidConfigError(file, "a config file is .toml or .json (by its extension)");
  let text: string;
  // A FIFO or a device (a symlink to /dev/zero) would block the command or fill its memory: only a regular file is read.
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the config file "${file}"`);
  }
  if (!stat.isFile()) throw new InvalidConfigError(file, "is not a regular file (a pipe, a device or a folder): name a .toml or .json file");
  // Anyone could rewrite a world-writable file: its data folder, exchange or allowed hosts would be theirs.
  if ((stat.mode & 0o002) !== 0) throw new InvalidConfigError(file, "anyone on this machine may write it: run chmod o-w on it");
  if (stat.size > MAX_CONFIG_BYTES) throw new InvalidConfigError(file, `is larger than ${MAX_CONFIG_BYTES} bytes: a config file holds a few options`);
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the config file "${file}"`);
  }
  try {
    return ext === ".json" ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    // smol-toml says what and where (line, column: its first line; the rest quotes the file); JSON.parse the position.
    const e = err as { message?: unknown; line?: unknown; column?: unknown };
    const what = ext === ".toml" && typeof e.message === "string" ? `: ${(e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "")}` : "";
    const where = typeof e.line === "number" && typeof e.column === "number" ? ` at line ${e.line}, column ${e.column}` : (/ at position \d+/.exec(String(e.message ?? ""))?.[0] ?? "");
    throw new InvalidConfigError(file, `not valid ${ext === ".json" ? "JSON" : "TOML"}${where}${what}`);
  }
}

/**
 * The command's options: those on the command line, and from the --config
 * file each one the command line does not give.
 * @throws InvalidConfigError for an unknown key, or a value of the wrong kind.
 */
export function withConfigFile(o: Options, spec: OptionSpec, usage: string): Options {
  const file = o.get("--config");
  if (file === undefined) return o;
  const doc = readDocument(file);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new InvalidConfigError(file, "must be a table of options (key = value)");
  const names = Object.keys(spec).filter((n) => n !== "--config");
  const valid = names.map((n) => n.slice(2));
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    const name = `--${key}`;
    if (!names.includes(name)) {
      const meant = nearest(key, valid);
      throw new InvalidConfigError(file, `unknown key "${key}" (valid keys: ${valid.join(", ")})${meant === undefined ? "" : `; did you mean "${meant}"?`}`);
    }
    if (spec[name] === "flag") {
      if (typeof v !== "boolean") throw new InvalidConfigError(file, `${key} must be true or false`);
      if (v) flags.add(name);
      continue;
    }
    let text: string;
    if (typeof v === "string" && v !== "") text = v;
    else if (typeof v === "number" && Number.isFinite(v)) text = String(v);
    else if (typeof v === "bigint") text = v.toString();
    else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" && x !== "")) text = v.join(",");
    else throw new InvalidConfigError(file, `${key} needs a value (a string${key === "port" ? " or a number" : ""})`);
    values.set(name, PATH_OPTIONS.includes(name) && !isAbsolute(text) ? resolve(dirname(file), text) : text);
  }
  // The command line wins over the file.
  for (const name of names) {
    const given = o.get(name);
    if (given !== undefined) values.set(name, given);
    else if (spec[name] === "flag" && o.has(name)) flags.add(name);
  }
  return new Options(values, flags, usage);
}
