import { BarChart } from "../../shared/charts.js";
/**
 * Orders and contracts (docs/venue.md). An order is a contract in state
 * `pending` (GET /v1/contracts lists them with the rest, this party's as
 * buyer or provider): the provider approves it (POST /v1/orders/:id/approve,
 * its agent checks and signs it, the exchange countersigns) or rejects it
 * (POST /v1/orders/:id/reject, body `{}` or `{reason}` — a reason code); the
 * buyer may withdraw its own order, and either party revokes an active
 * contract (POST /v1/contracts/:id/revoke).
 */
import { useState } from "preact/hooks";
import { ApiError, post } from "../../shared/api.js";
import { ConfirmButton, ErrorNote, Loading, PageTitle, Section, StatusBadge, Table, type Column } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { hasKey, useI18n } from "../../shared/i18n/index.js";
import { PriceLines } from "../prices.js";
import type { ContractView } from "../types.js";

export function Contracts() {
  const { t, locale } = useI18n();
  const status = useApi<{ name: string }>("/v1/status");
  const r = useApi<{ contracts: ContractView[] }>("/v1/contracts");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [note, setNote] = useState<string | undefined>(undefined);
  const me = status.data?.name;
  const stateText = (s: string): string => {
    const key = `state.${s}`;
    return hasKey(key) ? t(key) : s;
  };
  const act = async (path: string, body: unknown) => {
    setError(undefined);
    setNote(undefined);
    try {
      const c = await post<{ id?: string; state?: string }>(path, body);
      if (c.id && c.state) setNote(t("contracts.done", { id: c.id, state: stateText(c.state) }));
      r.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)));
    }
  };
  const all = r.data?.contracts ?? [];
  const toApprove = me === undefined ? [] : all.filter((c) => c.state === "pending" && c.provider === me);
  const waiting = me === undefined ? [] : all.filter((c) => c.state === "pending" && c.buyer === me);
  const enc = encodeURIComponent;

  const idCol = (prefix: string): Column<ContractView> => ({ key: "id", label: t("col.id"), render: (c) => <span class="mono id" id={`${prefix}-${c.id}`}>{c.id}</span> });
  const productCol: Column<ContractView> = { key: "product", label: t("col.product"), render: (c) => `${c.product.id} v${c.product.version}` };
  const purposeCol: Column<ContractView> = { key: "purpose", label: t("col.purpose"), render: (c) => c.contract?.purpose ?? "—" };
  const pricesCol: Column<ContractView> = { key: "prices", label: t("col.prices"), render: (c) => <PriceLines prices={c.contract?.prices} /> };
  const windowCol: Column<ContractView> = { key: "window", label: t("col.window"), render: (c) => t("contracts.window", { from: time(c.notBefore, locale), to: time(c.notAfter, locale) }) };

  return (
    <>
      <PageTitle>{t("page.contracts")}</PageTitle>
      <p>{t("contracts.intro")}</p>
      <Loading when={r.loading || status.loading} />
      <ErrorNote error={r.error ?? status.error ?? error} />
      <p role="status" class="ok-note" data-testid="contracts-note">
        {note}
      </p>
      <p>
        <button type="button" onClick={() => r.reload()}>
          {t("common.reload")}
        </button>
      </p>
      {r.data && me !== undefined ? (
        <>
          <Section title={t("contracts.toApprove")} id="contracts-to-approve">
            <p class="hint">{t("contracts.toApproveHint")}</p>
            <Table
              caption={t("contracts.toApprove")}
              testid="orders-to-approve"
              rows={toApprove}
              empty={t("contracts.noneToApprove")}
              columns={[
                idCol("approve"),
                productCol,
                { key: "buyer", label: t("col.buyer") },
                purposeCol,
                { key: "quotaJobs", label: t("col.quotaJobs"), numeric: true, render: (c) => c.quotaJobs.toLocaleString(locale) },
                pricesCol,
                windowCol,
                {
                  key: "actions",
                  label: t("col.actions"),
                  render: (c) => (
                    <div class="actions">
                      <ConfirmButton label={t("contracts.approve")} testid={`approve-${c.id}`} describedBy={`approve-${c.id}`} onConfirm={() => act(`/v1/orders/${enc(c.id)}/approve`, {})} />
                      <ConfirmButton danger label={t("contracts.reject")} testid={`reject-${c.id}`} describedBy={`approve-${c.id}`} onConfirm={() => act(`/v1/orders/${enc(c.id)}/reject`, {})} />
                    </div>
                  ),
                },
              ]}
            />
          </Section>
          <Section title={t("contracts.waiting")} id="contracts-waiting">
            <Table
              caption={t("contracts.waiting")}
              testid="orders-waiting"
              rows={waiting}
              empty={t("contracts.noneWaiting")}
              columns={[
                idCol("waiting"),
                productCol,
                { key: "provider", label: t("col.provider") },
                purposeCol,
                { key: "quotaJobs", label: t("col.quotaJobs"), numeric: true, render: (c) => c.quotaJobs.toLocaleString(locale) },
                pricesCol,
                { key: "state", label: t("col.state"), render: (c) => <StatusBadge state={c.state} /> },
                {
                  key: "actions",
                  label: t("col.actions"),
                  render: (c) => <ConfirmButton danger label={t("contracts.withdrawOrder")} testid={`cancel-order-${c.id}`} describedBy={`waiting-${c.id}`} onConfirm={() => act(`/v1/contracts/${enc(c.id)}/revoke`, {})} />,
                },
              ]}
            />
          </Section>
          <Section title={t("contracts.all")} id="contracts-all">
            <Table
              caption={t("contracts.all")}
              testid="contracts-table"
              rows={all}
              columns={[
                idCol("contract"),
                productCol,
                { key: "buyer", label: t("col.buyer") },
                { key: "provider", label: t("col.provider") },
                purposeCol,
                { key: "quota", label: t("col.quota"), render: (c) => `${c.jobsUsed} / ${c.quotaJobs}`, numeric: true },
                {
                  key: "privacy",
                  label: t("col.privacy"),
                  render: (c) =>
                    (c.privacy ?? []).flatMap((p) => (p.budget !== null && p.buyers[0] ? [`${p.dataset}: ${p.buyers[0].spent} / ${p.budget}`] : [])).join("; ") || "—",
                },
                pricesCol,
                { key: "notAfter", label: t("col.validUntil"), render: (c) => time(c.notAfter, locale) },
                { key: "state", label: t("col.state"), render: (c) => <StatusBadge state={c.state} testid={`contract-state-${c.id}`} /> },
                { key: "reason", label: t("col.reason"), render: (c) => c.reason ?? "—" },
                {
                  key: "actions",
                  label: t("col.actions"),
                  render: (c) =>
                    c.state === "active" ? (
                      <ConfirmButton danger label={t("contracts.revoke")} testid={`revoke-${c.id}`} describedBy={`contract-${c.id}`} onConfirm={() => act(`/v1/contracts/${enc(c.id)}/revoke`, {})} />
                    ) : null,
                },
              ]}
            />
          </Section>
          {all.some((c) => c.state === "active") ? (
            <Section title={t("contracts.quotaChart")} id="contracts-quota">
              <BarChart
                title={t("contracts.quotaChart")}
                testid="quota-chart"
                bars={all.filter((c) => c.state === "active").map((c) => ({ label: `${c.product.id} (${c.buyer})`, value: c.jobsUsed, max: c.quotaJobs }))}
                unit={` ${t("contracts.jobs")}`}
              />
            </Section>
          ) : null}
        </>
      ) : null}
    </>
  );
}
