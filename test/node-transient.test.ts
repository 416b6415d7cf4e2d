/**
 * Transient failures between the nodes (security finding 14).
 *
 * A party whose event loop was busy past the exchange's keepAliveTimeout
 * (5 s) still held, in its fetch pool, keep-alive connections the exchange
 * had closed meanwhile; the next request on one failed with undici's "other
 * side closed", which the party's API answered as 500 UMBRA_INTERNAL — and
 * `umbra job submit --wait` gave up on that one failed poll. Here a server
 * that drops the connection under a request stands for that stale
 * connection: the party's client sends a GET once more on a new
 * connection, and gives a typed error (not fetch's TypeError) for anything
 * it does not repeat; `waitForJob` repeats a poll that failed with a server
 * error, and gives up with a typed error after its retry window.
 *
 * A party checking a job.start's ledger record asks the exchange for its
 * inclusion proof; an exchange that is restarting (nothing listens, or it
 * answers 5xx) is asked again (`untilAvailable`) instead of failing the job
 * — the job.start is not delivered to the party again.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { waitForJob } from "../node/commands/jobs.js";
import { generateIdentity } from "../node/identity.js";
import { ExchangeClient, untilAvailable } from "../node/server/client.js";

let server: Server | undefined;

afterEach(async () => {
  const s = server;
  server = undefined;
  if (s) await new Promise<void>((r) => s.close(() => r()));
});

/** A loopback server; `answer` gets every request with its number (1, 2, …). */
async function serve(answer: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<string> {
  let n = 0;
  server = createServer((req, res) => answer(req, res, ++n));
  await new Promise<void>((r) => (server as Server).listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
};

/** Drops the connection under the second request (as a pooled connection the other side had closed), answers every other one with its number. */
const dropsTheSecond = (req: IncomingMessage, res: ServerResponse, n: number): void => {
  if (n === 2) req.socket.destroy();
  else json(res, 200, { answeredRequest: n });
};

describe("the party's client to the exchange", () => {
  it("sends a GET once more, on a new connection, when its pooled connection is closed under it", async () => {
    const client = new ExchangeClient(await serve(dropsTheSecond), generateIdentity("bank"));
    await client.json("GET", "/v1/identity");
    // Request 2 is dropped; request 3 is the same GET, sent again.
    expect(await client.json("GET", "/v1/jobs/job-1")).toEqual({ answeredRequest: 3 });
  });

  it("does not repeat a POST whose connection was closed under it, and says so with a typed error", async () => {
    const client = new ExchangeClient(await serve(dropsTheSecond), generateIdentity("bank"));
    await client.json("GET", "/v1/identity");
    await expect(client.json("POST", "/v1/jobs/job-1/events", { kind: "progress" })).rejects.toMatchObject({ code: "UMBRA_EXCHANGE_UNREACHABLE", status: 502 });
  });
});

describe("umbra job submit --wait", () => {
  it("survives a status poll that fails with a server error", async () => {
    const states = ["running", undefined, "succeeded"];
    const party = await serve((_req, res, n) => {
      const state = states[n - 1];
      if (state === undefined) json(res, 500, { error: { code: "UMBRA_INTERNAL", message: "internal error" } });
      else json(res, 200, { id: "job-1", state, reason: null, progress: null });
    });
    expect(await waitForJob({ url: party, token: "t".repeat(43) }, "job-1", undefined, 1, { firstDelayMs: 1 })).toMatchObject({ state: "succeeded" });
  });

  it("gives up with a typed error once no poll has succeeded for its retry window", async () => {
    const party = await serve((_req, res) => json(res, 502, { error: { code: "UMBRA_EXCHANGE_UNREACHABLE", message: "the exchange could not be reached" } }));
    await expect(waitForJob({ url: party, token: "t".repeat(43) }, "job-1", undefined, 1, { forMs: 200, firstDelayMs: 10, maxDelayMs: 50 })).rejects.toMatchObject({
      code: "UMBRA_JOB_STATUS_UNAVAILABLE",
      lastCode: "UMBRA_EXCHANGE_UNREACHABLE",
    });
  });
});

/** A client of a server that answers every request with `status` and the error `code`; `requests()` says how many came. */
async function alwaysAnswering(status: number, code: string, message: string): Promise<{ client: ExchangeClient; requests: () => number }> {
  let requests = 0;
  const url = await serve((_req, res) => {
    requests++;
    json(res, status, { error: { code, message } });
  });
  return { client: new ExchangeClient(url, generateIdentity("bank")), requests: () => requests };
}

describe("a read the exchange could not answer yet (untilAvailable)", () => {
  it("is asked again while nothing listens at the exchange's address, and answers once it is back", async () => {
    // A port nobody listens on: a server opened and closed.
    const gone = await serve((_req, res) => json(res, 200, {}));
    const closing = server as Server;
    server = undefined;
    await new Promise<void>((r) => closing.close(() => r()));
    const client = new ExchangeClient(gone, generateIdentity("bank"));
    let attempts = 0;
    const answer = await untilAvailable(async () => {
      attempts++;
      // The third attempt finds the exchange back: a server on another port stands for it.
      if (attempts < 3) return client.json("GET", "/v1/log/head");
      const back = new ExchangeClient(await serve((_req, res) => json(res, 200, { back: true })), generateIdentity("bank"));
      return back.json("GET", "/v1/log/head");
    });
    expect({ answer, attempts }).toEqual({ answer: { back: true }, attempts: 3 });
  });

  it("is asked again after a 503, and the answer after it is the one returned", async () => {
    const client = new ExchangeClient(
      await serve((_req, res, n) => (n === 1 ? json(res, 503, { error: { code: "UMBRA_UNAVAILABLE", message: "restarting" } }) : json(res, 200, { answeredRequest: n }))),
      generateIdentity("bank"),
    );
    expect(await untilAvailable(() => client.json("GET", "/v1/log/head"))).toEqual({ answeredRequest: 2 });
  });

  it("is not asked again after an answer that is no passing unavailability (400)", async () => {
    const { client, requests } = await alwaysAnswering(400, "UMBRA_INVALID_REQUEST", "no such entry");
    await expect(untilAvailable(() => client.json("GET", "/v1/log/inclusion?seq=9&size=1"))).rejects.toMatchObject({ code: "UMBRA_INVALID_REQUEST", status: 400 });
    expect(requests()).toBe(1);
  });

  it("gives up with the last error once the next wait would pass its window", async () => {
    const { client, requests } = await alwaysAnswering(502, "UMBRA_EXCHANGE_UNREACHABLE", "the exchange could not be reached");
    // Waits of 250 ms and 500 ms fit in 800 ms; the next (1 s) would not: three requests in all.
    await expect(untilAvailable(() => client.json("GET", "/v1/log/head"), 800)).rejects.toMatchObject({ code: "UMBRA_EXCHANGE_UNREACHABLE", status: 502 });
    expect(requests()).toBe(3);
  });
});
