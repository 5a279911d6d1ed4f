// The workers table: every record of the node, live from the events and stats streams, with
// search, filters and sort. Only the rows in view are in the DOM, so 10,000 workers scroll freely.
import { h, clear, toast, ago, formatRate, confirmDialog } from "../ui.js";
import { statusOf } from "../state.js";
import { openCreateDialog } from "./create.js";

const ROW_HEIGHT = 32;
const OVERSCAN = 10;

const COLUMNS = [
  { key: "sid", label: "Worker", sort: (i) => i.entry.value.raw.sid },
  { key: "note", label: "Description", sort: (i) => i.entry.value.raw.note.toLowerCase() },
  { key: "mode", label: "Mode", sort: (i) => i.entry.value.raw.mode },
  { key: "exec", label: "Execution", sort: (i) => i.entry.value.raw.executionMode ?? "parallel" },
  { key: "priority", label: "Priority", sort: (i) => PRIORITY_ORDER[i.entry.value.raw.priority ?? "normal"] },
  { key: "scope", label: "Scope", sort: (i) => i.entry.value.raw.scope ?? "network" },
  { key: "active", label: "Active", sort: (i) => (i.entry.value.raw.active ? 1 : 0) },
  { key: "status", label: "Status", sort: (i) => statusOf(i).key },
  { key: "executions", label: "Runs", sort: (i) => i.stats?.executions ?? -1, numeric: true },
  { key: "errors", label: "Errors", sort: (i) => i.stats?.errors ?? -1, numeric: true },
  { key: "rate", label: "Rate", sort: (i) => i.rate, numeric: true },
  { key: "lastRun", label: "Last run", sort: (i) => i.stats?.lastRun ?? 0, numeric: true },
  { key: "lastError", label: "Last error", sort: (i) => i.stats?.lastError ?? "" },
];
const PRIORITY_ORDER = { critical: 0, high: 1, normal: 2, low: 3 };

const FILTERS = [
  { key: "status", label: "Status", options: ["running", "stopped", "halted", "active", "finished"] },
  { key: "executionMode", label: "Execution mode", options: ["parallel", "leader", "exclusive"] },
  { key: "mode", label: "Mode", options: ["loop", "single"] },
  { key: "priority", label: "Priority", options: ["critical", "high", "normal", "low"] },
  { key: "scope", label: "Scope", options: ["network", "local"] },
];

export class WorkersView {
  constructor(ctx) {
    this.ctx = ctx;
    const saved = JSON.parse(sessionStorage.getItem("heterogen.workers.view") ?? "{}");
    this.query = saved.query ?? "";
    this.filters = saved.filters ?? {};
    this.sortKey = saved.sortKey ?? "sid";
    this.sortDir = saved.sortDir ?? 1;
    this.rows = [];
    this.frame = 0;
    this.searchCache = new WeakMap();
    this.build();
    this.onChange = (e) => this.schedule(e.detail.kind !== "stats" || this.dependsOnStats());
    ctx.state.addEventListener("change", this.onChange);
    if (!ctx.state.loaded) ctx.state.reload();
    this.schedule(true);
  }

  destroy() {
    this.ctx.state.removeEventListener("change", this.onChange);
    cancelAnimationFrame(this.frame);
    this.resizeObserver?.disconnect();
  }

  dependsOnStats() {
    const col = COLUMNS.find((c) => c.key === this.sortKey);
    return ["status", "executions", "errors", "rate", "lastRun", "lastError"].includes(col?.key) ||
      !!this.filters.status;
  }

  persist() {
    sessionStorage.setItem("heterogen.workers.view", JSON.stringify({
      query: this.query, filters: this.filters, sortKey: this.sortKey, sortDir: this.sortDir,
    }));
  }

