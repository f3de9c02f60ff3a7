// Connections and channels: lists (server-side paging/sort/filter) and a connection's page
// with its channels and a close button (DELETE with X-Reason, as RabbitMQ's UI offers).
import { del } from "../api.js";
import { bytes, clear, dangerButton, dig, enc, h, kv, note, num, rate, yesno } from "../dom.js";
import { PagedTable } from "../table.js";
import { panel, watch } from "./common.js";

const cLink = (name) => `#/connections/${enc(name)}`;

function clientName(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(" ");
}

export function renderList(root, _params, ctx) {
  const columns = [
    { key: "name", label: "Name", render: (c) => h("a", { href: cLink(c.name) }, c.name) },
    { key: "user_provided_name", label: "Client name", sort: false, render: (c) => c.user_provided_name || "" },
    ctx.vhost ? null : { key: "vhost", label: "Vhost" },
    { key: "user", label: "User" },
    { key: "state", label: "State" },
    { key: "ssl", label: "TLS", render: (c) => yesno(c.ssl) },
    { key: "client", label: "Client", sort: false, render: clientName },
    { key: "channels", label: "Channels", num: true },
    { key: "recv", label: "From client", num: true, sort: "recv_oct_details.rate", render: (c) => `${bytes(dig(c, "recv_oct_details.rate") ?? 0)}/s` },
    { key: "send", label: "To client", num: true, sort: "send_oct_details.rate", render: (c) => `${bytes(dig(c, "send_oct_details.rate") ?? 0)}/s` },
  ].filter(Boolean);
  const table = new PagedTable({ id: "connections", columns, empty: "No connections.",
    path: () => (ctx.vhost ? `/api/vhosts/${enc(ctx.vhost)}/connections` : "/api/connections") });
  root.append(h("h1", {}, "Connections"), h("div", { class: "panel" }, table.el));
  ctx.every(() => table.load());
}

function channelColumns(showConn) {
  return [
    { key: "name", label: "Channel", render: (c) => h("a", { href: cLink(c.connection_details.name) }, showConn ? c.name : `channel ${c.number}`) },
    { key: "user", label: "User" },
    { key: "vhost", label: "Vhost" },
    { key: "mode", label: "Mode", sort: false, render: (c) => [c.confirm ? "confirm" : "", c.transactional ? "tx" : ""].filter(Boolean).join(" ") },
    { key: "state", label: "State" },
    { key: "prefetch_count", label: "Prefetch", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true },
    { key: "messages_unconfirmed", label: "Unconfirmed", num: true },
    { key: "consumer_count", label: "Consumers", num: true },
    { key: "pub", label: "Publish", num: true, sort: "message_stats.publish_details.rate", render: (c) => rate(dig(c, "message_stats.publish_details.rate") ?? 0) },
    { key: "del", label: "Deliver / get", num: true, sort: "message_stats.deliver_get_details.rate", render: (c) => rate(dig(c, "message_stats.deliver_get_details.rate") ?? 0) },
    { key: "ack", label: "Ack", num: true, sort: "message_stats.ack_details.rate", render: (c) => rate(dig(c, "message_stats.ack_details.rate") ?? 0) },
  ];
}

export function renderChannels(root, _params, ctx) {
  const table = new PagedTable({ id: "channels", columns: channelColumns(true), empty: "No channels.",
    path: () => (ctx.vhost ? `/api/vhosts/${enc(ctx.vhost)}/channels` : "/api/channels") });
  root.append(h("h1", {}, "Channels"), h("div", { class: "panel" }, table.el));
  ctx.every(() => table.load());
}

export function renderOne(root, [name], ctx) {
  const path = `/api/connections/${enc(name)}`;
  const head = h("div");
  const channels = new PagedTable({ id: "connection-channels", columns: channelColumns(false), paged: false,
    filter: false, empty: "No channels.", path: () => `${path}/channels` });
  const reason = h("input", { value: "Closed via the Leveret web UI", size: 40 });
  const status = h("div");
  root.append(h("div", { class: "muted" }, h("a", { href: "#/connections" }, "Connections"), " /"), h("h1", {}, name), head,
    panel("Channels", channels.el),
    panel("Close this connection", h("div", { class: "toolbar" }, h("label", {}, "Reason "), reason,
      dangerButton("Force close", () => del(path, { headers: { "X-Reason": reason.value } }).then(
        () => { location.hash = "#/connections"; }, (e) => note(status, "bad", `${e.status}: ${e.message}`)))), status));
  watch(root, ctx, path, `Connection ${name}`, "#/connections", (c) => {
    clear(head, h("div", { class: "grid" }, panel("Connection", kv([
      ["Client-provided name", c.user_provided_name || ""], ["User", c.user], ["Virtual host", c.vhost], ["State", c.state],
      ["Protocol", c.protocol], ["TLS", yesno(c.ssl)], ["Authentication", c.auth_mechanism],
      ["Heartbeat", `${c.timeout} s`], ["Frame max", num(c.frame_max)], ["Channel max", num(c.channel_max)],
      ["Connected", new Date(c.connected_at).toLocaleString()],
      ["From client", `${bytes(c.recv_oct)} (${bytes(dig(c, "recv_oct_details.rate") ?? 0)}/s)`],
      ["To client", `${bytes(c.send_oct)} (${bytes(dig(c, "send_oct_details.rate") ?? 0)}/s)`]])),
    panel("Client properties", h("pre", {}, JSON.stringify(c.client_properties, null, 1)))));
    channels.load();
  });
}
