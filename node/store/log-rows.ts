/**
 * The transparency log's rows (node/log/): the Merkle tree's nodes the
 * exchange keeps beside its ledger, and what a party keeps of the exchange's
 * log — every signed tree head it accepted and the evidence of any two heads
 * that no history joins. Plain rows; the checks live in node/log/.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { blob, checkCount } from "./checks.js";
import type { StoreContext } from "./context.js";

/** A signed tree head as stored: hex root and signature. */
export interface StoredTreeHead {
  readonly size: number;
  readonly root: string;
  readonly at: number;
  readonly signature: string;
}

export interface LogEvidence {
  readonly id: number;
  /** The head the party held (JSON of a signed tree head). */
  readonly held: string;
  /** The head it was offered that does not follow from it (JSON). */
  readonly offered: string;
  /** Why: "rewritten" (a proof that fails), "fork" (same size, other root), "shrunk", "no-proof". */
  readonly reason: string;
  readonly foundAt: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

function checkHead(h: StoredTreeHead): void {
  checkCount("size", h.size);
  checkCount("at", h.at);
  if (typeof h.root !== "string" || !HEX64.test(h.root)) throw new InvalidArgumentError("root must be 32 bytes of lowercase hex");
  if (typeof h.signature !== "string" || !HEX128.test(h.signature)) throw new InvalidArgumentError("signature must be 64 bytes of lowercase hex");
}

export class LogRows {
  readonly #ctx: StoreContext;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
  }

  /** The hash of the perfect subtree (level, index), or undefined when it is not complete yet. */
  node(level: number, index: number): Uint8Array | undefined {
    const row = this.#ctx.sql("SELECT hash FROM log_nodes WHERE level = ? AND idx = ?").get(level, index) as { hash: Buffer } | undefined;
    return row === undefined ? undefined : new Uint8Array(row.hash);
  }

  /** Adds completed subtrees (inside the caller's transaction: the ledger entry whose leaf they are). */
  putNodes(nodes: readonly { readonly level: number; readonly index: number; readonly hash: Uint8Array }[]): void {
    const insert = this.#ctx.sql("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)");
    this.#ctx.transaction(() => {
      for (const n of nodes) {
        if (!(n.hash instanceof Uint8Array) || n.hash.length !== 32) throw new InvalidArgumentError("a node hash is 32 bytes");
        insert.run(checkCount("level", n.level), checkCount("index", n.index), blob(n.hash));
      }
    });
  }

  /** Every node kept, level by level (audit verify recomputes each). */
  nodes(): IterableIterator<{ level: number; idx: number; hash: Buffer }> {
    return this.#ctx.db.prepare("SELECT level, idx, hash FROM log_nodes ORDER BY level, idx").iterate() as IterableIterator<{ level: number; idx: number; hash: Buffer }>;
  }

  /** How many leaves the tree holds. */
  leafCount(): number {
    const row = this.#ctx.sql("SELECT max(idx) AS m FROM log_nodes WHERE level = 0").get() as { m: number | null };
    return row.m === null ? 0 : row.m + 1;
  }

  /** Forgets every node (audit tooling rebuilding the tree from the entries). */
  clearNodes(): void {
    this.#ctx.sql("DELETE FROM log_nodes").run();
  }

  // ---------------------------------------------------------- a party's view

  /** Records a head this party accepted; a second head of the same size and root changes nothing. */
  putHead(head: StoredTreeHead): void {
    checkHead(head);
    this.#ctx.sql("INSERT INTO log_heads (size, root, at, signature, seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (size) DO NOTHING").run(head.size, head.root, head.at, head.signature, this.#ctx.time());
  }

  /** The largest head accepted. */
  latestHead(): StoredTreeHead | undefined {
    return this.#ctx.sql("SELECT size, root, at, signature FROM log_heads ORDER BY size DESC LIMIT 1").get() as StoredTreeHead | undefined;
  }

  /** The head accepted at `size`, if one was. */
  headAt(size: number): StoredTreeHead | undefined {
    return this.#ctx.sql("SELECT size, root, at, signature FROM log_heads WHERE size = ?").get(checkCount("size", size)) as StoredTreeHead | undefined;
  }

  /** Keeps the evidence of an inconsistency (the first 100 kept; a party that found one takes no job until an operator looks). */
  recordEvidence(e: { readonly held: string; readonly offered: string; readonly reason: string }): void {
    const n = (this.#ctx.sql("SELECT count(*) AS n FROM log_evidence").get() as { n: number }).n;
    if (n >= 100) return;
    this.#ctx.sql("INSERT INTO log_evidence (held, offered, reason, found_at) VALUES (?, ?, ?, ?)").run(e.held, e.offered, e.reason, this.#ctx.time());
  }

  /** Every inconsistency found, oldest first (at most the first 100). */
  evidence(): LogEvidence[] {
    const rows = this.#ctx.sql("SELECT id, held, offered, reason, found_at FROM log_evidence ORDER BY id LIMIT 100").all() as { id: number; held: string; offered: string; reason: string; found_at: number }[];
    return rows.map((r) => ({ id: r.id, held: r.held, offered: r.offered, reason: r.reason, foundAt: r.found_at }));
  }

  // ---------------------------------------------------------- certificates

  /** Records a dataset's certificate for a policy version: its entry's seq, and (at the owner's agent) the document. */
  putCertificate(c: { readonly datasetId: string; readonly policyVersion: number; readonly seq: number; readonly document?: string }): void {
    this.#ctx
      .sql("INSERT INTO certificates (dataset_id, policy_version, seq, document, issued_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id, policy_version) DO UPDATE SET seq = excluded.seq, document = excluded.document, issued_at = excluded.issued_at")
      .run(c.datasetId, checkCount("policyVersion", c.policyVersion), checkCount("seq", c.seq), c.document ?? null, this.#ctx.time());
  }

  /** A dataset's certificate record: of a policy version, or the latest. */
  certificate(datasetId: string, policyVersion?: number): { readonly policyVersion: number; readonly seq: number; readonly document: string | null } | undefined {
    const row = (
      policyVersion === undefined
        ? this.#ctx.sql("SELECT policy_version, seq, document FROM certificates WHERE dataset_id = ? ORDER BY policy_version DESC LIMIT 1").get(datasetId)
        : this.#ctx.sql("SELECT policy_version, seq, document FROM certificates WHERE dataset_id = ? AND policy_version = ?").get(datasetId, policyVersion)
    ) as { policy_version: number; seq: number; document: string | null } | undefined;
    return row === undefined ? undefined : { policyVersion: row.policy_version, seq: row.seq, document: row.document };
  }
}
