// Exchanges: the list (server-side paging/sort/filter) and an exchange's page: its rates,
// bindings from and to it, binding, publishing and deleting.
import { del, get, post, put } from "../api.js";
import { clear, dangerButton, dig, enc, h, json, kv, note, rate } from "../dom.js";
import { PagedTable } from "../table.js";
import { bindingsTable, features, onSubmit, panel, parseArgs, propertiesFields, publishFrom, vhostField,
  watch, xLink } from "./common.js";

const COLUMNS = "name,vhost,type,durable,auto_delete,internal,arguments,policy," +
  "message_stats.publish_in_details.rate,message_stats.publish_out_details.rate";

export function renderList(root, _params, ctx) {
  const columns = [
    { key: "name", label: "Name", render: (x) => h("a", { href: xLink(x.vhost, x.name) }, x.name || "(AMQP default)") },
    ctx.vhost ? null : { key: "vhost", label: "Vhost" },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sort: false, render: features },
    { key: "in", label: "Rate in", num: true, sort: "message_stats.publish_in_details.rate", render: (x) => rate(dig(x, "message_stats.publish_in_details.rate") ?? 0) },
    { key: "out", label: "Rate out", num: true, sort: "message_stats.publish_out_details.rate", render: (x) => rate(dig(x, "message_stats.publish_out_details.rate") ?? 0) },
  ].filter(Boolean);
  const table = new PagedTable({ id: "exchanges", columns, apiColumns: COLUMNS,
    path: () => (ctx.vhost ? `/api/exchanges/${enc(ctx.vhost)}` : "/api/exchanges") });
  root.append(h("h1", {}, "Exchanges"), h("div", { class: "panel" }, table.el), addForm(ctx, () => table.load()));
  ctx.every(() => table.load());
}

function addForm(ctx, done) {
  const status = h("div");
  const types = h("select", { name: "type" }, ["direct", "fanout", "topic", "headers"].map((t) => h("option", { value: t }, t)));
  get("/api/overview?columns=exchange_types").then((o) => {
    clear(types, (o.exchange_types || []).map((t) => h("option", { value: t.name }, t.name)));
  }).catch(() => {});
  const form = h("form", { class: "fields" },
    h("label", {}, "Virtual host"), vhostField(ctx),
    h("label", {}, "Name"), h("input", { name: "name", required: true }),
    h("label", {}, "Type"), types,
    h("label", {}, "Durable"), h("select", { name: "durable" }, h("option", { value: "true" }, "yes"), h("option", { value: "false" }, "no")),
    h("label", {}, "Auto-delete"), h("select", { name: "auto_delete" }, h("option", { value: "false" }, "no"), h("option", { value: "true" }, "yes")),
    h("label", {}, "Internal"), h("select", { name: "internal" }, h("option", { value: "false" }, "no"), h("option", { value: "true" }, "yes")),
    h("label", {}, "Arguments"), h("textarea", { name: "arguments", rows: 2, placeholder: "alternate-exchange=my-ae, one a line (or a JSON object)" }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Add exchange")));
  onSubmit(form, status, async (fd) => {
    await put(`/api/exchanges/${enc(fd.get("vhost"))}/${enc(fd.get("name"))}`, {
      type: fd.get("type"), durable: fd.get("durable") === "true", auto_delete: fd.get("auto_delete") === "true",
      internal: fd.get("internal") === "true", arguments: parseArgs(fd.get("arguments")) });
    done();
    return `Exchange ${fd.get("name")} declared.`;
  });
  return panel("Add an exchange", form, status);
}

export function renderOne(root, [vhost, urlName], ctx) {
  const name = urlName === "amq.default" ? "" : urlName;
  const path = `/api/exchanges/${enc(vhost)}/${enc(urlName)}`;
  const head = h("div");
  const from = bindingsTable("exchange-source", () => `${path}/bindings/source`, vhost);
  const to = bindingsTable("exchange-destination", () => `${path}/bindings/destination`, vhost);
  const pubStatus = h("div");
  const pub = h("form", { class: "fields publish" }, h("label", {}, "Routing key"), h("input", { name: "routing_key" }),
    propertiesFields(), h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Publish message")));
  onSubmit(pub, pubStatus, (fd) => publishFrom(fd, vhost, name, fd.get("routing_key")));
  const status = h("div");
  const parts = [h("div", { class: "muted" }, h("a", { href: "#/exchanges" }, "Exchanges"), ` · virtual host ${vhost}`),
    h("h1", {}, name || "(AMQP default)"), head, panel("Bindings from this exchange", from.el, bindForm(vhost, name, () => from.load()))];
  if (name) parts.push(panel("Bindings to this exchange", to.el));
  parts.push(panel("Publish a message", pub, pubStatus));
  if (name && !name.startsWith("amq.")) {
    parts.push(panel("Delete", dangerButton("Delete exchange", () => del(path).then(
      () => { location.hash = "#/exchanges"; }, (e) => note(status, "bad", `${e.status}: ${e.message}`))), status));
  }
  root.append(...parts);
  watch(root, ctx, path, `Exchange ${name}`, "#/exchanges", (x) => {
    clear(head, h("div", { class: "panel" }, kv([["Virtual host", vhost], ["Type", x.type], ["Features", features(x)],
      ["Arguments", h("code", {}, json(x.arguments) || "none")], ["Policy", x.policy || "none"],
      ["Rate in", rate(dig(x, "message_stats.publish_in_details.rate") ?? 0)],
      ["Rate out", rate(dig(x, "message_stats.publish_out_details.rate") ?? 0)]])));
    from.load();
    if (name) to.load();
  });
}

function bindForm(vhost, source, done) {
  if (source === "") return h("p", { class: "muted" }, "The default exchange routes to the queue named by the routing key; it takes no bindings.");
  const status = h("div");
  const form = h("form", { class: "inline" }, h("span", {}, "Bind to"),
    h("select", { name: "kind" }, h("option", { value: "q" }, "queue"), h("option", { value: "e" }, "exchange")),
    h("input", { name: "destination", required: true, placeholder: "name" }),
    h("input", { name: "routing_key", placeholder: "routing key" }),
    h("input", { name: "arguments", placeholder: "arguments: k=v, ..." }),
    h("button", { type: "submit" }, "Bind"));
  onSubmit(form, status, async (fd) => {
    await post(`/api/bindings/${enc(vhost)}/e/${enc(source)}/${fd.get("kind")}/${enc(fd.get("destination"))}`,
      { routing_key: fd.get("routing_key"), arguments: parseArgs(fd.get("arguments")) });
    done();
    return "Bound.";
  });
  return h("div", { style: "margin-top:8px" }, form, status);
}
