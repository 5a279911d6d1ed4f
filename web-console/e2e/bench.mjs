// The console's budgets (issue 10), measured in Chromium against a real node; figures go to
// BENCHMARKS.md. Not a test: run by hand on an otherwise quiet machine.
//   cargo build --release && node web-console/e2e/bench.mjs
// Env: HETEROGEN_BIN (default target/release/heterogen), FLOOD_SECONDS (30), WORKERS (10000).
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { startNode, launchBrowser, tempDir, cleanup, call, consoleLink, root } from "./harness.mjs";

process.env.HETEROGEN_BIN ??= join(root, "target/release/heterogen");
const FLOOD_SECONDS = Number(process.env.FLOOD_SECONDS ?? 30);
const WORKERS = Number(process.env.WORKERS ?? 10000);

function assets(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) assets(path, out);
    else if (/\.(js|css)$/.test(name)) out.push(path);
  }
  return out;
}

const results = [];
const report = (name, value, budget) => {
  results.push({ name, value, budget });
  console.log(`${name}: ${value}${budget ? `  (budget ${budget})` : ""}`);
};

let gz = 0;
let raw = 0;
for (const file of assets(join(root, "web-console/app"))) {
  const bytes = readFileSync(file);
  raw += bytes.length;
  gz += gzipSync(bytes, { level: 9 }).length;
}
report("JS+CSS gzipped", `${(gz / 1024).toFixed(1)} KiB (${(raw / 1024).toFixed(0)} KiB raw)`, "≤ 250 KiB");

const dir = tempDir("bench");
const node = await startNode({ dataDir: join(dir, "data"), args: ["--log-rate", "2000", "--log-history-lines", "10000"] });
const { session } = await consoleLink(node);
const browser = await launchBrowser();
try {
  // First meaningful paint: navigation start → the workers view drawn with the node's answer.
  const create = async (body) => (await call(node, session, "setWorker", body)).body;
  await create({ scriptContent: "await Stels.sleep(1000);", note: "first" });
  const paints = [];
  for (let i = 0; i < 5; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${node.url}/console/#session=${session}`);
    await page.getByText("1 of 1 workers").waitFor();
    paints.push(await page.evaluate(() => {
      const fcp = performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN;
      const rendered = performance.getEntriesByName("workers-rendered")[0]?.startTime ?? NaN;
      return { fcp, rendered };
    }));
    await context.close();
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  report("first contentful paint (median of 5)", `${median(paints.map((p) => p.fcp)).toFixed(0)} ms`);
  report("first meaningful paint: workers listed (median of 5)", `${median(paints.map((p) => p.rendered)).toFixed(0)} ms`, "≤ 500 ms");

  // A worker logging about 1,000 lines/s (115 lines, then a 100 ms sleep) for FLOOD_SECONDS,
  // tailed by the page.
  const flood = await create({
    scriptContent: "for (let i = 0; i < 115; i++) logger.info(`flood line ${i} ${Date.now()}`); await Stels.sleep(100);",
    mode: "loop", priority: "high",
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${node.url}/console/#session=${session}`);
  await page.goto(`${node.url}/console/#/workers/${flood.value.raw.sid}`);
  await page.getByRole("log", { name: "Log lines" }).waitFor();
  await page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ type: "longtask" });
  });
  const cdp = await context.newCDPSession(page);
  const heap = async () => { await cdp.send("HeapProfiler.collectGarbage"); return (await cdp.send("Runtime.getHeapUsage")).usedSize; };
  const startHeap = await heap();
  await call(node, session, "updateWorker", { channel: flood.value.channel, raw: { ...flood.value.raw, active: true }, versionstamp: flood.versionstamp });
  const samples = [];
  for (let s = 0; s < FLOOD_SECONDS; s += 5) {
    await page.waitForTimeout(5000);
    samples.push(await heap());
  }
  // Cursors count a worker's lines from 1, so the last one shown is the number received.
  const lines = await page.evaluate(() => {
    const shown = document.querySelectorAll(".log-line[data-cursor]");
    const notices = document.querySelectorAll(".log-line.notice").length;
    return `${shown[shown.length - 1]?.dataset.cursor ?? 0} (lagged notices: ${notices})`;
  });
  const long = await page.evaluate(() => window.__long);
  report(`log flood ${FLOOD_SECONDS} s: lines received`, lines);
  report("log flood: long tasks over 100 ms", `${long.filter((d) => d > 100).length} (longest ${Math.max(0, ...long).toFixed(0)} ms, ${long.length} over 50 ms)`, "0");
  report("log flood: JS heap after GC, every 5 s", `${samples.map((b) => (b / 1048576).toFixed(1)).join(", ")} MiB (start ${(startHeap / 1048576).toFixed(1)})`, "bounded");
  await call(node, session, "stopAllWorkers");
  await context.close();

  // WORKERS workers in the table, scrolled.
  const made = { n: 1 };
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < WORKERS - 2) {
      const i = next++;
      await create({ scriptContent: `logger.info(${i});`, note: `bench worker ${i}`, priority: ["low", "normal", "high", "critical"][i % 4] });
      made.n++;
    }
  }));
  const big = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  const t0 = Date.now();
  await big.goto(`${node.url}/console/#session=${session}`);
  await big.getByText(new RegExp(`of ${WORKERS.toLocaleString("en-US")} workers`)).waitFor({ timeout: 60000 });
  report(`${WORKERS} workers: page load to table`, `${Date.now() - t0} ms`);
  const scroll = await big.evaluate(async () => {
    const long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) long.push(e.duration); }).observe({ type: "longtask" });
    const s = document.querySelector(".table-scroll");
    const times = [];
    let last = performance.now();
    for (let i = 0; i < 600; i++) {
      s.scrollTop += 120;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      times.push(now - last);
      last = now;
    }
    times.sort((a, b) => a - b);
    return { p50: times[300], p95: times[570], max: times[599], long: long.length, rows: document.querySelectorAll(".grid-body .grid-row:not([hidden])").length };
  });
  report(`${WORKERS} workers: scroll frame time p50 / p95 / max`, `${scroll.p50.toFixed(1)} / ${scroll.p95.toFixed(1)} / ${scroll.max.toFixed(1)} ms (${scroll.long} long tasks, ${scroll.rows} rows in the DOM)`, "no jank");
  const search = await big.evaluate(async () => {
    const input = document.getElementById("worker-search");
    const t = performance.now();
    input.value = "bench worker 99";
    input.dispatchEvent(new Event("input"));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t;
  });
  report(`${WORKERS} workers: search to repaint`, `${search.toFixed(0)} ms`);
} finally {
  await browser.close();
  await node.stop();
  cleanup(dir);
}
