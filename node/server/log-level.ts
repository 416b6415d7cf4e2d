/**
 * The log level of a node's chatty routes (mailbox long-polls, relayed
 * frames, progress events, status polls): their request lines show only at
 * --log-level debug; at info (the default) a session logs what happened to
 * jobs and parties, not each poll. A route's logLevel replaces the node's for
 * its requests, so it is never set below the node's own (error stays error).
 */
import type { FastifyInstance, LogLevel } from "fastify";

const ORDER: readonly string[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** The level for `app`'s chatty routes: the node's when it is debug or quieter than warn, else warn. */
export function chattyLogLevel(app: FastifyInstance): LogLevel {
  const level = app.log.level as LogLevel;
  return ORDER.indexOf(level) <= ORDER.indexOf("debug") || ORDER.indexOf(level) > ORDER.indexOf("warn") ? level : "warn";
}
