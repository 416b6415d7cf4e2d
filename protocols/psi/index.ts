/**
 * psi and psi-cardinality: ECDH-PSI between a buyer and a provider — the
 * two roles (roles.ts) and the in-process runner (run.ts). The protocol, its
 * threat model and limits: docs/protocols/psi.md.
 */
export * from "./roles.js";
export { runPsi, RUN_PSI_OPTIONS, type PsiCardinalityResult, type PsiIntersectionResult, type PsiRunResult, type PsiRunStats, type PsiSide, type RunPsiOptions } from "./run.js";
export { runNoisyCardinality, RUN_NOISY_CARDINALITY_OPTIONS, type NoisyCardinalityResult, type RunNoisyCardinalityOptions } from "./noisy-cardinality.js";
