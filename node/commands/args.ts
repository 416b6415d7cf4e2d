/**
 * What the CLI commands share: option parsing (node:util parseArgs), usage
 * errors, output checks and summary formatting. Nothing here prints a key or
 * a cell value.
 */
import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { basename, dirname, resolve as resolvePath } from "node:path";
import { parseArgs } from "node:util";
import type { Table } from "apache-arrow";
import { checkCsvDelimiter, describeDelimiter, formatFromPath, type FileFormat, type KeyOptions } from "../../engine/columns/index.js";
import { MissingColumnError, UnwritableFileError } from "../../engine/errors.js";
import { maxAbsValueFromText } from "../jobs/aggregate-job.js";
import { nearest } from "../schemas/check.js";

/** A command line that does not make sense: exit code 2 and the usage text. */
export class UsageError extends Error {
  /** The usage text of the command concerned (the general one when absent). */
  readonly usage: string | undefined;
  constructor(message: string, usage?: string) {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

/** "string" takes a value (`--name VALUE` or `--name=VALUE`); "flag" takes none. */
export type OptionKind = "string" | "flag";
export type OptionSpec = Readonly<Record<string, OptionKind>>;

/** Parsed options of one command. */
export class Options {
  constructor(
    private readonly values: ReadonlyMap<string, string>,
    private readonly flags: ReadonlySet<string>,
    private readonly usage: string,
  ) {}

  /** True when the flag or the option was given. */
  has(name: string): boolean {
    return this.flags.has(name) || this.values.has(name);
  }

  get(name: string): string | undefined {
    return this.values.get(name);
  }

  require(name: string, why = "is required"): string {
    const v = this.values.get(name);
    if (v === undefined) throw new UsageError(`${name} ${why}`, this.usage);
    return v;
  }

  /** A comma-separated list of names: no empty entries, no repeats. */
  list(name: string): string[] | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    const items = v.split(",").map((s) => s.trim());
    if (items.some((s) => s === "")) throw new UsageError(`${name} needs a comma-separated list of column names with no empty entries`, this.usage);
    if (new Set(items).size !== items.length) throw new UsageError(`${name} names a column twice`, this.usage);
    return items;
  }

  requireList(name: string): string[] {
    this.require(name);
    return this.list(name) as string[];
  }

  /** An integer from `min` (default 0) to `max`. */
  integer(name: string, max = Number.MAX_SAFE_INTEGER, min = 0): number | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n > max || n < min) {
      throw new UsageError(max === Number.MAX_SAFE_INTEGER ? `${name} needs an integer of at least ${min}` : `${name} needs an integer from ${min} to ${max}`, this.usage);
    }
    return n;
  }

  /**
   * The CSV field delimiter (--delimiter): one character; "\t" or "tab"
   * for a tab. Undefined when not given (the reader's default, a comma).
   */
  delimiter(): string | undefined {
    const v = this.values.get("--delimiter");
    if (v === undefined) return undefined;
    const d = v === "\\t" || v.toLowerCase() === "tab" ? "\t" : v;
    try {
      return checkCsvDelimiter(d);
    } catch {
      throw new UsageError('--delimiter needs one character other than a quote (e.g. ";", "|" or tab)', this.usage);
    }
  }

  /** The key normalisation asked for by --digits-only / --case-fold (default trim + NFC). */
  keyOptions(): KeyOptions {
    return { ...(this.flags.has("--digits-only") ? { digitsOnly: true } : {}), ...(this.flags.has("--case-fold") ? { caseFold: true } : {}) };
  }
}

/**
 * Options renamed so that one concept has one name on every command. A
 * command that takes the new name refuses the old one with a message naming
 * it (a usage error, exit 2); elsewhere the old name is an unknown option.
 */
export const RENAMED_OPTIONS: Readonly<Record<string, { readonly now: readonly string[]; readonly message: string }>> = {
  "--min-count": { now: ["--min-group-size"], message: "--min-count is now --min-group-size" },
  "--max-abs": { now: ["--max-abs-value"], message: "--max-abs is now --max-abs-value" },
  "--dataset": {
    now: ["--input", "--provider-dataset"],
    message: "--dataset is now --input (your own file, in your data folder) or --provider-dataset (a provider's dataset ID, once per provider)",
  },
  "--max-rows": { now: ["--max-rows-per-provider"], message: "--max-rows is now --max-rows-per-provider" },
  "--version": { now: ["--product-version"], message: "--version is now --product-version (the product key's version; umbra version prints the CLI's)" },
  "--public-key": { now: ["--exchange-key"], message: "--public-key is now --exchange-key (the exchange's signing key, as umbra party start takes it)" },
};

