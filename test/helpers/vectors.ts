/** Loads the RFC known-answer vectors from ../shared/vectors (next to the project root). */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("../../../shared/vectors/", import.meta.url));

export function loadVectors<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(dir + name, "utf8")) as T;
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
export const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
