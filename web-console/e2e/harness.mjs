// Real nodes and a real browser for the console's end-to-end tests: the node binary of this
// checkout (target/debug/heterogen, or $HETEROGEN_BIN) on 127.0.0.1, and Debian's chromium
// (or $CHROMIUM) driven by playwright-core. Every page fails its test on a console error or a
// Content-Security-Policy violation.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
export const BIN = process.env.HETEROGEN_BIN ?? join(root, "target/debug/heterogen");
export const SHOTS = join(root, "target/console-shots");

export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `heterogen-console-${name}-`));
}

/** Fast timings so tests never wait on production defaults. */
export const FAST = [
  "--fsync", "false", "--js-threads", "1",
  "--lease-ms", "3000", "--lease-renew-ms", "1000",
  "--critical-backoff-ms", "10", "--critical-backoff-cap-ms", "20",
  "--critical-stop-after", "3", "--stop-grace-ms", "500",
];

/**
 * Starts a node and resolves once it listens. `port` 0 picks a free one. Returns
 * {url, port, stderr(), waitForStderr(re), stop(), kill(), exited}.
 */
export async function startNode({ dataDir, args = [], port = 0, env = {} }) {
  const child = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...FAST, ...args], {
    env: { ...process.env, RUST_LOG: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = (w.stream === "stdout" ? stdout : stderr).match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout.on("data", (d) => { stdout += d; check(); });
  child.stderr.on("data", (d) => { stderr += d; check(); });
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const waitFor = (stream, re, ms = 20000) => new Promise((res, rej) => {
    const w = { stream, re, resolve: res };
    waiters.push(w);
    check();
    const timer = setTimeout(() => rej(new Error(`timed out waiting for ${re} on the node's ${stream}:\n${stderr.slice(-4000)}`)), ms);
    exited.then(({ code }) => rej(new Error(`the node exited (${code}) before ${re}:\n${stderr.slice(-4000)}`)));
    w.resolve = (m) => { clearTimeout(timer); res(m); };
  });
  const [, address] = await waitFor("stdout", /heterogen listening on http:\/\/(\S+)/);
  const url = `http://${address}`;
  return {
    url,
    port: Number(address.split(":").pop()),
    child,
    exited,
    stderr: () => stderr,
    waitForStderr: (re, ms) => waitFor("stderr", re, ms),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Runs the heterogen CLI and returns its stdout. */
export function cli(...args) {
  return execFileSync(BIN, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless=new", "--no-sandbox", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/**
 * A fresh page whose console errors and CSP violations are collected; `problems()` lists them.
 * `allow` matches messages a test provokes on purpose (e.g. a refused WebSocket).
 */
export async function newPage(browser, { colorScheme = "light", allow = [] } = {}) {
  const context = await browser.newContext({ colorScheme, viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const seen = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !allow.some((re) => re.test(m.text()))) seen.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => seen.push(`page error: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  page.problems = () => seen;
  page.requests = () => requests;
  return page;
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  // Toasts are transient; the pictures show the page under them.
  await page.evaluate(() => {
    document.querySelector("main")?.scrollTo(0, 0);
    for (const t of document.querySelectorAll("#toasts > .toast:not(.error)")) t.remove();
  });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** A WebFIX call over HTTP POST, as a second client beside the page. */
export async function call(node, session, method, body = {}) {
  const headers = { "content-type": "application/json" };
  if (session) headers["stels-session"] = session;
  const reply = await fetch(node.url, {
    method: "POST",
    headers,
    body: JSON.stringify({ webfix: "1.0", method, params: [], body }),
  });
  return { status: reply.status, body: await reply.json() };
}

/** The console link a first start prints, and its session. */
export async function consoleLink(node) {
  const [, link, session] = await node.waitForStderr(/Console: (\S+#session=(\S+))/);
  return { link, session };
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}
