/**
 * The ledger: the signed tree head, the entries (paged), and "Verify in
 * browser": the four checks of docs/console.md run in this page
 * (shared/verify), each shown passed or failed with the first failing seq;
 * the last verified head kept in localStorage for the next consistency check.
 */
import { useState } from "preact/hooks";
import { ApiError, get } from "../../shared/api.js";
import { ErrorNote, Loading, PageTitle, Section, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";
import type { MessageKey } from "../../shared/i18n/en.js";
import {
  LedgerChecker,
  verifyEntryInclusion,
  verifyHeadConsistency,
  verifyRoot,
  wellFormedHead,
  type CheckOutcome,
  type LedgerEntryJson,
  type TreeHeadJson,
} from "../../shared/verify/ledger.js";

interface Page {
  publicKey: string;
  entries: LedgerEntryJson[];
  next?: number;
}
type CheckId = "chain" | "signatures" | "root" | "proofs";
type Status = { state: "pending" } | { state: "running" } | { state: "done"; outcome: CheckOutcome; note?: string };
const CHECKS: readonly CheckId[] = ["chain", "signatures", "root", "proofs"];
const PAGE = 50;
const KEPT = "umbra.console.lastHead";

const idle = (): Record<CheckId, Status> => ({ chain: { state: "pending" }, signatures: { state: "pending" }, root: { state: "pending" }, proofs: { state: "pending" } });
const tick = () => new Promise((r) => setTimeout(r, 0));

export function Ledger() {
  const { t, locale } = useI18n();
  const head = useApi<TreeHeadJson>("/v1/admin/log/head");
  const [after, setAfter] = useState(0);
  const [history, setHistory] = useState<number[]>([]);
  const page = useApi<Page>(`/v1/admin/ledger?after=${after}&limit=${PAGE}`);
  const [checks, setChecks] = useState(idle);
  const [progress, setProgress] = useState<string>("");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [running, setRunning] = useState(false);

  const verify = async () => {
    setRunning(true);
    setError(undefined);
    const s = idle();
    const set = (id: CheckId, v: Status) => {
      s[id] = v;
      setChecks({ ...s });
    };
    try {
      // The head first: the entries it covers are fetched after it (more may have been appended since).
      const h = await get<TreeHeadJson>("/v1/admin/log/head");
      set("chain", { state: "running" });
      set("signatures", { state: "running" });
      let checker: LedgerChecker | undefined;
      let publicKey = "";
      let cursor = 0;
      for (;;) {
        const p = await get<Page>(`/v1/admin/ledger?after=${cursor}&limit=1000`);
        publicKey = p.publicKey;
        checker ??= new LedgerChecker(p.publicKey);
        const wanted = p.entries.filter((e) => typeof e.seq !== "number" || e.seq <= h.size);
        checker.add(wanted);
        cursor = p.entries.length > 0 ? (p.entries[p.entries.length - 1] as LedgerEntryJson).seq : cursor;
        setProgress(t("ledger.fetched", { n: Math.min(checker.count, h.size), size: h.size }));
        await tick();
        if (p.entries.length === 0 || p.next === undefined || cursor >= h.size) break;
      }
      const c = checker as LedgerChecker;
      set("chain", { state: "done", outcome: c.chain });
      set("signatures", { state: "done", outcome: c.signatures });
      set("root", { state: "running" });
      await tick();
      set("root", { state: "done", outcome: verifyRoot(c.leaves, h, publicKey, c.chain.ok ? undefined : c.chain.seq) });
      set("proofs", { state: "running" });
      let outcome: CheckOutcome = { ok: true };
      if (h.size > 0 && c.last !== undefined && c.leaves.length >= h.size) {
        const inc = await get<{ proof: string[] }>(`/v1/admin/log/inclusion?seq=${h.size}&size=${h.size}`);
        outcome = verifyEntryInclusion(c.leaves[h.size - 1] as Uint8Array, h.size, h, inc.proof);
      }
      let note = t("ledger.noPrevious");
      let previous: unknown;
      try {
        previous = JSON.parse(localStorage.getItem(KEPT) ?? "null");
      } catch {
        previous = null;
      }
      if (outcome.ok && wellFormedHead(previous)) {
        const size = Math.min(previous.size, h.size);
        const cons = await get<{ proof: string[] }>(`/v1/admin/log/consistency?first=${size}&second=${h.size}`).catch(() => ({ proof: [] as string[] }));
        outcome = verifyHeadConsistency(previous, h, cons.proof, publicKey);
        note = t("ledger.previous", { size: previous.size });
      }
      const allPassed = c.chain.ok && c.signatures.ok && s.root.state === "done" && s.root.outcome.ok && outcome.ok;
      if (allPassed) {
        localStorage.setItem(KEPT, JSON.stringify(h));
        note = `${note} ${t("ledger.kept")}`;
      }
      set("proofs", { state: "done", outcome, note });
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)));
      for (const id of CHECKS) if (s[id].state === "running") set(id, { state: "done", outcome: { ok: false, seq: 0, problem: "unavailable" } });
    } finally {
      setRunning(false);
    }
  };

  const statusOf = (st: Status): "passed" | "failed" | "running" | "pending" => (st.state === "done" ? (st.outcome.ok ? "passed" : "failed") : st.state);
  return (
    <>
      <PageTitle>{t("page.ledger")}</PageTitle>
      <Section title={t("ledger.head")}>
        <Loading when={head.loading} />
        <ErrorNote error={head.error} />
        {head.data ? (
          <dl class="facts">
            <dt>{t("ledger.size")}</dt><dd>{head.data.size}</dd>
            <dt>{t("ledger.root")}</dt><dd class="mono">{head.data.root}</dd>
            <dt>{t("ledger.at")}</dt><dd>{time(head.data.at, locale)}</dd>
            {page.data ? (<><dt>{t("ledger.publicKey")}</dt><dd class="mono">{page.data.publicKey}</dd></>) : null}
          </dl>
        ) : null}
      </Section>
      <Section title={t("ledger.verify")}>
        <p>{t("ledger.verifyIntro")}</p>
        <button type="button" class="primary" data-testid="verify-ledger" disabled={running} onClick={verify}>
          {running ? <span class="spinner" aria-hidden="true" /> : null} {t("ledger.verify")}
        </button>
        <p role="status" aria-live="polite">{running ? progress : ""}</p>
        <ErrorNote error={error} />
        <ul class="checklist">
          {CHECKS.map((id) => {
            const st = checks[id];
            const status = statusOf(st);
            return (
              <li key={id} data-testid={`check-${id}`} data-status={status === "pending" ? undefined : status}>
                <span class="check-status">{t(`ledger.status.${status}` as MessageKey)}</span>
                {t(`ledger.check.${id}` as MessageKey)}
                {st.state === "done" && !st.outcome.ok ? <div class="field-error">{t("ledger.failedAt", { seq: st.outcome.seq, problem: st.outcome.problem })}</div> : null}
                {st.state === "done" && st.note ? <div class="hint">{st.note}</div> : null}
              </li>
            );
          })}
        </ul>
      </Section>
      <Section title={t("ledger.entries")}>
        <Loading when={page.loading} />
        <ErrorNote error={page.error} />
        {page.data ? (
          <Table
            caption={`${t("ledger.entries")} — ${t("common.page", { n: history.length + 1 })}`}
            rows={page.data.entries}
            columns={[
              { key: "seq", label: t("col.seq"), numeric: true },
              { key: "at", label: t("col.at"), render: (e) => time(e.at, locale) },
              { key: "kind", label: t("col.kind") },
              { key: "job", label: t("col.job"), render: (e) => e.job ?? "—" },
              { key: "body", label: t("col.body"), render: (e) => <span class="mono">{JSON.stringify(e.body)}</span> },
              { key: "hash", label: t("col.hash"), render: (e) => <span class="mono">{e.hash.slice(0, 16)}…</span> },
            ]}
          />
        ) : null}
        <div class="pager">
          <button type="button" disabled={history.length === 0} onClick={() => { setAfter(history[history.length - 1] ?? 0); setHistory(history.slice(0, -1)); }}>
            {t("common.previous")}
          </button>
          <button type="button" disabled={page.data?.next === undefined} onClick={() => { setHistory([...history, after]); setAfter(page.data?.next ?? after); }}>
            {t("common.next")}
          </button>
        </div>
      </Section>
    </>
  );
}
