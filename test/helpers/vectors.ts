/** Loads the RFC known-answer vectors from test/vectors (a copy of ../shared/vectors; see its README). */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const vectorsDir = fileURLToPath(new URL("../vectors/", import.meta.url));
export const sharedVectorsDir = fileURLToPath(new URL("../../../shared/vectors/", import.meta.url));

export function loadVectors<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(vectorsDir + name, "utf8")) as T;
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
export const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
