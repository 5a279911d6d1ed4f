// The nodes of the cluster as this node sees them (today: itself), with its live totals and
// the latest node events.
import { h, clear, ago } from "../ui.js";

export class NodesView {
  constructor(ctx) {
    this.ctx = ctx;
    this.onChange = () => this.schedule();
    ctx.state.addEventListener("change", this.onChange);
    this.timer = setInterval(() => this.render(), 1000);
    this.render();
  }

  destroy() {
    this.ctx.state.removeEventListener("change", this.onChange);
    clearInterval(this.timer);
    cancelAnimationFrame(this.frame);
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
    clear(this.ctx.root, h("section", { class: "nodes-view", "aria-label": "Nodes view" },
      h("div", { class: "view-head" }, h("h1", {}, "Nodes")),
      h("p", { class: "muted" }, "This node's view of the cluster. Nodes sharing an etcd store will be listed here once clustering lands."),
      h("div", { class: "node-grid" }, card, events)));
  }
}
