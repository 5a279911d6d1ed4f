// One WebSocket to the node for everything: WebFIX requests and the events, stats and logs
// subscriptions. It reconnects with backoff after a restart or a network loss and resubscribes;
// log subscriptions resume from the last cursor seen, so no line is shown twice or skipped.

const REQUEST_TIMEOUT_MS = 30000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_CAP_MS = 5000;

export class NodeConnection extends EventTarget {
  /** `session` may be null on a node started with `--open`. */
  constructor(session) {
    super();
    this.session = session;
    this.state = "connecting";
    this.ws = null;
    this.nextId = 1;
    /** id → {resolve, reject, timer} */
    this.pending = new Map();
    /** key → {body, onPush, onLagged, subscription, resume} */
    this.subscriptions = new Map();
    /** subscription id (from the node) → key */
    this.bySubscription = new Map();
    this.attempt = 0;
    this.closedByUs = false;
    this.retryTimer = null;
    this.connect();
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.session ? `?session=${encodeURIComponent(this.session)}` : "";
    return `${scheme}//${location.host}/ws${query}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let opened = false;
    const ws = new WebSocket(this.url(), ["webfix"]);
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.setState("open");
      this.resubscribe();
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = async (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending("The connection to the node was lost");
      this.bySubscription.clear();
      if (this.closedByUs) return;
      // A refused upgrade looks like any other failure to the page: ask over HTTP whether
      // the session is still good before retrying with it.
      if (!opened && this.session && (await this.sessionRefused())) {
        this.setState("unauthorized");
        return;
      }
      this.attempt += 1;
      const wait = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.attempt - 1));
      const delay = Math.round(wait * (0.75 + Math.random() * 0.5));
      this.setState("offline", { code: e.code, reason: e.reason, retryIn: delay, attempt: this.attempt });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  async sessionRefused() {
    try {
      const reply = await fetch("/", {
        method: "POST",
        headers: { "content-type": "application/json", "stels-session": this.session },
        body: JSON.stringify({ webfix: "1.0", method: "listAccounts", params: [], body: {} }),
      });
      return reply.status === 401;
    } catch {
      return false;
    }
  }

  /** Reconnects now instead of waiting for the backoff. */
  retryNow() {
    if (this.ws) return;
    this.connect();
  }

  close() {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    this.failPending("Logged out");
    if (this.ws) this.ws.close(1000, "logged out");
    this.ws = null;
    this.setState("closed");
  }

  failPending(message) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RequestError(0, message));
    }
    this.pending.clear();
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.id !== undefined && this.pending.has(frame.id)) {
      const p = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.status >= 200 && frame.status < 300) p.resolve({ status: frame.status, result: frame.result });
      else p.reject(new RequestError(frame.status, frame.error ?? frame.result?.error ?? "Request failed", frame));
      return;
    }
    if (frame.type === "lagged") {
      const key = this.bySubscription.get(frame.subscription);
      const sub = key && this.subscriptions.get(key);
      if (sub?.onLagged) sub.onLagged(frame.dropped);
      return;
    }
    const value = frame.value;
    if (!value || typeof value !== "object") return;
    this.dispatchEvent(new CustomEvent("push", { detail: value }));
    for (const sub of this.subscriptions.values()) {
      if (sub.matches(value)) sub.onPush(value.raw, value);
    }
  }

  /** Sends one WebFIX request and resolves with `{status, result}`; rejects with RequestError. */
  request(method, body = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RequestError(0, "Not connected to the node"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError(0, `${method}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ webfix: "1.0", method, params: [], body, id }));
    });
  }

  /**
   * Keeps a subscription alive across reconnects. `options.body` is the subscribe body;
   * `options.resume()` may return fields to merge on resubscription (the logs cursor).
   * Returns a function that ends it.
   */
  subscribe(key, options) {
    const sub = { ...options, subscription: null };
    this.subscriptions.set(key, sub);
    if (this.state === "open") this.startSubscription(key, sub);
    return () => {
      if (this.subscriptions.get(key) !== sub) return;
      this.subscriptions.delete(key);
      if (sub.subscription) {
        this.bySubscription.delete(sub.subscription);
        this.request("unsubscribe", { subscription: sub.subscription }).catch(() => {});
      }
    };
  }

  async startSubscription(key, sub) {
    const body = { ...sub.body, ...(sub.resume ? sub.resume() : {}) };
    try {
      const { result } = await this.request("subscribe", body);
      if (this.subscriptions.get(key) !== sub) {
        this.request("unsubscribe", { subscription: result.subscription }).catch(() => {});
        return;
      }
      sub.subscription = result.subscription;
      this.bySubscription.set(result.subscription, key);
      sub.onStarted?.(result);
    } catch (error) {
      sub.onError?.(error);
    }
  }

  resubscribe() {
    for (const [key, sub] of this.subscriptions) {
      sub.subscription = null;
      this.startSubscription(key, sub);
    }
    this.dispatchEvent(new CustomEvent("resubscribed"));
  }
}

export class RequestError extends Error {
  constructor(status, message, frame = null) {
    super(typeof message === "string" ? message : JSON.stringify(message));
    this.status = status;
    this.frame = frame;
  }
}
