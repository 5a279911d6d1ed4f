// The console's work with workers against a real node started as a new user would (no owners:
// the node makes an owner key and prints a console link): create from templates, edit, save,
// a conflict, a syntax error at its line, start, live logs and stats, leader, a worker halted
// by the error rules, stop, stop all, the nodes view; a screenshot of every view.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { startNode, launchBrowser, newPage, shot, call, consoleLink, tempDir, cleanup } from "./harness.mjs";

const SID = /#\/workers\/([0-9a-f-]{36})$/;

describe("workers in the console", () => {
  let dir, node, browser, page, session, first, leader;

  before(async () => {
    dir = tempDir("workers");
    node = await startNode({ dataDir: join(dir, "data") });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
    cleanup(dir);
  });

  const editor = () => page.getByRole("textbox", { name: "Script editor" });
  async function replaceScript(text) {
    await editor().click();
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(text);
  }
  async function record(sid) {
    const { body } = await call(node, session, "listWorkers");
    return body.find((e) => e.value.raw.sid === sid);
  }
  async function createFrom(template) {
    await page.goto(`${node.url}/console/#/workers`);
    await page.getByRole("button", { name: "New worker" }).click();
    const dialog = page.getByRole("dialog", { name: "New worker" });
    await dialog.getByRole("radio", { name: new RegExp(template) }).check();
    await dialog.getByRole("button", { name: "Create worker" }).click();
    await page.waitForURL(SID);
    return page.url().match(SID)[1];
  }

  it("a first start prints a link that logs in as the owner it created", async () => {
    const link = await consoleLink(node);
    session = link.session;
    assert.equal(statSync(join(dir, "data", "owner-key.json")).mode & 0o777, 0o600);
    page = await newPage(browser);
    const response = await page.goto(link.link);
    assert.match(response.headers()["content-security-policy"], /connect-src 'self'/);
    await page.getByRole("heading", { name: "Workers" }).waitFor();
    await page.getByText("No workers on this node yet.").waitFor();
    assert.ok(!page.url().includes("session="), "the token leaves the address bar");
    await shot(page, "workers-empty");
  });

  it("creates a worker from a template and saves an edit with Ctrl+S", async () => {
    await page.getByRole("button", { name: "New worker" }).click();
    const dialog = page.getByRole("dialog", { name: "New worker" });
    await dialog.getByRole("radio", { name: /KV counter/ }).check();
    await shot(page, "create-dialog");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    first = await createFrom("Loop with Stels.sleep");
    await page.getByRole("heading", { name: first }).waitFor();
    await page.getByRole("textbox", { name: "Script editor" }).getByText("round").first().waitFor();

    await page.getByLabel("Mode", { exact: true }).selectOption("loop");
    await page.getByLabel("Description (note)").fill("ticks for the test");
    await replaceScript('// ticks\nlogger.info("tick", Date.now());\nawait Stels.sleep(50);\n');
    await page.getByText("unsaved changes").waitFor();
    await page.keyboard.press("ControlOrMeta+s");
    await page.getByText("saved", { exact: true }).waitFor();
    await page.getByText("unsaved changes").waitFor({ state: "hidden" });
    const saved = await record(first);
    assert.equal(saved.value.raw.mode, "loop");
    assert.equal(saved.value.raw.note, "ticks for the test");
    assert.match(saved.value.raw.script, /logger\.info\(.tick.,Date\.now\(\)\)/);
    // The person's own formatting stays in the editor after a save.
    await editor().getByText("// ticks").waitFor();
  });

  it("shows the node's syntax error at its line and column", async () => {
    await replaceScript('logger.info("a");\n\nlet broken = ;\n');
    await page.keyboard.press("ControlOrMeta+s");
    const error = page.locator(".script-error");
    await error.getByText(/at line 3, column \d+/).waitFor();
    await page.locator(".cm-lint-marker-error").first().waitFor();
    await shot(page, "worker-syntax-error");
    await replaceScript('// ticks\nlogger.info("tick", Date.now());\nawait Stels.sleep(50);\n');
    await page.keyboard.press("ControlOrMeta+s");
    await error.waitFor({ state: "hidden" });
  });

  it("turns a save over someone else's change into a choice, and overwrites on request", async () => {
    await replaceScript('// mine\nlogger.info("mine", Date.now());\nawait Stels.sleep(50);\n');
    const theirs = await record(first);
    const changed = await call(node, session, "updateWorker", {
      channel: theirs.value.channel,
      raw: { ...theirs.value.raw, note: "changed elsewhere" },
      versionstamp: theirs.versionstamp,
    });
    assert.equal(changed.status, 200);
    await page.getByText("changed on the node while you were editing").waitFor();
    await page.keyboard.press("ControlOrMeta+s");
    const dialog = page.getByRole("dialog", { name: "This worker changed on the node" });
    await dialog.getByRole("table", { name: "What changed" }).getByText("changed elsewhere").waitFor();
    await shot(page, "worker-conflict");
    await dialog.getByRole("button", { name: "Overwrite with mine" }).click();
    await page.getByText("saved", { exact: true }).first().waitFor();
    const now = await record(first);
    assert.match(now.value.raw.script, /.mine.,/);
    assert.equal(now.value.raw.note, "ticks for the test");
  });

  it("starts the worker and shows its live logs, stats and charts", async () => {
    await page.getByRole("button", { name: "Start worker" }).click();
    await page.locator(".worker-view .view-head .badge").getByText("running").waitFor();
    const log = page.getByRole("log", { name: "Log lines" });
    await log.getByText(/\[INFO\] mine \d+/).first().waitFor();
    const activity = page.getByRole("region", { name: "Activity" });
    await page.waitForFunction(() => {
      const dd = [...document.querySelectorAll(".stats-list dt")].find((d) => d.textContent === "Executions");
      return dd && Number(dd.nextElementSibling.textContent.replace(/\D/g, "")) > 3;
    });
    await activity.getByRole("img", { name: /Executions per second: latest [\d.]+\/s/ }).waitFor();
    await page.getByLabel("Search logs").fill("no such text");
    assert.equal(await log.locator(".log-line").count(), 0);
    await page.getByLabel("Search logs").fill("");
    await page.getByRole("button", { name: "Pause" }).click();
    await page.getByRole("button", { name: "Follow" }).click();
    await shot(page, "worker-running");
  });

  it("shows the elected leader of a leader-mode worker with its lease countdown", async () => {
    leader = await createFrom("Leader-elected");
    await page.getByRole("button", { name: "Start worker" }).click();
    const panel = page.getByRole("region", { name: "Leader" });
    await panel.getByText("s-0001").waitFor();
    await panel.getByText(/^\d+ s$/).waitFor();
    await shot(page, "worker-leader");
  });

  it("shows a worker stopped by the error rules as halted, with the reason", async () => {
    const sid = await createFrom("Empty script");
    await replaceScript('throw new TypeError("boom");\n');
    await page.keyboard.press("ControlOrMeta+s");
    await page.getByText("saved", { exact: true }).first().waitFor();
    await page.getByRole("button", { name: "Start worker" }).click();
    await page.locator(".worker-view .view-head .badge").getByText("halted by error rules").waitFor({ timeout: 20000 });
    await page.getByText(/Worker stopped on this node after/).first().waitFor();
    await page.goto(`${node.url}/console/#/workers`);
    const row = page.locator(`.grid-row[data-sid="${sid}"]`);
    await row.getByText("halted").waitFor();
    assert.equal(await row.getAttribute("data-status"), "halted");
  });

  it("lists, searches, filters and stops workers in the table", async () => {
    const table = page.getByRole("table", { name: "Workers" });
    await table.locator(`.grid-row[data-sid="${first}"]`).waitFor();
    await shot(page, "workers-table");
    await page.getByLabel("Search workers").fill(first.slice(0, 13));
    await page.getByText("1 of 3 workers").waitFor();
    await page.getByLabel("Search workers").fill("");
    await page.getByLabel("Status", { exact: true }).selectOption("running");
    await page.getByText("2 of 3 workers").waitFor();
    await page.getByLabel("Status", { exact: true }).selectOption("");
    await page.getByRole("button", { name: "Runs" }).click();
    await table.getByRole("columnheader", { name: "Runs" }).and(page.locator("[aria-sort=ascending]")).waitFor();
    await page.getByRole("button", { name: `Stop worker ${first}` }).click();
    await table.locator(`.grid-row[data-sid="${first}"][data-status="stopped"]`).waitFor();
    assert.equal((await record(first)).value.raw.active, false);
  });

  it("stops all workers after a confirmation", async () => {
    await page.getByRole("button", { name: "Stop all" }).click();
    const dialog = page.getByRole("dialog", { name: "Stop all workers?" });
    await shot(page, "stop-all-dialog");
    await dialog.getByRole("button", { name: "Stop all workers" }).click();
    await page.getByText(/Stopped \d+ of 3 workers/).waitFor();
    const { body } = await call(node, session, "listWorkers");
    assert.ok(body.every((e) => !e.value.raw.active));
    assert.equal((await record(leader)).value.raw.active, false);
  });

  it("shows the node in the nodes view, and follows a dark system theme", async () => {
    await page.getByRole("link", { name: "Nodes" }).click();
    await page.getByRole("heading", { name: "Nodes" }).waitFor();
    await page.getByRole("article", { name: "Node s-0001" }).waitFor();
    await page.getByRole("region", { name: "Node events" }).getByText("stopped").first().waitFor();
    await shot(page, "nodes");
    assert.deepEqual(page.problems(), []);

    const dark = await newPage(browser, { colorScheme: "dark" });
    await dark.goto(`${node.url}/console/#session=${session}`);
    await dark.getByRole("table", { name: "Workers" }).waitFor();
    const background = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(background, "rgb(15, 18, 23)");
    await shot(dark, "workers-dark");
    await dark.goto(`${node.url}/console/#/workers/${first}`);
    await dark.getByRole("textbox", { name: "Script editor" }).waitFor();
    await shot(dark, "worker-dark");
    assert.deepEqual(dark.problems(), []);
    await dark.context().close();
  });
});
