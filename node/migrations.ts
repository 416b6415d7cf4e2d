/**
 * The node store's schema, as forward-only migrations.
 *
 * `schema_version` holds one row per applied migration. Opening a store
 * applies every migration above the highest applied one, each in its own
 * immediate transaction, in order; a migration is never edited or removed
 * once released, and there are no down-migrations: a change is a new
 * migration at the end of the list. A store whose highest applied version is
 * above the last one this code knows (written by a newer Umbra) is refused
 * rather than used.
 *
 * Times are integer milliseconds since the Unix epoch; digests and hashes are
 * lowercase hex; keys and signatures are raw bytes (BLOB). JSON columns hold
 * the canonical JSON of `node/store.ts`. No table ever holds a dataset row: a
 * dataset is its id, owner, schema, row count and content hash.
 */
import type BetterSqlite3 from "better-sqlite3";
import { UmbraError } from "../engine/errors.js";

export interface Migration {
  /** 1, 2, 3, …: contiguous, in order. */
  readonly version: number;
  /** A short description, stored beside the version. */
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    sql: `
      -- This node's own identity (its JSON, as node/identity writes it): one row.
      CREATE TABLE identity (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        identity    TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL
      ) STRICT;

      -- Parties this node knows, with their public keys.
      CREATE TABLE parties (
        name                TEXT    PRIMARY KEY,
        role                TEXT    NOT NULL,
        signing_public_key  BLOB    NOT NULL CHECK (length(signing_public_key) = 32),
        box_public_key      BLOB             CHECK (box_public_key IS NULL OR length(box_public_key) = 32),
        endpoint            TEXT,
        registered_at       INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX parties_role ON parties (role);

      -- The catalog: what a dataset is, never what it holds.
      CREATE TABLE datasets (
        id            TEXT    PRIMARY KEY,
        owner         TEXT    NOT NULL,
        name          TEXT    NOT NULL,
        schema        TEXT    NOT NULL,
        row_count     INTEGER NOT NULL CHECK (row_count >= 0),
        content_hash  TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX datasets_owner ON datasets (owner);

      -- Every version of a dataset's policy; the highest version is in force.
      CREATE TABLE policies (
        dataset_id  TEXT    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
        version     INTEGER NOT NULL CHECK (version >= 1),
        policy      TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, version)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE jobs (
        id          TEXT    PRIMARY KEY,
        protocol    TEXT    NOT NULL,
        buyer       TEXT    NOT NULL,
        providers   TEXT    NOT NULL,
        params      TEXT    NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN ('submitted', 'running', 'succeeded', 'failed', 'refused', 'cancelled')),
        reason      TEXT,
        progress    TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX jobs_state ON jobs (state, created_at);
      CREATE INDEX jobs_buyer ON jobs (buyer, created_at);

      -- One row per protocol message a job sent or received: its size and digest, never its bytes.
      CREATE TABLE steps (
        job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL CHECK (seq >= 1),
        step       TEXT    NOT NULL,
        direction  TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
        size       INTEGER NOT NULL CHECK (size >= 0),
        digest     TEXT    NOT NULL,
        at         INTEGER NOT NULL,
        PRIMARY KEY (job_id, seq)
      ) STRICT, WITHOUT ROWID;

      -- A protocol's persisted state (protocols/state.ts stateToBytes), per job and role.
      CREATE TABLE protocol_state (
        job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        role        TEXT    NOT NULL,
        state       BLOB    NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (job_id, role)
      ) STRICT;

      -- A job's result: its bytes inline, or the path of a file holding them.
      CREATE TABLE results (
        job_id       TEXT    PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
        digest       TEXT    NOT NULL,
        bytes        BLOB,
        path         TEXT,
        size         INTEGER NOT NULL CHECK (size >= 0),
        created_at   INTEGER NOT NULL,
        released_at  INTEGER,
        CHECK ((bytes IS NULL) <> (path IS NULL))
      ) STRICT;

      -- Envelope nonces already accepted, per sender, kept until pruned by age.
      CREATE TABLE nonces (
        sender     TEXT    NOT NULL,
        nonce      BLOB    NOT NULL,
        timestamp  INTEGER NOT NULL,
        PRIMARY KEY (sender, nonce)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX nonces_timestamp ON nonces (timestamp);

      -- What a buyer may still spend on a dataset (queries, or a privacy budget).
      CREATE TABLE budgets (
        dataset_id  TEXT    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
        buyer       TEXT    NOT NULL,
        remaining   REAL    NOT NULL CHECK (remaining >= 0),
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, buyer)
      ) STRICT, WITHOUT ROWID;

      -- The audit ledger (node/ledger.ts): append-only, hash-chained, signed.
      CREATE TABLE ledger (
        seq        INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        job        TEXT,
        body       TEXT    NOT NULL,
        prev_hash  TEXT    NOT NULL,
        hash       TEXT    NOT NULL,
        signature  TEXT    NOT NULL
      ) STRICT;
      CREATE INDEX ledger_job ON ledger (job, seq);
    `,
  },
  {
    version: 2,
    name: "parties' mask keys",
    sql: `
      -- A party's X25519 mask key (federated-aggregate's pairwise masks between
      -- providers), registered beside its box key; null for a party that has none.
      ALTER TABLE parties ADD COLUMN mask_public_key BLOB CHECK (mask_public_key IS NULL OR length(mask_public_key) = 32);
    `,
  },
  {
    version: 3,
    name: "invitations",
    sql: `
      -- The exchange's admission control: one-time invitation codes, each bound
      -- to the party name it admits and to an expiry. Only the code's SHA-256 is
      -- stored; registering with it sets used_at and the registering key in the
      -- same transaction as the party's row, and it never admits again.
      CREATE TABLE invitations (
        code_hash   TEXT    PRIMARY KEY CHECK (length(code_hash) = 64),
        name        TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL CHECK (expires_at > created_at),
        used_at     INTEGER,
        used_by     BLOB             CHECK (used_by IS NULL OR length(used_by) = 32),
        CHECK ((used_at IS NULL) = (used_by IS NULL))
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX invitations_name ON invitations (name, created_at);
    `,
  },
  {
    version: 4,
    name: "exchange ledger heads seen; salted result digests",
    sql: `
      -- A party's record of the exchange's ledger entries it has seen signed (the
      -- job.submitted entry every job.start carries): evidence it can hold against
      -- a ledger that is later cut short (audit verify --head), and against an
      -- exchange that shows it two different entries at one seq (a fork).
      CREATE TABLE exchange_heads (
        seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
        hash        TEXT    NOT NULL CHECK (length(hash) = 64),
        signature   TEXT    NOT NULL CHECK (length(signature) = 128),
        seen_at     INTEGER NOT NULL
      ) STRICT;

      -- A result's digest is a salted commitment, SHA-256(tag || salt || bytes): the
      -- digest the exchange records then says nothing of a result from a small
      -- domain (a count); the buyer keeps the salt to open it.
      ALTER TABLE results ADD COLUMN salt BLOB CHECK (salt IS NULL OR length(salt) = 32);
    `,
  },
  {
    version: 5,
    name: "durable jobs: relay, outbox, acknowledgements, checkpoints",
    sql: `
      -- The exchange's relay: every envelope to a party (or to the exchange's own
      -- role) is committed here before the relay answers, and stays until its
      -- recipient acknowledges it (or its job ends). A sender's envelope is
      -- relayed once: (job, sender, recipient, sequence) is unique, so one sent
      -- again after a restart is recognised and not queued or logged twice.
      CREATE TABLE relay (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient   TEXT    NOT NULL,
        job         TEXT    NOT NULL,
        sender      TEXT    NOT NULL,
        sequence    INTEGER NOT NULL CHECK (sequence >= 0),
        kind        TEXT    NOT NULL CHECK (kind IN ('data', 'start', 'stop')),
        frame       BLOB    NOT NULL,
        created_at  INTEGER NOT NULL,
        UNIQUE (job, sender, recipient, sequence)
      ) STRICT;
      CREATE INDEX relay_recipient ON relay (recipient, id);
      CREATE INDEX relay_job ON relay (job);

      -- The highest sequence the relay has taken per job, sender and recipient
      -- (kept after the envelopes are acknowledged, until the job ends): an
      -- envelope sent again at or below it is answered as taken, not queued.
      CREATE TABLE relay_taken (
        job        TEXT    NOT NULL,
        sender     TEXT    NOT NULL,
        recipient  TEXT    NOT NULL,
        sequence   INTEGER NOT NULL CHECK (sequence >= 0),
        PRIMARY KEY (job, sender, recipient)
      ) STRICT, WITHOUT ROWID;

      -- A node's next envelope sequence number in each job it sends in.
      CREATE TABLE sequences (
        job       TEXT    NOT NULL,
        sender    TEXT    NOT NULL,
        next      INTEGER NOT NULL CHECK (next >= 0),
        PRIMARY KEY (job, sender)
      ) STRICT, WITHOUT ROWID;

      -- A party's outbox: the envelopes (unsealed: sealed afresh at each send) and
      -- job events its committed steps produced, sent in order after the commit and
      -- deleted once the exchange has taken them.
      CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        job         TEXT    NOT NULL,
        kind        TEXT    NOT NULL CHECK (kind IN ('frame', 'event')),
        recipient   TEXT,
        step        INTEGER,
        sequence    INTEGER,
        body        BLOB    NOT NULL,
        created_at  INTEGER NOT NULL,
        CHECK ((kind = 'frame') = (recipient IS NOT NULL AND step IS NOT NULL AND sequence IS NOT NULL))
      ) STRICT;
      CREATE INDEX outbox_job ON outbox (job, id);

      -- The highest envelope sequence a node has processed per job and sender: an
      -- envelope delivered again at or below it changes nothing.
      CREATE TABLE inbound (
        job       TEXT    NOT NULL,
        sender    TEXT    NOT NULL,
        sequence  INTEGER NOT NULL CHECK (sequence >= 0),
        PRIMARY KEY (job, sender)
      ) STRICT, WITHOUT ROWID;

      -- What a node needs to rebuild its role in an open job after a restart: how
      -- the job started (JSON), the digest of the input file it read, and what it
      -- reserved from a budget (JSON).
      CREATE TABLE job_runs (
        job         TEXT    PRIMARY KEY,
        role        TEXT    NOT NULL,
        start       TEXT    NOT NULL,
        input_hash  TEXT,
        charge      TEXT,
        updated_at  INTEGER NOT NULL
      ) STRICT;

      -- The large typed arrays of a persisted role state (protocol_state holds the
      -- rest), in pages: a checkpoint writes only the pages whose digest changed.
      CREATE TABLE state_pages (
        job     TEXT    NOT NULL,
        role    TEXT    NOT NULL,
        part    INTEGER NOT NULL CHECK (part >= 0),
        page    INTEGER NOT NULL CHECK (page >= 0),
        digest  BLOB    NOT NULL,
        bytes   BLOB    NOT NULL,
        PRIMARY KEY (job, role, part, page)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 6,
    name: "transparency log: Merkle tree nodes, signed tree heads seen, inconsistency evidence, data asset certificates",
    sql: `
      -- The Merkle tree over the ledger (RFC 9162 §2.1, node/log/merkle.ts): the
      -- hash of every perfect, aligned subtree, 2^level leaves from idx * 2^level,
      -- written as entries are appended (a leaf is one entry). Derived from the
      -- ledger: audit verify recomputes it.
      CREATE TABLE log_nodes (
        level   INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
        idx     INTEGER NOT NULL CHECK (idx >= 0),
        hash    BLOB    NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
      ) STRICT, WITHOUT ROWID;

      -- A party's record of the exchange's signed tree heads, one per size seen,
      -- each shown consistent with the one before it (node/log/watch.ts).
      CREATE TABLE log_heads (
        size        INTEGER PRIMARY KEY CHECK (size >= 0),
        root        TEXT    NOT NULL CHECK (length(root) = 64),
        at          INTEGER NOT NULL,
        signature   TEXT    NOT NULL CHECK (length(signature) = 128),
        seen_at     INTEGER NOT NULL
      ) STRICT;

      -- Two signed heads of the exchange that no history can join (a rewritten or
      -- forked log): the evidence, kept; while any is held the party takes no job.
      CREATE TABLE log_evidence (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        held        TEXT    NOT NULL,
        offered     TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        found_at    INTEGER NOT NULL
      ) STRICT;

      -- Data asset certificates (node/log/certificate.ts), one per dataset and
      -- policy version: at the exchange the seq of the dataset.certified entry (a
      -- certificate is issued from it with a fresh head), at the owner's agent the
      -- certificate document it was given and checked.
      CREATE TABLE certificates (
        dataset_id      TEXT    NOT NULL,
        policy_version  INTEGER NOT NULL CHECK (policy_version >= 1),
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        document        TEXT,
        issued_at       INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, policy_version)
      ) STRICT;

      -- The single entries a party kept before the log had heads: the signed tree
      -- head replaces them.
      DROP TABLE exchange_heads;
    `,
  },
  {
    version: 7,
    name: "venue: products and contracts",
    sql: `
      -- A provider's products (docs/venue.md): every published version of each,
      -- its document as canonical JSON and that JSON's SHA-256; the highest
      -- version is the product's current one, active or withdrawn. Prices and
      -- terms only: never a row of a dataset.
      CREATE TABLE products (
        id          TEXT    NOT NULL,
        version     INTEGER NOT NULL CHECK (version >= 1),
        owner       TEXT    NOT NULL,
        document    TEXT    NOT NULL,
        digest      TEXT    NOT NULL CHECK (length(digest) = 64),
        state       TEXT    NOT NULL CHECK (state IN ('active', 'withdrawn')),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (id, version)
      ) STRICT;

      -- Orders and the contracts they become: the buyer's signed document, then
      -- the provider's signature and the exchange's countersignature (hex). A
      -- contract's jobs are counted in jobs_used, never above its quota (the
      -- exchange reserves one in the transaction that records the job; a
      -- provider counts the jobs it accepted under its own copy).
      CREATE TABLE contracts (
        id                  TEXT    PRIMARY KEY,
        product_id          TEXT    NOT NULL,
        product_version     INTEGER NOT NULL CHECK (product_version >= 1),
        buyer               TEXT    NOT NULL,
        provider            TEXT    NOT NULL,
        document            TEXT    NOT NULL,
        digest              TEXT    NOT NULL CHECK (length(digest) = 64),
        buyer_signature     TEXT    NOT NULL CHECK (length(buyer_signature) = 128),
        provider_signature  TEXT             CHECK (provider_signature IS NULL OR length(provider_signature) = 128),
        exchange_signature  TEXT             CHECK (exchange_signature IS NULL OR length(exchange_signature) = 128),
        state               TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'rejected', 'revoked')),
        quota_jobs          INTEGER NOT NULL CHECK (quota_jobs >= 1),
        jobs_used           INTEGER NOT NULL DEFAULT 0 CHECK (jobs_used >= 0 AND jobs_used <= quota_jobs),
        not_before          INTEGER NOT NULL,
        not_after           INTEGER NOT NULL CHECK (not_after > not_before),
        reason              TEXT,
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL,
        CHECK (state != 'active' OR (provider_signature IS NOT NULL AND exchange_signature IS NOT NULL))
      ) STRICT;
      CREATE INDEX contracts_buyer ON contracts (buyer, created_at);
      CREATE INDEX contracts_provider ON contracts (provider, state);
    `,
  },
  {
    version: 8,
    name: "venue: receipts",
    sql: `
      -- One receipt per job that ran under contracts (docs/venue.md, "Receipts
      -- and statements"): the exchange's signed document as canonical JSON, its
      -- digest and signature, and the buyer's acknowledgement once it came. At
      -- a party, the receipts it is buyer or provider of, as it fetched them.
      -- Amounts in integer minor units; never a row of a dataset.
      CREATE TABLE receipts (
        id                TEXT    PRIMARY KEY,
        job               TEXT    NOT NULL UNIQUE,
        buyer             TEXT    NOT NULL,
        currency          TEXT    NOT NULL CHECK (length(currency) = 3),
        amount            INTEGER NOT NULL CHECK (amount >= 0),
        document          TEXT    NOT NULL,
        digest            TEXT    NOT NULL CHECK (length(digest) = 64),
        signature         TEXT    NOT NULL CHECK (length(signature) = 128),
        issued_seq        INTEGER,
        ack_signature     TEXT             CHECK (ack_signature IS NULL OR length(ack_signature) = 128),
        issued_at         INTEGER NOT NULL,
        acknowledged_at   INTEGER
      ) STRICT;
      CREATE INDEX receipts_buyer ON receipts (buyer, issued_at);
      CREATE INDEX receipts_issued ON receipts (issued_at);
      -- Who a receipt pays: one row per provider's share (a statement's provider side).
      CREATE TABLE receipt_shares (
        receipt   TEXT    NOT NULL REFERENCES receipts (id),
        provider  TEXT    NOT NULL,
        amount    INTEGER NOT NULL CHECK (amount >= 0),
        PRIMARY KEY (receipt, provider)
      ) STRICT;
      CREATE INDEX receipt_shares_provider ON receipt_shares (provider);
    `,
  },
  {
    version: 9,
    name: "privacy budgets",
    sql: `
      -- The zCDP ρ a buyer has spent on a dataset (docs/differential-privacy.md):
      -- an exact rational "num/den" in lowest terms, only ever raised. What
      -- remains is the policy's privacyBudget minus it, so a policy change
      -- keeps what was spent. At a provider's agent, its own copy.
      CREATE TABLE privacy_spent (
        dataset_id  TEXT    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
        buyer       TEXT    NOT NULL,
        spent       TEXT    NOT NULL CHECK (spent GLOB '[0-9]*/[1-9]*'),
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, buyer)
      ) STRICT, WITHOUT ROWID;
    `,
  },
];

/** The store was written by a newer Umbra (a schema version this code does not know). */
export class StoreVersionError extends UmbraError {
  constructor(found: number, known: number) {
    super("UMBRA_STORE_VERSION", `store schema version ${found} is newer than the ${known} this node knows`);
  }
}

/** The schema version of `db`: 0 for a fresh database. */
export function schemaVersion(db: BetterSqlite3.Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (table === undefined) return 0;
  const row = db.prepare("SELECT max(version) AS v FROM schema_version").get() as { v: number | null };
  return row.v ?? 0;
}

/** The highest version in {@link MIGRATIONS}. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * Brings `db` to the latest schema: applies each pending migration in its own
 * immediate transaction (so two processes opening the same file do not both
 * apply it). Returns the versions applied.
 */
export function migrate(db: BetterSqlite3.Database, now: () => number = Date.now, migrations: readonly Migration[] = MIGRATIONS): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new UmbraError("UMBRA_INTERNAL", "migrations are not numbered 1, 2, 3, … in order");
  });
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
  ) STRICT`);
  const applied: number[] = [];
  for (const m of migrations) {
    const step = db.transaction(() => {
      // Re-read inside the write lock: another process may have applied it meanwhile.
      const current = schemaVersion(db);
      if (current >= m.version) return false;
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, now());
      return true;
    });
    if (step.immediate()) applied.push(m.version);
  }
  const found = schemaVersion(db);
  if (found > migrations.length) throw new StoreVersionError(found, migrations.length);
  return applied;
}
