/**
 * The runners' options, checked at run time: JavaScript callers bypass the
 * types, and an option silently ignored (a misspelling, a name from an older
 * release) would run a different job than the one asked for. Every runner
 * declares the names it takes at each place (the top level, `buyer`,
 * `provider`, each of `providers`) and the old names with what they are now.
 *
 * One set of names across runPsi, runLookup, runJoinAggregate,
 * runFederatedAggregate and prepareLookupTable: a side's key columns are
 * `keys`, its key normalisation `normalise`; k is `minGroupSize`; the
 * shared ones (`job`, `pool`, `group`, `onProgress`, `tap`) mean the same
 * wherever they are taken.
 */
import { InvalidArgumentError } from "../engine/errors.js";
import { UnknownOptionError } from "./errors.js";

/** What one place of a runner's options takes. */
export interface OptionShape {
  /** Every name taken here. */
  readonly names: readonly string[];
  /** Names that must be given. */
  readonly required?: readonly string[];
  /** Old names and what they are now (refused with "X is now Y"). */
  readonly renamed?: Readonly<Record<string, string>>;
  /** Options whose value is an object of options, checked in turn. */
  readonly nested?: Readonly<Record<string, OptionShape>>;
  /** Options whose value is an array of option objects, each checked in turn. */
  readonly each?: Readonly<Record<string, OptionShape>>;
}

/** The options every side of a two-party runner takes for its keys. */
export const SIDE_KEY_OPTIONS = ["table", "keys", "normalise"] as const;

/** Old names of a side's key options (runJoinAggregate's before one name per concept). */
export const SIDE_RENAMED: Readonly<Record<string, string>> = { key: "keys", keyOptions: "normalise" };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Refuses an option the runner does not take, naming it and the valid ones
 * (UnknownOptionError), or a required one missing (InvalidArgumentError).
 * An option given as undefined counts as not given.
 */
export function checkOptions(runner: string, value: unknown, shape: OptionShape, at = ""): void {
  const where = at === "" ? "options" : at;
  if (!isObject(value)) throw new InvalidArgumentError(`${runner}: ${where} must be an object`);
  const name = (key: string): string => (at === "" ? key : `${at}.${key}`);
  for (const key of Object.keys(value)) {
    if (shape.names.includes(key)) continue;
    const now = shape.renamed?.[key];
    throw new UnknownOptionError(runner, name(key), shape.names, now === undefined ? undefined : name(now));
  }
  for (const key of shape.required ?? []) {
    if (value[key] === undefined) throw new InvalidArgumentError(`${runner}: ${name(key)} is required`);
  }
  for (const [key, inner] of Object.entries(shape.nested ?? {})) {
    if (value[key] !== undefined) checkOptions(runner, value[key], inner, name(key));
  }
  for (const [key, inner] of Object.entries(shape.each ?? {})) {
    const list = value[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new InvalidArgumentError(`${runner}: ${name(key)} must be an array`);
    list.forEach((item, i) => checkOptions(runner, item, inner, `${name(key)}[${i}]`));
  }
}
