import { useState } from "preact/hooks";
import { ErrorNote, Loading, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";
import { PriceLines } from "../prices.js";
import { keyLabel, type CatalogEntry, type ProductView } from "../types.js";
import { OrderForm } from "./order.js";

export function Catalogue() {
  const t = useT();
  const status = useApi<{ name: string }>("/v1/status");
  const ds = useApi<{ datasets: CatalogEntry[] }>("/v1/datasets");
  const ps = useApi<{ products: ProductView[] }>("/v1/products");
  const me = status.data?.name;
  const [ordering, setOrdering] = useState<string | undefined>(undefined);
  // Each Order click opens a fresh form (a new key), also after an order of the same product.
  const [opened, setOpened] = useState(0);
  const product = ps.data?.products.find((p) => p.id === ordering);
  const close = () => {
    const id = ordering;
    setOrdering(undefined);
    // The focus goes back to the product's Order button.
    if (id !== undefined) setTimeout(() => document.querySelector<HTMLElement>(`[data-testid="order-${CSS.escape(id)}"]`)?.focus(), 0);
  };
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
              { key: "id", label: t("col.id"), render: (d) => <span class="mono id">{d.id}</span> },
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
        <p>{t("catalogue.productsIntro")}</p>
        <Loading when={ps.loading} />
        <ErrorNote error={ps.error ?? status.error} />
        {ps.data ? (
          <Table
            caption={t("catalogue.products")}
            testid="catalogue-products"
            rows={ps.data.products}
            columns={[
              { key: "id", label: t("col.id"), render: (p) => <span class="mono id" id={`catalogue-product-${p.id}`}>{p.id}</span> },
              { key: "title", label: t("col.title") },
              { key: "owner", label: t("col.owner") },
              { key: "version", label: t("col.version"), numeric: true },
              { key: "datasets", label: t("col.datasets"), render: (p) => p.datasets.join(", ") },
              { key: "protocols", label: t("col.protocols"), render: (p) => p.protocols.join(", ") },
              { key: "prices", label: t("col.prices"), render: (p) => <PriceLines prices={p.prices} /> },
              { key: "state", label: t("col.state"), render: (p) => <StatusBadge state={p.state} /> },
              {
                key: "actions",
                label: t("col.actions"),
                render: (p) =>
                  me === undefined ? null : p.owner === me ? (
                    <a href="#/products">{t("catalogue.yours")}</a>
                  ) : p.state === "active" ? (
                    <button
                      type="button"
                      data-testid={`order-${p.id}`}
                      aria-describedby={`catalogue-product-${p.id}`}
                      aria-expanded={ordering === p.id ? "true" : "false"}
                      aria-controls={ordering === p.id ? "order-panel" : undefined}
                      onClick={() => {
                        setOrdering(p.id);
                        setOpened((n) => n + 1);
                      }}
                    >
                      {t("catalogue.order")}
                    </button>
                  ) : null,
              },
            ]}
          />
        ) : null}
        {product !== undefined && me !== undefined ? <OrderForm key={`${product.id}-${opened}`} product={product} me={me} onClose={close} /> : null}
      </Section>
    </>
  );
}
