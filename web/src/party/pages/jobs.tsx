import { useState } from "preact/hooks";
import { ErrorNote, JobStateFilter, Loading, PageTitle, StatusBadge, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";
import { href } from "../../shared/router.js";

interface Item {
  id: string;
  protocol: string;
  role: string;
  state: string;
  createdAt: number;
  updatedAt: number;
  summary: string;
}

export function Jobs() {
  const { t, locale } = useI18n();
  const [state, setState] = useState("");
  const r = useApi<{ jobs: Item[] }>(`/v1/jobs${state ? `?state=${state}` : ""}`);
  return (
    <>
      <PageTitle>{t("page.jobs")}</PageTitle>
      <p>
        <a href="#/new-job">{t("page.newJob")}</a>
      </p>
      <JobStateFilter value={state} onChange={setState} />
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      {r.data ? (
        <Table
          caption={t("page.jobs")}
          rows={r.data.jobs}
          columns={[
            { key: "id", label: t("col.id"), render: (j) => <a class="mono id" href={href("jobs", j.id)}>{j.id}</a> },
            { key: "protocol", label: t("col.protocol") },
            { key: "role", label: t("col.role") },
            { key: "state", label: t("col.state"), render: (j) => <StatusBadge state={j.state} /> },
            { key: "createdAt", label: t("col.created"), render: (j) => time(j.createdAt, locale) },
            { key: "summary", label: t("col.summary") },
          ]}
        />
      ) : null}
    </>
  );
}
