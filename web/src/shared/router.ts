/** Hash routing: `#/datasets`, `#/jobs/ID`: the route's parts, re-rendered on every hashchange. */
import { useEffect, useState } from "preact/hooks";

/** A part of the route decoded, or as it is when it is not a valid escape (a malformed `%` must not stop the page rendering). */
function decodePart(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

export function parts(): string[] {
  const h = location.hash.replace(/^#\/?/, "");
  return h.split("/").filter((p) => p !== "").map(decodePart);
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
