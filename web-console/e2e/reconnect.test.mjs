// After the node restarts, the page reconnects with backoff, shows that it is offline meanwhile,
// resubscribes, and resumes the log tail from its cursor: every line once, none missing.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, newPage, shot, call, consoleLink, tempDir, cleanup } from "./harness.mjs";

describe("the console across a node restart", () => {
  let dir, node, browser;

  before(async () => {
    dir = tempDir("reconnect");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
    cleanup(dir);
  });

  it("reconnects, resubscribes and resumes the logs without duplicates or holes", async () => {
    const dataDir = join(dir, "data");
    node = await startNode({ dataDir });
    const { session } = await consoleLink(node);
    const created = await call(node, session, "setWorker", {
      scriptContent: 'logger.info("line", Date.now()); await Stels.sleep(40);',
      mode: "loop",
    });
    assert.equal(created.status, 200);
    const entry = created.body;
    const sid = entry.value.raw.sid;
    const started = await call(node, session, "updateWorker", {
      channel: entry.value.channel,
      raw: { ...entry.value.raw, active: true },
      versionstamp: entry.versionstamp,
    });
    assert.equal(started.status, 200);

    // Refused WebSocket upgrades while the node is down are expected console noise.
    const page = await newPage(browser, { allow: [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/] });
    await page.goto(`${node.url}/console/#session=${session}`);
    await page.goto(`${node.url}/console/#/workers/${sid}`);
    const log = page.getByRole("log", { name: "Log lines" });
    await log.getByText(/\[INFO\] line/).first().waitFor();
    const state = page.getByRole("status", { name: "Connection state" });

    await node.stop();
    await state.getByText(/offline|reconnecting/).waitFor();
    await shot(page, "reconnecting");
    node = await startNode({ dataDir, port: node.port });
    await state.getByText("connected").waitFor({ timeout: 30000 });
    const before = await log.locator(".log-line").count();
    await page.waitForFunction((n) => document.querySelectorAll(".log-line").length > n + 10, before);

    const cursors = await log.locator(".log-line[data-cursor]").evaluateAll((els) => els.map((e) => Number(e.dataset.cursor)));
    for (let i = 1; i < cursors.length; i++) {
      assert.equal(cursors[i], cursors[i - 1] + 1, `cursor ${cursors[i - 1]} is followed by ${cursors[i]}`);
    }
    assert.equal(await log.locator(".log-line.notice").count(), 0, "no line was lost");
    assert.deepEqual(page.problems(), []);
    await page.context().close();
  });
});
