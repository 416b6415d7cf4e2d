/**
 * A TCP proxy on loopback (node:net only) that the chaos harness puts
 * between a party and the exchange: it forwards bytes both ways and, when
 * told to `cut`, destroys every open connection on both sides and resets
 * every new one for the length of the outage. The party sees what a network
 * blip does to it: a request that fails mid-way, a connection refused.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface Proxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Drops every open connection now and resets new ones for `outageMs`. */
  cut(outageMs: number): void;
  /** Connections dropped so far (open ones cut, new ones reset). */
  readonly dropped: number;
  close(): Promise<void>;
}

/** Starts a proxy to 127.0.0.1:targetPort on a free port. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const open = new Set<readonly [Socket, Socket]>();
  let downUntil = 0;
  let dropped = 0;
  const server: Server = createServer((client) => {
    if (Date.now() < downUntil) {
      dropped++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    const pair = [client, upstream] as const;
    open.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(pair);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no TCP port");
  return {
    port: address.port,
    cut(outageMs) {
      downUntil = Date.now() + outageMs;
      for (const [client, upstream] of open) {
        dropped++;
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      open.clear();
    },
    get dropped() {
      return dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of open) {
          client.destroy();
          upstream.destroy();
        }
        open.clear();
        server.close(() => resolve());
      }),
  };
}
