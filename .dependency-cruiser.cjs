/**
 * The layering rule of CONTRIBUTING.md, checked: imports go node -> protocols
 * -> engine and never back, and the production code (engine/, protocols/,
 * node/) has no import cycles. bench/, examples/ and test/ may import
 * anything; they are not part of the cycle rule.
 *
 * Run: npm run lint:deps
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "engine-not-to-protocols-or-node",
      comment:
        "engine/ is a library: it never imports protocols/ or node/ (see CONTRIBUTING.md, 'How the layers fit').",
      severity: "error",
      from: { path: "^engine/" },
      to: { path: "^(protocols|node)/" },
    },
    {
      name: "protocols-not-to-node",
      comment:
        "protocols/ are transport-free state machines: they never import node/ (see CONTRIBUTING.md, 'How the layers fit').",
      severity: "error",
      from: { path: "^protocols/" },
      to: { path: "^node/" },
    },
    {
      name: "no-circular",
      comment:
        "No import cycles in the production code (engine/, protocols/, node/): split the shared part into its own module.",
      severity: "error",
      from: { path: "^(engine|protocols|node)/" },
      to: { circular: true, path: "^(engine|protocols|node)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".d.ts"],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
