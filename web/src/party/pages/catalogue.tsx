import { ErrorNote, Loading, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";
import { keyLabel, type CatalogEntry, type ProductView } from "../types.js";

export function Catalogue() {
  const t = useT();
  const ds = useApi<{ datasets: CatalogEntry[] }>("/v1/datasets");
  const ps = useApi<{ products: ProductView[] }>("/v1/products");
  return (
    <>
      <PageTitle>{t("page.catalogue")}</PageTitle>
      <Section title={t("catalogue.datasets")}>
        <Loading when={ds.loading} />
        <ErrorNote error={ds.error} />
        {ds.data ? (
          <Table
            caption={t("catalogue.datasets")}
            rows={ds.data.datasets}
            columns={[
              { key: "id", label: t("col.id"), render: (d) => <span class="mono">{d.id}</span> },
              { key: "owner", label: t("col.owner") },
              { key: "rowCount", label: t("col.rows"), numeric: true },
              { key: "schema", label: t("col.schema"), render: (d) => d.schema.map((f) => `${f.name}: ${f.type}`).join(", ") },
              { key: "allowedProtocols", label: t("col.protocols"), render: (d) => d.allowedProtocols.join(", ") },
              { key: "keyColumns", label: t("col.keyColumns"), render: (d) => d.keyColumns.map(keyLabel).join(", ") },
              { key: "outputColumns", label: t("col.outputColumns"), render: (d) => d.outputColumns.join(", ") },
            ]}
          />
        ) : null}
      </Section>
      <Section title={t("catalogue.products")}>
        <Loading when={ps.loading} />
        <ErrorNote error={ps.error} />
        {ps.data ? (
          <Table
            caption={t("catalogue.products")}
            rows={ps.data.products}
            columns={[
              { key: "id", label: t("col.id"), render: (p) => <span class="mono">{p.id}</span> },
              { key: "title", label: t("col.title") },
              { key: "owner", label: t("col.owner") },
              { key: "datasets", label: t("col.datasets"), render: (p) => p.datasets.join(", ") },
              { key: "protocols", label: t("col.protocols"), render: (p) => p.protocols.join(", ") },
              { key: "prices", label: t("col.prices"), render: (p) => <span class="mono">{JSON.stringify(p.prices)}</span> },
              { key: "state", label: t("col.state"), render: (p) => <StatusBadge state={p.state} /> },
            ]}
          />
        ) : null}
      </Section>
    </>
  );
}
