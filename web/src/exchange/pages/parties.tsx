import { ErrorNote, Loading, PageTitle, StatusBadge, Table } from "../../shared/components.js";
import { time } from "../../shared/format.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n } from "../../shared/i18n/index.js";

interface Party {
  name: string;
  fingerprint: string;
  signingPublicKey: string;
  boxPublicKey: string;
  registeredAt: number | string;
  lastSeenAt: number | string | null;
  online: boolean;
}

export function Parties() {
  const { t, locale } = useI18n();
  const r = useApi<{ parties: Party[] }>("/v1/admin/parties");
  return (
    <>
      <PageTitle>{t("page.parties")}</PageTitle>
      <Loading when={r.loading} />
      <ErrorNote error={r.error} />
      {r.data ? (
        <Table
          caption={t("page.parties")}
          rows={r.data.parties}
          columns={[
            { key: "name", label: t("col.name") },
            { key: "online", label: t("col.online"), render: (p) => <StatusBadge state={p.online ? "online" : "offline"} /> },
            { key: "lastSeenAt", label: t("col.lastSeen"), render: (p) => time(p.lastSeenAt, locale) },
            { key: "registeredAt", label: t("col.registered"), render: (p) => time(p.registeredAt, locale) },
            { key: "fingerprint", label: t("col.fingerprint"), render: (p) => <span class="mono">{p.fingerprint}</span> },
          ]}
        />
      ) : null}
    </>
  );
}
