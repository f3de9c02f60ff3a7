// Overview: object totals, live charts of queued messages and message rates (one sample per
// refresh of /api/overview), the node's resources and the listeners.
import { get } from "../api.js";
import { LiveChart } from "../chart.js";
import { bytes, clear, dig, duration, h, kv, num, stat } from "../dom.js";

const RATES = [["Publish", "publish"], ["Deliver / get", "deliver_get"], ["Ack", "ack"], ["Confirm", "confirm"],
  ["Redeliver", "redeliver"], ["Unroutable", "return_unroutable"]];

export function render(root, _params, ctx) {
  const totals = h("div", { class: "stats", dataset: { totals: "" } });
  const queued = new LiveChart({ title: "Queued messages", series: [
    { label: "Ready" }, { label: "Unacked" }, { label: "Total" }] });
  const rates = new LiveChart({ title: "Message rates", kind: "rate", series: RATES.map(([label]) => ({ label })) });
  const node = h("div", { class: "panel" }, h("h2", {}, "Node"));
  const listeners = h("div", { class: "panel" }, h("h2", {}, "Listeners"));
  root.append(h("h1", {}, "Overview"), totals, h("div", { class: "grid" }, queued.el, rates.el),
    h("div", { class: "grid", style: "margin-top:14px" }, node, listeners));
  ctx.cleanup(() => { queued.destroy(); rates.destroy(); });

  ctx.every(async () => {
    const o = await get("/api/overview");
    const q = o.queue_totals || {};
    const t = o.object_totals || {};
    clear(totals,
      stat("Messages", num(q.messages ?? 0), { dataset: { stat: "messages" } }),
      stat("Ready", num(q.messages_ready ?? 0), { dataset: { stat: "messages_ready" } }),
      stat("Unacked", num(q.messages_unacknowledged ?? 0), { dataset: { stat: "messages_unacknowledged" } }),
      stat("Connections", num(t.connections), { dataset: { stat: "connections" } }),
      stat("Channels", num(t.channels)), stat("Exchanges", num(t.exchanges)),
      stat("Queues", num(t.queues), { dataset: { stat: "queues" } }), stat("Consumers", num(t.consumers)));
    queued.add([q.messages_ready ?? 0, q.messages_unacknowledged ?? 0, q.messages ?? 0]);
    rates.add(RATES.map(([, key]) => dig(o, `message_stats.${key}_details.rate`) ?? 0));
    clear(listeners, h("h2", {}, "Listeners"), h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Protocol"), h("th", {}, "Address"), h("th", { class: "num" }, "Port"))),
      h("tbody", {}, (o.listeners || []).map((l) => h("tr", {}, h("td", {}, l.protocol), h("td", {}, l.ip_address),
        h("td", { class: "num" }, l.port))))),
    h("p", { class: "muted" }, `${o.product_name} ${o.product_version} · API of RabbitMQ ${o.rabbitmq_version} · cluster ${o.cluster_name}`));
    let n = null;
    try { n = await get(`/api/nodes/${encodeURIComponent(o.node)}`); } catch {
      clear(node, h("h2", {}, "Node"), h("p", { class: "muted" }, "The node's details need the monitoring or administrator tag."));
    }
    if (n) {
      clear(node, h("h2", {}, `Node ${n.name}`), kv([
        ["Uptime", duration(n.uptime)],
        ["Memory", `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} limit${n.mem_alarm ? " — ALARM" : ""}`],
        ["Disk free", n.disk_free !== undefined ? `${bytes(n.disk_free)} (limit ${bytes(n.disk_free_limit)})${n.disk_free_alarm ? " — ALARM" : ""}` : ""],
        ["File descriptors", n.fd_total ? `${num(n.fd_used)} of ${num(n.fd_total)}` : num(n.fd_used)],
        ["Sockets", num(n.sockets_used)], ["Processors", num(n.processors)], ["Data directory", n.db_dir],
        ["Rates mode", n.rates_mode]]));
    }
  });
}
