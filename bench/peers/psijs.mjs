// Peer adapter: runs one full @openmined/psi.js (ECDH + GCS/Bloom/Raw, C++ -> WASM,
// single thread) PSI exchange in-process, playing both client and server, with every
// message serialised to bytes and deserialised on the other side so byte counts are real.
//
// Plain JavaScript ESM, loaded by Node directly. Install its dependency first:
//   npm --prefix bench/peers ci --ignore-scripts
//
// Smoke test:  node bench/peers/psijs.mjs 10000 [GCS|BloomFilter|Raw]

import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * Default backing structure for the server setup message.
 *
 * psi.js's own default is GCS (its C++ docs: GCS compresses better, Bloom filters may be
 * faster when the client set is orders of magnitude smaller). But in psi.js 2.0.6 the GCS
 * hash range is nClient * max(nClient, nServer) / fpr stored as an int64, which overflows
 * at 10^5 x 10^5 with fpr = 1e-9 (1e19 > 2^63): the JS protobuf layer then throws
 * "Assertion failed", or the WASM aborts with "memory access out of bounds". BloomFilter
 * runs at every benchmark size, costs the same time (the EC operations dominate), sends
 * ~5% more bytes server -> client than GCS, and is the one that fits the reference
 * "10^5 x 10^5 in ~230 s, ~3.5 MB each way" figures (GCS cannot run there; Raw would be
 * ~7 MB server -> client). So one structure is used at every size.
 */
export const DEFAULT_DATA_STRUCTURE = "BloomFilter";

/** 2^63: psi.js's GCS hash range must stay below this (see above). */
const INT64_LIMIT = 2 ** 63;

let psiPromise = null;
/** Load and initialise the WASM module once; not included in any timing. */
function loadPsi() {
  if (!psiPromise) {
    psiPromise = import("@openmined/psi.js").then((m) => (m.default ?? m)());
  }
  return psiPromise;
}

/** Installed npm version of @openmined/psi.js, e.g. "2.0.6". */
export async function psiJsVersion() {
  const pkgPath = require.resolve("@openmined/psi.js/package.json");
  return JSON.parse(await readFile(pkgPath, "utf8")).version;
}

const secondsSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * One complete psi.js exchange. `seconds` covers everything from key generation to the
 * client's result: hashing to the curve, all EC exponentiations, building the filter,
 * protobuf (de)serialisation of every message. WASM start-up is excluded.
 *
 * @param {object} opts
 * @param {string[]} opts.clientKeys
 * @param {string[]} opts.serverKeys
 * @param {boolean} [opts.revealIntersection=true] true: client learns which of its
 *   elements are in the intersection (getIntersection); false: size only (getIntersectionSize).
 * @param {number} [opts.fpr=1e-9] false-positive probability for the whole client query
 *   (ignored by "Raw").
 * @param {"GCS"|"BloomFilter"|"Raw"} [opts.dataStructure="BloomFilter"]
 */
