// The fields of a worker record as a form: shared by the create dialog and the worker view.
import { h } from "../ui.js";

export const CHOICES = {
  mode: ["loop", "single"],
  executionMode: ["parallel", "leader", "exclusive"],
  priority: ["critical", "high", "normal", "low"],
  scope: ["network", "local"],
};

const HINTS = {
  mode: { loop: "the engine repeats the script", single: "runs once; the script keeps its own loop" },
  executionMode: { parallel: "on every node", leader: "on one elected node", exclusive: "only on assignedNode" },
  priority: { critical: "1 ms between loop runs", high: "10 ms", normal: "100 ms", low: "1 s" },
  scope: { network: "cluster-wide record", local: "this node only (leader mode)" },
};

/**
 * Builds the form controls for `values` under `prefix` (ids must be unique on the page).
 * Returns {element, read(), setValues(v), onInput(fn)}. `scopeLocked` disables scope (it
 * cannot change after creation in the STELS client either).
 */
export function workerFields(prefix, values, { scopeLocked = false } = {}) {
  const controls = {};
  const listeners = [];
  const notify = () => { sync(); listeners.forEach((fn) => fn()); };
  const select = (key, label) => {
    const id = `${prefix}-${key}`;
    controls[key] = h("select", { id, onchange: notify, disabled: key === "scope" && scopeLocked },
      CHOICES[key].map((c) => h("option", { value: c }, `${c} — ${HINTS[key][c]}`)));
    return h("div", { class: "field" }, h("label", { for: id }, label), controls[key]);
  };
  const text = (key, label, attrs = {}) => {
    const id = `${prefix}-${key}`;
    controls[key] = h("input", { id, type: "text", oninput: notify, autocomplete: "off", ...attrs });
    return h("div", { class: "field" }, h("label", { for: id }, label), controls[key]);
  };
  const noteId = `${prefix}-note`;
  controls.note = h("textarea", { id: noteId, rows: 2, oninput: notify });
  const assigned = text("assignedNode", "Assigned node (exclusive)", { placeholder: "e.g. s-0001" });
  const problems = h("p", { class: "form-problems error", role: "alert" });
  const element = h("div", { class: "worker-fields" },
    h("div", { class: "field wide" }, h("label", { for: noteId }, "Description (note)"), controls.note),
    select("mode", "Mode"),
    select("executionMode", "Execution mode"),
    assigned,
    select("priority", "Priority"),
    select("scope", "Scope"),
    text("version", "Version"),
    text("dependencies", "Dependencies", { placeholder: "comma-separated, e.g. gliesereum" }),
    problems);

  function sync() {
    assigned.hidden = controls.executionMode.value !== "exclusive";
    const list = problemsOf(read());
    problems.textContent = list.join(" ");
    problems.hidden = list.length === 0;
  }

  function setValues(v) {
    controls.note.value = v.note ?? "";
    controls.mode.value = v.mode ?? "loop";
    controls.executionMode.value = v.executionMode ?? "parallel";
    controls.assignedNode.value = v.assignedNode ?? "";
    controls.priority.value = v.priority ?? "normal";
    controls.scope.value = v.scope ?? "network";
    controls.version.value = v.version ?? "1.19.2";
    controls.dependencies.value = (v.dependencies ?? ["gliesereum"]).join(", ");
    sync();
  }

  function read() {
    const executionMode = controls.executionMode.value;
    return {
      note: controls.note.value,
      mode: controls.mode.value,
      executionMode,
      assignedNode: executionMode === "exclusive" ? controls.assignedNode.value.trim() || null : null,
      priority: controls.priority.value,
      scope: controls.scope.value,
      version: controls.version.value.trim(),
      dependencies: controls.dependencies.value.split(",").map((d) => d.trim()).filter(Boolean),
    };
  }

  setValues(values);
  return { element, read, setValues, onInput: (fn) => listeners.push(fn), problems: () => problemsOf(read()) };
}

/** The node's own rules (W-SET-5, W-SET-7), checked before sending. */
export function problemsOf(v) {
  const out = [];
  if (v.executionMode === "exclusive" && !v.assignedNode) out.push("Exclusive mode needs an assigned node.");
  if (v.scope === "local" && v.executionMode !== "leader") out.push("Local scope workers can only use leader execution mode.");
  if (!v.version) out.push("Version is required.");
  return out;
}
