/** What the exchange's route plugins are given: the shared context and the services built on it. */
import type { ExchangeContext } from "./context.js";
import type { JobLifecycle } from "./lifecycle.js";
import type { RoleRunner } from "./roles.js";

export interface ExchangeServices {
  readonly ctx: ExchangeContext;
  readonly jobs: JobLifecycle;
  readonly roles: RoleRunner;
}
