import { useState } from "preact/hooks";
import { BarChart } from "../../shared/charts.js";
import { ErrorNote, Loading, PageTitle, Section, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";

interface Listed {
  id: string;
  job: string;
  buyer: string;
  currency: string;
  amount: number;
  acknowledged: boolean;
  receipt: { at?: string };
}
interface Statement {
  rows: { receipt: string; job: string; at: string; role: "buyer" | "provider"; currency: string; amount: number }[];
  totals: { currency: string; role: string; amount: number; receipts: number }[];
}
const DAY = 86_400_000;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export function Receipts() {
  const { t, locale } = useI18n();
  const [from, setFrom] = useState(day(Date.now() - 30 * DAY));
  const [to, setTo] = useState(day(Date.now() + DAY));
  const range = `from=${Date.parse(from)}&to=${Date.parse(to)}`;
  const receipts = useApi<{ receipts: Listed[] }>("/v1/receipts");
  const statement = useApi<Statement>(Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to)) ? null : `/v1/statement?${range}`);
  const rows = statement.data?.rows ?? [];
  const currencies = [...new Set(rows.map((r) => r.currency))];
  return (
    <>
      <PageTitle>{t("page.receipts")}</PageTitle>
      <Section title={t("receipts.statement")}>
        <div class="form-row">
          <div class="field">
            <label for="st-from">{t("receipts.from")}</label>
            <input id="st-from" type="date" value={from} onChange={(e) => setFrom((e.currentTarget as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="st-to">{t("receipts.to")}</label>
            <input id="st-to" type="date" value={to} onChange={(e) => setTo((e.currentTarget as HTMLInputElement).value)} />
          </div>
        </div>
        <Loading when={statement.loading} />
        <ErrorNote error={statement.error} />
        <ul>
          {(statement.data?.totals ?? []).map((x, i) => (
            <li key={i}>{t("receipts.totals", { role: x.role === "buyer" ? t("receipts.spend") : t("receipts.revenue"), currency: x.currency, amount: x.amount.toLocaleString(locale), receipts: x.receipts })}</li>
          ))}
        </ul>
        {currencies.map((c) => {
          const byDay = new Map<string, { spend: number; revenue: number }>();
          for (const r of rows.filter((x) => x.currency === c)) {
            const d = r.at.slice(0, 10);
            const v = byDay.get(d) ?? { spend: 0, revenue: 0 };
            if (r.role === "buyer") v.spend += r.amount;
            else v.revenue += r.amount;
            byDay.set(d, v);
          }
          const bars = [...byDay.entries()].sort().flatMap(([d, v]) => [
            ...(v.spend > 0 ? [{ label: `${d} ${t("receipts.spend")}`, value: v.spend }] : []),
            ...(v.revenue > 0 ? [{ label: `${d} ${t("receipts.revenue")}`, value: v.revenue }] : []),
          ]);
          return <BarChart key={c} title={t("receipts.chart", { currency: c })} bars={bars} />;
        })}
      </Section>
      <Section title={t("receipts.title")}>
        <Loading when={receipts.loading} />
        <ErrorNote error={receipts.error} />
        {receipts.data ? (
          <Table
            caption={t("receipts.title")}
            rows={receipts.data.receipts}
            columns={[
              { key: "id", label: t("col.receipt"), render: (r) => <span class="mono id">{r.id}</span> },
              { key: "job", label: t("col.job"), render: (r) => <a class="mono" href={`#/jobs/${encodeURIComponent(r.job)}`}>{r.job}</a> },
              { key: "buyer", label: t("col.buyer") },
              { key: "amount", label: t("col.amount"), numeric: true, render: (r) => r.amount.toLocaleString(locale) },
              { key: "currency", label: t("col.currency") },
              { key: "at", label: t("col.at"), render: (r) => time(r.receipt.at, locale) },
              { key: "acknowledged", label: t("receipts.acknowledged"), render: (r) => (r.acknowledged ? t("common.yes") : t("common.no")) },
            ]}
          />
        ) : null}
      </Section>
    </>
  );
}
