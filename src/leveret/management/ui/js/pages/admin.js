// Administration: users, virtual hosts, permissions, policies (and operator policies) and
// limits (per vhost and per user): list, add, delete. The API decides who may do what (an
// administrator for most; a policymaker for policies); a refusal shows as the API's reason.
import { del, get, put } from "../api.js";
import { clear, dangerButton, enc, h, json, note, num, tags } from "../dom.js";
import { PagedTable } from "../table.js";
import { onSubmit, panel, parseJson, vhostField } from "./common.js";

const TABS = [["users", "Users"], ["vhosts", "Virtual hosts"], ["permissions", "Permissions"],
  ["policies", "Policies"], ["limits", "Limits"]];

export function render(root, [tab = "users"], ctx) {
  const pages = { users, vhosts, permissions, policies, limits };
  root.append(h("h1", {}, "Admin"),
    h("div", { class: "tabs" }, TABS.map(([id, label]) => h("a", { href: `#/admin/${id}`, class: id === tab ? "active" : "" }, label))));
  (pages[tab] || users)(root, ctx);
}

function deleteCell(path, reload, status, label = "Delete") {
  return dangerButton(label, () => del(path).then(reload, (e) => note(status, "bad", `${e.status}: ${e.message}`)));
}

function listPanel(title, table, status) {
  return panel(title, table.el, status);
}

