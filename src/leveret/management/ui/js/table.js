// A list of broker objects, one page at a time: sorting, name filtering (substring or
// regular expression) and paging are the API's own (page, page_size, name, use_regex, sort,
// sort_reverse, columns), so the browser holds one page whatever the broker holds. The filter
// applies as you type (debounced; a newer request aborts the older one); the sort order and
// page size are remembered per list (localStorage), the filter for the tab (sessionStorage).
import { get } from "./api.js";
import { clear, debounce, h, num } from "./dom.js";

const PAGE_SIZES = [20, 50, 100, 250, 500];

export class PagedTable {
  // opts: id (for remembered state), path() -> API path, columns: [{key, label, sort (API key
  // or false), num, render(item)}], apiColumns (what to fetch), filter (default true),
  // paged (default true), defaultSort {key, reverse}, empty (text)
  constructor(opts) {
    this.o = { filter: true, paged: true, empty: "Nothing here.", ...opts };
    const saved = JSON.parse(localStorage.getItem(`leveret.list.${this.o.id}`) || "null") || {};
    this.sort = saved.sort ?? this.o.defaultSort?.key ?? null;
    this.reverse = saved.reverse ?? this.o.defaultSort?.reverse ?? false;
    this.pageSize = saved.pageSize ?? 100;
    const f = JSON.parse(sessionStorage.getItem(`leveret.filter.${this.o.id}`) || "null") || {};
    this.name = f.name ?? "";
    this.regex = f.regex ?? false;
    this.page = 1;
    this.inflight = null;
    this.el = this.build();
  }

  remember() {
    localStorage.setItem(`leveret.list.${this.o.id}`,
      JSON.stringify({ sort: this.sort, reverse: this.reverse, pageSize: this.pageSize }));
    sessionStorage.setItem(`leveret.filter.${this.o.id}`, JSON.stringify({ name: this.name, regex: this.regex }));
  }

  build() {
    const tools = [];
    if (this.o.filter) {
      this.input = h("input", { type: "search", placeholder: "Filter by name", value: this.name,
        "aria-label": "Filter by name", class: "filter" });
      const later = debounce(() => { this.page = 1; this.load(); }, 250);
      this.input.addEventListener("input", () => { this.name = this.input.value; later(); });
      this.regexBox = h("input", { type: "checkbox", checked: this.regex, class: "regex" });
      this.regexBox.addEventListener("change", () => { this.regex = this.regexBox.checked; this.page = 1; this.load(); });
      tools.push(this.input, h("label", {}, this.regexBox, " regex"));
    }
    this.status = h("span", { class: "muted count" });
    this.error = h("span", { class: "err" });
    tools.push(this.status, this.error, h("span", { class: "grow" }));
    if (this.o.tools) tools.push(...this.o.tools);
    this.head = h("tr", {}, this.o.columns.map((c) => this.th(c)));
    this.body = h("tbody");
    this.pager = h("div", { class: "pager" });
    return h("div", { class: "paged-table", dataset: { table: this.o.id } },
      h("div", { class: "toolbar" }, tools),
      h("table", {}, h("thead", {}, this.head), this.body),
      this.pager);
  }

  th(c) {
    const sortable = c.sort !== false;
    const key = c.sort || c.key;
    const cls = [c.num ? "num" : "", sortable ? "sortable" : "",
      sortable && this.sort === key ? (this.reverse ? "sorted rev" : "sorted") : ""].join(" ");
    return h("th", {
      class: cls, dataset: { key },
      onclick: sortable ? () => {
        if (this.sort === key) this.reverse = !this.reverse;
        else { this.sort = key; this.reverse = !!c.num; }    // numbers: biggest first
        clear(this.head, this.o.columns.map((x) => this.th(x)));
        this.load();
      } : undefined,
    }, c.label);
  }

  query() {
    const q = new URLSearchParams();
    if (this.o.paged) {
      q.set("page", this.page);
      q.set("page_size", this.pageSize);
      if (this.name) q.set("name", this.name);
      if (this.name && this.regex) q.set("use_regex", "true");
    }
    if (this.sort) q.set("sort", this.sort);
    if (this.reverse) q.set("sort_reverse", "true");
    if (this.o.apiColumns) q.set("columns", this.o.apiColumns);
    return q.toString();
  }

  async load() {
    this.remember();
    if (this.inflight) this.inflight.abort();
    const ctl = new AbortController();
    this.inflight = ctl;
    this.el.classList.add("loading");
    const t0 = performance.now();
    let data;
    try {
      data = await get(`${this.o.path()}?${this.query()}`, { signal: ctl.signal });
    } catch (e) {
      if (e.name === "AbortError") return;
      if (this.inflight === ctl) this.inflight = null;
      this.el.classList.remove("loading");
      if (e.body && e.body.error === "page_out_of_range" && this.page > 1) { this.page = 1; return this.load(); }
      this.error.textContent = e.message;
      if (this.input) this.input.classList.toggle("invalid", e.status === 400 && this.regex);
      return;
    }
    if (this.inflight !== ctl) return;
    this.inflight = null;
    this.el.classList.remove("loading");
    this.error.textContent = "";
    if (this.input) this.input.classList.remove("invalid");
    const env = Array.isArray(data) ? null : data;
    let items = env ? env.items : data;
    if (!env && this.name && this.o.filter) {     // a listing the API does not page: filter here
      const n = this.name.toLowerCase();
      items = items.filter((it) => String(it.name ?? "").toLowerCase().includes(n));
    }
    this.el.dataset.ms = Math.round(performance.now() - t0);
    this.render(items, env);
    if (this.o.onData) this.o.onData(items, env);
  }

  render(items, env) {
    clear(this.body, items.length ? items.map((it) => h("tr", {},
      this.o.columns.map((c) => h("td", { class: [c.num ? "num" : "", c.key === "name" ? "name" : ""].join(" ") },
        c.render ? c.render(it) : (c.num ? num(it[c.key]) : it[c.key]))))) :
      h("tr", {}, h("td", { colspan: this.o.columns.length, class: "muted" },
        this.name ? "No names match the filter." : this.o.empty)));
    if (!env) {
      this.status.textContent = `${num(items.length)} item${items.length === 1 ? "" : "s"}`;
      clear(this.pager);
      return;
    }
    const first = env.item_count ? (env.page - 1) * env.page_size + 1 : 0;
    this.status.textContent = `${num(first)}–${num(first + env.item_count - (first ? 1 : 0))} of ${num(env.filtered_count)}` +
      (env.filtered_count !== env.total_count ? ` (filtered from ${num(env.total_count)})` : "");
    const go = (p) => { this.page = p; this.load(); };
    const size = h("select", { "aria-label": "Page size" },
      PAGE_SIZES.map((s) => h("option", { value: s, selected: s === this.pageSize }, `${s} per page`)));
    size.addEventListener("change", () => { this.pageSize = Number(size.value); this.page = 1; this.load(); });
    clear(this.pager,
      h("button", { type: "button", disabled: env.page <= 1, onclick: () => go(1) }, "«"),
      h("button", { type: "button", disabled: env.page <= 1, onclick: () => go(env.page - 1) }, "‹ Prev"),
      h("span", { class: "muted" }, `page ${num(env.page)} of ${num(Math.max(env.page_count, 1))}`),
      h("button", { type: "button", disabled: env.page >= env.page_count, onclick: () => go(env.page + 1) }, "Next ›"),
      h("button", { type: "button", disabled: env.page >= env.page_count, onclick: () => go(env.page_count) }, "»"),
      size);
  }
}
