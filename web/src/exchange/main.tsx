/** The exchange console (/console/exchange/): its pages and their hash routes. */
import { startConsole } from "../shared/shell.js";
import { useT } from "../shared/i18n/index.js";
import { PageTitle } from "../shared/components.js";
import { Health } from "./pages/health.js";
import { Parties } from "./pages/parties.js";
import { Catalogue } from "./pages/catalogue.js";
import { Jobs } from "./pages/jobs.js";
import { Ledger } from "./pages/ledger.js";

function NotFound() {
  const t = useT();
  return <PageTitle>{t("page.notFound")}</PageTitle>;
}

startConsole({
  kind: "exchange",
  pages: [
    { id: "overview", label: "page.health" },
    { id: "parties", label: "page.parties" },
    { id: "catalogue", label: "page.catalogue" },
    { id: "jobs", label: "page.jobs" },
    { id: "ledger", label: "page.ledger" },
  ],
  page: ([first]) => {
    switch (first) {
      case "overview":
        return <Health />;
      case "parties":
        return <Parties />;
      case "catalogue":
        return <Catalogue />;
      case "jobs":
        return <Jobs />;
      case "ledger":
        return <Ledger />;
      default:
        return <NotFound />;
    }
  },
});
