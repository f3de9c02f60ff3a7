// Pieces several pages share: vhost choice, link helpers, JSON fields, publish forms, feature
// flags and binding tables.
import { ApiError, del, get, post } from "../api.js";
import { clear, dangerButton, enc, h, json, note, tags } from "../dom.js";
import { PagedTable } from "../table.js";

export const qLink = (vhost, name) => `#/queues/${enc(vhost)}/${enc(name)}`;
export const xLink = (vhost, name) => `#/exchanges/${enc(vhost)}/${enc(name === "" ? "amq.default" : name)}`;

// the vhost a new object goes into: the one chosen at the top, else a select
export function vhostField(ctx) {
  const sel = h("select", { name: "vhost" });
  get("/api/vhosts?columns=name").then((vs) => {
    for (const v of vs) sel.append(h("option", { value: v.name, selected: v.name === (ctx.vhost || "/") }, v.name));
  }).catch(() => {});
  return sel;
}

// A JSON object typed into a textarea ("" is {}); throws a readable error.
export function parseJson(text, what) {
  if (!text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what}: not JSON (${e.message})`); }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error(`${what}: must be a JSON object`);
  return v;
}

// Typed values for argument tables: 10 -> number, true -> boolean, else string; "key=value" lines.
export function parseArgs(text) {
  const t = text.trim();
  if (!t) return {};
  if (t.startsWith("{")) return parseJson(t, "arguments");
  const out = {};
  for (const line of t.split(/\n|,/)) {
    if (!line.trim()) continue;
    const i = line.indexOf("=");
    if (i < 1) throw new Error(`arguments: "${line.trim()}" is not key=value`);
    const k = line.slice(0, i).trim();
    const raw = line.slice(i + 1).trim();
    out[k] = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw === "true" ? true : raw === "false" ? false : raw;
  }
  return out;
}

// Submit handler wrapper: shows the error (or `ok` text) under the form.
export function onSubmit(form, status, fn) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const ok = await fn(new FormData(form));
      if (ok) note(status, "ok", ok);
    } catch (e) {
      note(status, "bad", e instanceof ApiError ? `${e.status}: ${e.message}` : e.message);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function features(o) {
  const f = [];
  if (o.durable) f.push("D");
  if (o.auto_delete) f.push("AD");
  if (o.exclusive) f.push("Excl");
  if (o.internal) f.push("I");
  const args = json(o.arguments);
  const names = [...f, ...Object.keys(o.arguments || {}).map((k) => k.replace(/^x-/, "")),
    ...(o.policy ? [`policy: ${o.policy}`] : [])];
  return h("span", { title: args }, tags(names));
}

export function propertiesFields() {
  return [
    h("label", {}, "Delivery mode"),
    h("select", { name: "delivery_mode" }, h("option", { value: "1" }, "1 — transient"), h("option", { value: "2" }, "2 — persistent")),
    h("label", {}, "Headers"), h("textarea", { name: "headers", rows: 2, placeholder: "key=value, one a line (or a JSON object)" }),
    h("label", {}, "Properties"), h("textarea", { name: "props", rows: 2, placeholder: "content_type=text/plain, one a line (or a JSON object)" }),
    h("label", {}, "Payload"), h("textarea", { name: "payload", rows: 4 }),
  ];
}

export async function publishFrom(fd, vhost, exchange, routingKey) {
  const properties = { ...parseArgs(fd.get("props")), delivery_mode: Number(fd.get("delivery_mode")) };
  const headers = parseArgs(fd.get("headers"));
  if (Object.keys(headers).length) properties.headers = headers;
  const r = await post(`/api/exchanges/${enc(vhost)}/${enc(exchange === "" ? "amq.default" : exchange)}/publish`,
    { properties, routing_key: routingKey, payload: fd.get("payload"), payload_encoding: "string" });
  return r.routed ? "Message published." : "Message published, but it was not routed to any queue.";
}

// Bindings of an object, with an unbind button for each (not the default exchange's).
export function bindingsTable(id, path, vhost, onChange) {
  const t = new PagedTable({
    id, path, paged: false, filter: false, empty: "No bindings.",
    columns: [
      { key: "source", label: "From", sort: false, render: (b) => h("a", { href: xLink(vhost, b.source) }, b.source || "(default exchange)") },
      { key: "destination", label: "To", sort: false, render: (b) => h("a", { href: b.destination_type === "queue" ? qLink(vhost, b.destination) : xLink(vhost, b.destination) }, `${b.destination_type === "queue" ? "queue" : "exchange"} ${b.destination}`) },
      { key: "routing_key", label: "Routing key", sort: false },
      { key: "arguments", label: "Arguments", sort: false, render: (b) => h("code", {}, json(b.arguments)) },
      { key: "x", label: "", sort: false, render: (b) => b.source === "" ? h("span", { class: "muted" }, "implicit") :
        dangerButton("Unbind", async () => {
          await del(`/api/bindings/${enc(vhost)}/e/${enc(b.source)}/${b.destination_type === "queue" ? "q" : "e"}/${enc(b.destination)}/${enc(b.properties_key)}`);
          t.load(); if (onChange) onChange();
        }) },
    ],
  });
  return t;
}

export function panel(title, ...children) {
  return h("div", { class: "panel" }, h("h2", {}, title), ...children);
}

function notFound(root, what, back) {
  clear(root, h("div", { class: "panel" }, `${what} does not exist (any more). `, h("a", { href: back }, "Back to the list")));
}

// An object's page: GET `path` every refresh and hand it to show(); once it is gone (404), say
// so instead of the page and stop asking.
export function watch(root, ctx, path, what, back, show) {
  let gone = false;
  ctx.every(async () => {
    if (gone) return;
    let obj;
    try { obj = await get(path); } catch (e) {
      if (e.status === 404) { gone = true; notFound(root, what, back); return; }
      throw e;
    }
    show(obj);
  });
}
