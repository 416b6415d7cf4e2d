/**
 * umbra/node: what the node layer exports as a library — today only
 * `runDemo` (with `DemoOptions`, `DemoResult`), the engine-only demo on
 * generated data that `umbra demo --local` runs (node/demo.ts).
 *
 * The rest of the node layer runs as processes through the `umbra` command
 * (node/cli.ts): the exchange and the party agent (node/server/), their
 * store and ledger, the jobs (node/jobs/) and the commands (node/commands/).
 * None of it is exported here.
 */
export { runDemo, type DemoOptions, type DemoResult } from "./demo.js";
