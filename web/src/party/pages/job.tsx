/**
 * A job's page: its state and each party's progress (as describeStatus
 * computes it), live from GET /v1/jobs/:id/stream (read with fetch: the
 * token), a throughput chart from the stream's samples; on success the
 * result preview, a chart when it has one group column and numeric ones,
 * and downloads; on failure or refusal the failure view.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, download, get, post, request } from "../../shared/api.js";
import { BarChart, LineChart, type Point } from "../../shared/charts.js";
import { ConfirmButton, ErrorNote, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { codeOf, duration, FINAL_STATES, progressOf, ruleOf, time, type JobView } from "../../shared/format.js";
import { hasKey, useI18n } from "../../shared/i18n/index.js";
import { readSse } from "../../shared/sse.js";

type Preview =
  | { kind: "table"; columns: { name: string; type: string }[]; rows: unknown[][]; total: number }
  | { kind: "count"; count: number }
  | { kind: "withheld"; minIntersection: number };

const NUMERIC = /^(int|uint|float|double|decimal|number)/i;

function useJobStream(id: string): { job: JobView | undefined; samples: Point[]; error: ApiError | undefined } {
  const [job, setJob] = useState<JobView | undefined>(undefined);
  const [samples, setSamples] = useState<Point[]>([]);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  useEffect(() => {
    const ac = new AbortController();
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    const seen = (j: JobView) => {
      setJob(j);
      const rows = progressOf(j, Date.now()).rows;
      if (rows.length > 0) setSamples((s) => [...s.slice(-299), { x: Date.now(), y: Math.round(rows.reduce((n, r) => n + r.rate, 0)) }]);
    };
    (async () => {
      try {
        const res = await request(`${path}/stream`, { signal: ac.signal, headers: { accept: "text/event-stream" } });
        if (res.body === null) throw new ApiError(0, "UMBRA_INTERNAL", "no stream");
        for await (const ev of readSse(res.body)) if (ev.event === "job") seen(JSON.parse(ev.data) as JobView);
      } catch (e) {
        if (ac.signal.aborted) return;
        // No stream (busy, or an older agent): poll the job instead.
        try {
          for (;;) {
            const j = await get<JobView>(path, ac.signal);
            seen(j);
            if (FINAL_STATES.includes(j.state)) break;
            await new Promise((r) => setTimeout(r, 1000));
          }
        } catch (e2) {
          if (!ac.signal.aborted) setError(e2 instanceof ApiError ? e2 : e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e2)));
        }
      }
    })();
    return () => ac.abort();
  }, [id]);
  return { job, samples, error };
}

export function Job({ id }: { id: string }) {
  const { t, locale } = useI18n();
  const { job, samples, error } = useJobStream(id);
  const [preview, setPreview] = useState<Preview | undefined>(undefined);
  const [previewError, setPreviewError] = useState<ApiError | undefined>(undefined);
  const [dlError, setDlError] = useState<ApiError | undefined>(undefined);
  const succeeded = job?.state === "succeeded";
  useEffect(() => {
    if (!succeeded) return;
    get<Preview>(`/v1/jobs/${encodeURIComponent(id)}/result/preview?limit=200`)
      .then(setPreview)
      .catch((e: unknown) => setPreviewError(e instanceof ApiError ? e : undefined));
  }, [succeeded, id]);
  const now = Date.now();
  const prog = job ? progressOf(job, now) : { rows: [], counts: [] };
  const dl = (format: "csv" | "arrow") => async () => {
    setDlError(undefined);
    try {
      await download(`/v1/jobs/${encodeURIComponent(id)}/result?format=${format}`, `${id}.${format}`);
    } catch (e) {
      setDlError(e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)));
    }
  };

  return (
    <>
      <PageTitle>{t("page.job", { id })}</PageTitle>
      <ErrorNote error={error} />
      {job ? (
        <Section title={t("job.state")}>
          <dl class="facts">
            <dt>{t("job.state")}</dt>
            <dd aria-live="polite">
              <StatusBadge state={job.state} testid="job-state" />
            </dd>
            <dt>{t("job.protocol")}</dt>
            <dd>{job.protocol}</dd>
            <dt>{t("job.buyer")}</dt>
            <dd>{job.buyer}</dd>
            <dt>{t("job.providers")}</dt>
            <dd>{job.providers.join(", ")}</dd>
            <dt>{t("job.created")}</dt>
            <dd>{time(job.createdAt, locale)}</dd>
            <dt>{t("job.updated")}</dt>
            <dd>{time(job.updatedAt, locale)}</dd>
          </dl>
          {job.warnings && job.warnings.length > 0 ? (
            <>
              <h3>{t("job.warnings")}</h3>
              <ul>{job.warnings.map((w, i) => <li key={i}>{w}</li>)}</ul>
            </>
          ) : null}
          {!FINAL_STATES.includes(job.state) ? <ConfirmButton danger label={t("job.cancel")} onConfirm={async () => void (await post(`/v1/jobs/${encodeURIComponent(id)}/cancel`))} /> : null}
        </Section>
      ) : null}
      {prog.rows.length > 0 || prog.counts.length > 0 ? (
        <Section title={t("job.progress")}>
          <div data-testid="progress">
            {prog.rows.map((r) => {
              const text = t("job.progressOf", { who: r.who, phase: r.phase, pct: r.pct, done: r.done.toLocaleString(locale), total: r.total.toLocaleString(locale), rate: Math.round(r.rate).toLocaleString(locale), eta: r.eta !== undefined ? t("job.eta", { d: duration(r.eta) }) : "" });
              return (
                <div class="progress-row" key={r.who}>
                  <label for={`p-${r.who}`}>{text}</label>
                  <progress id={`p-${r.who}`} max={Math.max(1, r.total)} value={Math.min(r.done, r.total)} aria-valuetext={text} />
                </div>
              );
            })}
            {prog.counts.length > 0 ? <p>{prog.counts.map((c) => `${c.who}: ${c.n.toLocaleString(locale)}`).join(", ")}</p> : null}
          </div>
          {samples.length > 1 ? <LineChart title={t("job.throughput")} points={samples} unit=" rows/s" /> : null}
        </Section>
      ) : null}
      {job && (job.state === "failed" || job.state === "refused") ? <Failure job={job} /> : null}
      {succeeded ? (
        <Section title={t("job.result")}>
          <ErrorNote error={previewError} />
          {preview ? <ResultPreview preview={preview} /> : null}
          <div class="actions">
            <button type="button" data-testid="download-csv" onClick={dl("csv")}>{t("job.downloadCsv")}</button>
            <button type="button" data-testid="download-arrow" onClick={dl("arrow")}>{t("job.downloadArrow")}</button>
          </div>
          <ErrorNote error={dlError} />
        </Section>
      ) : null}
    </>
  );
}

function ResultPreview({ preview }: { preview: Preview }) {
  const { t, locale } = useI18n();
  if (preview.kind === "count") return <p>{t("job.count", { count: preview.count.toLocaleString(locale) })}</p>;
  if (preview.kind === "withheld") return <p>{t("job.withheld", { min: preview.minIntersection })}</p>;
  const cols = preview.columns;
  const numeric = cols.map((c, i) => (NUMERIC.test(c.type) ? i : -1)).filter((i) => i >= 0);
  const groups = cols.map((c, i) => (NUMERIC.test(c.type) ? -1 : i)).filter((i) => i >= 0);
  const chartable = groups.length === 1 && numeric.length > 0 && preview.rows.length > 0 && preview.rows.length <= 50;
  const g = groups[0] as number;
  return (
    <>
      <Table
        caption={t("job.resultTotal", { shown: preview.rows.length, total: preview.total })}
        testid="result-table"
        rows={preview.rows}
        columns={cols.map((c, i) => ({ key: String(i), label: c.name, numeric: numeric.includes(i), render: (r: unknown[]) => (r[i] === null || r[i] === undefined ? "—" : String(r[i])) }))}
      />
      {chartable
        ? numeric.map((i) => (
            <BarChart
              key={i}
              title={t("job.resultChart", { column: (cols[i] as { name: string }).name, group: (cols[g] as { name: string }).name })}
              bars={preview.rows.filter((r) => typeof r[i] === "number" || (typeof r[i] === "string" && r[i] !== "" && !Number.isNaN(Number(r[i])))).map((r) => ({ label: String(r[g] ?? "∅"), value: Number(r[i]) }))}
            />
          ))
        : null}
    </>
  );
}

/** Why a job did not succeed (the job page's view of a failed or refused job; the new-job page's of a refused submission). */
export function Failure({ job, code: given }: { job: Pick<JobView, "state" | "reason" | "providers" | "by">; code?: string }) {
  const { t } = useI18n();
  const code = given ?? codeOf(job.reason) ?? (job.state === "refused" ? (job.reason?.startsWith("contract-") ? "UMBRA_CONTRACT_DENIED" : "UMBRA_POLICY_DENIED") : undefined);
  const rule = ruleOf(job.reason);
  const hintKey = code !== undefined ? `hint.${code}` : "";
  const ruleKey = rule !== undefined ? `rule.${rule}` : "";
  const party = job.by ?? (code === "UMBRA_CONTRACT_DENIED" ? t("failure.partyContract", { providers: job.providers.join(", ") }) : rule !== undefined ? t("failure.partyPolicy", { providers: job.providers.join(", ") }) : code === "UMBRA_BELOW_MINIMUM" ? t("failure.partyBuyer") : t("failure.partyUnknown"));
  return (
    <section class="card failure" data-testid="failure" aria-labelledby="failure-h">
      <h2 id="failure-h">{t("failure.title")}</h2>
      <dl class="facts">
        <dt>{t("failure.code")}</dt>
        <dd class="mono">{code ?? job.reason ?? "—"}</dd>
        {job.reason !== null && job.reason !== code ? (
          <>
            <dt>{t("col.reason")}</dt>
            <dd class="mono">{job.reason}</dd>
          </>
        ) : null}
        {rule !== undefined ? (
          <>
            <dt>{t("failure.rule")}</dt>
            <dd>
              <span class="mono">{rule}</span>
              {hasKey(ruleKey) ? <> — {t(ruleKey)}</> : null}
            </dd>
          </>
        ) : null}
        <dt>{t("failure.party")}</dt>
        <dd>{party}</dd>
        <dt>{t("failure.todo")}</dt>
        <dd>{hasKey(ruleKey) && code === "UMBRA_CONTRACT_DENIED" ? t(ruleKey) : hasKey(hintKey) ? t(hintKey) : hasKey(ruleKey) ? t(ruleKey) : t("failure.noHint")}</dd>
      </dl>
    </section>
  );
}
