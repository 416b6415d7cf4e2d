import { ErrorNote, Loading, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";

interface Dataset {
  id: string;
  owner: string;
  name: string;
  schema: { name: string; type: string }[];
  rowCount: number;
  policyVersion: number;
  policy: Record<string, unknown>;
}
interface Product {
  id: string;
  title: string;
  owner?: string;
  datasets: string[];
  protocols: string[];
  state?: string;
}

export function Catalogue() {
  const t = useT();
  const r = useApi<{ datasets: Dataset[]; products: Product[] }>("/v1/admin/catalog");
  return (
    <>
      <PageTitle>{t("page.catalogue")}</PageTitle>
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      {r.data ? (
        <>
          <Section title={t("col.datasets")}>
            <Table
              caption={t("col.datasets")}
              rows={r.data.datasets}
              columns={[
                { key: "id", label: t("col.id"), render: (d) => <span class="mono id">{d.id}</span> },
                { key: "owner", label: t("col.owner") },
                { key: "rowCount", label: t("col.rows"), numeric: true },
                { key: "schema", label: t("col.schema"), render: (d) => d.schema.map((f) => `${f.name}: ${f.type}`).join(", ") },
                { key: "policyVersion", label: t("col.policyVersion"), numeric: true },
                { key: "policy", label: t("col.protocols"), render: (d) => <span class="mono">{JSON.stringify(d.policy)}</span> },
              ]}
            />
          </Section>
          <Section title={t("catalogue.products")}>
            <Table
              caption={t("catalogue.products")}
              rows={r.data.products}
              columns={[
                { key: "id", label: t("col.id"), render: (p) => <span class="mono id">{p.id}</span> },
                { key: "title", label: t("col.title") },
                { key: "owner", label: t("col.owner") },
                { key: "datasets", label: t("col.datasets"), render: (p) => p.datasets.join(", ") },
                { key: "protocols", label: t("col.protocols"), render: (p) => p.protocols.join(", ") },
                { key: "state", label: t("col.state"), render: (p) => (p.state ? <StatusBadge state={p.state} /> : "—") },
              ]}
            />
          </Section>
        </>
      ) : null}
    </>
  );
}
