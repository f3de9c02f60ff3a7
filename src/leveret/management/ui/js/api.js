// The management HTTP API, called as the logged-in user: the credentials live in
// sessionStorage (gone when the tab closes) and go out as HTTP basic auth on every call.

const KEY = "leveret.auth";

// RabbitMQ's API HTML-escapes some reasons (policy validation); shown as text, they are unescaped
const ENTITIES = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&amp;": "&" };
const unescape = (s) => s.replace(/&(lt|gt|quot|#39|amp);/g, (e) => ENTITIES[e]);

export class ApiError extends Error {
  constructor(status, body) {
    const reason = body && typeof body === "object" ? (body.reason ?? body.error) : body;
    super(typeof reason === "string" ? unescape(reason) : JSON.stringify(reason) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function basic(user, password) {
  const raw = new TextEncoder().encode(`${user}:${password}`);
  let s = "";
  for (const b of raw) s += String.fromCharCode(b);
  return `Basic ${btoa(s)}`;
}

export const session = {
  get header() { return sessionStorage.getItem(KEY); },
  get user() {
    try { return JSON.parse(sessionStorage.getItem(`${KEY}.user`)); } catch { return null; }
  },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(`${KEY}.user`); },
};

let onUnauthorised = () => {};
export function whenLoggedOut(fn) { onUnauthorised = fn; }

// Check the credentials with /api/whoami; keep them only if they work.
export async function login(user, password) {
  const header = basic(user, password);
  const who = await request("GET", "/api/whoami", undefined, { header, quiet: true });
  sessionStorage.setItem(KEY, header);
  sessionStorage.setItem(`${KEY}.user`, JSON.stringify(who));
  return who;
}

export async function request(method, path, body, opts = {}) {
  // X-Requested-With: a failed login is answered without a WWW-Authenticate challenge, so the
  // browser does not open its own login dialog over the page
  const headers = { Authorization: opts.header || session.header || "", "X-Requested-With": "XMLHttpRequest" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  Object.assign(headers, opts.headers || {});
  const res = await fetch(path, {
    method, headers, signal: opts.signal, cache: "no-store",
    body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
  });
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    // credentials that stopped working (user deleted, password changed): back to the login form
    if (res.status === 401 && !opts.quiet && data && data.error === "not_authorized") onUnauthorised();
    throw new ApiError(res.status, data);
  }
  return data;
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const put = (path, body) => request("PUT", path, body ?? {});
export const post = (path, body) => request("POST", path, body ?? {});
export const del = (path, opts) => request("DELETE", path, undefined, opts);
