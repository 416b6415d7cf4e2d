import { useState } from "preact/hooks";
import { ApiError, post } from "../../shared/api.js";
import { ConfirmButton, ErrorNote, Loading, PageTitle, StatusBadge, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";
import type { ContractView } from "../types.js";

export function Contracts() {
  const { t, locale } = useI18n();
  const status = useApi<{ name: string }>("/v1/status");
  const r = useApi<{ contracts: ContractView[] }>("/v1/contracts");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [note, setNote] = useState<string | undefined>(undefined);
  const me = status.data?.name;
  const act = async (path: string, body: unknown) => {
    setError(undefined);
    setNote(undefined);
    try {
      const c = await post<{ id?: string; state?: string }>(path, body);
      if (c.id && c.state) setNote(t("contracts.done", { id: c.id, state: c.state }));
      r.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)));
    }
  };
  return (
    <>
      <PageTitle>{t("page.contracts")}</PageTitle>
      <p>{t("contracts.intro")}</p>
      <Loading when={r.loading} />
      <ErrorNote error={r.error ?? error} />
      <p role="status" class="ok-note">{note}</p>
      {r.data ? (
        <Table
          caption={t("page.contracts")}
          rows={r.data.contracts}
          columns={[
            { key: "id", label: t("col.id"), render: (c) => <span class="mono">{c.id}</span> },
            { key: "product", label: t("col.product"), render: (c) => `${c.product.id} v${c.product.version}` },
            { key: "buyer", label: t("col.buyer") },
            { key: "provider", label: t("col.provider") },
            { key: "quota", label: t("col.quota"), render: (c) => `${c.jobsUsed} / ${c.quotaJobs}`, numeric: true },
            { key: "notAfter", label: t("col.validUntil"), render: (c) => time(c.notAfter, locale) },
            { key: "state", label: t("col.state"), render: (c) => <StatusBadge state={c.state} /> },
            {
              key: "actions",
              label: t("col.actions"),
              render: (c) => (
                <div class="actions">
                  {c.state === "pending" && c.provider === me ? (
                    <>
                      <ConfirmButton label={t("contracts.approve")} onConfirm={() => act(`/v1/orders/${encodeURIComponent(c.id)}/approve`, {})} />
                      <ConfirmButton danger label={t("contracts.reject")} onConfirm={() => act(`/v1/orders/${encodeURIComponent(c.id)}/reject`, {})} />
                    </>
                  ) : null}
                  {c.state === "active" ? <ConfirmButton danger label={t("contracts.revoke")} onConfirm={() => act(`/v1/contracts/${encodeURIComponent(c.id)}/revoke`, {})} /> : null}
                </div>
              ),
            },
          ]}
        />
      ) : null}
    </>
  );
}
