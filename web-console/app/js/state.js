// What the page knows about the node's workers: records from listWorkers kept current by the
// `events` stream, and counters from the `stats` stream, with short per-worker histories for
// the charts. Everything here is bounded: histories keep HISTORY samples, the event list EVENTS.

const HISTORY = 120;
const EVENTS = 200;

export class WorkerState extends EventTarget {
  constructor(conn) {
    super();
    this.conn = conn;
    /** sid → {entry, stats, rate, history} */
    this.workers = new Map();
    this.loaded = false;
    this.loadError = null;
    this.totals = null;
    this.events = [];
    this.lastStatsAt = 0;
    this.version = 0;
    this.reloadQueued = false;

    conn.subscribe("events", {
      body: { stream: "events" },
      matches: (v) => v.module === "events",
      onPush: (raw) => this.onEvent(raw),
      onLagged: () => this.reload(),
      // Events missed while disconnected are not replayed: list again once resubscribed.
      onStarted: () => this.reload(),
    });
    conn.subscribe("stats", {
      body: { stream: "stats", interval: 1000 },
      matches: (v) => v.module === "stats",
      onPush: (raw) => this.onStats(raw),
    });
  }

  changed(kind, sid = null) {
    this.version++;
    this.dispatchEvent(new CustomEvent("change", { detail: { kind, sid } }));
  }

  async reload() {
    if (this.reloadQueued) return;
    this.reloadQueued = true;
    try {
      const { result } = await this.conn.request("listWorkers");
      const seen = new Set();
      for (const entry of result) {
        const sid = entry.value.raw.sid;
        seen.add(sid);
        this.upsert(entry);
      }
      for (const sid of [...this.workers.keys()]) if (!seen.has(sid)) this.workers.delete(sid);
      this.loaded = true;
      this.loadError = null;
      this.changed("list");
    } catch (error) {
      this.loadError = error.message;
      this.changed("list");
    } finally {
      this.reloadQueued = false;
    }
  }

  upsert(entry) {
    const sid = entry.value.raw.sid;
    const known = this.workers.get(sid);
    if (known) {
      // Events and list answers can cross: keep the newer record.
      if (!known.entry || known.entry.versionstamp <= entry.versionstamp) known.entry = entry;
      return known;
    }
    const item = { entry, stats: null, rate: 0, history: { t: [], exec: [], errors: [], duration: [] } };
    this.workers.set(sid, item);
    return item;
  }

  onEvent(event) {
    this.events.unshift(event);
    if (this.events.length > EVENTS) this.events.length = EVENTS;
    switch (event.type) {
      case "saved":
        if (event.entry?.value?.raw) {
          this.upsert(event.entry);
          this.changed("saved", event.sid);
        }
        break;
      case "deleted":
        this.workers.delete(event.sid);
        this.changed("deleted", event.sid);
        break;
      case "resync":
        this.reload();
        break;
      default:
        this.changed("event", event.sid);
    }
  }

  onStats(snapshot) {
    const at = snapshot.timestamp ?? Date.now();
    const elapsed = this.lastStatsAt ? (at - this.lastStatsAt) / 1000 : 0;
    this.lastStatsAt = at;
    this.totals = snapshot;
    for (const stats of snapshot.workers ?? []) {
      const item = this.workers.get(stats.sid);
      if (!item) continue;
      const previous = item.stats;
      const runs = previous && elapsed > 0 ? Math.max(0, stats.executions - previous.executions) : 0;
      const errors = previous && elapsed > 0 ? Math.max(0, stats.errors - previous.errors) : 0;
      item.rate = elapsed > 0 ? runs / elapsed : 0;
      item.stats = stats;
      const hist = item.history;
      hist.t.push(at);
      hist.exec.push(item.rate);
      hist.errors.push(elapsed > 0 ? errors / elapsed : 0);
      hist.duration.push(stats.lastDurationMs ?? null);
      if (hist.t.length > HISTORY) {
        for (const k of Object.keys(hist)) hist[k].shift();
      }
    }
    this.changed("stats");
  }

  get(sid) {
    return this.workers.get(sid);
  }
}

/** What a person should read about a worker on this node. */
export function statusOf(item) {
  const raw = item.entry.value.raw;
  const stats = item.stats;
  if (!raw.active) return { key: "stopped", label: "stopped", title: "Stopped by a person (inactive)" };
  if (stats?.haltedReason) return { key: "halted", label: "halted", title: stats.haltedReason };
  if (stats?.isRunning) return { key: "running", label: "running", title: "Running on this node" };
  if (stats && raw.mode === "single" && stats.executions > 0 && !stats.lastError) {
    return { key: "finished", label: "finished", title: "A single run that has finished" };
  }
  if (raw.executionMode === "exclusive" && raw.assignedNode) {
    return { key: "elsewhere", label: "active", title: `Active; runs only on ${raw.assignedNode}` };
  }
  if (raw.executionMode === "leader") {
    return { key: "elsewhere", label: "active", title: "Active; runs on the elected leader" };
  }
  return { key: "starting", label: "active", title: "Active; not running on this node yet" };
}
