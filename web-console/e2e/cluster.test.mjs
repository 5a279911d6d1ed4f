// The nodes view of a real cluster: a real etcd and two nodes on it; the console on one node
// lists both (the other from what it publishes with its membership), and a node that is killed
// leaves the view within its membership TTL.
import { describe, it, before, after } from "node:test";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { startNode, launchBrowser, newPage, shot, consoleLink, tempDir, cleanup } from "./harness.mjs";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** A single-member etcd on loopback; resolves once it answers. */
async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const child = spawn("etcd", [
    "--name", "e2e", "--data-dir", dir,
    "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
    "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", `e2e=${peerUrl}`,
    "--heartbeat-interval", "10", "--election-timeout", "100",
    "--logger", "zap", "--log-level", "error",
  ], { stdio: "ignore" });
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const reply = await fetch(`${clientUrl}/health`);
      if ((await reply.json()).health === "true") break;
    } catch {}
    if (Date.now() > deadline) throw new Error("etcd did not become healthy within 20 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { store: `etcd://127.0.0.1:${client}`, stop: () => child.kill("SIGKILL") };
}

describe("the nodes view of a cluster", () => {
  let dir, etcd, n1, n2, browser;

  before(async () => {
    dir = tempDir("cluster");
    etcd = await startEtcd(join(dir, "etcd"));
    const cluster = ["--store", etcd.store, "--membership-ttl-ms", "1000"];
    n1 = await startNode({ dataDir: join(dir, "n1"), args: [...cluster, "--nid", "n1"] });
    n2 = await startNode({ dataDir: join(dir, "n2"), args: [...cluster, "--nid", "n2"] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await n1?.stop();
    await n2?.kill();
    etcd?.stop();
    cleanup(dir);
  });

  it("lists every live node and drops one that dies", async () => {
    const { link } = await consoleLink(n1);
    const page = await newPage(browser);
    await page.goto(link);
    await page.getByRole("heading", { name: "Workers" }).waitFor();
    await page.getByRole("link", { name: "Nodes" }).click();
    await page.getByText("2 live nodes in this cluster.").waitFor();
    await page.getByRole("article", { name: "Node n1" }).waitFor();
    const other = page.getByRole("article", { name: "Node n2" });
    await other.getByText(n2.url).waitFor();
    await shot(page, "nodes-cluster");

    await n2.kill();
    await page.getByText("1 live node in this cluster.").waitFor({ timeout: 15000 });
    await other.waitFor({ state: "detached" });
    if (page.problems().length) throw new Error(page.problems().join("\n"));
  });
});
