/** Hash routing: `#/datasets`, `#/jobs/ID`: the route's parts, re-rendered on every hashchange. */
import { useEffect, useState } from "preact/hooks";

export function parts(): string[] {
  const h = location.hash.replace(/^#\/?/, "");
  return h.split("/").filter((p) => p !== "").map((p) => decodeURIComponent(p));
}

export function useRoute(): string[] {
  const [route, setRoute] = useState(parts);
  useEffect(() => {
    const on = () => setRoute(parts());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

export function go(path: string): void {
  location.hash = path;
}

export const href = (...p: string[]): string => `#/${p.map(encodeURIComponent).join("/")}`;
