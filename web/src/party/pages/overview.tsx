import { ErrorNote, Loading, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";

interface Status {
  name: string;
  exchange: string;
  runningJobs: number;
}
interface HeadAnswer {
  head: { size: number; root: string; at: number };
  exchange: string | null;
  inconsistent: { reason: string; foundAt: string }[];
}

export function Overview() {
  const { t, locale } = useI18n();
  const status = useApi<Status>("/v1/status");
  const head = useApi<HeadAnswer>("/v1/exchange/head");
  const h = head.data;
  return (
    <>
      <PageTitle>{t("page.overview")}</PageTitle>
      <Loading when={status.loading} />
      <ErrorNote error={status.error} />
      {status.data ? (
        <Section title={status.data.name}>
          <dl class="facts">
            <dt>{t("overview.name")}</dt>
            <dd>{status.data.name}</dd>
            <dt>{t("overview.exchange")}</dt>
            <dd class="mono">{status.data.exchange}</dd>
            <dt>{t("overview.running")}</dt>
            <dd>{status.data.runningJobs}</dd>
          </dl>
        </Section>
      ) : null}
      <Section title={t("overview.head")}>
        {head.error?.status === 404 ? <p>{t("overview.noHead")}</p> : <ErrorNote error={head.error} />}
        {h ? (
          <>
            <dl class="facts">
              <dt>{t("overview.headSize")}</dt>
              <dd>{h.head.size}</dd>
              <dt>{t("overview.headRoot")}</dt>
              <dd class="mono">{h.head.root}</dd>
              <dt>{t("overview.headAt")}</dt>
              <dd>{time(h.head.at, locale)}</dd>
              <dt>{t("overview.fingerprint")}</dt>
              <dd class="mono">{h.exchange ?? "—"}</dd>
            </dl>
            {h.inconsistent.length === 0 ? (
              <p class="ok-note">
                <StatusBadge state="passed" /> {t("overview.consistent")}
              </p>
            ) : (
              <>
                <p class="error" role="alert">{t("overview.inconsistent")}</p>
                <Table
                  caption={t("overview.inconsistent")}
                  rows={h.inconsistent}
                  columns={[
                    { key: "reason", label: t("overview.reason") },
                    { key: "foundAt", label: t("overview.foundAt"), render: (r) => time(r.foundAt, locale) },
                  ]}
                />
              </>
            )}
          </>
        ) : null}
      </Section>
    </>
  );
}
