/**
 * Ad conversion: an advertiser wants to know, per campaign, how many of its
 * purchases came from users an ad platform reached, and the platform's
 * revenue from those users — without sending its purchase log to the
 * platform, and without the platform sending its user list back.
 *
 *   advertiser (buyer):  user_id, campaign (null: no campaign) — one row per
 *                        purchase, so a user who bought three times has three rows;
 *                        each user is attributed to one campaign (last touch), so
 *                        all of a user's purchases carry the same campaign
 *   platform (provider): user_id, revenue (whole currency units) — one row per
 *                        user reached
 *
 *   SELECT campaign, COUNT(*) AS conversions, SUM(revenue)
 *   FROM purchases JOIN reached USING (user_id)
 *   GROUP BY campaign HAVING COUNT(DISTINCT user_id) >= 5 AND COUNT(*) >= 5
 *
 * As in SQL, a reached user's revenue counts once per purchase; k counts
 * users as well as purchases (a user who bought ten times is still one
 * user). join-aggregate
 * requires each key in one group (a user in two campaigns would let the
 * difference of two campaigns' totals isolate one user below k), hence the
 * per-user attribution. The data is synthetic and generated here from a
 * fixed seed; the "podcast" campaign is deliberately tiny (six users who
 * bought once, three of them reached), so it falls under k = 5 and is
 * suppressed. The secure
 * result (every role played in this process over the real protocol) is
 * printed beside the plaintext answer of a plain JS join + group-by.
 *
 * Run: npm run example:ad-conversion
 */
import { Int32, Table, Utf8, vectorFromArray } from "apache-arrow";
import { closePool } from "../../engine/pool/index.js";
import { runJoinAggregate } from "../../protocols/index.js";
import { compare, count, formatTable, megabytes, plainJoinAggregate, prng, secureGroups, sortLabels } from "../common.js";

const SEED = 11;
const K = 5;
const MAX_REVENUE = 1_000;
const USERS = 5_000;
const PLATFORM_REACH = 12_000;
/** Campaigns by weight; null is a purchase with no campaign. */
const CAMPAIGNS: readonly [string | null, number][] = [
  ["spring-sale", 0.35],
  ["brand-video", 0.25],
  ["retargeting", 0.2],
  ["newsletter", 0.1],
  [null, 0.1],
];
/** The tiny campaign's users (every 997th, one purchase each): only a few reached. */
const PODCAST_EVERY = 997;

const userId = (i: number): string => `u-${(i * 7919 + 13).toString(36)}`;

function pickCampaign(r: number): string | null {
  let acc = 0;
  for (const [c, w] of CAMPAIGNS) {
    acc += w;
    if (r < acc) return c;
  }
  return null;
}

function generate(): { purchases: Table; reached: Table; buyerKeys: string[]; campaigns: (string | null)[]; providerKeys: string[]; revenue: number[] } {
  const rnd = prng(SEED);
  // The advertiser: users 0..USERS-1 buy 1 to 4 times (most once), each user attributed to one campaign;
  // every 997th user is a podcast listener who bought once.
  const buyerKeys: string[] = [];
  const campaigns: (string | null)[] = [];
  for (let u = 0; u < USERS; u++) {
    const r = rnd();
    const podcast = u % PODCAST_EVERY === 0;
    const purchases = podcast ? 1 : r < 0.6 ? 1 : r < 0.85 ? 2 : r < 0.95 ? 3 : 4;
    const campaign = podcast ? "podcast" : pickCampaign(rnd());
    for (let p = 0; p < purchases; p++) {
      buyerKeys.push(userId(u));
      campaigns.push(campaign);
    }
  }
  // The platform: every other advertiser user (roughly) plus users of its own, each with a revenue.
  const providerKeys: string[] = [];
  const revenue: number[] = [];
  for (let u = 0; u < USERS; u++) {
    const isReached = u % PODCAST_EVERY === 0 ? u % 2 === 0 : rnd() < 0.55;
    if (!isReached) continue;
    providerKeys.push(userId(u));
    revenue.push(Math.floor(rnd() ** 2 * 400));
  }
  const own = PLATFORM_REACH - providerKeys.length;
  for (let u = 0; u < own; u++) {
    providerKeys.push(userId(USERS + 10_000 + u));
    revenue.push(Math.floor(rnd() ** 2 * 400));
  }
  const purchases = new Table({ user_id: vectorFromArray(buyerKeys, new Utf8()), campaign: vectorFromArray(campaigns, new Utf8()) });
  const reached = new Table({ user_id: vectorFromArray(providerKeys, new Utf8()), revenue: vectorFromArray(revenue, new Int32()) });
  return { purchases, reached, buyerKeys, campaigns, providerKeys, revenue };
}

async function main(): Promise<number> {
  const data = generate();
  console.log(`Ad conversion — conversions and platform revenue per campaign (synthetic data, seed ${SEED})\n`);
  console.log(`advertiser (buyer):  ${count(data.purchases.numRows)} purchases by ${count(USERS)} users: user_id, campaign (one per user)`);
  console.log(`platform (provider): ${count(data.reached.numRows)} users reached: user_id, revenue\n`);

  const t0 = performance.now();
  const run = await runJoinAggregate({
    buyer: { table: data.purchases, keys: ["user_id"], groupBy: "campaign" },
    provider: { table: data.reached, keys: ["user_id"] },
    aggregates: [{ fn: "count" }, { fn: "sum", column: "revenue" }],
    minGroupSize: K,
    maxAbsValue: MAX_REVENUE,
  });
  const seconds = (performance.now() - t0) / 1000;
  const sent = run.stats.bytesSent;
  console.log(
    `secure join-aggregate (k = ${K}): ${seconds.toFixed(2)} s; bytes sent: ` +
      `advertiser ${megabytes(sent["buyer"] ?? 0)}, platform ${megabytes(sent["provider"] ?? 0)}, exchange ${megabytes(sent["exchange"] ?? 0)}\n`,
  );

  const plain = plainJoinAggregate({ keys: data.buyerKeys, groups: data.campaigns }, { keys: data.providerKeys, values: data.revenue }, 0);
  const secure = secureGroups(run.table, "campaign", "revenue");
  const rows = sortLabels(plain.keys()).map((campaign) => {
    const name = campaign ?? "(no campaign)";
    const p = plain.get(campaign);
    const s = secure.get(campaign);
    if (p === undefined) return [name, "—", "—", "—", "—"];
    if (s === undefined) return [name, "suppressed", `${count(p.count)} (below k)`, "suppressed", "(below k)"];
    return [name, count(s.count ?? NaN), count(p.count), count(s.sum ?? NaN), count(p.sum)];
  });
  console.log(formatTable(["campaign", "conversions (secure)", "conversions (plaintext)", "revenue (secure)", "revenue (plaintext)"], rows));

  const c = compare(secure, run.suppressedGroups, plain, K, 0, new Set(data.campaigns).size);
  console.log(
    `\nmatch: ${c.match ? "yes" : "NO"} — ${c.kept} campaigns equal to the plaintext join + group-by; ` +
      `${run.suppressedGroups} suppressed by the exchange (the plaintext has ${c.belowK} with fewer than ${K} converting users).`,
  );
  console.log(
    "Who learned what: the advertiser, these aggregates and the platform's user count to within 1/8; the platform, the number of distinct users in the advertiser's log; " +
      "the exchange, blinded identifiers, ciphertexts and the number of matches per pseudonymous group.",
  );
  return c.match ? 0 : 1;
}

try {
  process.exitCode = await main();
} finally {
  await closePool();
}
