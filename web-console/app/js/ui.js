// Small DOM helpers: element building, toasts, dialogs, time formatting.

/** `h("button", {class: "x", onclick}, "text", child…)` */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let toastRoot;
/** A short message in the corner; errors stay until dismissed. */
export function toast(message, kind = "info") {
  toastRoot ??= document.getElementById("toasts");
  const close = h("button", { class: "icon", "aria-label": "Dismiss", onclick: () => item.remove() }, "×");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message), close);
  toastRoot.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
  while (toastRoot.children.length > 3) toastRoot.firstElementChild.remove();
}

/**
 * A modal dialog. `buttons` = [{label, value, kind}]; resolves with the chosen value
 * (or null when dismissed with Escape).
 */
export function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const heading = h("h2", { id: `dlg-${Math.random().toString(36).slice(2)}` }, title);
    const dialog = h("dialog", { "aria-labelledby": heading.id, class: "modal" },
      heading,
      h("div", { class: "modal-body" }, body),
      h("div", { class: "modal-actions" },
        buttons.map((b) => h("button", {
          type: "button",
          class: b.kind ?? "",
          onclick: async (e) => {
            if (typeof b.value !== "function") return finish(b.value);
            // An action that answers undefined keeps the dialog open (e.g. to show an error).
            e.currentTarget.disabled = true;
            const button = e.currentTarget;
            try {
              finish(await b.value());
            } finally {
              button.disabled = false;
            }
          },
        }, b.label))));
    const finish = (value) => {
      if (value === undefined) return;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.addEventListener("cancel", () => {
      dialog.remove();
      resolve(null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function confirmDialog(title, text, confirmLabel, kind = "danger") {
  return modal(title, h("p", {}, text), [
    { label: "Cancel", value: false },
    { label: confirmLabel, value: true, kind },
  ]);
}

/** "3 s ago", "5 min ago", … from a millisecond timestamp. */
export function ago(ms, now = Date.now()) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function formatRate(perSecond) {
  if (!perSecond) return "0/s";
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${perSecond.toFixed(2)}/s`;
}

export function download(name, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
