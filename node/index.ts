/**
 * umbra/node: the node layer (I/O, CLI). Today: the command-line entry
 * points and the demo; the exchange and party servers build here.
 */
export { runDemo, type DemoOptions, type DemoResult } from "./demo.js";
