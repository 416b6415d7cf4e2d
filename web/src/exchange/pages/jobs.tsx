import { useState } from "preact/hooks";
import { ErrorNote, JobStateFilter, Loading, PageTitle, StatusBadge, Table } from "../../shared/components.js";
import { duration, time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";

interface Job {
  id: string;
  protocol: string;
  buyer: string;
  providers: string[];
  state: string;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

export function Jobs() {
  const { t, locale } = useI18n();
  const [state, setState] = useState("");
  const r = useApi<{ jobs: Job[] }>(`/v1/admin/jobs?limit=200${state ? `&state=${state}` : ""}`);
  return (
    <>
      <PageTitle>{t("page.jobs")}</PageTitle>
      <JobStateFilter value={state} onChange={setState} />
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      {r.data ? (
        <Table
          caption={t("page.jobs")}
          rows={r.data.jobs}
          columns={[
            { key: "id", label: t("col.id"), render: (j) => <span class="mono id">{j.id}</span> },
            { key: "state", label: t("col.state"), render: (j) => <StatusBadge state={j.state} /> },
            { key: "protocol", label: t("col.protocol") },
            { key: "buyer", label: t("col.buyer") },
            { key: "providers", label: t("col.providers"), render: (j) => j.providers.join(", ") },
            { key: "createdAt", label: t("col.created"), render: (j) => time(j.createdAt, locale) },
            { key: "duration", label: t("col.duration"), render: (j) => duration((j.updatedAt - j.createdAt) / 1000) },
            { key: "reason", label: t("col.reason"), render: (j) => <span class="mono">{j.reason ?? "—"}</span> },
          ]}
        />
      ) : null}
    </>
  );
}
