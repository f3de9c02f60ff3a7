// Definitions: download the broker's (or one vhost's) definitions as RabbitMQ's JSON, and
// upload a file of them (RabbitMQ's or Leveret's export; the one importer of the API).
import { get, post } from "../api.js";
import { clear, enc, h, note, num } from "../dom.js";
import { onSubmit, panel } from "./common.js";

export function render(root, _params, ctx) {
  const scope = () => (ctx.vhost ? `/api/definitions/${enc(ctx.vhost)}` : "/api/definitions");
  const what = ctx.vhost ? `virtual host ${ctx.vhost}` : "the whole broker";
  const dlStatus = h("div");
  const summary = h("div", { class: "muted" });
  const download = h("button", { class: "primary", type: "button" }, "Download definitions");
  download.addEventListener("click", async () => {
    try {
      const defs = await get(scope());
      const blob = new Blob([JSON.stringify(defs, null, 2)], { type: "application/json" });
      const a = h("a", { href: URL.createObjectURL(blob),
        download: `leveret-definitions${ctx.vhost ? `-${ctx.vhost.replace(/[^\w.-]+/g, "_")}` : ""}-${new Date().toISOString().slice(0, 10)}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      const count = (k) => (Array.isArray(defs[k]) ? defs[k].length : 0);
      clear(summary, ["queues", "exchanges", "bindings", "policies", "users", "vhosts"]
        .filter((k) => k in defs).map((k) => `${num(count(k))} ${k}`).join(", "));
    } catch (e) {
      note(dlStatus, "bad", `${e.status ?? ""} ${e.message}`);
    }
  });
  const upStatus = h("div", { class: "upload-status" });
  const form = h("form", { class: "fields upload" },
    h("label", {}, "File"), h("input", { type: "file", name: "file", accept: ".json,application/json", required: true }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Upload definitions")));
  onSubmit(form, upStatus, async (fd) => {
    const text = await fd.get("file").text();
    try { JSON.parse(text); } catch (e) { throw new Error(`The file is not JSON: ${e.message}`); }
    await post(scope(), text);
    return `Definitions imported into ${what}.`;
  });
  root.append(h("h1", {}, "Definitions"),
    panel(`Export (${what})`, h("p", {}, "RabbitMQ's definitions format: users, virtual hosts, permissions, ",
      "parameters, policies, queues, exchanges and bindings. Choose a virtual host at the top to export only its objects."),
    download, summary, dlStatus),
    panel(`Import (into ${what})`, h("p", {}, "Objects that exist are left as they are; the first failing entry stops ",
      "the import, and what came before it stays."), form, upStatus));
}
