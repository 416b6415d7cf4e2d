/** Control messages from the exchange to a party, and the events a party reports back. */
import type { JobRequest } from "../policy.js";

/** Envelope step of exchange control messages (protocol steps start at 1). */
export const CONTROL_STEP = 0;

export const ControlType = { Start: "job.start", Stop: "job.stop" } as const;
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

export type ControlMessage =
  | {
      readonly type: typeof ControlType.Start;
      readonly job: string;
      readonly role: "buyer" | "provider";
      readonly request: JobRequest;
      readonly counterpart: string;
      /** lookup: the product (the provider dataset) and its version (the policy version in force). */
      readonly lookup?: { readonly product: string; readonly version: number };
    }
  | { readonly type: typeof ControlType.Stop; readonly job: string; readonly reason: string };

export interface JobEvent {
  readonly kind: "accepted" | "refused" | "progress" | "succeeded" | "failed";
  readonly rule?: string;
  readonly reason?: string;
  readonly digest?: string;
  readonly progress?: unknown;
  readonly summary?: Record<string, number | string | null>;
}

/** The lookup product name of a dataset (a product version is its policy version). */
export function lookupProduct(datasetId: string): string {
  return datasetId.replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 128);
}
