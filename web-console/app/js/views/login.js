// In-page login: the page signs `connectionNode` itself with a pasted or loaded wallet key.
// The key stays in this page's memory and is dropped once the node has answered.
import { h, clear } from "../ui.js";
import { parseWalletKey, loginRequest } from "../wallet.js";

export function renderLogin(root, node, { message, onSession }) {
  const keyInput = h("textarea", {
    id: "login-key",
    rows: 4,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "64 hex digits, or the JSON of a key file",
  });
  const fileInput = h("input", { id: "login-file", type: "file", accept: ".json,application/json,text/plain" });
  const status = h("p", { class: "login-status", role: "status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files?.[0];
    if (!file) return;
    if (file.size > 64 * 1024) {
      status.textContent = "That file is too large to be a key file.";
      return;
    }
    keyInput.value = await file.text();
    fileInput.value = "";
  });

  const form = h("form", { class: "login card", "aria-label": "Log in" },
    h("h1", {}, "Log in to ", node.title ?? "heterogen", " (", node.nid, ")"),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("p", {}, "Sign in with an owner wallet of this node. The key is used in this page only, to sign the login; it is never sent or stored."),
    h("label", { for: "login-key" }, "Wallet private key or key file"),
    keyInput,
    h("div", { class: "row" },
      h("label", { for: "login-file", class: "file-label" }, "Load a key file…"),
      fileInput,
      h("span", { class: "spacer" }),
      submit),
    status,
    h("details", {},
      h("summary", {}, "Other ways in"),
      h("p", {}, "From a terminal: ", h("code", {}, "heterogen console --url ", location.origin, " --key owner.json"),
        " prints (and opens) a link that logs this browser in."),
      h("p", {}, "A node started without owners creates ", h("code", {}, "owner-key.json"),
        " in its data directory and prints such a link at every start.")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let wallet;
    try {
      wallet = parseWalletKey(keyInput.value);
    } catch (error) {
      status.textContent = error.message;
      status.className = "login-status error";
      return;
    }
    keyInput.value = "";
    submit.disabled = true;
    status.className = "login-status";
    status.textContent = `Signing in as ${wallet.address}…`;
    try {
      const reply = await fetch("/", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(loginRequest(wallet, node.network)),
      });
      const body = await reply.json().catch(() => ({}));
      if (!reply.ok) {
        const reason = typeof body.error === "string" ? body.error : body.error?.message;
        throw new Error(`The node refused the login (${reply.status}${reason ? `: ${reason}` : ""})`);
      }
      const session = body?.raw?.session;
      if (!session) throw new Error("The node's answer has no session");
      if (body.raw.info && body.raw.info.developer === false) {
        throw new Error(`${wallet.address} is not an owner of this node`);
      }
      onSession(session, wallet.address);
    } catch (error) {
      status.textContent = error.message;
      status.className = "login-status error";
      submit.disabled = false;
    }
  });

  clear(root, form);
  keyInput.focus();
}
