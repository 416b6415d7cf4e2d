/**
 * The one owner of the SEAL WebAssembly module in this thread.
 *
 * node-seal 6.0.3 (Microsoft SEAL 4.1 compiled to WASM; 7.x does not load on
 * Node 20). Each thread (the main thread, each pool worker) loads its own
 * instance, once, on first use (~100 ms). Nothing outside engine/he holds a
 * SEAL handle: contexts and keys built on this module own their objects and
 * delete them (see `bfv.ts`).
 */
import type { SEALLibrary } from "node-seal/implementation/seal.js";
import { UnsupportedBackendError } from "../errors.js";

export type { SEALLibrary };

let loading: Promise<SEALLibrary> | undefined;

/** The SEAL module of this thread, loaded on the first call. */
export function loadSeal(): Promise<SEALLibrary> {
  loading ??= (async () => {
    try {
      const mod = (await import("node-seal")) as unknown as { default: (() => Promise<SEALLibrary>) | { default: () => Promise<SEALLibrary> } };
      const factory = typeof mod.default === "function" ? mod.default : mod.default.default;
      return await factory();
    } catch (e) {
      loading = undefined;
      throw new UnsupportedBackendError("node-seal could not be loaded", { cause: e });
    }
  })();
  return loading;
}