function users(root, ctx) {
  const status = h("div");
  const t = new PagedTable({ id: "users", path: () => "/api/users", empty: "No users.", columns: [
    { key: "name", label: "Name" },
    { key: "tags", label: "Tags", render: (u) => tags(u.tags) },
    { key: "password", label: "Password", sort: false, render: (u) => (u.password_hash ? "set" : h("span", { class: "muted" }, "none (certificate login only)")) },
    { key: "limits", label: "Limits", sort: false, render: (u) => h("code", {}, json(u.limits)) },
    { key: "x", label: "", sort: false, render: (u) => deleteCell(`/api/users/${enc(u.name)}`, () => t.load(), status) }] });
  const formStatus = h("div");
  const form = h("form", { class: "fields add-user" },
    h("label", {}, "Name"), h("input", { name: "name", required: true, autocomplete: "off" }),
    h("label", {}, "Password"), h("input", { name: "password", type: "password", autocomplete: "new-password", placeholder: "empty: no password (certificate login)" }),
    h("label", {}, "Tags"), h("input", { name: "tags", placeholder: "administrator, monitoring, policymaker, management" }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Add / update user")));
  onSubmit(form, formStatus, async (fd) => {
    const body = { tags: fd.get("tags").split(",").map((s) => s.trim()).filter(Boolean).join(",") };
    if (fd.get("password")) body.password = fd.get("password");
    await put(`/api/users/${enc(fd.get("name"))}`, body);
    t.load();
    return `User ${fd.get("name")} saved. Give it permissions on the Permissions tab.`;
  });
  root.append(listPanel("Users", t, status), panel("Add or update a user", form, formStatus));
  ctx.every(() => t.load());
}

function vhosts(root, ctx) {
  const status = h("div");
  const t = new PagedTable({ id: "vhosts", path: () => "/api/vhosts", empty: "No virtual hosts.", columns: [
    { key: "name", label: "Name" },
    { key: "description", label: "Description" },
    { key: "tags", label: "Tags", render: (v) => tags(v.tags) },
    { key: "default_queue_type", label: "Default queue type", render: (v) => (v.default_queue_type === "undefined" ? "" : v.default_queue_type) },
    { key: "messages_ready", label: "Ready", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true },
    { key: "x", label: "", sort: false, render: (v) => deleteCell(`/api/vhosts/${enc(v.name)}`, () => t.load(), status) }] });
  const formStatus = h("div");
  const form = h("form", { class: "fields" },
    h("label", {}, "Name"), h("input", { name: "name", required: true }),
    h("label", {}, "Description"), h("input", { name: "description" }),
    h("label", {}, "Tags"), h("input", { name: "tags", placeholder: "comma-separated" }),
    h("label", {}, "Default queue type"), h("select", { name: "default_queue_type" },
      h("option", { value: "" }, "(none: classic)"), h("option", { value: "classic" }, "classic"), h("option", { value: "quorum" }, "quorum")),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Add virtual host")));
  onSubmit(form, formStatus, async (fd) => {
    const body = { description: fd.get("description"), tags: fd.get("tags") };
    if (fd.get("default_queue_type")) body.default_queue_type = fd.get("default_queue_type");
    await put(`/api/vhosts/${enc(fd.get("name"))}`, body);
    t.load();
    return `Virtual host ${fd.get("name")} added (reload the page to see it in the vhost menu).`;
  });
  root.append(listPanel("Virtual hosts", t, status), panel("Add a virtual host", form, formStatus));
  ctx.every(() => t.load());
}

function permissions(root, ctx) {
  const status = h("div");
  const t = new PagedTable({ id: "permissions", path: () => "/api/permissions", filter: false, empty: "No permissions.", columns: [
    { key: "user", label: "User" }, { key: "vhost", label: "Virtual host" },
    { key: "configure", label: "Configure", render: (p) => h("code", {}, p.configure) },
    { key: "write", label: "Write", render: (p) => h("code", {}, p.write) },
    { key: "read", label: "Read", render: (p) => h("code", {}, p.read) },
    { key: "x", label: "", sort: false, render: (p) => deleteCell(`/api/permissions/${enc(p.vhost)}/${enc(p.user)}`, () => t.load(), status, "Clear") }] });
  const tt = new PagedTable({ id: "topic-permissions", path: () => "/api/topic-permissions", filter: false, empty: "No topic permissions.", columns: [
    { key: "user", label: "User" }, { key: "vhost", label: "Virtual host" }, { key: "exchange", label: "Exchange" },
    { key: "write", label: "Write", render: (p) => h("code", {}, p.write) },
    { key: "read", label: "Read", render: (p) => h("code", {}, p.read) },
    { key: "x", label: "", sort: false, render: (p) => deleteCell(`/api/topic-permissions/${enc(p.vhost)}/${enc(p.user)}`, () => tt.load(), status, "Clear") }] });
  const formStatus = h("div");
  const form = h("form", { class: "fields" },
    h("label", {}, "User"), h("input", { name: "user", required: true }),
    h("label", {}, "Virtual host"), vhostField(ctx),
    h("label", {}, "Configure"), h("input", { name: "configure", value: ".*" }),
    h("label", {}, "Write"), h("input", { name: "write", value: ".*" }),
    h("label", {}, "Read"), h("input", { name: "read", value: ".*" }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Set permission")));
  onSubmit(form, formStatus, async (fd) => {
    await put(`/api/permissions/${enc(fd.get("vhost"))}/${enc(fd.get("user"))}`,
      { configure: fd.get("configure"), write: fd.get("write"), read: fd.get("read") });
    t.load();
    return "Permission set.";
  });
  root.append(listPanel("Permissions", t, status), panel("Set a permission", form, formStatus),
    panel("Topic permissions", tt.el));
  ctx.every(() => { t.load(); tt.load(); });
}

function policyTable(id, api, status, label) {
  const t = new PagedTable({ id, path: () => api, empty: `No ${label}.`, columns: [
    { key: "name", label: "Name" }, { key: "vhost", label: "Virtual host" },
    { key: "pattern", label: "Pattern", render: (p) => h("code", {}, p.pattern) },
    { key: "apply-to", label: "Applies to" },
    { key: "definition", label: "Definition", sort: false, render: (p) => h("code", {}, json(p.definition)) },
    { key: "priority", label: "Priority", num: true },
    { key: "x", label: "", sort: false, render: (p) => deleteCell(`${api}/${enc(p.vhost)}/${enc(p.name)}`, () => t.load(), status) }] });
  return t;
}

function policies(root, ctx) {
  const status = h("div");
  const t = policyTable("policies", "/api/policies", status, "policies");
  const ot = policyTable("operator-policies", "/api/operator-policies", status, "operator policies");
  const formStatus = h("div");
  const form = h("form", { class: "fields" },
    h("label", {}, "Kind"), h("select", { name: "kind" }, h("option", { value: "policies" }, "policy"), h("option", { value: "operator-policies" }, "operator policy")),
    h("label", {}, "Virtual host"), vhostField(ctx),
    h("label", {}, "Name"), h("input", { name: "name", required: true }),
    h("label", {}, "Pattern"), h("input", { name: "pattern", required: true, placeholder: "^orders\\." }),
    h("label", {}, "Apply to"), h("select", { name: "apply-to" }, ["all", "queues", "exchanges"].map((x) => h("option", { value: x }, x))),
    h("label", {}, "Priority"), h("input", { name: "priority", type: "number", value: 0 }),
    h("label", {}, "Definition"), h("textarea", { name: "definition", rows: 3, placeholder: '{"max-length": 1000, "dead-letter-exchange": "dlx"}' }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Add / update policy")));
  onSubmit(form, formStatus, async (fd) => {
    await put(`/api/${fd.get("kind")}/${enc(fd.get("vhost"))}/${enc(fd.get("name"))}`, {
      pattern: fd.get("pattern"), "apply-to": fd.get("apply-to"), priority: Number(fd.get("priority")),
      definition: parseJson(fd.get("definition"), "definition") });
    t.load(); ot.load();
    return "Policy saved.";
  });
  root.append(listPanel("Policies", t, status), listPanel("Operator policies", ot, h("div")),
    panel("Add or update a policy", form, formStatus));
  ctx.every(() => { t.load(); ot.load(); });
}

function limitRows(items, key) {
  // /api/vhost-limits: [{vhost, value: {max-connections: 10}}] -> one row per limit
  return items.flatMap((x) => Object.entries(x.value || {}).map(([name, value]) => ({ owner: x[key], name, value })));
}

function limitTable(title, api, key, status) {
  const body = h("tbody");
  const el = panel(title, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, key === "vhost" ? "Virtual host" : "User"),
    h("th", {}, "Limit"), h("th", { class: "num" }, "Value"), h("th", {}))), body));
  const load = async () => {
    const rows = limitRows(await get(api), key);
    clear(body, rows.length ? rows.map((r) => h("tr", {}, h("td", {}, r.owner), h("td", {}, r.name), h("td", { class: "num" }, num(r.value)),
      h("td", {}, deleteCell(`${api}/${enc(r.owner)}/${enc(r.name)}`, load, status)))) :
      h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No limits.")));
  };
  return { el, load };
}

function limits(root, ctx) {
  const status = h("div");
  const vl = limitTable("Virtual host limits", "/api/vhost-limits", "vhost", status);
  const ul = limitTable("User limits", "/api/user-limits", "user", status);
  const formStatus = h("div");
  const which = h("select", { name: "which" }, h("option", { value: "vhost" }, "virtual host"), h("option", { value: "user" }, "user"));
  const form = h("form", { class: "fields" },
    h("label", {}, "For a"), which,
    h("label", {}, "Vhost or user name"), h("input", { name: "owner", required: true, value: ctx.vhost || "/" }),
    h("label", {}, "Limit"), h("select", { name: "name" }, ["max-connections", "max-queues", "max-channels"].map((x) => h("option", { value: x }, x))),
    h("label", {}, "Value"), h("input", { name: "value", type: "number", required: true, value: 100 }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Set limit")));
  onSubmit(form, formStatus, async (fd) => {
    const api = fd.get("which") === "vhost" ? "/api/vhost-limits" : "/api/user-limits";
    await put(`${api}/${enc(fd.get("owner"))}/${enc(fd.get("name"))}`, { value: Number(fd.get("value")) });
    vl.load(); ul.load();
    return "Limit set. (Virtual hosts take max-connections and max-queues; users max-connections and max-channels.)";
  });
  root.append(vl.el, ul.el, status, panel("Set a limit", form, formStatus));
  ctx.every(async () => { await vl.load(); await ul.load(); });
}
