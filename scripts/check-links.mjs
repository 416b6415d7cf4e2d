#!/usr/bin/env node
/**
 * Checks the relative links of the repository's documentation: README.md,
 * CONTRIBUTING.md and every docs/**\/*.md.
 *
 * A link fails when its target file does not exist, when it points outside
 * the repository, climbs out of its own folder ("..": a page read apart from
 * its checkout keeps only links below it) or is an absolute path, or when its `#anchor` names no
 * heading of the target Markdown file (GitHub's slug rules: lower case,
 * punctuation dropped, spaces to hyphens, "-1", "-2" … for repeats; explicit
 * `<a id>`/`<a name>` anchors count too). A link into a non-Markdown file may
 * carry a GitHub line anchor (#L10, #L10-L20) only. External links (http:,
 * https:, mailto:, …) are not fetched. Links inside code blocks and code spans
 * are not links.
 *
 * Usage: node scripts/check-links.mjs [--root DIR] [FILE.md ...]
 *   --root DIR  the repository to check (default: this script's repository);
 *               without FILEs, its README.md, CONTRIBUTING.md and docs/**\/*.md
 * Exit 0 when every link resolves; 1, with one "file:line: link: reason" line
 * per broken link on stderr, otherwise.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const explicit = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--root") {
    const value = args[++i];
    if (value === undefined) usage("--root needs a folder");
    root = path.resolve(value);
  } else if (args[i] === "--help" || args[i] === "-h") {
    usage();
  } else {
    explicit.push(path.resolve(root, args[i]));
  }
}

function usage(message) {
  if (message) console.error(`check-links: ${message}`);
  console.error("usage: node scripts/check-links.mjs [--root DIR] [FILE.md ...]");
  process.exit(message ? 2 : 0);
}

/** The default set: README.md, CONTRIBUTING.md, docs/**\/*.md. */
function defaultFiles() {
  const files = [path.join(root, "README.md"), path.join(root, "CONTRIBUTING.md")];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith(".md")) files.push(full);
    }
  };
  walk(path.join(root, "docs"));
  return files;
}

/** GitHub's heading slug (github-slugger): lower case, keep letters, digits, marks, "_", "-" and spaces, spaces to "-". */
function slug(text) {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** A heading's rendered text: links and images to their text, code spans and emphasis marks and HTML tags dropped. */
function headingText(raw) {
  return raw
    .replace(/\s+#+\s*$/, "")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/!?\[([^\]]*)\]\[[^\]]*\]/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/`+/g, "")
    .replace(/\*+/g, "")
    .replace(/(^|\s)_+|_+(\s|$)/g, "$1$2")
    .trim();
}

/** Splits a Markdown file into lines, blanking fenced code blocks (so neither links nor headings are read there). */
function proseLines(text) {
  const lines = text.split(/\r?\n/);
  let fence = null;
  return lines.map((line) => {
    const open = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      const close = /^\s{0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) fence = null;
      return "";
    }
    if (open) {
      fence = open[1];
      return "";
    }
    return line;
  });
}

const anchorCache = new Map();
/** Every anchor a Markdown file defines: its headings' slugs (with GitHub's -1, -2 for repeats) and explicit id/name anchors. */
function anchorsOf(file) {
  let anchors = anchorCache.get(file);
  if (anchors) return anchors;
  anchors = new Set();
  const seen = new Map();
  const add = (base) => {
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  };
  const lines = proseLines(readFileSync(file, "utf8"));
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const atx = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
    if (atx) add(slug(headingText(atx[1])));
    else if (i + 1 < lines.length && line.trim() !== "" && /^\s{0,3}(=+|-+)\s*$/.test(lines[i + 1]) && !/^\s{0,3}([-*+]|\d+\.)\s/.test(line)) {
      add(slug(headingText(line)));
    }
    for (const m of line.matchAll(/<a\s+[^>]*(?:id|name)\s*=\s*"([^"]+)"/gi)) anchors.add(m[1]);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

/**
 * The links of one line of prose: inline links and images (every "](target)",
 * so a link whose text wraps onto earlier lines and an image inside a link
 * are both found), reference definitions, and HTML href/src attributes. Code
 * spans are dropped first.
 */
function linksOf(line) {
  const prose = line.replace(/(`+)(?:(?!\1).)+?\1/g, (span) => " ".repeat(span.length));
  const links = [];
  for (const m of prose.matchAll(/\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
    links.push(m[1].replace(/^<|>$/g, ""));
  }
  for (const m of prose.matchAll(/<(?:a|img)\s[^>]*?\b(?:href|src)\s*=\s*"([^"]*)"/gi)) links.push(m[1]);
  const def = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(prose);
  if (def) links.push(def[1].replace(/^<|>$/g, ""));
  return links;
}

/** Why a link from `file` is broken, or null when it resolves. */
function problem(file, link) {
  if (link === "") return "empty link";
  if (/^[a-z][a-z0-9+.-]*:/i.test(link) || link.startsWith("//")) return null; // external: not fetched
  const hash = link.indexOf("#");
  const rawPath = hash === -1 ? link : link.slice(0, hash);
  const anchor = hash === -1 ? null : link.slice(hash + 1);
  let target = file;
  if (rawPath !== "") {
    let decoded;
    try {
      decoded = decodeURIComponent(rawPath.split("?")[0]);
    } catch {
      return "malformed percent-encoding";
    }
    if (decoded.startsWith("/")) return "absolute path: use a path relative to this file";
    // A page read outside its checkout (a copied docs/ folder, a rendered page) keeps only links that stay below it.
    if (decoded.split("/").includes("..")) return "climbs out of this file's folder (..): name the file as code instead";
    target = path.resolve(path.dirname(file), decoded);
    const inside = path.relative(root, target);
    if (inside === "" ? false : inside.startsWith("..") || path.isAbsolute(inside)) return "points outside the repository";
    if (!existsSync(target)) return "no such file";
  }
  if (anchor === null) return null;
  if (statSync(target).isDirectory()) return "an anchor on a folder";
  if (!target.endsWith(".md")) {
    return /^L\d+(-L\d+)?$/.test(anchor) ? null : "an anchor into a non-Markdown file other than a line (#L10)";
  }
  let name;
  try {
    name = decodeURIComponent(anchor);
  } catch {
    return "malformed percent-encoding";
  }
  return anchorsOf(target).has(name) ? null : `no heading "#${anchor}" in ${path.relative(root, target)}`;
}

const files = explicit.length > 0 ? explicit : defaultFiles();
const broken = [];
let checked = 0;
for (const file of files) {
  const shown = path.relative(root, file) || file;
  if (!existsSync(file)) {
    broken.push(`${shown}: file not found`);
    continue;
  }
  const lines = proseLines(readFileSync(file, "utf8"));
  for (let i = 0; i < lines.length; i++) {
    for (const link of linksOf(lines[i])) {
      checked++;
      const why = problem(file, link);
      if (why) broken.push(`${shown}:${i + 1}: ${link}: ${why}`);
    }
  }
}

if (broken.length > 0) {
  for (const line of broken) console.error(line);
  console.error(`check-links: ${broken.length} broken link(s) of ${checked} in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`check-links: ${checked} link(s) in ${files.length} file(s), all resolve`);
