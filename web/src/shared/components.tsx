/** Small shared components: status badge, table, progress, errors, confirmation, loading. */
import type { ComponentChildren, JSX } from "preact";
import { useState } from "preact/hooks";
import type { ApiError } from "./api.js";
import { hasKey, useT } from "./i18n/index.js";

const TONE: Record<string, string> = {
  succeeded: "ok", active: "ok", online: "ok", published: "ok", passed: "ok",
  failed: "bad", refused: "bad", rejected: "bad", revoked: "bad", offline: "muted",
  running: "info", submitted: "info", pending: "warn", cancelled: "muted", expired: "muted", withdrawn: "muted",
};

export function StatusBadge({ state, testid }: { state: string; testid?: string }) {
  const t = useT();
  const key = `state.${state}`;
  return (
    <span class={`badge badge-${TONE[state] ?? "muted"}`} data-testid={testid} data-state={state}>
      {hasKey(key) ? t(key) : state}
    </span>
  );
}

export interface Column<R> {
  readonly key: string;
  readonly label: string;
  readonly render?: (row: R) => ComponentChildren;
  readonly numeric?: boolean;
}

export function Table<R>({ caption, columns, rows, testid, empty }: { caption: string; columns: readonly Column<R>[]; rows: readonly R[]; testid?: string; empty?: string }) {
  const t = useT();
  if (rows.length === 0) return <p class="empty">{empty ?? t("common.none")}</p>;
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table data-testid={testid}>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col" class={c.numeric ? "num" : undefined}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}>
              {columns.map((c) => (
                <td key={c.key} class={c.numeric ? "num" : undefined}>
                  {c.render ? c.render(r) : cell((r as Record<string, unknown>)[c.key])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function ErrorNote({ error }: { error: ApiError | Error | undefined }) {
  const t = useT();
  if (!error) return null;
  const code = "code" in error ? (error as ApiError).code : "ERROR";
  return (
    <p class="error" role="alert">
      {t("common.error", { code, message: error.message })}
    </p>
  );
}

export function Loading({ when }: { when: boolean }) {
  const t = useT();
  return when ? (
    <p class="loading" role="status">
      {t("common.loading")}
    </p>
  ) : null;
}

/** A button that asks before it acts: a second, explicit "Confirm" and "Cancel" (`testid` on the first, `testid-confirm` on the second). */
export function ConfirmButton({ label, onConfirm, danger, testid, describedBy }: { label: string; onConfirm: () => void | Promise<void>; danger?: boolean; testid?: string; describedBy?: string }) {
  const t = useT();
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button type="button" class={danger ? "danger" : undefined} data-testid={testid} aria-describedby={describedBy} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={t("common.confirmQ", { action: label })}>
      <span>{t("common.confirmQ", { action: label })}</span>{" "}
      <button
        type="button"
        class={danger ? "danger" : "primary"}
        data-testid={testid !== undefined ? `${testid}-confirm` : undefined}
        aria-describedby={describedBy}
        disabled={busy}
        ref={(el) => el?.focus()}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {t("common.confirm")}: {label}
      </button>{" "}
      <button type="button" data-testid={testid !== undefined ? `${testid}-cancel` : undefined} onClick={() => setAsking(false)}>
        {t("common.cancel")}
      </button>
    </span>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section aria-labelledby={id ? `${id}-h` : undefined} class="card">
      <h2 id={id ? `${id}-h` : undefined}>{title}</h2>
      {children}
    </section>
  );
}

export function Field({ id, label, error, hint, children }: { id: string; label: string; error?: string | undefined; hint?: string; children: (a: { id: string; "aria-invalid"?: "true"; "aria-describedby"?: string }) => JSX.Element }) {
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter((x) => x !== "").join(" ");
  return (
    <div class={`field${error ? " invalid" : ""}`}>
      <label for={id}>{label}</label>
      {children({ id, ...(error ? { "aria-invalid": "true" as const } : {}), ...(described ? { "aria-describedby": described } : {}) })}
      {hint ? (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p class="field-error" id={`${id}-error`} data-testid={`error-${id.replace(/^f-/, "")}`}>
          {error}
        </p>
      ) : null}
    </div>
  );
}

export function PageTitle({ children }: { children: ComponentChildren }) {
  return (
    <h1 id="page-title" tabIndex={-1}>
      {children}
    </h1>
  );
}

const JOB_STATES = ["submitted", "running", "succeeded", "failed", "refused", "cancelled"] as const;

/** The jobs pages' filter: every state, or one. */
export function JobStateFilter({ value, onChange }: { value: string; onChange: (state: string) => void }) {
  const t = useT();
  return (
    <div class="field">
      <label for="jobs-state">{t("jobs.filter")}</label>
      <select id="jobs-state" value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
        <option value="">{t("common.all")}</option>
        {JOB_STATES.map((s) => (
          <option key={s} value={s}>
            {t(`state.${s}`)}
          </option>
        ))}
      </select>
    </div>
  );
}
