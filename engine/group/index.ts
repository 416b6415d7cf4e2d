/**
 * engine/group: prime-order groups behind one interface.
 *
 * | group        | backends                         | use |
 * |--------------|----------------------------------|-----|
 * | ristretto255 | noble (reference), libsodium     | OPRF (RFC 9497), default PSI group |
 * | x25519       | sodium-native (fast), noble (ref) | bulk PSI |
 *
 * `createGroup` loads a backend (asynchronously: libsodium is WebAssembly);
 * `defaultBackend(group)` is the fastest that loads on this machine.
 */
import { UnsupportedBackendError } from "../errors.js";
import { createRistrettoLibsodium } from "./ristretto-libsodium.js";
import { createRistrettoNoble } from "./ristretto-noble.js";
import { BackendId, GroupId, type Group } from "./types.js";
import { createX25519Noble } from "./x25519-noble.js";

export * from "./types.js";
export { expandMessageXmd } from "./expand.js";
export { ORDER as GROUP_ORDER } from "./scalar.js";
export { ristrettoFromUniformNoble } from "./ristretto-noble.js";

export interface GroupSpec {
  readonly group: GroupId;
  readonly backend?: BackendId;
}

/** Every (group, backend) pair Umbra ships. */
export const GROUP_BACKENDS: readonly { group: GroupId; backend: BackendId }[] = [
  { group: GroupId.Ristretto255, backend: BackendId.Noble },
  { group: GroupId.Ristretto255, backend: BackendId.Libsodium },
  { group: GroupId.X25519, backend: BackendId.Noble },
  { group: GroupId.X25519, backend: BackendId.SodiumNative },
];

/** The fastest backend for a group. */
export function defaultBackend(group: GroupId): BackendId {
  return group === GroupId.X25519 ? BackendId.SodiumNative : BackendId.Libsodium;
}

const cache = new Map<string, Promise<Group>>();

/** Loads (once per thread) the group `spec.group` on `spec.backend` (default: the fastest). */
export function createGroup(spec: GroupSpec): Promise<Group> {
  const backend = spec.backend ?? defaultBackend(spec.group);
  const key = `${spec.group}/${backend}`;
  let g = cache.get(key);
  if (!g) {
    g = load(spec.group, backend);
    g.catch(() => cache.delete(key));
    cache.set(key, g);
  }
  return g;
}

async function load(group: GroupId, backend: BackendId): Promise<Group> {
  if (group === GroupId.Ristretto255 && backend === BackendId.Noble) return createRistrettoNoble() as Group;
  if (group === GroupId.Ristretto255 && backend === BackendId.Libsodium) return (await createRistrettoLibsodium()) as Group;
  if (group === GroupId.X25519 && backend === BackendId.Noble) return createX25519Noble() as Group;
  if (group === GroupId.X25519 && backend === BackendId.SodiumNative) {
    try {
      const { createX25519Sodium } = await import("./x25519-sodium.js");
      return createX25519Sodium() as Group;
    } catch (cause) {
      if (cause instanceof UnsupportedBackendError) throw cause;
      throw new UnsupportedBackendError("sodium-native could not be loaded on this platform", { cause });
    }
  }
  throw new UnsupportedBackendError(`no backend "${String(backend)}" for group "${String(group)}"`);
}
export { checkComparedEncodings } from "./validate.js";
