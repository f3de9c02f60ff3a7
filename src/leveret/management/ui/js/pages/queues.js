// Queues: the list (server-side paging, sort and filter: the browser never holds more than a
// page, so 10,000 queues are as quick as 10) and a queue's page: its counts and rates, a live
// chart of its depth, consumers, bindings, publish, get, purge and delete.
import { del, post, put } from "../api.js";
import { LiveChart } from "../chart.js";
import { bytes, clear, dangerButton, dig, enc, h, json, kv, note, num, rate, stat, yesno } from "../dom.js";
import { PagedTable } from "../table.js";
import { bindingsTable, features, onSubmit, panel, parseArgs, propertiesFields, publishFrom, qLink,
  vhostField, watch } from "./common.js";

const COLUMNS = "name,vhost,type,durable,auto_delete,exclusive,arguments,policy,state,consumers,messages_ready," +
  "messages_unacknowledged,messages,message_stats.publish_details.rate,message_stats.deliver_get_details.rate," +
  "message_stats.ack_details.rate";

export function renderList(root, _params, ctx) {
  const columns = [
    { key: "name", label: "Name", render: (q) => h("a", { href: qLink(q.vhost, q.name) }, q.name) },
    ctx.vhost ? null : { key: "vhost", label: "Vhost" },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sort: false, render: features },
    { key: "consumers", label: "Consumers", num: true },
    { key: "messages_ready", label: "Ready", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true },
    { key: "messages", label: "Total", num: true },
    { key: "in", label: "Incoming", num: true, sort: "message_stats.publish_details.rate", render: (q) => rate(dig(q, "message_stats.publish_details.rate") ?? 0) },
    { key: "out", label: "Deliver / get", num: true, sort: "message_stats.deliver_get_details.rate", render: (q) => rate(dig(q, "message_stats.deliver_get_details.rate") ?? 0) },
    { key: "ack", label: "Ack", num: true, sort: "message_stats.ack_details.rate", render: (q) => rate(dig(q, "message_stats.ack_details.rate") ?? 0) },
  ].filter(Boolean);
  const table = new PagedTable({ id: "queues", columns, apiColumns: COLUMNS,
    path: () => (ctx.vhost ? `/api/queues/${enc(ctx.vhost)}` : "/api/queues"), empty: "No queues." });
  root.append(h("h1", {}, "Queues"), h("div", { class: "panel" }, table.el), addQueueForm(ctx, () => table.load()));
  ctx.every(() => table.load());
}

