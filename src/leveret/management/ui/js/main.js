// Leveret web UI: login, the page frame (navigation, vhost choice, refresh interval, alarm
// banner) and a hash router. Pages are modules exporting render(root, params, ctx); a page
// polls through ctx.every(fn), which the router stops when the page is left.
import { get, login, session, whenLoggedOut } from "./api.js";
import { clear, h } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as connections from "./pages/connections.js";
import * as exchanges from "./pages/exchanges.js";
import * as queues from "./pages/queues.js";
import * as admin from "./pages/admin.js";
import * as definitions from "./pages/definitions.js";

const ROUTES = [
  [/^\/?$/, overview.render, "overview"],
  [/^\/connections$/, connections.renderList, "connections"],
  [/^\/connections\/(.+)$/, connections.renderOne, "connections"],
  [/^\/channels$/, connections.renderChannels, "channels"],
  [/^\/exchanges$/, exchanges.renderList, "exchanges"],
  [/^\/exchanges\/([^/]+)\/(.*)$/, exchanges.renderOne, "exchanges"],
  [/^\/queues$/, queues.renderList, "queues"],
  [/^\/queues\/([^/]+)\/(.+)$/, queues.renderOne, "queues"],
  [/^\/admin(?:\/(\w+))?$/, admin.render, "admin"],
  [/^\/definitions$/, definitions.render, "definitions"],
];

const NAV = [["overview", "#/", "Overview"], ["connections", "#/connections", "Connections"],
  ["channels", "#/channels", "Channels"], ["exchanges", "#/exchanges", "Exchanges"],
  ["queues", "#/queues", "Queues"], ["admin", "#/admin", "Admin"], ["definitions", "#/definitions", "Definitions"]];

const INTERVALS = [[2000, "2 s"], [5000, "5 s"], [10000, "10 s"], [30000, "30 s"], [0, "paused"]];

const app = document.getElementById("app");
let page = null;         // {timers: [], cleanups: []} of the page on screen

function interval() {
  const v = localStorage.getItem("leveret.interval");
  return v === null ? 5000 : Number(v);
}

function vhost() {
  return sessionStorage.getItem("leveret.vhost") || "";
}

function showLogin(message) {
  stopPage();
  const user = h("input", { name: "username", autocomplete: "username", required: true, placeholder: "guest" });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password" });
  const err = h("div", { class: "err", role: "alert" }, message || "");
  const form = h("form", { class: "panel login-form" },
    h("h1", {}, "Leveret"), h("label", {}, "Username"), user, h("label", {}, "Password"), pass,
    h("button", { class: "primary", type: "submit" }, "Log in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    try {
      await login(user.value, pass.value);
      start();
    } catch (e) {
      err.textContent = e.status === 401 ? (e.message || "Login failed") : `Cannot reach the API: ${e.message}`;
    }
  });
  clear(app, h("div", { class: "login" }, form));
  user.focus();
}

function stopPage() {
  if (!page) return;
  page.stopped = true;
  page.timers.forEach(clearTimeout);
  page.cleanups.forEach((f) => f());
  page = null;
}

let frame = null;

function buildFrame() {
  const user = session.user;
  const vhostSel = h("select", { "aria-label": "Virtual host", class: "vhost" }, h("option", { value: "" }, "All vhosts"));
  vhostSel.addEventListener("change", () => { sessionStorage.setItem("leveret.vhost", vhostSel.value); route(); });
  get("/api/vhosts?columns=name").then((vs) => {
    for (const v of vs) vhostSel.append(h("option", { value: v.name, selected: v.name === vhost() }, v.name));
  }).catch(() => {});
  const ivSel = h("select", { "aria-label": "Refresh every" },
    INTERVALS.map(([ms, label]) => h("option", { value: ms, selected: ms === interval() }, `refresh ${label}`)));
  ivSel.addEventListener("change", () => { localStorage.setItem("leveret.interval", ivSel.value); route(); });
  const logout = h("button", { type: "button", onclick: () => { session.clear(); showLogin(); } }, "Log out");
  // (admin pages need the administrator or policymaker tag, definitions the administrator's:
  // the API refuses the others, so their links are not offered)
  const userTags = new Set(user ? user.tags : []);
  const offered = (id) => (id === "admin" ? userTags.has("administrator") || userTags.has("policymaker") :
    id === "definitions" ? userTags.has("administrator") : true);
  const nav = h("nav", {}, NAV.filter(([id]) => offered(id)).map(([id, href, label]) => h("a", { href, dataset: { nav: id } }, label)));
  const banner = h("div", { class: "banners" });
  const main = h("main");
  clear(app, h("header", { class: "top" }, h("div", { class: "brand" }, "Leveret"), nav,
    h("div", { class: "right" }, vhostSel, ivSel, h("span", { class: "who" }, user ? user.name : ""), logout)),
  banner, main);
  frame = { nav, banner, main };
}

// The alarm banner is on every page: /api/health/checks/alarms answers 503 with the alarms.
async function checkAlarms() {
  let text = "";
  try {
    await get("/api/health/checks/alarms");
  } catch (e) {
    if (e.status === 503 && e.body && Array.isArray(e.body.alarms)) {
      const which = e.body.alarms.map((a) => `${a.resource} alarm on ${a.node}`).join(", ");
      text = `Resource alarm in effect: ${which}. Publishers are blocked until it clears.`;
    } else if (e.status !== 401) {
      text = `The broker does not answer: ${e.message}`;
    }
  }
  if (!frame) return;
  const cls = text.startsWith("Resource") ? "banner alarm" : "banner error";
  clear(frame.banner, text ? h("div", { class: cls, role: "alert", dataset: { alarm: "" } }, text) : null);
}

function route() {
  if (!session.header) return showLogin();
  if (!frame || !frame.main.isConnected) buildFrame();
  stopPage();
  const path = location.hash.slice(1).split("?")[0] || "/";     // names in it are percent-encoded
  for (const [rx, render, nav] of ROUTES) {
    const m = path.match(rx);
    if (!m) continue;
    frame.nav.querySelectorAll("a").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    const mine = { timers: [], cleanups: [], stopped: false };
    page = mine;
    const ctx = {
      vhost: vhost(),
      user: session.user,
      // run fn now and then every refresh interval, never two at once; stops with the page
      every(fn) {
        const tick = async () => {
          if (mine.stopped) return;
          if (!document.hidden) {
            try { await fn(); } catch (e) { console.warn(e); }
          }
          const ms = interval();
          if (ms && !mine.stopped) mine.timers.push(setTimeout(tick, ms));
        };
        tick();
      },
      cleanup(fn) { mine.cleanups.push(fn); },
    };
    ctx.every(checkAlarms);
    const root = clear(frame.main);
    render(root, m.slice(1).map((x) => (x === undefined ? undefined : decodeURIComponent(x))), ctx);
    return;
  }
  clear(frame.main, h("div", { class: "panel" }, "No such page. ", h("a", { href: "#/" }, "Overview")));
}

whenLoggedOut(() => { session.clear(); showLogin("Your login is no longer valid."); });
window.addEventListener("hashchange", route);
function start() { frame = null; route(); }
start();
