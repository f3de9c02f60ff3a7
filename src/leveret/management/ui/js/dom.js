// DOM and formatting helpers. Every text from the broker goes in as a text node (never as
// HTML), so a queue called "<img onerror=...>" is just a name.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const intFmt = new Intl.NumberFormat("en-US");

export function num(n) {
  return n === undefined || n === null ? "" : intFmt.format(n);
}

// 0.4/s, 12/s, 1.3k/s, 2.5M/s: readable at a glance, no "0.00" noise.
export function rate(r) {
  if (r === undefined || r === null) return "";
  const a = Math.abs(r);
  if (a === 0) return "0/s";
  if (a < 10) return `${r.toFixed(1).replace(/\.0$/, "")}/s`;
  if (a < 1000) return `${Math.round(r)}/s`;
  if (a < 1e6) return `${(r / 1e3).toFixed(a < 1e4 ? 1 : 0)}k/s`;
  return `${(r / 1e6).toFixed(1)}M/s`;
}

export function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const hr = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

// a dotted path of an object ("message_stats.publish_details.rate")
export function dig(obj, path) {
  let v = obj;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[k];
  }
  return v;
}

export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

export function enc(s) {
  return encodeURIComponent(s);
}

// A JSON value as short text (arguments, headers, policy definitions).
export function json(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "object" && Object.keys(v).length === 0) return "";
  return JSON.stringify(v);
}

export function tags(list) {
  // (spaces between them, so copied text and screen readers keep them apart)
  return (list || []).flatMap((t, i) => [i ? " " : null, h("span", { class: "tag" }, t)]);
}

export function yesno(b) {
  return b ? "yes" : "no";
}

// A key/value grid; values may be nodes.
export function kv(pairs) {
  return h("div", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .flatMap(([k, v]) => [h("div", {}, k), h("div", {}, v)]));
}

export function stat(label, value, attrs) {
  return h("div", { class: "stat", ...attrs }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

// A button that asks to be clicked again before doing something destructive (no modal
// dialog: a second click within 4 s confirms).
export function dangerButton(label, action) {
  const b = h("button", { class: "danger", type: "button" }, label);
  let timer = null;
  b.addEventListener("click", async () => {
    if (!b.classList.contains("armed")) {
      b.classList.add("armed");
      b.textContent = `Confirm: ${label}`;
      timer = setTimeout(() => { b.classList.remove("armed"); b.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    b.classList.remove("armed");
    b.textContent = label;
    b.disabled = true;
    try { await action(); } finally { b.disabled = false; }
  });
  return b;
}

// A status line under a form: note(el, "ok", "Published") / note(el, "bad", error)
export function note(el, kind, text) {
  clear(el, text ? h("div", { class: `note ${kind}` }, text) : null);
}
