/** The party console (/console/party/): its pages and their hash routes. */
import { startConsole } from "../shared/shell.js";
import { useT } from "../shared/i18n/index.js";
import { PageTitle } from "../shared/components.js";
import { Overview } from "./pages/overview.js";
import { Datasets } from "./pages/datasets.js";
import { Register } from "./pages/register.js";
import { Products } from "./pages/products.js";
import { Catalogue } from "./pages/catalogue.js";
import { Contracts } from "./pages/contracts.js";
import { NewJob } from "./pages/new-job.js";
import { Jobs } from "./pages/jobs.js";
import { Job } from "./pages/job.js";
import { Receipts } from "./pages/receipts.js";

function NotFound() {
  const t = useT();
  return <PageTitle>{t("page.notFound")}</PageTitle>;
}

startConsole({
  kind: "party",
  pages: [
    { id: "overview", label: "page.overview" },
    { id: "datasets", label: "page.datasets" },
    { id: "register", label: "page.register" },
    { id: "products", label: "page.products" },
    { id: "catalogue", label: "page.catalogue" },
    { id: "contracts", label: "page.contracts" },
    { id: "new-job", label: "page.newJob" },
    { id: "jobs", label: "page.jobs" },
    { id: "receipts", label: "page.receipts" },
  ],
  page: ([first, second]) => {
    switch (first) {
      case "overview":
        return <Overview />;
      case "datasets":
        return <Datasets />;
      case "register":
        return <Register />;
      case "products":
        return <Products />;
      case "catalogue":
        return <Catalogue />;
      case "contracts":
        return <Contracts />;
      case "new-job":
        return <NewJob />;
      case "jobs":
        return second !== undefined ? <Job id={second} key={second} /> : <Jobs />;
      case "receipts":
        return <Receipts />;
      default:
        return <NotFound />;
    }
  },
});