export async function runPsiJs({
  clientKeys,
  serverKeys,
  revealIntersection = true,
  fpr = 1e-9,
  dataStructure = DEFAULT_DATA_STRUCTURE,
}) {
  const psi = await loadPsi();
  const ds = psi.dataStructure[dataStructure];
  if (ds === undefined) {
    throw new Error(`unknown dataStructure ${dataStructure}; use GCS, BloomFilter or Raw`);
  }
  if (dataStructure === "GCS") {
    const hashRange =
      (clientKeys.length * Math.max(clientKeys.length, serverKeys.length)) / fpr;
    if (hashRange >= INT64_LIMIT) {
      // Fail fast: psi.js would otherwise spend minutes on EC work and then crash.
      throw new Error(
        `psi.js GCS cannot run ${clientKeys.length} x ${serverKeys.length} at fpr ${fpr}: ` +
          `its hash range nClient*max(n)/fpr = ${hashRange.toExponential(3)} overflows int64; ` +
          `use BloomFilter or Raw, or a larger fpr`,
      );
    }
  }

  let server = null;
  let client = null;
  try {
    const tStart = process.hrtime.bigint();

    // 1. Server: key + setup message H(y)^s packed into the chosen data structure.
    let t = process.hrtime.bigint();
    server = psi.server.createWithNewKey(revealIntersection);
    const setupBytes = server
      .createSetupMessage(fpr, clientKeys.length, serverKeys, ds)
      .serializeBinary();
    const serverSetupSeconds = secondsSince(t);

    // 2. Client: key + request H(x)^c.
    t = process.hrtime.bigint();
    client = psi.client.createWithNewKey(revealIntersection);
    const requestBytes = client.createRequest(clientKeys).serializeBinary();
    const clientSetupSeconds = secondsSince(t);

    // 3. Server: (H(x)^c)^s for each request element.
    t = process.hrtime.bigint();
    const responseBytes = server
      .processRequest(psi.request.deserializeBinary(requestBytes))
      .serializeBinary();
    const serverProcessSeconds = secondsSince(t);

    // 4. Client: strip c, look each H(x)^s up in the setup structure.
    t = process.hrtime.bigint();
    const setup = psi.serverSetup.deserializeBinary(setupBytes);
    const response = psi.response.deserializeBinary(responseBytes);
    let intersection = null;
    let intersectionSize;
    if (revealIntersection) {
      intersection = Array.from(client.getIntersection(setup, response)).sort((a, b) => a - b);
      intersectionSize = intersection.length;
    } else {
      intersectionSize = client.getIntersectionSize(setup, response);
    }
    const clientFinishSeconds = secondsSince(t);

    const seconds = secondsSince(tStart);
    return {
      library: "@openmined/psi.js",
      version: await psiJsVersion(),
      dataStructure,
      fpr: dataStructure === "Raw" ? 0 : fpr,
      revealIntersection,
      clientSize: clientKeys.length,
      serverSize: serverKeys.length,
      seconds,
      intersectionSize,
      // Client indices (sorted) of the intersection, when revealIntersection.
      intersection,
      bytesClientToServer: requestBytes.length,
      bytesServerToClient: setupBytes.length + responseBytes.length,
      setupBytes: setupBytes.length,
      requestBytes: requestBytes.length,
      responseBytes: responseBytes.length,
      serverSetupSeconds,
      clientSetupSeconds,
      serverProcessSeconds,
      clientFinishSeconds,
    };
  } finally {
    // Free the WASM-side objects (protobuf messages are plain JS, GC'd normally).
    client?.delete();
    server?.delete();
  }
}

// ---- CLI smoke test -----------------------------------------------------------------
if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 1000);
  const dataStructure = process.argv[3] ?? DEFAULT_DATA_STRUCTURE;
  if (!Number.isInteger(n) || n < 2) {
    console.error("usage: node bench/peers/psijs.mjs N [GCS|BloomFilter|Raw]");
    process.exit(2);
  }
  // Half overlap: n/2 shared keys, the rest private to each side, shuffled.
  const key = () => randomBytes(16).toString("hex");
  const shared = Array.from({ length: Math.floor(n / 2) }, key);
  const shuffle = (a) => {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };
  const clientKeys = shuffle([...shared, ...Array.from({ length: n - shared.length }, key)]);
  const serverKeys = shuffle([...shared, ...Array.from({ length: n - shared.length }, key)]);

  const res = await runPsiJs({ clientKeys, serverKeys, dataStructure });

  // Check against a plain JS Set on the same data.
  const serverSet = new Set(serverKeys);
  const expectedIdx = [];
  clientKeys.forEach((k, i) => serverSet.has(k) && expectedIdx.push(i));
  const { intersection, ...out } = res;
  out.expectedIntersectionSize = expectedIdx.length;
  out.correct =
    res.intersectionSize === expectedIdx.length &&
    (intersection === null || intersection.every((v, i) => v === expectedIdx[i]));
  console.log(JSON.stringify(out));
  if (!out.correct) process.exitCode = 1;
}
