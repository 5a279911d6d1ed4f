// The nodes of the cluster: this node with its live totals and latest events, and every other
// live node as it last published itself with its membership (`listNodes`, polled).
import { h, clear, ago } from "../ui.js";

/** How often the node list is asked for again. */
const LIST_EVERY_MS = 2000;

export class NodesView {
  constructor(ctx) {
    this.ctx = ctx;
    this.members = null;
    this.listError = null;
    this.onChange = () => this.schedule();
    ctx.state.addEventListener("change", this.onChange);
    this.timer = setInterval(() => this.render(), 1000);
    this.listTimer = setInterval(() => this.list(), LIST_EVERY_MS);
    this.list();
    this.render();
  }

  destroy() {
    this.ctx.state.removeEventListener("change", this.onChange);
    clearInterval(this.timer);
    clearInterval(this.listTimer);
    cancelAnimationFrame(this.frame);
  }

  async list() {
    try {
      const { result } = await this.ctx.conn.request("listNodes");
      this.members = result.nodes;
      this.listError = null;
    } catch (e) {
      this.listError = e.message;
    }
    this.schedule();
  }

  /** A card for another node, from the load it published. */
  memberCard(member) {
    const load = member.load ?? {};
    return h("article", { class: "panel node-card", "aria-label": `Node ${member.nid}` },
      h("h2", {}, member.nid),
      h("dl", { class: "stats-list" },
        h("dt", {}, "Address"), h("dd", {}, member.apiUrl),
        h("dt", {}, "Version"), h("dd", {}, `heterogen ${member.version}`),
        h("dt", {}, "Started"), h("dd", {}, ago(member.startedAt)),
        h("dt", {}, "Connections"), h("dd", {}, String(load.connections ?? 0)),
        h("dt", {}, "Running there"), h("dd", {}, String(load.runningWorkers ?? 0)),
        h("dt", {}, "Executions there"), h("dd", {}, (load.executions ?? 0).toLocaleString()),
        h("dt", {}, "Errors there"), h("dd", {},
          `${(load.errors ?? 0).toLocaleString()} (network ${load.networkErrors ?? 0}, critical ${load.criticalErrors ?? 0})`),
        h("dt", {}, "Load as of"), h("dd", {}, ago(member.updatedAt))));
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    const { node, state } = this.ctx;
    const t = state.totals;
    const records = state.workers.size;
    const active = [...state.workers.values()].filter((i) => i.entry.value.raw.active).length;
    const card = h("article", { class: "panel node-card", "aria-label": `Node ${node.nid}` },
      h("h2", {}, node.nid, " ", h("span", { class: "badge st-running" }, "this node")),
      h("dl", { class: "stats-list" },
        h("dt", {}, "Title"), h("dd", {}, node.title ?? "heterogen"),
        h("dt", {}, "Network"), h("dd", {}, node.network),
        h("dt", {}, "Version"), h("dd", {}, `heterogen ${node.version} · WebFIX ${node.webfix}`),
        h("dt", {}, "Address"), h("dd", {}, node.websocket),
        h("dt", {}, "Authentication"), h("dd", {}, node.open ? "open (no login)" : "owners only"),
        h("dt", {}, "Workers (cluster records)"), h("dd", {}, `${records} (${active} active)`),
        h("dt", {}, "Running here"), h("dd", {}, t ? `${t.runningWorkers} of ${t.totalWorkers} run here since start` : "–"),
        h("dt", {}, "Executions here"), h("dd", {}, t ? t.totalExecutions.toLocaleString() : "–"),
        h("dt", {}, "Errors here"), h("dd", {},
          t ? `${t.totalErrors.toLocaleString()} (network ${t.totalNetworkErrors}, critical ${t.totalCriticalErrors})` : "–"),
        h("dt", {}, "Last stats"), h("dd", {}, t ? ago(t.timestamp) : "waiting…")));
    const events = h("section", { class: "panel", "aria-label": "Node events" },
      h("h2", {}, "Recent events"),
      state.events.length === 0
        ? h("p", { class: "muted" }, "No events since this page connected.")
        : h("ol", { class: "events" }, state.events.slice(0, 50).map((e) => h("li", {},
          h("time", {}, new Date(e.timestamp).toLocaleTimeString()), " ",
          h("span", { class: `badge ev-${e.type}` }, e.type), " ",
          e.sid ? h("a", { href: `#/workers/${e.sid}` }, e.sid) : null,
          e.reason ? ` — ${e.reason}` : ""))));
    const others = (this.members ?? []).filter((m) => m.nid !== node.nid);
    const summary = this.listError
      ? `The node list could not be read: ${this.listError}`
      : this.members === null
        ? "Reading the node list…"
        : `${this.members.length} live ${this.members.length === 1 ? "node" : "nodes"} in this cluster.`;
    clear(this.ctx.root, h("section", { class: "nodes-view", "aria-label": "Nodes view" },
      h("div", { class: "view-head" }, h("h1", {}, "Nodes")),
      h("p", { class: "muted", "aria-label": "Cluster summary" }, summary),
      h("div", { class: "node-grid" }, card, ...others.map((m) => this.memberCard(m)), events)));
  }
}