/** parseArgs's errors, in this CLI's words. */
function parseArgsMessage(err: unknown, spec: OptionSpec): string {
  const message = err instanceof Error ? (err.message.split("\n")[0] ?? "") : "";
  const code = (err as { code?: unknown }).code;
  const named = /'(-[^' ]+)/.exec(message)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const renamed = RENAMED_OPTIONS[named];
    return renamed !== undefined && renamed.now.some((n) => spec[n] !== undefined) ? renamed.message : `unknown option "${named}"`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument "${/'([^']*)'/.exec(message)?.[1] ?? ""}"`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return message.includes("does not take an argument") ? `${named} takes no value` : `${named} needs a value`;
  return message || "bad arguments";
}

/**
 * `--name -3` as `--name=-3` for an option that takes a value (parseArgs
 * takes "-3" for an option otherwise), so that a negative number reaches
 * the option's own check and its message.
 */
function withNegativeValues(args: readonly string[], spec: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (spec[a] === "string" && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * Parses `--name VALUE`, `--name=VALUE` and `--flag` against `spec` with
 * node:util's parseArgs (strict: unknown options and positionals refused).
 * Returns undefined when --help / -h was given (the caller prints the usage).
 * @throws UsageError for an unknown option, a missing value, a repeated option or a positional argument.
 */
export function parseOptions(args: readonly string[], spec: OptionSpec, usage: string): Options | undefined {
  args = withNegativeValues(args, spec);
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const [name, kind] of Object.entries(spec)) options[name.replace(/^--/, "")] = { type: kind === "flag" ? "boolean" : "string" };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    throw new UsageError(parseArgsMessage(err, spec), usage);
  }
  if (parsed.values["help"]) return undefined;
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option") continue;
    const name = `--${token.name}`;
    if (values.has(name) || flags.has(name)) throw new UsageError(`${name} is given twice`, usage);
    if (spec[name] === "flag") {
      flags.add(name);
      continue;
    }
    if (token.value === undefined || token.value === "" || (token.inlineValue !== true && token.value.startsWith("--"))) throw new UsageError(`${name} needs a value`, usage);
    values.set(name, token.value);
  }
  return new Options(values, flags, usage);
}

/**
 * A multiple-occurrence option (parseOptions refuses repeats): every
 * `--name VALUE` / `--name=VALUE`, and the args without them.
 * @throws UsageError for an occurrence without a value.
 */
export function takeRepeated(args: readonly string[], name: string, usage: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (a === name) {
      const v = args[i + 1];
      if (v === undefined || v === "" || v.startsWith("--")) throw new UsageError(`${name} needs a value`, usage);
      values.push(v);
      i++;
    } else if (a.startsWith(`${name}=`)) {
      const v = a.slice(name.length + 1);
      if (v === "") throw new UsageError(`${name} needs a value`, usage);
      values.push(v);
    } else rest.push(a);
  }
  return { values, rest };
}

/**
 * k, the minimum group size (--min-group-size): an integer of at least 1;
 * undefined when not given.
 * @throws UsageError for anything else.
 */
export function minGroupSizeOption(o: Options, _usage: string): number | undefined {
  return o.integer("--min-group-size", Number.MAX_SAFE_INTEGER, 1);
}

/** A value bound as given (the decimal text) and its value: an integer as a bigint (exact), a fraction as a number. */
export interface MaxAbsValue {
  readonly text: string;
  readonly value: bigint | number;
}

/**
 * The bound on |value| of every aggregated column (--max-abs-value): a
 * positive decimal, parsed by the rule a job request's maxAbsValue follows;
 * undefined when not given.
 * @throws UsageError for anything else.
 */
export function maxAbsValueOption(o: Options, usage: string): MaxAbsValue | undefined {
  const text = o.get("--max-abs-value");
  if (text === undefined) return undefined;
  const value = maxAbsValueFromText(text);
  if (value === undefined) throw new UsageError("--max-abs-value needs a positive number (e.g. 1000000 or 2.5)", usage);
  return { text, value };
}

/**
 * Checks an output path before any work: a format the engine writes, not
 * one of the inputs, its folder present and writable, and the path not a
 * folder. Errors quote the path as given.
 * @throws UnsupportedFormatError for an extension the engine does not write.
 * @throws UnwritableFileError (UMBRA_UNWRITABLE_FILE) for a path that cannot be written.
 */
export function checkOutput(out: string, inputs: readonly (string | undefined)[], usage: string): FileFormat {
  const format = formatFromPath(out);
  const target = resolvePath(out);
  if (inputs.some((p) => p !== undefined && resolvePath(p) === target)) throw new UsageError("--out must not be one of the input files", usage);
  const folder = dirname(target);
  const given = JSON.stringify(out);
  const code = (err: unknown): string => String((err as { code?: unknown }).code ?? "unknown reason");
  try {
    if (!statSync(folder).isDirectory()) throw new UnwritableFileError(`cannot write --out ${given}: ${JSON.stringify(dirname(out))} is not a folder`);
  } catch (err) {
    if (err instanceof UnwritableFileError) throw err;
    throw new UnwritableFileError(`cannot write --out ${given}: its folder ${JSON.stringify(dirname(out))} does not exist (${code(err)}); create it first or choose another path`);
  }
  try {
    accessSync(folder, fsConstants.W_OK);
  } catch (err) {
    throw new UnwritableFileError(`cannot write --out ${given}: its folder ${JSON.stringify(dirname(out))} is not writable (${code(err)})`);
  }
  let existing;
  try {
    existing = statSync(target);
  } catch {
    return format; // a new file in a writable folder
  }
  if (existing.isDirectory()) throw new UnwritableFileError(`cannot write --out ${given}: it is a folder; give a file name`);
  try {
    accessSync(target, fsConstants.W_OK);
  } catch (err) {
    throw new UnwritableFileError(`cannot write --out ${given}: the file exists and is not writable (${code(err)})`);
  }
  return format;
}

/**
 * Throws MissingColumnError naming the first of `columns` absent from
 * `table`, with the columns it has (names, never values); `delimiter`: the
 * --delimiter the file was read with, if any.
 */
export function requireColumns(table: Table, columns: readonly string[], role: string, path: string, delimiter?: string): void {
  const names = table.schema.fields.map((f) => f.name);
  for (const c of columns) if (!names.includes(c)) throw withDelimiterHint(new MissingColumnError(c, `${role} file "${basename(path)}"`, names), delimiter);
}

/**
 * A MissingColumnError explained: from a CSV header that seems to use another
 * delimiter, the --delimiter to give (or, when `given` — the --delimiter the
 * run reads every CSV input with — differs, that this file needs saving with
 * it); from a header with a column that differs only in case, spaces or a
 * typo or two, that one. Other errors as they are.
 */
export function withDelimiterHint(err: unknown, given?: string): unknown {
  if (!(err instanceof MissingColumnError)) return err;
  const found = err.found;
  const other = err.delimiter ?? (found?.length === 1 ? [";", "\t", "|"].find((d) => d !== given && (found[0] ?? "").includes(d)) : undefined);
  if (other === undefined) {
    const near = found === undefined ? undefined : nearest(err.column, found);
    return near === undefined ? err : new MissingColumnError(err.column, err.source, found, { hint: `did you mean ${JSON.stringify(near)}? (column names are matched exactly: case and spaces count)` });
  }
  const flag = (d: string) => (d === "\t" ? "--delimiter tab" : `--delimiter '${d}'`);
  const hint =
    given === undefined
      ? `the header looks separated by ${describeDelimiter(other)}: give ${flag(other)}`
      : `the header looks separated by ${describeDelimiter(other)}, but ${flag(given)} applies to every CSV input of the run: save this file separated by ${describeDelimiter(given)} (or as .arrow/.parquet)`;
  return new MissingColumnError(err.column, err.source, found, { hint, delimiter: other });
}

const nf = new Intl.NumberFormat("en-US");
/** 1234567 → "1,234,567". */
export const count = (n: number): string => nf.format(n);
/** Milliseconds → "1.23 s". */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** What a command prints to; the CLI passes process.stdout / process.stderr. */
export interface CommandIO {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

export const processIO: CommandIO = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};
