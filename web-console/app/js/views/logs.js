// A worker's live log tail over the `logs` subscription. The subscription resumes from the last
// cursor after a reconnect, so lines are neither repeated nor skipped; lines the node could not
// deliver (the page fell behind its history) are shown as a lagged notice, never hidden.
// Memory is bounded: BUFFER lines kept, SHOWN lines in the DOM, appended once per frame.
import { h, download } from "../ui.js";

const BUFFER = 10000;
const SHOWN = 1000;
const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"];

export class LogTail {
  constructor(root, conn, sid) {
    this.conn = conn;
    this.sid = sid;
    this.lines = [];
    this.cursor = null;
    this.follow = true;
    this.minLevel = 0;
    this.query = "";
    this.pendingDom = [];
    this.unseen = 0;
    this.frame = 0;
    this.build(root);
    this.stop = conn.subscribe(`logs:${sid}`, {
      body: { stream: "logs", sid, since: 0 },
      matches: (v) => v.module === "logs" && v.raw?.sid === sid,
      resume: () => (this.cursor === null ? {} : { since: this.cursor }),
      onPush: (raw) => this.push(raw),
      onLagged: (dropped) => this.push({ notice: `${dropped} line${dropped === 1 ? "" : "s"} dropped: the page fell behind the node's log history` }),
      onStarted: () => { this.state.textContent = "live"; },
      onError: (error) => { this.state.textContent = `not subscribed: ${error.message}`; },
    });
    this.onConn = (e) => { if (e.detail.state !== "open") this.state.textContent = "waiting for the connection…"; };
    conn.addEventListener("state", this.onConn);
  }

  destroy() {
    this.stop();
    this.conn.removeEventListener("state", this.onConn);
    cancelAnimationFrame(this.frame);
  }

  build(root) {
    const sid = this.sid;
    this.followButton = h("button", { type: "button", "aria-pressed": "true", onclick: () => this.setFollow(!this.follow) }, "Pause");
    this.newLines = h("button", { type: "button", class: "small", hidden: true, onclick: () => this.setFollow(true) });
    this.state = h("span", { class: "muted", role: "status" }, "subscribing…");
    this.count = h("span", { class: "muted" });
    this.out = h("div", { class: "log-lines", role: "log", "aria-label": "Log lines", tabindex: "0" });
    this.out.addEventListener("scroll", () => {
      const atBottom = this.out.scrollHeight - this.out.scrollTop - this.out.clientHeight < 4;
      if (!atBottom && this.follow && this.userScrolled) this.setFollow(false);
      this.userScrolled = true;
    }, { passive: true });
    root.append(
      h("div", { class: "log-head" },
        h("h2", {}, "Logs"), this.state, this.count, h("span", { class: "spacer" }),
        h("label", { for: `log-level-${sid}` }, "Level"),
        h("select", {
          id: `log-level-${sid}`,
          onchange: (e) => { this.minLevel = Number(e.target.value); this.rerender(); },
        }, LEVELS.map((l, i) => h("option", { value: i }, i === 0 ? "all" : `${l} and above`))),
        h("label", { for: `log-search-${sid}` }, "Search logs"),
        h("input", {
          id: `log-search-${sid}`, type: "search", placeholder: "text",
          oninput: (e) => { this.query = e.target.value.toLowerCase(); this.rerender(); },
        }),
        this.followButton, this.newLines,
        h("button", { type: "button", onclick: () => this.download() }, "Download"),
        h("button", { type: "button", onclick: () => this.clear() }, "Clear")),
      this.out);
  }

  push(line) {
    if (!line.notice) {
      if (this.cursor !== null && line.cursor <= this.cursor) return;
      this.cursor = line.cursor;
    }
    this.lines.push(line);
    if (this.lines.length > BUFFER) this.lines.splice(0, this.lines.length - BUFFER);
    if (!this.matches(line)) return;
    if (!this.follow) {
      this.unseen += 1;
      this.newLines.hidden = false;
      this.newLines.textContent = `${this.unseen} new`;
      return;
    }
    this.pendingDom.push(line);
    if (this.pendingDom.length > SHOWN) this.pendingDom.splice(0, this.pendingDom.length - SHOWN);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  matches(line) {
    if (line.notice) return true;
    if (this.minLevel > 0 && LEVELS.indexOf(line.level) < this.minLevel) return false;
    return !this.query || line.content.toLowerCase().includes(this.query);
  }

  element(line) {
    if (line.notice) return h("div", { class: "log-line notice", role: "note" }, `— ${line.notice} —`);
    return h("div", { class: `log-line lv-${line.level}`, dataset: { cursor: line.cursor } }, line.content.replace(/\n$/, ""));
  }

  flush() {
    this.frame = 0;
    const batch = this.pendingDom;
    this.pendingDom = [];
    if (batch.length === 0) return;
    const fragment = document.createDocumentFragment();
    for (const line of batch) fragment.append(this.element(line));
    this.out.append(fragment);
    let extra = this.out.childElementCount - SHOWN;
    while (extra-- > 0) this.out.firstElementChild.remove();
    this.count.textContent = `${this.lines.length.toLocaleString()} lines`;
    if (this.follow) {
      this.userScrolled = false;
      this.out.scrollTop = this.out.scrollHeight;
    }
  }

  rerender() {
    const shown = [];
    for (let i = this.lines.length - 1; i >= 0 && shown.length < SHOWN; i--) {
      if (this.matches(this.lines[i])) shown.push(this.lines[i]);
    }
    shown.reverse();
    this.out.replaceChildren(...shown.map((l) => this.element(l)));
    this.pendingDom = [];
    this.unseen = 0;
    this.newLines.hidden = true;
    this.count.textContent = `${this.lines.length.toLocaleString()} lines`;
    this.userScrolled = false;
    this.out.scrollTop = this.out.scrollHeight;
  }

  setFollow(on) {
    this.follow = on;
    this.followButton.textContent = on ? "Pause" : "Follow";
    this.followButton.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) this.rerender();
  }

  clear() {
    this.lines = [];
    this.pendingDom = [];
    this.out.replaceChildren();
    this.count.textContent = "0 lines";
  }

  download() {
    const text = this.lines.filter((l) => !l.notice).map((l) => l.content).join("");
    download(`worker-${this.sid}.log`, text);
  }
}
