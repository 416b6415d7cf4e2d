/**
 * What a local command tells its user at the end, in one of two forms:
 * human lines (notes and warnings on stderr as they come, the summary on
 * stdout), or with --json one JSON object on stdout and nothing else there:
 *
 *   { "command": "psi", ...the command's counts..., "out": PATH | null,
 *     "notes": [{ "level": "note" | "warning", "message": TEXT }, ...] }
 *
 * Progress stays on stderr (or nowhere with --quiet). Nothing here prints a
 * key or a cell value.
 */
import type { CommandIO } from "./args.js";

export type NoteLevel = "note" | "warning";

export interface Note {
  readonly level: NoteLevel;
  readonly message: string;
}

export class Report {
  readonly #notes: Note[] = [];

  constructor(
    private readonly io: CommandIO,
    /** --json: one object on stdout at the end. */
    readonly json: boolean,
    /** --quiet: notes are not printed (warnings are; --json keeps both in its notes). */
    private readonly quiet = false,
  ) {}

  /** Something the user may want to know (not printed with --quiet, kept in --json). */
  note(message: string): void {
    if (this.quiet && !this.json) return;
    this.#add({ level: "note", message });
  }

  /** Something that may make the result other than expected (kept with --quiet). */
  warning(message: string): void {
    this.#add({ level: "warning", message });
  }

  #add(n: Note): void {
    if (this.json) this.#notes.push(n);
    else this.io.err(`umbra: ${n.level}: ${n.message}`);
  }

  /** The end: the summary lines, or the JSON object of `fields` with the notes. */
  finish(lines: readonly string[], fields: Readonly<Record<string, unknown>>): void {
    if (!this.json) {
      for (const l of lines) this.io.out(l);
      return;
    }
    this.io.out(JSON.stringify({ ...fields, notes: this.#notes }, (_k, v: unknown) => (typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v)));
  }
}

/** The JSON shape, for the usage texts. */
export const JSON_USAGE_NOTE = `--json prints one JSON object on stdout instead of the summary
                 (progress stays on stderr): "command", the counts, "out" (the
                 output path or null), "seconds" and "notes" (a list of
                 {"level": "note" or "warning", "message"})`;
