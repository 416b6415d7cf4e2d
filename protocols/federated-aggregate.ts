/**
 * The path federated-aggregate had as one file, kept for the modules that
 * import it (protocols/join-aggregate.ts takes `AggregateSpec` from here,
 * which now lives in protocols/aggregate.ts). The protocol is the folder
 * protocols/federated-aggregate/; import from there, and remove this file
 * once nothing imports it.
 */
export * from "./federated-aggregate/index.js";
