// Creating a worker from a template (setWorker), then opening it.
import { h, modal, toast } from "../ui.js";
import { TEMPLATES } from "../templates.js";
import { workerFields } from "./form.js";

export async function openCreateDialog(ctx) {
  let template = TEMPLATES[0];
  const fields = workerFields("create", { ...template.config, note: template.description });
  const error = h("p", { class: "error", role: "alert" });
  const picker = h("fieldset", { class: "templates" },
    h("legend", {}, "Template"),
    TEMPLATES.map((t, i) => h("label", { class: "template" },
      h("input", {
        type: "radio", name: "template", value: t.id, checked: i === 0,
        onchange: () => {
          template = t;
          fields.setValues({ ...t.config, assignedNode: t.config.assignedNode ?? ctx.node.nid, note: t.description });
        },
      }),
      h("span", {}, h("strong", {}, t.name), h("small", {}, t.description)))));
  const body = h("div", { class: "create" }, picker, fields.element, error);

  const submit = async () => {
    const problems = fields.problems();
    if (problems.length) {
      error.textContent = problems.join(" ");
      return undefined;
    }
    const v = fields.read();
    const request = {
      scriptContent: template.script,
      dependencies: v.dependencies,
      version: v.version,
      executionMode: v.executionMode,
      priority: v.priority,
      mode: v.mode,
      scope: v.scope,
      note: v.note,
    };
    if (v.assignedNode) request.assignedNode = v.assignedNode;
    try {
      const { result } = await ctx.conn.request("setWorker", request);
      ctx.state.upsert(result);
      ctx.state.changed("saved", result.value.raw.sid);
      rememberSource(result, template.script);
      toast(`Created ${result.value.raw.sid}`);
      return result.value.raw.sid;
    } catch (e) {
      error.textContent = e.message + (e.frame?.details ? ` — ${e.frame.details}` : "");
      return undefined;
    }
  };
  const sid = await modal("New worker", body, [
    { label: "Cancel", value: false },
    { label: "Create worker", value: submit, kind: "primary" },
  ]);
  if (sid) location.hash = `#/workers/${sid}`;
}

// The node stores scripts minified (W-SET-3); the page keeps the text a person wrote, for as
// long as it still minifies to what the node holds, and shows that instead.
const SOURCES_KEY = "heterogen.sources";
const MAX_SOURCES = 200;

export function rememberSource(entry, source) {
  const all = JSON.parse(localStorage.getItem(SOURCES_KEY) ?? "{}");
  all[entry.value.raw.sid] = { script: entry.value.raw.script, source, at: Date.now() };
  const sids = Object.keys(all);
  if (sids.length > MAX_SOURCES) {
    sids.sort((a, b) => all[a].at - all[b].at).slice(0, sids.length - MAX_SOURCES).forEach((s) => delete all[s]);
  }
  try {
    localStorage.setItem(SOURCES_KEY, JSON.stringify(all));
  } catch {
    localStorage.removeItem(SOURCES_KEY);
  }
}

export function sourceFor(raw) {
  const all = JSON.parse(localStorage.getItem(SOURCES_KEY) ?? "{}");
  const known = all[raw.sid];
  return known && known.script === raw.script ? known.source : null;
}