  build() {
    const search = h("input", {
      type: "search", id: "worker-search", value: this.query,
      placeholder: "sid, description, node, version…",
      oninput: (e) => { this.query = e.target.value; this.persist(); this.schedule(true); },
    });
    const filters = FILTERS.map((f) => {
      const id = `filter-${f.key}`;
      return h("span", { class: "filter" },
        h("label", { for: id }, f.label),
        h("select", {
          id,
          onchange: (e) => {
            if (e.target.value) this.filters[f.key] = e.target.value;
            else delete this.filters[f.key];
            this.persist();
            this.schedule(true);
          },
        },
        h("option", { value: "" }, "all"),
        f.options.map((o) => h("option", { value: o, selected: this.filters[f.key] === o }, o))));
    });
    this.count = h("span", { class: "count", role: "status", "aria-live": "polite" });
    this.totals = h("div", { class: "totals", "aria-label": "Node totals" });
    const head = h("tr", { role: "row" }, COLUMNS.map((c) => {
      const th = h("th", { scope: "col", class: `col-${c.key}`, dataset: { key: c.key } },
        h("button", { type: "button", class: "sort", onclick: () => this.sortBy(c.key) }, c.label));
      return th;
    }), h("th", { scope: "col", class: "col-actions" }, h("span", { class: "sr-only" }, "Actions")));
    this.thead = h("thead", {}, head);
    this.tbody = h("tbody");
    this.table = h("table", { class: "workers", "aria-label": "Workers" }, this.thead, this.tbody);
    this.scroller = h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Workers table" }, this.table);
    this.scroller.addEventListener("scroll", () => this.schedule(false), { passive: true });
    this.empty = h("div", { class: "empty-state", hidden: true });

    const toolbar = h("div", { class: "toolbar" },
      h("span", { class: "filter grow" }, h("label", { for: "worker-search" }, "Search workers"), search),
      filters,
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "primary", onclick: () => openCreateDialog(this.ctx) }, "New worker"),
      h("button", { type: "button", class: "danger", onclick: () => this.stopAll() }, "Stop all"));
    clear(this.ctx.root,
      h("section", { class: "workers-view", "aria-label": "Workers view" },
        h("div", { class: "view-head" }, h("h1", {}, "Workers"), this.count, h("span", { class: "spacer" }), this.totals),
        toolbar, this.scroller, this.empty));
    this.resizeObserver = new ResizeObserver(() => this.schedule(false));
    this.resizeObserver.observe(this.scroller);
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else {
      this.sortKey = key;
      this.sortDir = 1;
    }
    this.persist();
    this.schedule(true);
  }

  schedule(recompute) {
    this.needRecompute ||= recompute;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.needRecompute) this.recompute();
      this.needRecompute = false;
      this.render();
    });
  }

  searchText(item) {
    const entry = item.entry;
    let cached = this.searchCache.get(entry);
    if (!cached) {
      const r = entry.value.raw;
      cached = [r.sid, r.note, r.nid, r.version, r.mode, r.executionMode, r.priority, r.scope, r.assignedNode]
        .filter(Boolean).join(" ").toLowerCase();
      this.searchCache.set(entry, cached);
    }
    return cached;
  }

  recompute() {
    const words = this.query.toLowerCase().split(/\s+/).filter(Boolean);
    const f = this.filters;
    const rows = [];
    for (const item of this.ctx.state.workers.values()) {
      const raw = item.entry.value.raw;
      if (f.executionMode && (raw.executionMode ?? "parallel") !== f.executionMode) continue;
      if (f.mode && raw.mode !== f.mode) continue;
      if (f.priority && (raw.priority ?? "normal") !== f.priority) continue;
      if (f.scope && (raw.scope ?? "network") !== f.scope) continue;
      if (f.status) {
        const s = statusOf(item).key;
        if (f.status === "active" ? !raw.active : s !== f.status) continue;
      }
      if (words.length) {
        const text = this.searchText(item);
        if (!words.every((w) => text.includes(w))) continue;
      }
      rows.push(item);
    }
    const col = COLUMNS.find((c) => c.key === this.sortKey) ?? COLUMNS[0];
    const dir = this.sortDir;
    const keyed = rows.map((item) => [col.sort(item), item]);
    keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : 0));
    this.rows = keyed.map((k) => k[1]);
    for (const th of this.thead.querySelectorAll("th[data-key]")) {
      th.setAttribute("aria-sort", th.dataset.key === this.sortKey ? (dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  render() {
    const state = this.ctx.state;
    const total = state.workers.size;
    this.count.textContent = `${this.rows.length.toLocaleString()} of ${total.toLocaleString()} workers`;
    const t = state.totals;
    this.totals.textContent = t
      ? `running here ${t.runningWorkers} · runs ${t.totalExecutions.toLocaleString()} · errors ${t.totalErrors.toLocaleString()}`
      : "";
    this.table.setAttribute("aria-rowcount", String(this.rows.length + 1));
    if (!state.loaded) {
      this.showEmpty(state.loadError ? `Could not list the workers: ${state.loadError}` : "Loading workers…");
      return;
    }
    if (total === 0) {
      this.showEmpty("No workers on this node yet.", true);
      return;
    }
    if (this.rows.length === 0) {
      this.showEmpty("No worker matches the search and filters.");
      return;
    }
    this.empty.hidden = true;
    this.scroller.hidden = false;
    const viewport = this.scroller.clientHeight || 600;
    const headHeight = this.thead.offsetHeight || ROW_HEIGHT;
    const top = Math.max(0, this.scroller.scrollTop - headHeight);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + viewport) / ROW_HEIGHT) + OVERSCAN);
    const now = Date.now();
    const rows = [];
    if (first > 0) rows.push(spacer(first * ROW_HEIGHT));
    for (let i = first; i < last; i++) rows.push(this.row(this.rows[i], i, now));
    if (last < this.rows.length) rows.push(spacer((this.rows.length - last) * ROW_HEIGHT));
    this.tbody.replaceChildren(...rows);
  }

  showEmpty(text, offerCreate = false) {
    this.scroller.hidden = true;
    this.empty.hidden = false;
    clear(this.empty, h("p", {}, text),
      offerCreate ? h("button", { type: "button", class: "primary", onclick: () => openCreateDialog(this.ctx) }, "Create your first worker") : null);
  }

  row(item, index, now) {
    const raw = item.entry.value.raw;
    const s = item.stats;
    const status = statusOf(item);
    const href = `#/workers/${raw.sid}`;
    const toggle = h("button", {
      type: "button", class: "small",
      "aria-label": `${raw.active ? "Stop" : "Start"} worker ${raw.sid}`,
      onclick: (e) => { e.stopPropagation(); this.toggle(item, toggle); },
    }, raw.active ? "Stop" : "Start");
    const tr = h("tr", { "aria-rowindex": index + 2, dataset: { sid: raw.sid, status: status.key } },
      h("td", { class: "col-sid" }, h("a", { href, title: raw.sid }, raw.sid)),
      h("td", { class: "col-note", title: raw.note }, raw.note),
      h("td", {}, raw.mode),
      h("td", {}, raw.executionMode ?? "parallel", raw.executionMode === "exclusive" ? ` → ${raw.assignedNode}` : ""),
      h("td", {}, h("span", { class: `prio prio-${raw.priority ?? "normal"}` }, raw.priority ?? "normal")),
      h("td", {}, raw.scope ?? "network"),
      h("td", {}, raw.active ? "yes" : "no"),
      h("td", { title: status.title }, h("span", { class: `badge st-${status.key}` }, status.label)),
      h("td", { class: "num" }, s ? s.executions.toLocaleString() : "–"),
      h("td", { class: `num${s?.errors ? " bad" : ""}` }, s ? s.errors.toLocaleString() : "–"),
      h("td", { class: "num" }, s ? formatRate(item.rate) : "–"),
      h("td", {}, s?.lastRun ? ago(s.lastRun, now) : "–"),
      h("td", { class: "col-error", title: s?.lastError ?? "" }, s?.lastError ?? ""),
      h("td", { class: "col-actions" }, toggle));
    tr.addEventListener("dblclick", () => { location.hash = href; });
    return tr;
  }

  async toggle(item, button) {
    const raw = item.entry.value.raw;
    button.disabled = true;
    try {
      const { result } = await this.ctx.conn.request("updateWorker", {
        channel: item.entry.value.channel,
        raw: { ...raw, active: !raw.active },
        versionstamp: item.entry.versionstamp,
      });
      this.ctx.state.upsert(result);
      this.ctx.state.changed("saved", raw.sid);
      toast(`${raw.active ? "Stopped" : "Started"} ${raw.sid}`);
    } catch (error) {
      toast(error.status === 409
        ? `${raw.sid} changed on the node meanwhile; try again`
        : `Could not ${raw.active ? "stop" : "start"} ${raw.sid}: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  async stopAll() {
    const active = [...this.ctx.state.workers.values()].filter((i) => i.entry.value.raw.active).length;
    const ok = await confirmDialog("Stop all workers?",
      `This sets every worker of the cluster inactive (${active} active now). They stop on every node.`,
      "Stop all workers");
    if (!ok) return;
    try {
      const { status, result } = await this.ctx.conn.request("stopAllWorkers");
      const failed = result.failed ?? 0;
      toast(`Stopped ${result.stopped} of ${result.total} workers${failed ? `; ${failed} failed` : ""}`,
        status === 207 || failed ? "error" : "info");
      this.ctx.state.reload();
    } catch (error) {
      toast(`Stop all failed: ${error.message}`, "error");
    }
  }
}

function spacer(height) {
  const tr = h("tr", { class: "spacer-row", "aria-hidden": "true" });
  // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
  tr.style.height = `${height}px`;
  return tr;
}
