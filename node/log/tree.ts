/**
 * The log's Merkle tree kept in a store (node/store/log-rows.ts): every
 * perfect subtree's hash, written as each leaf is appended, so a root or a
 * proof costs O(log n) lookups (node/log/merkle.ts).
 */
import { UmbraError } from "../../engine/errors.js";
import type { Store } from "../store.js";
import { appendedNodes, type NodeSource } from "./merkle.js";

/** The store's tree as a NodeSource; a node that is not there is an internal error (the tree is behind the ledger). */
export function storeNodes(store: Store): NodeSource {
  return (level, index) => {
    const h = store.log.node(level, index);
    if (h === undefined) throw new UmbraError("UMBRA_INTERNAL", "the log's tree is missing a node");
    return h;
  };
}

/** Appends leaf `index` (in the caller's transaction: the entry it is the leaf of). */
export function appendLeaf(store: Store, index: number, leaf: Uint8Array): void {
  store.log.putNodes(appendedNodes(storeNodes(store), index, leaf));
}
