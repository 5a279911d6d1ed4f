// One worker: the script in a real editor, every field of its record, start/stop, leader
// lease, live log tail and charts. Saving uses updateWorker with the versionstamp the page
// loaded, so a record changed meanwhile is a conflict the person resolves, never a silent loss.
import { h, clear, toast, modal, ago, download } from "../ui.js";
import { statusOf } from "../state.js";
import { createEditor } from "../editor.js";
import { drawChart } from "../charts.js";
import { workerFields } from "./form.js";
import { rememberSource, sourceFor } from "./create.js";
import { LogTail } from "./logs.js";

const LEADER_POLL_MS = 5000;

export class WorkerView {
  constructor(ctx, sid) {
    this.ctx = ctx;
    this.sid = sid;
    this.timers = [];
    this.onChange = (e) => this.stateChanged(e.detail);
    ctx.state.addEventListener("change", this.onChange);
    this.onKey = (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        this.save();
      }
    };
    document.addEventListener("keydown", this.onKey);
    this.onBeforeUnload = (e) => {
      if (this.dirty()) e.preventDefault();
    };
    window.addEventListener("beforeunload", this.onBeforeUnload);
    const item = ctx.state.get(sid);
    if (item) this.build(item.entry);
    else {
      clear(ctx.root, h("p", { class: "empty" }, "Loading worker…"));
      if (!ctx.state.loaded && ctx.conn.state === "open") ctx.state.reload();
    }
  }

  destroy() {
    this.ctx.state.removeEventListener("change", this.onChange);
    document.removeEventListener("keydown", this.onKey);
    window.removeEventListener("beforeunload", this.onBeforeUnload);
    this.timers.forEach(clearInterval);
    this.logs?.destroy();
    this.editor?.destroy();
  }

  stateChanged({ kind, sid }) {
    const item = this.ctx.state.get(this.sid);
    if (!this.base) {
      if (item) this.build(item.entry);
      else if (this.ctx.state.loaded) {
        clear(this.ctx.root, h("div", { class: "empty-state" },
          h("p", {}, `No worker ${this.sid} on this node.`), h("a", { href: "#/workers" }, "Back to the workers")));
      }
      return;
    }
    if (kind === "deleted" && sid === this.sid) {
      this.banner("This worker was deleted on the node.", []);
      return;
    }
    // Our own save or start/stop may be announced before its answer arrives: wait for it.
    if (!this.saving && item && item.entry.versionstamp > this.base.versionstamp && (kind === "saved" || kind === "list")) {
      this.remoteChanged(item.entry);
    }
    if (kind === "stats" || sid === this.sid) this.renderLive();
    if (kind === "event" && sid === this.sid) this.refreshLeader();
  }

  build(entry) {
    this.base = entry;
    const raw = entry.value.raw;
    const known = sourceFor(raw);
    this.loadedScript = known ?? raw.script;
    this.statusBadge = h("span", { class: "badge" });
    this.toggleButton = h("button", { type: "button", onclick: () => this.toggle() });
    this.saveButton = h("button", { type: "button", class: "primary", onclick: () => this.save(), title: "Ctrl/Cmd+S" }, "Save");
    this.dirtyMark = h("span", { class: "dirty", role: "status", "aria-live": "polite" });
    this.bannerBox = h("div", { class: "banner-box" });
    this.errorBox = h("div", { class: "script-error", role: "alert", hidden: true });
    this.meta = h("p", { class: "meta" });
    const editorHost = h("div", { class: "editor-host" });
    this.fields = workerFields("worker", raw, { scopeLocked: true });
    this.fields.onInput(() => this.markDirty());
    this.leaderBox = h("div", { class: "leader", "aria-live": "polite" });
    this.statsBox = h("dl", { class: "stats-list" });
    this.charts = {
      exec: h("canvas", { class: "chart", role: "img", dataset: { label: "Executions per second" } }),
      errors: h("canvas", { class: "chart", role: "img", dataset: { label: "Errors per second" } }),
      duration: h("canvas", { class: "chart", role: "img", dataset: { label: "Run duration" } }),
    };
    const logHost = h("section", { class: "panel logs-panel", "aria-label": "Logs" });

    clear(this.ctx.root, h("section", { class: "worker-view", "aria-label": `Worker ${raw.sid}` },
      h("div", { class: "view-head" },
        h("a", { href: "#/workers", class: "back" }, "← Workers"),
        h("h1", {}, h("span", { class: "sid" }, raw.sid)),
        this.statusBadge,
        h("span", { class: "spacer" }),
        this.dirtyMark,
        this.toggleButton,
        this.saveButton),
      this.meta,
      this.bannerBox,
      h("div", { class: "worker-grid" },
        h("section", { class: "panel editor-panel", "aria-label": "Script" },
          this.hint = h("p", { class: "hint", hidden: !!known },
            "Reformatted from the node's stored (minified) copy: comments are not kept there. Your own text is kept in this browser when you save here."),
          editorHost, this.errorBox),
        h("aside", { class: "side" },
          h("section", { class: "panel", "aria-label": "Settings" }, h("h2", {}, "Settings"), this.fields.element),
          h("section", { class: "panel", "aria-label": "Leader" }, h("h2", {}, "Leader"), this.leaderBox),
          h("section", { class: "panel", "aria-label": "Activity" }, h("h2", {}, "Activity on this node"), this.statsBox,
            h("h3", {}, "Executions/s"), this.charts.exec,
            h("h3", {}, "Errors/s"), this.charts.errors,
            h("h3", {}, "Run duration (ms)"), this.charts.duration))),
      logHost));

    this.editor = createEditor(editorHost, {
      doc: this.loadedScript,
      onSave: () => this.save(),
      onChange: () => this.markDirty(),
    });
    this.loadedFields = JSON.stringify(this.fields.read());
    if (!known) this.showReadable(entry);
    this.logs = new LogTail(logHost, this.ctx.conn, raw.sid);
    this.timers.push(setInterval(() => this.tickLeader(), 1000));
    this.timers.push(setInterval(() => this.refreshLeader(), LEADER_POLL_MS));
    this.refreshLeader();
    this.renderHeader();
    this.renderLive();
    this.markDirty();
  }

  /** Replaces the minified text with the node's readable print of it, unless edited since. */
  async showReadable(entry) {
    const minified = entry.value.raw.script;
    try {
      const { result } = await this.ctx.conn.request("formatScript", { script: minified });
      if (this.base !== entry || this.editor.text() !== minified) return;
      this.loadedScript = result.script;
      this.editor.setText(result.script);
      this.markDirty();
    } catch {
      // The minified text stays: it is the same program.
    }
  }

  dirty() {
    if (!this.editor) return false;
    return this.editor.text() !== this.loadedScript || JSON.stringify(this.fields.read()) !== this.loadedFields;
  }

  markDirty() {
    this.dirtyMark.textContent = this.dirty() ? "unsaved changes" : "";
    delete this.dirtyMark.dataset.state;
  }

  renderHeader() {
    const raw = this.base.value.raw;
    this.toggleButton.textContent = raw.active ? "Stop" : "Start";
    this.toggleButton.setAttribute("aria-label", raw.active ? "Stop worker" : "Start worker");
    this.meta.textContent = `created on ${raw.nid} · version ${raw.version} · saved ${new Date(raw.timestamp).toLocaleString()} · versionstamp ${this.base.versionstamp}`;
  }

  renderLive() {
    const item = this.ctx.state.get(this.sid);
    if (!item || !this.statusBadge) return;
    const status = statusOf({ ...item, entry: this.base.versionstamp >= item.entry.versionstamp ? this.base : item.entry });
    this.statusBadge.className = `badge st-${status.key}`;
    this.statusBadge.textContent = status.key === "halted" ? "halted by error rules" : status.label;
    this.statusBadge.title = status.title;
    const s = item.stats;
    const rows = s ? [
      ["Running here", s.isRunning ? "yes" : "no"],
      ["Executions", s.executions.toLocaleString()],
      ["Errors", `${s.errors.toLocaleString()} (${s.errorRate}; network ${s.networkErrors}, critical ${s.criticalErrors})`],
      ["In a row", String(s.consecutiveErrors)],
      ["Last run", s.lastRun ? ago(s.lastRun) : "never"],
      ["Script hash", s.scriptHash || "–"],
      ["Last error", s.lastError ? `${s.lastErrorType ?? ""} ${s.lastError}` : "none"],
    ] : [["Running here", "no (not run on this node since it started)"]];
    if (s?.haltedReason) rows.unshift(["Stopped by the error rules", s.haltedReason]);
    clear(this.statsBox, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    const hist = item.history;
    drawChart(this.charts.exec, hist.exec, { unit: "/s", digits: 2 });
    drawChart(this.charts.errors, hist.errors, { colorVar: "--bad", unit: "/s", digits: 2 });
    drawChart(this.charts.duration, hist.duration, { colorVar: "--accent-2", unit: " ms", digits: 1 });
  }

  async refreshLeader() {
    const raw = this.base.value.raw;
    if ((raw.executionMode ?? "parallel") !== "leader") {
      this.leader = null;
      clear(this.leaderBox, h("p", { class: "muted" }, `Not leader-elected (${raw.executionMode ?? "parallel"} mode).`));
      return;
    }
    try {
      const { result } = await this.ctx.conn.request("getLeaderInfo", { workerId: raw.sid });
      this.leader = { ...result, fetchedAt: Date.now() };
      this.tickLeader();
    } catch (error) {
      clear(this.leaderBox, h("p", { class: "error" }, `Leader info unavailable: ${error.message}`));
    }
  }

  tickLeader() {
    const l = this.leader;
    if (!l) return;
    if (!l.leader) {
      clear(this.leaderBox, h("p", {}, l.message ?? "No leader elected yet"));
      return;
    }
    const left = Math.max(0, l.expiresIn - (Date.now() - l.fetchedAt));
    const expired = left === 0;
    clear(this.leaderBox, h("dl", { class: "stats-list" },
      h("dt", {}, "Leader node"), h("dd", { class: "leader-node" }, l.leader),
      h("dt", {}, "Epoch"), h("dd", {}, l.epoch ?? "–"),
      h("dt", {}, "Elected"), h("dd", {}, l.timestamp ? new Date(l.timestamp).toLocaleTimeString() : "–"),
      h("dt", {}, "Renewed"), h("dd", {}, l.renewedAt ? ago(l.renewedAt) : "–"),
      h("dt", {}, "Lease expires in"),
      h("dd", { class: expired ? "bad" : left < 15000 ? "warn" : "" }, expired ? "expired" : `${Math.ceil(left / 1000)} s`)));
  }

  banner(text, actions) {
    clear(this.bannerBox, h("div", { class: "banner", role: "alert" }, h("span", {}, text),
      actions.map(([label, fn]) => h("button", { type: "button", onclick: () => { this.bannerBox.replaceChildren(); fn(); } }, label))));
  }

  remoteChanged(entry) {
    if (!this.dirty()) {
      this.load(entry);
      return;
    }
    this.banner("This worker was changed on the node while you were editing. Saving will ask what to keep.", [
      ["Load their version", () => this.load(entry)],
      ["Keep editing", () => {}],
    ]);
  }

  /** Replaces the editor and form with `entry`, dropping local edits. */
  load(entry) {
    this.base = entry;
    const raw = entry.value.raw;
    const known = sourceFor(raw);
    this.loadedScript = known ?? raw.script;
    if (this.editor.text() !== this.loadedScript) this.editor.setText(this.loadedScript);
    this.hint.hidden = !!known;
    if (!known) this.showReadable(entry);
    this.fields.setValues(raw);
    this.loadedFields = JSON.stringify(this.fields.read());
    this.errorBox.hidden = true;
    this.renderHeader();
    this.renderLive();
    this.refreshLeader();
    this.markDirty();
  }

  /** The record to send: the loaded one with this page's edits. */
  edited(onto) {
    const v = this.fields.read();
    const raw = { ...onto.value.raw, ...v, script: this.editor.text() };
    if (raw.executionMode !== "exclusive") raw.assignedNode = null;
    delete raw.timestamp;
    return raw;
  }

  async save(overwrite = null) {
    if (!this.editor || this.saving) return;
    const problems = this.fields.problems();
    if (problems.length) {
      toast(problems.join(" "), "error");
      return;
    }
    const onto = overwrite ?? this.base;
    const script = this.editor.text();
    this.saving = true;
    this.saveButton.disabled = true;
    this.saveButton.textContent = "Saving…";
    try {
      const { result } = await this.ctx.conn.request("updateWorker", {
        channel: onto.value.channel,
        raw: this.edited(onto),
        versionstamp: onto.versionstamp,
      });
      rememberSource(result, script);
      this.ctx.state.upsert(result);
      this.bannerBox.replaceChildren();
      this.editor.clearErrors();
      this.errorBox.hidden = true;
      this.base = result;
      this.hint.hidden = true;
      this.loadedScript = script;
      this.loadedFields = JSON.stringify(this.fields.read());
      this.ctx.state.changed("saved", this.sid);
      this.renderHeader();
      this.markDirty();
      this.dirtyMark.textContent = "saved";
      this.dirtyMark.dataset.state = "saved";
    } catch (error) {
      this.failed(error);
    } finally {
      this.saving = false;
      this.saveButton.disabled = false;
      this.saveButton.textContent = "Save";
    }
  }

  failed(error) {
    const f = error.frame ?? {};
    if (error.status === 409) {
      this.conflict();
      return;
    }
    if (error.status === 400 && Number.isInteger(f.line)) {
      const details = String(f.details ?? "").replace(/\s+at line \d+, column \d+$/, "");
      const text = `${error.message} at line ${f.line}, column ${f.column}: ${details}`;
      this.errorBox.textContent = text;
      this.errorBox.hidden = false;
      this.editor.showError(f.line, f.column, details || error.message);
      return;
    }
    const extra = f.missing ? ` (missing: ${f.missing.join(", ")})` : f.details ? ` — ${f.details}` : "";
    toast(`Save failed: ${error.message}${extra}`, "error");
  }

  async latestEntry() {
    try {
      const { result } = await this.ctx.conn.request("listWorkers");
      for (const entry of result) this.ctx.state.upsert(entry);
    } catch {
      // The stream's copy is the best we have.
    }
    return this.ctx.state.get(this.sid)?.entry ?? null;
  }

  async conflict() {
    const theirs = await this.latestEntry();
    if (!theirs) {
      toast("This worker no longer exists on the node.", "error");
      return;
    }
    const mine = this.edited(this.base);
    const before = this.base.value.raw;
    const now = theirs.value.raw;
    const changed = Object.keys({ ...before, ...now })
      .filter((k) => k !== "timestamp" && JSON.stringify(before[k]) !== JSON.stringify(now[k]));
    const rows = changed.map((k) => h("tr", {},
      h("th", { scope: "row" }, k),
      h("td", {}, preview(before[k])),
      h("td", {}, preview(now[k])),
      h("td", {}, preview(mine[k]))));
    const body = h("div", { class: "conflict" },
      h("p", {}, "Someone saved this worker after you opened it (versionstamp ",
        h("code", {}, this.base.versionstamp), " → ", h("code", {}, theirs.versionstamp), ")."),
      rows.length
        ? h("table", { class: "diff", "aria-label": "What changed" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "When you opened it"),
            h("th", { scope: "col" }, "On the node now"), h("th", { scope: "col" }, "Yours"))),
          h("tbody", {}, rows))
        : h("p", {}, "No field differs (only the record's timestamp)."),
      h("p", {}, "Reload to take the node's version (your edits are dropped), or overwrite it with yours."));
    const choice = await modal("This worker changed on the node", body, [
      { label: "Cancel", value: "cancel" },
      { label: "Reload theirs", value: "reload" },
      { label: "Overwrite with mine", value: "overwrite", kind: "danger" },
    ]);
    if (choice === "reload") this.load(theirs);
    else if (choice === "overwrite") this.save(theirs);
  }

  async toggle() {
    const current = this.ctx.state.get(this.sid)?.entry ?? this.base;
    const onto = current.versionstamp > this.base.versionstamp ? current : this.base;
    const raw = { ...onto.value.raw, active: !onto.value.raw.active };
    delete raw.timestamp;
    this.toggleButton.disabled = true;
    this.saving = true;
    try {
      const { result } = await this.ctx.conn.request("updateWorker", {
        channel: onto.value.channel, raw, versionstamp: onto.versionstamp,
      });
      this.ctx.state.upsert(result);
      // Only `active` changed: unsaved edits stay, now based on the new record.
      this.base = result;
      this.ctx.state.changed("saved", this.sid);
      this.renderHeader();
      this.renderLive();
      toast(raw.active ? "Started" : "Stopped");
    } catch (error) {
      toast(error.status === 409 ? "The worker changed on the node meanwhile; try again." : `Failed: ${error.message}`, "error");
    } finally {
      this.saving = false;
      this.toggleButton.disabled = false;
    }
  }
}

function preview(value) {
  if (value === undefined) return h("em", {}, "absent");
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return h("code", { class: "preview", title: text }, text.length > 160 ? `${text.slice(0, 160)}…` : text);
}
