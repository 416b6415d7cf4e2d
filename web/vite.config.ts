/**
 * The console's build (docs/console.md): two pages, the party console and
 * the exchange console, bundled with their shared code into dist/console/
 * at `npm ci` (the prepare step) and served by the nodes under /console/.
 * Nothing is loaded from elsewhere at run time.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here("."),
  base: "/console/",
  logLevel: "warn",
  build: {
    outDir: here("../dist/console"),
    emptyOutDir: true,
    sourcemap: false,
    rollupOptions: { input: { party: here("party/index.html"), exchange: here("exchange/index.html") } },
  },
});
