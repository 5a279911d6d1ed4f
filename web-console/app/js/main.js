// Boots the console: reads the session (from a `#session=` link, this tab's storage, or an
// in-page login), opens the one WebSocket, and routes between the views.
import { NodeConnection } from "./conn.js";
import { WorkerState } from "./state.js";
import { h, clear, toast } from "./ui.js";
import { renderLogin } from "./views/login.js";
import { WorkersView } from "./views/workers.js";
import { WorkerView } from "./views/worker.js";
import { NodesView } from "./views/nodes.js";

const SESSION_KEY = "heterogen.session";
const WALLET_KEY = "heterogen.address";

const app = {
  node: null,
  conn: null,
  state: null,
  view: null,
  address: null,
};

function takeSessionFromLink() {
  const match = location.hash.match(/^#session=([^&]+)/);
  if (!match) return;
  sessionStorage.setItem(SESSION_KEY, decodeURIComponent(match[1]));
  sessionStorage.removeItem(WALLET_KEY);
  // The token leaves the address bar and the history at once.
  history.replaceState(null, "", `${location.pathname}#/workers`);
}

async function loadNode() {
  const reply = await fetch("/", { headers: { accept: "application/json" } });
  if (!reply.ok) throw new Error(`The node answered ${reply.status}`);
  return reply.json();
}

function showConnState(detail) {
  const el = document.getElementById("conn-state");
  const text = {
    connecting: "connecting…",
    open: "connected",
    reconnecting: `reconnecting (attempt ${detail.attempt})…`,
    offline: `offline — retrying in ${Math.ceil((detail.retryIn ?? 0) / 1000)} s`,
    unauthorized: "session ended",
    closed: "logged out",
  }[detail.state] ?? detail.state;
  el.textContent = text;
  el.dataset.state = detail.state;
  document.body.dataset.conn = detail.state;
}

function start(session) {
  app.conn = new NodeConnection(session);
  app.state = new WorkerState(app.conn);
  app.conn.addEventListener("state", (e) => {
    showConnState(e.detail);
    if (e.detail.state === "unauthorized") {
      logout("Your session is no longer valid on this node: log in again.");
    }
  });
  document.getElementById("nav").hidden = false;
  const logoutButton = document.getElementById("logout");
  logoutButton.hidden = app.node.open;
  logoutButton.onclick = () => logout();
  const address = sessionStorage.getItem(WALLET_KEY);
  document.getElementById("who").textContent = app.node.open ? "open node (no login)" : address ?? "";
  route();
}

function logout(message) {
  app.view?.destroy?.();
  app.view = null;
  app.conn?.close();
  app.conn = null;
  app.state = null;
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(WALLET_KEY);
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  showConnState({ state: "closed" });
  showLogin(message);
}

function showLogin(message) {
  renderLogin(document.getElementById("view"), app.node, {
    message,
    onSession: (session, address) => {
      sessionStorage.setItem(SESSION_KEY, session);
      if (address) sessionStorage.setItem(WALLET_KEY, address);
      if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/workers");
      start(session);
    },
  });
}

function route() {
  if (!app.conn) return;
  const hash = location.hash || "#/workers";
  const parts = hash.slice(2).split("/");
  const root = document.getElementById("view");
  app.view?.destroy?.();
  app.view = null;
  for (const a of document.querySelectorAll("#nav a")) {
    a.setAttribute("aria-current", a.dataset.view === parts[0] ? "page" : "false");
  }
  const ctx = { node: app.node, conn: app.conn, state: app.state, root };
  if (parts[0] === "workers" && parts[1]) app.view = new WorkerView(ctx, decodeURIComponent(parts[1]));
  else if (parts[0] === "nodes") app.view = new NodesView(ctx);
  else app.view = new WorkersView(ctx);
  root.focus({ preventScroll: true });
}

async function boot() {
  takeSessionFromLink();
  try {
    app.node = await loadNode();
  } catch (error) {
    clear(document.getElementById("view"),
      h("p", { class: "error", role: "alert" }, `Cannot reach the node: ${error.message}`));
    return;
  }
  document.getElementById("node-name").textContent = `${app.node.title ?? "heterogen"} · ${app.node.nid}`;
  document.title = `${app.node.title ?? "Heterogen"} (${app.node.nid}) — Heterogen console`;
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#session=")) {
      takeSessionFromLink();
      app.conn?.close();
      start(sessionStorage.getItem(SESSION_KEY));
      return;
    }
    route();
  });
  const session = sessionStorage.getItem(SESSION_KEY);
  if (app.node.open) start(null);
  else if (session) start(session);
  else showLogin();
}

window.addEventListener("unhandledrejection", (e) => toast(e.reason?.message ?? String(e.reason), "error"));
boot();
