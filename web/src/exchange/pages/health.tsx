import { BarChart } from "../../shared/charts.js";
import { ErrorNote, Loading, PageTitle, Section } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";
import type { TreeHeadJson } from "../../shared/verify/ledger.js";

interface Overview {
  exchange: { name: string; fingerprint: string; signingPublicKey: string };
  counts: { parties: number; datasets: number; products: number; contracts: number; receipts: number; jobs: Record<string, number> };
  health: { mailboxes: Record<string, { frames: number; bytes: number }>; queuedBytes: number; inMemory: { roleJobs: number; activity: number }; pool: { threads: number; utilization: number } | null };
  head: TreeHeadJson;
}

export function Health() {
  const { t, locale } = useI18n();
  const r = useApi<Overview>("/v1/admin/overview");
  const o = r.data;
  return (
    <>
      <PageTitle>{t("page.health")}</PageTitle>
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      <button type="button" onClick={r.reload}>{t("common.reload")}</button>
      {o ? (
        <>
          <div class="grid">
            <Section title={t("health.exchange")}>
              <dl class="facts">
                <dt>{t("col.name")}</dt>
                <dd>{o.exchange.name}</dd>
                <dt>{t("col.fingerprint")}</dt>
                <dd class="mono">{o.exchange.fingerprint}</dd>
              </dl>
            </Section>
            <Section title={t("health.counts")}>
              <dl class="facts">
                <dt>{t("health.parties")}</dt><dd>{o.counts.parties}</dd>
                <dt>{t("health.datasets")}</dt><dd>{o.counts.datasets}</dd>
                <dt>{t("health.products")}</dt><dd>{o.counts.products}</dd>
                <dt>{t("health.contracts")}</dt><dd>{o.counts.contracts}</dd>
                <dt>{t("health.receipts")}</dt><dd>{o.counts.receipts}</dd>
              </dl>
            </Section>
            <Section title={t("health.head")}>
              <dl class="facts">
                <dt>{t("ledger.size")}</dt><dd>{o.head.size}</dd>
                <dt>{t("ledger.root")}</dt><dd class="mono">{o.head.root}</dd>
                <dt>{t("ledger.at")}</dt><dd>{time(o.head.at, locale)}</dd>
              </dl>
            </Section>
          </div>
          <Section title={t("health.jobs")}>
            <BarChart title={t("health.jobs")} bars={Object.entries(o.counts.jobs).map(([s, n]) => ({ label: s, value: n }))} />
          </Section>
          <Section title={t("health.mailboxes")}>
            <BarChart title={t("health.mailboxes")} bars={Object.entries(o.health.mailboxes).map(([who, m]) => ({ label: who, value: m.frames }))} />
            <p>{t("health.queued")}: {o.health.queuedBytes.toLocaleString(locale)}</p>
          </Section>
          <Section title={t("health.pool")}>
            <p>{o.health.pool ? t("health.poolUse", { threads: o.health.pool.threads, pct: Math.round(o.health.pool.utilization * 100) }) : t("health.poolNone")}</p>
            <p>{t("health.inMemory", { roleJobs: o.health.inMemory.roleJobs, activity: o.health.inMemory.activity })}</p>
          </Section>
        </>
      ) : null}
    </>
  );
}
