// A live time-series chart (uPlot, vendored in ui/vendor/uplot with its MIT licence): the page
// adds one sample per poll and the chart keeps the last `keep` of them. The broker keeps no
// history (like RabbitMQ's "basic" rates mode without samples), so the chart starts when the
// page opens. The latest values are also shown as text next to the legend (data-series
// attributes), which is what a reader (or a test) can check without reading pixels.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h, num, rate } from "./dom.js";

const COLOURS = ["#2b6cb0", "#d97706", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];

export class LiveChart {
  // series: [{label, key}], kind: "count" | "rate"
  constructor({ title, series, kind = "count", keep = 360 }) {
    this.series = series;
    this.kind = kind;
    this.keep = keep;
    this.data = [[], ...series.map(() => [])];
    this.latest = h("div", { class: "latest toolbar" });
    this.plotEl = h("div", { class: "chart" });
    this.el = h("div", { class: "panel", dataset: { chart: title } }, h("h2", {}, title), this.latest, this.plotEl);
    this.plot = null;
    this.resize = () => this.plot && this.plot.setSize({ width: this.width(), height: 220 });
    window.addEventListener("resize", this.resize);
  }

  width() {
    return Math.max(this.plotEl.clientWidth || this.el.clientWidth - 30, 300);
  }

  fmt(v) {
    return v === null || v === undefined ? "–" : this.kind === "rate" ? rate(v) : num(Math.round(v));
  }

  make() {
    const opts = {
      width: this.width(), height: 220,
      cursor: { drag: { x: false, y: false } },
      legend: { show: false },           // (the latest values are shown above the chart)
      // at least the last minute on the x axis, so the first samples do not spread over years
      scales: { x: { time: true, range: (u, lo, hi) => [Math.min(lo ?? hi, hi - 60), hi] }, y: { range: (u, lo, hi) => [0, Math.max(hi * 1.1, this.kind === "rate" ? 1 : 5)] } },
      axes: [{}, { values: (u, ticks) => ticks.map((t) => this.fmt(t)), size: 70 }],
      series: [{}, ...this.series.map((s, i) => ({
        label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
        fill: this.kind === "count" ? `${COLOURS[i % COLOURS.length]}14` : undefined,
        value: (u, v) => this.fmt(v),
      }))],
    };
    this.plot = new uPlot(opts, this.data, this.plotEl);
  }

  // values: one number per series (from the API response just received)
  add(values) {
    this.data[0].push(Date.now() / 1000);
    values.forEach((v, i) => this.data[i + 1].push(v ?? null));
    if (this.data[0].length > this.keep) this.data.forEach((a) => a.shift());
    this.latest.replaceChildren(...this.series.map((s, i) => h("span", { class: "stat-inline", dataset: { series: s.label } },
      h("span", { class: "swatch", style: `background:${COLOURS[i % COLOURS.length]}` }),
      h("span", { class: "muted" }, `${s.label}: `), h("b", { class: "value" }, this.fmt(values[i])))));
    if (!this.plot) { if (this.el.isConnected) this.make(); } else this.plot.setData(this.data);
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
    if (this.plot) this.plot.destroy();
  }
}
