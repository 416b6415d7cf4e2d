/**
 * One chaos trial's venue, as a user sets it up with the CLI: an exchange
 * (`umbra exchange start` with its database), an invitation per party
 * (`umbra exchange invite`), the buyer and the providers (`umbra party
 * start` with their database and data folder, the exchange's key fingerprint
 * pinned), each provider's datasets registered with their policies
 * (`umbra dataset register`). Every node listens on a port chosen free up
 * front, so a node restarted with the same arguments comes back at the same
 * address. With `viaProxy`, each party reaches the exchange through its own
 * TCP proxy (proxy.ts).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUYER, type ChaosCase } from "./case.js";
import { freePort, NodeProcess, umbra, type CliRun } from "./processes.js";
import { startProxy, type Proxy } from "./proxy.js";

export class Cluster {
  private constructor(
    readonly root: string,
    readonly exchange: NodeProcess,
    readonly parties: ReadonlyMap<string, NodeProcess>,
    readonly proxies: ReadonlyMap<string, Proxy>,
  ) {}

  get exchangeDb(): string {
    return join(this.root, "exchange", "exchange.db");
  }

  party(name: string): NodeProcess {
    const p = this.parties.get(name);
    if (p === undefined) throw new Error(`no party ${name}`);
    return p;
  }

  /** The token file `umbra party start` wrote beside the party's database. */
  tokenFile(name: string): string {
    return join(this.root, name, `${name}.token`);
  }

  /** `umbra ARGS --party URL --token-file FILE` against a party's local API. */
  partyCli(name: string, args: readonly string[], timeoutMs?: number): Promise<CliRun> {
    return umbra([...args, "--party", this.party(name).url, "--token-file", this.tokenFile(name)], timeoutMs);
  }

  /** Starts the venue for a case in `root` (an empty folder): files written, nodes listening, datasets registered. */
  static async start(c: ChaosCase, root: string, viaProxy: boolean): Promise<Cluster> {
    const names = [BUYER, ...c.providers];
    for (const n of ["exchange", ...names]) mkdirSync(join(root, n), { recursive: true });
    for (const [party, files] of Object.entries(c.files)) for (const [file, text] of Object.entries(files)) writeFileSync(join(root, party, file), text);
    const db = join(root, "exchange", "exchange.db");
    const exchange = new NodeProcess("exchange", ["exchange", "start", "--port", String(await freePort()), "--db", db], join(root, "exchange.log"));
    const parties = new Map<string, NodeProcess>();
    const proxies = new Map<string, Proxy>();
    const cluster = new Cluster(root, exchange, parties, proxies);
    try {
      await exchange.start();
      const fingerprint = /key fingerprint ([0-9a-f]{16})/.exec(exchange.line)?.[1];
      if (fingerprint === undefined) throw new Error("the exchange printed no key fingerprint");
      const exchangePort = new URL(exchange.url).port;
      for (const n of names) {
        const inv = await umbra(["exchange", "invite", "--name", n, "--db", db, "--json"]);
        if (inv.status !== 0) throw new Error(`umbra exchange invite --name ${n} exited ${inv.status}: ${inv.stderr.trim()}`);
        const invite = (JSON.parse(inv.stdout) as { code: string }).code;
        let exchangeUrl = exchange.url;
        if (viaProxy) {
          const proxy = await startProxy(Number(exchangePort));
          proxies.set(n, proxy);
          exchangeUrl = `http://127.0.0.1:${proxy.port}`;
        }
        const dir = join(root, n);
        const args = ["party", "start", "--name", n, "--exchange", exchangeUrl, "--exchange-key", fingerprint, "--invite", invite, "--port", String(await freePort()), "--db", join(dir, `${n}.db`), "--data", dir];
        parties.set(n, new NodeProcess(n, args, join(root, `${n}.log`)));
      }
      await Promise.all([...parties.values()].map((p) => p.start()));
      for (const d of c.datasets) {
        const r = await cluster.partyCli(d.party, ["dataset", "register", "--file", d.file, "--policy", JSON.stringify(d.policy)]);
        if (r.status !== 0) throw new Error(`umbra dataset register --file ${d.file} (${d.party}) exited ${r.status}: ${r.stderr.trim()}`);
      }
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Every node stopped (the parties first, then the exchange) and every proxy closed. */
  async stop(): Promise<void> {
    await Promise.all([...this.parties.values()].map((p) => p.stop()));
    await this.exchange.stop();
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}
