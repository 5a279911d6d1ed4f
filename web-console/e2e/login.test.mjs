// Logging in: in-page with a pasted key file (signed in the page, same crypto as the CLI), by a
// `heterogen console` link, out again; a --open node without login; a non-owner refused.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startNode, launchBrowser, newPage, shot, cli, tempDir, cleanup } from "./harness.mjs";

describe("logging in to the console", () => {
  let dir, node, browser, ownerFile, strangerFile, owner;

  before(async () => {
    dir = tempDir("login");
    ownerFile = join(dir, "owner.json");
    strangerFile = join(dir, "stranger.json");
    cli("wallet", "new", "--out", ownerFile);
    cli("wallet", "new", "--out", strangerFile);
    owner = JSON.parse(readFileSync(ownerFile, "utf8")).address;
    node = await startNode({ dataDir: join(dir, "data"), args: ["--owners", owner] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
    cleanup(dir);
  });

  it("signs the login in the page with a pasted key file, keeps the tab logged in, and logs out", async () => {
    const page = await newPage(browser);
    const response = await page.goto(`${node.url}/`);
    assert.match(page.url(), /\/console\/$/, "a browser's GET / leads to the console");
    assert.match(response.headers()["content-security-policy"] ?? "", /default-src 'self'/);
    await page.getByRole("heading", { name: /Log in to/ }).waitFor();
    await shot(page, "login");

    await page.getByLabel("Wallet private key or key file").fill(readFileSync(strangerFile, "utf8"));
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByText(/not an owner|refused the login \(403/).waitFor();

    await page.getByLabel("Wallet private key or key file").fill(readFileSync(ownerFile, "utf8"));
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Workers" }).waitFor();
    await page.getByText(owner).waitFor();
    assert.equal(await page.getByLabel("Wallet private key or key file").count(), 0);
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }));
    assert.ok(!stored.includes(JSON.parse(readFileSync(ownerFile, "utf8")).privateKey), "the key is never stored");

    await page.reload();
    await page.getByRole("heading", { name: "Workers" }).waitFor();
    await page.getByRole("status", { name: "Connection state" }).getByText("connected").waitFor();

    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: /Log in to/ }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("heterogen.session")), null);
    assert.ok(page.requests().every((u) => u.startsWith(node.url) || u.startsWith("ws://127.0.0.1")),
      `every request goes to the node: ${page.requests().filter((u) => !u.startsWith(node.url))}`);
    assert.deepEqual(page.problems(), []);
    await page.context().close();
  });

  it("logs in by the link `heterogen console` prints, with the session only in the fragment", async () => {
    const out = cli("console", "--url", node.url, "--key", ownerFile, "--no-open");
    const link = out.match(/(http:\/\/\S+\/console\/#session=(\S+))/);
    assert.ok(link, `a console link on stdout: ${out}`);
    assert.ok(!link[1].includes("?"), "never in the query");
    assert.ok(!node.stderr().includes(link[2]), "the node never logs the session");
    const page = await newPage(browser);
    await page.goto(link[1]);
    await page.getByRole("heading", { name: "Workers" }).waitFor();
    assert.ok(!page.url().includes(link[2]), "the token leaves the address bar");
    await page.getByRole("status", { name: "Connection state" }).getByText("connected").waitFor();
    assert.deepEqual(page.problems(), []);
    await page.context().close();
  });

  it("signs exactly like the STELS client (stels-client.md §2.6 test vector)", async () => {
    const page = await newPage(browser);
    await page.goto(`${node.url}/console/`);
    const got = await page.evaluate(async () => {
      const w = await import("/console/js/wallet.js");
      const wallet = w.walletFromPrivateHex("1".repeat(64));
      const data = JSON.stringify({ action: "LOGIN_REQUEST", timestamp: 1700000000000, network: "testnet", walletAddress: wallet.address });
      const tx = w.signedTransaction(wallet, data, 1700000000001);
      return { address: wallet.address, number: wallet.number, hash: tx.hash, signature: tx.signature };
    });
    assert.deepEqual(got, {
      address: "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz",
      number: "0116308144976937",
      hash: "8c91eab634baacb28fa2df28ef9e1d63d89e7689536b080e79bdf5c21f2d9f9d",
      signature: "30440220234c80d96483d56cca1d23083fcdfd5ba7cfb329b883dcf3ecfac143b615863602204dd1d0f6995391faffe544a60eaf14f8403f3895d79fe71471f06e1055050eec",
    });
    await page.context().close();
  });

  it("needs no login on a node started with --open", async () => {
    const openNode = await startNode({ dataDir: join(dir, "open-data"), args: ["--open"] });
    try {
      const page = await newPage(browser);
      await page.goto(`${openNode.url}/console/`);
      await page.getByRole("heading", { name: "Workers" }).waitFor();
      await page.getByText("open node (no login)").waitFor();
      assert.equal(await page.getByRole("button", { name: "Log out" }).isVisible(), false);
      assert.deepEqual(page.problems(), []);
      await page.context().close();
    } finally {
      await openNode.stop();
    }
  });
});