function addQueueForm(ctx, done) {
  const status = h("div");
  const form = h("form", { class: "fields add-queue" },
    h("label", {}, "Virtual host"), vhostField(ctx),
    h("label", {}, "Name"), h("input", { name: "name", required: true }),
    h("label", {}, "Type"), h("select", { name: "type" }, ["classic", "quorum"].map((t) => h("option", { value: t }, t))),
    h("label", {}, "Durable"), h("select", { name: "durable" }, h("option", { value: "true" }, "yes"), h("option", { value: "false" }, "no")),
    h("label", {}, "Auto-delete"), h("select", { name: "auto_delete" }, h("option", { value: "false" }, "no"), h("option", { value: "true" }, "yes")),
    h("label", {}, "Arguments"), h("textarea", { name: "arguments", rows: 2, placeholder: "x-max-length=1000, one a line (or a JSON object)" }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Add queue")));
  onSubmit(form, status, async (fd) => {
    const body = { durable: fd.get("durable") === "true", auto_delete: fd.get("auto_delete") === "true",
      arguments: { ...parseArgs(fd.get("arguments")), "x-queue-type": fd.get("type") } };
    await put(`/api/queues/${enc(fd.get("vhost"))}/${enc(fd.get("name"))}`, body);
    done();
    return `Queue ${fd.get("name")} declared.`;
  });
  return panel("Add a queue", form, status);
}

export function renderOne(root, [vhost, name], ctx) {
  const path = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const head = h("div");
  const counts = h("div", { class: "stats", dataset: { queueStats: "" } });
  const depth = new LiveChart({ title: "Queued messages", series: [{ label: "Ready" }, { label: "Unacked" }] });
  const rates = new LiveChart({ title: "Message rates", kind: "rate",
    series: [{ label: "Incoming" }, { label: "Deliver / get" }, { label: "Ack" }, { label: "Redeliver" }] });
  const consumers = h("div");
  ctx.cleanup(() => { depth.destroy(); rates.destroy(); });
  const bindings = bindingsTable("queue-bindings", () => `${path}/bindings`, vhost);
  root.append(h("div", { class: "muted" }, h("a", { href: "#/queues" }, "Queues"), ` · virtual host ${vhost}`),
    h("h1", {}, name), head, counts, h("div", { class: "grid" }, depth.el, rates.el),
    h("div", { style: "height:14px" }), panel("Consumers", consumers),
    panel("Bindings", bindings.el, bindForm(vhost, name, () => bindings.load())),
    h("div", { class: "grid" }, publishPanel(vhost, name, ctx), getPanel(vhost, name)),
    h("div", { style: "height:14px" }), dangerPanel(vhost, name, path));

  watch(root, ctx, path, `Queue ${name}`, "#/queues", (q) => {
    clear(head, h("div", { class: "panel" }, kv([
      ["Virtual host", vhost], ["Type", q.type], ["State", q.state], ["Features", features(q)],
      ["Arguments", h("code", {}, json(q.arguments) || "none")], ["Policy", q.policy || "none"],
      ["Effective policy", h("code", {}, json(q.effective_policy_definition) || "none")],
      ["Exclusive owner", q.owner_pid_details ? q.owner_pid_details.name : ""],
      ["Single active consumer", q.single_active_consumer_tag || ""],
    ])));
    clear(counts,
      stat("Total", num(q.messages), { dataset: { stat: "messages" } }),
      stat("Ready", num(q.messages_ready), { dataset: { stat: "messages_ready" } }),
      stat("Unacked", num(q.messages_unacknowledged), { dataset: { stat: "messages_unacknowledged" } }),
      stat("Consumers", num(q.consumers), { dataset: { stat: "consumers" } }),
      stat("Bytes ready", bytes(q.message_bytes_ready)), stat("Paged out", num(q.messages_paged_out)));
    depth.add([q.messages_ready, q.messages_unacknowledged]);
    rates.add(["publish", "deliver_get", "ack", "redeliver"].map((k) => dig(q, `message_stats.${k}_details.rate`) ?? 0));
    clear(consumers, q.consumer_details && q.consumer_details.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Tag", "Channel", "Ack required", "Prefetch", "Exclusive", "Active", "Arguments"].map((c) => h("th", {}, c)))),
      h("tbody", {}, q.consumer_details.map((c) => h("tr", {}, h("td", { class: "name" }, c.consumer_tag),
        h("td", {}, h("a", { href: `#/connections/${enc(c.channel_details.connection_name)}` }, c.channel_details.name)),
        h("td", {}, yesno(c.ack_required)), h("td", { class: "num" }, num(c.prefetch_count)), h("td", {}, yesno(c.exclusive)),
        h("td", {}, c.activity_status), h("td", {}, h("code", {}, json(c.arguments))))))) :
      h("div", { class: "muted" }, "No consumers."));
    bindings.load();
  });
}

function bindForm(vhost, queue, done) {
  const status = h("div");
  const form = h("form", { class: "inline bind" },
    h("span", {}, "Bind from exchange"), h("input", { name: "source", required: true, placeholder: "exchange" }),
    h("input", { name: "routing_key", placeholder: "routing key" }),
    h("input", { name: "arguments", placeholder: "arguments: k=v, ..." }),
    h("button", { type: "submit" }, "Bind"));
  onSubmit(form, status, async (fd) => {
    await post(`/api/bindings/${enc(vhost)}/e/${enc(fd.get("source"))}/q/${enc(queue)}`,
      { routing_key: fd.get("routing_key"), arguments: parseArgs(fd.get("arguments")) });
    done();
    return "Bound.";
  });
  return h("div", { style: "margin-top:8px" }, form, status);
}

function publishPanel(vhost, queue) {
  const status = h("div", { class: "publish-status" });
  const form = h("form", { class: "fields publish" }, propertiesFields(),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Publish message")));
  onSubmit(form, status, (fd) => publishFrom(fd, vhost, "", queue));
  return panel("Publish a message", h("p", { class: "muted" }, "Sent through the default exchange with the queue's name as routing key."), form, status);
}

function getPanel(vhost, queue) {
  const status = h("div");
  const out = h("div", { class: "messages" });
  const form = h("form", { class: "fields get" },
    h("label", {}, "Ack mode"), h("select", { name: "ackmode" },
      h("option", { value: "ack_requeue_true" }, "Nack, requeue (leave it in the queue)"),
      h("option", { value: "reject_requeue_true" }, "Reject, requeue"),
      h("option", { value: "ack_requeue_false" }, "Ack (remove from the queue)"),
      h("option", { value: "reject_requeue_false" }, "Reject, no requeue (dead-letter)")),
    h("label", {}, "Encoding"), h("select", { name: "encoding" }, h("option", { value: "auto" }, "auto: string if UTF-8, else base64"), h("option", { value: "base64" }, "base64")),
    h("label", {}, "Messages"), h("input", { name: "count", type: "number", min: 1, value: 1 }),
    h("label", {}, "Truncate at"), h("input", { name: "truncate", type: "number", min: 1, value: 50000 }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Get messages")));
  onSubmit(form, status, async (fd) => {
    const got = await post(`/api/queues/${enc(vhost)}/${enc(queue)}/get`, { ackmode: fd.get("ackmode"),
      encoding: fd.get("encoding"), count: Number(fd.get("count")), truncate: Number(fd.get("truncate")) });
    clear(out, got.map((m, i) => h("div", { class: "msg", dataset: { message: i } }, kv([
      ["Message", `${i + 1} (${m.message_count} left in the queue)`], ["Exchange", m.exchange || "(default)"],
      ["Routing key", m.routing_key], ["Redelivered", yesno(m.redelivered)],
      ["Properties", h("code", {}, json(m.properties))],
      ["Payload", h("div", {}, h("div", { class: "muted" }, `${num(m.payload_bytes)} bytes, ${m.payload_encoding}`),
        h("pre", { class: "payload" }, m.payload))]]))));
    return got.length ? `${got.length} message${got.length > 1 ? "s" : ""}.` : "The queue is empty.";
  });
  return panel("Get messages", form, status, out);
}

function dangerPanel(vhost, queue, path) {
  const status = h("div");
  const ifEmpty = h("input", { type: "checkbox" });
  const ifUnused = h("input", { type: "checkbox" });
  const fail = (e) => note(status, "bad", `${e.status ?? ""} ${e.message}`);
  return panel("Purge or delete",
    h("div", { class: "toolbar" },
      dangerButton("Purge messages", () => del(`${path}/contents`).then(() => note(status, "ok", "Purged."), fail)),
      h("span", { class: "grow" }),
      h("label", {}, ifEmpty, " only if empty"), h("label", {}, ifUnused, " only if unused"),
      dangerButton("Delete queue", () => {
        const q = new URLSearchParams();
        if (ifEmpty.checked) q.set("if-empty", "true");
        if (ifUnused.checked) q.set("if-unused", "true");
        return del(`${path}${q.toString() ? `?${q}` : ""}`).then(() => { location.hash = "#/queues"; }, fail);
      })),
    status);
}
