// The workers table: every record of the node, live from the events and stats streams, with
// search, filters and sort. Only the rows in view are in the DOM, so 10,000 workers scroll freely.
import { h, clear, toast, ago, formatRate, confirmDialog } from "../ui.js";
import { statusOf } from "../state.js";
import { openCreateDialog } from "./create.js";

const ROW_HEIGHT = 32;
// Rows rendered beyond the viewport on each side. A scroll that stays inside them is only a
// composited scroll; DOM work (and its repaint) happens once per OVERSCAN/2 rows scrolled.
const OVERSCAN = 40;

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
    // Listing starts once the events subscription does (on every connect): nothing is missed.
    if (!ctx.state.loaded && ctx.conn.state === "open") ctx.state.reload();
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
    const head = h("div", { class: "grid-row head", role: "row" }, COLUMNS.map((c) =>
      h("div", { role: "columnheader", class: `col-${c.key}`, dataset: { key: c.key } },
        h("button", { type: "button", class: "sort", onclick: () => this.sortBy(c.key) }, c.label))),
    h("div", { role: "columnheader", class: "col-actions" }, h("span", { class: "sr-only" }, "Actions")));
    this.thead = h("div", { class: "grid-head", role: "rowgroup" }, head);
    this.tbody = h("div", { class: "grid-body", role: "rowgroup" });
    /** Rendered rows by their index in `this.rows`; each keeps its place while in range. */
    this.placed = new Map();
    this.free = [];
    this.table = h("div", { class: "workers grid", role: "table", "aria-label": "Workers" }, this.thead, this.tbody);
    this.scroller = h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Workers table" }, this.table);
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
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

  onScroll() {
    const { first, last } = this.visibleRange();
    if (this.rendered && first >= this.rendered.first && last <= this.rendered.last) return;
    this.schedule(false);
  }

  visibleRange() {
    const viewport = this.scroller.clientHeight || 600;
    const headHeight = this.thead.offsetHeight || ROW_HEIGHT;
    const top = Math.max(0, this.scroller.scrollTop - headHeight);
    const first = Math.floor(top / ROW_HEIGHT);
    return { first, last: Math.min(this.rows.length, Math.ceil((top + viewport) / ROW_HEIGHT)) };
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
    // The rows under the same scroll position may be other rows now.
    this.rendered = null;
    for (const th of this.thead.querySelectorAll("[data-key]")) {
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
    if (!performance.getEntriesByName("workers-rendered").length) performance.mark("workers-rendered");
    const visible = this.visibleRange();
    let { first, last } = this.rendered ?? { first: -1, last: -1 };
    if (visible.first < first || visible.last > last) {
      first = Math.max(0, visible.first - OVERSCAN);
      last = Math.min(this.rows.length, visible.last + OVERSCAN);
    }
    last = Math.min(last, this.rows.length);
    this.rendered = { first, last };
    const now = Date.now();
    // CSSOM, not style attributes: the Content-Security-Policy allows no inline styles.
    this.tbody.style.height = `${this.rows.length * ROW_HEIGHT}px`;
    for (const [index, row] of this.placed) {
      if (index < first || index >= last) {
        this.placed.delete(index);
        row.el.hidden = true;
        this.free.push(row);
      }
    }
    // A row keeps its element while it stays in range, so scrolling by k rows repaints k rows.
    for (let i = first; i < last; i++) {
      let row = this.placed.get(i);
      if (!row) {
        row = this.free.pop() ?? this.makeRow();
        if (!row.el.isConnected) this.tbody.append(row.el);
        row.el.hidden = false;
        row.el.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
        this.placed.set(i, row);
      }
      this.fill(row, this.rows[i], i, now);
    }
  }

  showEmpty(text, offerCreate = false) {
    this.scroller.hidden = true;
    this.empty.hidden = false;
    clear(this.empty, h("p", {}, text),
      offerCreate ? h("button", { type: "button", class: "primary", onclick: () => openCreateDialog(this.ctx) }, "Create your first worker") : null);
  }

  makeRow() {
    const cells = COLUMNS.map((c) => h("div", { role: "cell", class: `col-${c.key}${c.numeric && c.key !== "lastRun" ? " num" : ""}` }));
    const link = h("a");
    cells[0].append(link);
    const badge = h("span", { class: "badge" });
    cells[7].append(badge);
    const prio = h("span");
    cells[4].append(prio);
    const row = { item: null, values: [], link, badge, prio, cells };
    row.toggle = h("button", {
      type: "button", class: "small",
      onclick: (e) => { e.stopPropagation(); this.toggle(row.item, row.toggle); },
    });
    row.el = h("div", { class: "grid-row", role: "row" }, cells, h("div", { role: "cell", class: "col-actions" }, row.toggle));
    row.el.addEventListener("dblclick", () => { location.hash = `#/workers/${row.item.entry.value.raw.sid}`; });
    return row;
  }

  fill(row, item, index, now) {
    const raw = item.entry.value.raw;
    const s = item.stats;
    const status = statusOf(item);
    row.item = item;
    const set = (i, text, title) => {
      if (row.values[i] === text) return;
      row.values[i] = text;
      const cell = row.cells[i];
      if (i === 0) {
        row.link.textContent = text;
        row.link.href = `#/workers/${text}`;
      } else if (i === 4) {
        row.prio.textContent = text;
        row.prio.className = `prio prio-${text}`;
      } else if (i === 7) {
        row.badge.textContent = status.label;
        row.badge.className = `badge st-${status.key}`;
      } else cell.textContent = text;
      if (title !== undefined) cell.title = title;
    };
    set(0, raw.sid);
    set(1, raw.note, raw.note);
    set(2, raw.mode);
    set(3, (raw.executionMode ?? "parallel") + (raw.executionMode === "exclusive" ? ` → ${raw.assignedNode}` : ""));
    set(4, raw.priority ?? "normal");
    set(5, raw.scope ?? "network");
    set(6, raw.active ? "yes" : "no");
    set(7, `${status.key}:${status.title}`, status.title);
    set(8, s ? s.executions.toLocaleString() : "–");
    set(9, s ? s.errors.toLocaleString() : "–");
    row.cells[9].classList.toggle("bad", !!s?.errors);
    set(10, s ? formatRate(item.rate) : "–");
    set(11, s?.lastRun ? ago(s.lastRun, now) : "–");
    set(12, s?.lastError ?? "", s?.lastError ?? "");
    row.el.setAttribute("aria-rowindex", String(index + 2));
    row.el.dataset.sid = raw.sid;
    row.el.dataset.status = status.key;
    const label = `${raw.active ? "Stop" : "Start"} worker ${raw.sid}`;
    if (row.toggle.getAttribute("aria-label") !== label) {
      row.toggle.setAttribute("aria-label", label);
      row.toggle.textContent = raw.active ? "Stop" : "Start";
      row.toggle.disabled = false;
    }
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
