/** The Refusal a side sends when it refuses the job: the error's code and message (which never carry data). */
import { UmbraError } from "../engine/errors.js";
import type { Header, Refusal } from "./codec.js";

export function refusalFor(err: unknown, header: Header): Refusal {
  const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
  const reason = err instanceof UmbraError ? err.message.replace(/[^\x20-\x7e]/g, "?").slice(0, 512) : "internal error";
  return { kind: "refusal", header: { ...header, chunk: 0, chunks: 1 }, code, reason };
}
