import { BarChart } from "../../shared/charts.js";
import { ErrorNote, Loading, PageTitle, Section, Table } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";
import type { MyDataset } from "../types.js";

export function Datasets() {
  const t = useT();
  const r = useApi<{ datasets: MyDataset[] }>("/v1/datasets/mine");
  const list = r.data?.datasets ?? [];
  return (
    <>
      <PageTitle>{t("page.datasets")}</PageTitle>
      <p class="hint">{t("datasets.noRows")}</p>
      <p>
        <a href="#/register">{t("page.register")}</a>
      </p>
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      {r.data ? (
        <Table
          caption={t("page.datasets")}
          rows={list}
          columns={[
            { key: "name", label: t("col.name"), render: (d) => <><strong>{d.name}</strong><br /><span class="mono">{d.id}</span></> },
            { key: "rowCount", label: t("col.rows"), numeric: true },
            { key: "schema", label: t("col.schema"), render: (d) => d.schema.map((f) => `${f.name}: ${f.type}`).join(", ") },
            { key: "policyVersion", label: t("col.policyVersion"), numeric: true },
            { key: "certificateSeq", label: t("col.certificate"), numeric: true },
          ]}
        />
      ) : null}
      {list
        .filter((d) => d.budgets.length > 0)
        .map((d) => (
          <Section key={d.id} title={t("datasets.budgetChart", { name: d.name })}>
            <BarChart
              title={t("datasets.budgetChart", { name: d.name })}
              bars={d.budgets.map((b) => ({ label: b.buyer, value: b.remaining }))}
              unit={typeof d.policy["budgetUnit"] === "string" ? ` ${d.policy["budgetUnit"] as string}` : ""}
            />
          </Section>
        ))}
    </>
  );
}
