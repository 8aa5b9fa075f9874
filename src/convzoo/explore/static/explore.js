/* convzoo explorer: one page, three views (hash routes), data from the scripts in data/ (loaded by <script>
   tags: a page opened from disk may not fetch() its neighbours). Written for convzoo; no library, no network.
     #/zoo                     every network built: a table (sort, filter as you type) and the complexity chart
     #/net/NAME[/OTHER]        a network's diagram and its layers' summary rows; OTHER opened beside it
     #/run/ID                  a training run: curves, confusion matrix, its images, worst predictions, explain/ */
"use strict";

window.CONVZOO = window.CONVZOO || { nets: {}, runs: {} };
const SVGNS = "http://www.w3.org/2000/svg";

// -- small helpers ----------------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const fmtInt = (n) => (n === null || n === undefined ? "-" : Math.round(n).toLocaleString("en-US"));
function fmtSI(n) {
  if (n === null || n === undefined) return "-";
  for (const [f, p] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(n) >= f) return (n / f).toFixed(2) + " " + p;
  return String(n);
}
function fmtBytes(n) {
  for (const [f, u] of [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]]) if (n >= f) return (n / f).toFixed(2) + " " + u;
  return n + " B";
}
const axes = (v) => (v === null || v === undefined ? "-" : (new Set(v).size === 1 ? String(v[0]) : v.join(" x ")));
const shapeText = (s) => (Array.isArray(s[0]) ? s.map(shapeText).join(", ") : s.join(" x "));
const REPORTED = {
  imagenet_top1_error: "ImageNet top-1 error", imagenet_top5_error: "ImageNet top-5 error",
  cifar10_error: "CIFAR-10 error", cifar100_error: "CIFAR-100 error", mnist_error: "MNIST error",
  voc2012_test_miou: "VOC 2012 test mIoU", voc2012_val_miou: "VOC 2012 val mIoU", voc2011_val_miou: "VOC 2011 val mIoU",
  isbi2015_phc_u373_mean_iou: "ISBI 2015 PhC-U373 IoU",
};

const loaded = {};
function loadScript(src) {
  if (!loaded[src]) {
    loaded[src] = new Promise((resolve, reject) => {
      const script = el("script", { src });
      script.onload = resolve;
      script.onerror = () => { delete loaded[src]; reject(new Error("missing " + src)); };
      document.head.append(script);
    });
  }
  return loaded[src];
}
async function loadNet(name) {
  if (!CONVZOO.nets[name]) await loadScript("data/net/" + encodeURIComponent(name) + ".js");
  return CONVZOO.nets[name];
}
async function loadRun(id) {
  if (!CONVZOO.runs[id]) await loadScript("data/run/" + encodeURIComponent(id) + ".js");
  return CONVZOO.runs[id];
}

const tooltip = () => document.getElementById("tooltip");
function showTip(event, lines) {
  const tip = tooltip();
  tip.replaceChildren(...lines.map((line, i) => el(i ? "div" : "strong", {}, line)));
  tip.hidden = false;
  const box = event.target.getBoundingClientRect ? event.target.getBoundingClientRect() : { right: 0, top: 0 };
  const x = event.clientX !== undefined && event.clientX !== 0 ? event.clientX : box.right;
  const y = event.clientY !== undefined && event.clientY !== 0 ? event.clientY : box.top;
  tip.style.left = Math.min(x + 16, window.innerWidth - 360) + "px";
  tip.style.top = (y + 16) + "px";
}
function hideTip() { tooltip().hidden = true; }

function main() { return document.getElementById("main"); }
function setPage(title, ...children) {
  document.title = title + " - convzoo explorer";
  main().replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  main().focus({ preventScroll: true });
}

// -- routing ------------------------------------------------------------------------------------------------------

async function route() {
  hideTip();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "net" && parts[1]) await netPage(parts[1], parts[2]);
    else if (parts[0] === "run" && parts[1]) await runPage(parts[1]);
    else zooPage();
  } catch (err) {
    setPage("not found", el("h1", {}, "Not in this site"),
      el("p", { class: "error-box" }, String(err.message || err) + ". Build it with `convzoo explore NAME|RUN_FOLDER --out DIR`."),
      el("p", {}, el("a", { href: "#/zoo" }, "Back to the zoo")));
  }
}

function navRuns() {
  const nav = document.getElementById("runs-nav");
  const links = [el("a", { href: "#/zoo" }, "Networks")];
  for (const run of (CONVZOO.zoo && CONVZOO.zoo.runs) || []) links.push(el("a", { href: "#/run/" + encodeURIComponent(run.id) }, "Run: " + run.id));
  nav.replaceChildren(...links);
}

// -- the zoo page --------------------------------------------------------------------------------------------------

const ZOO_COLUMNS = [
  { key: "name", label: "name", get: (r) => r.name },
  { key: "family", label: "family", get: (r) => r.family },
  { key: "year", label: "year", get: (r) => r.year, num: true },
  { key: "paper", label: "paper", get: (r) => r.paper },
  { key: "params", label: "parameters", get: (r) => r.params, num: true, show: fmtInt },
  { key: "macs", label: "MACs at its input", get: (r) => r.macs, num: true, show: (v, r) => fmtSI(v) + " @ " + r.input_size.slice(1).join("x") },
  { key: "error", label: "reported error (%)", get: (r) => (r.error !== null ? r.error : null), num: true,
    show: (v, r) => (v === null ? (r.score !== null ? "mIoU " + r.score : "-") : v + " (" + (REPORTED[r.error_key] || r.error_key).replace(" error", "") + ")") },
  { key: "receptive_field", label: "receptive field (px)", get: (r) => r.receptive_field, num: true, show: (v) => (v === null ? "-" : String(v)) },
];
const zooState = { sort: "year", dir: 1, filter: "", metric: "imagenet_top1_error" };

function zooMatches(row, words) {
  const text = [row.name, row.family, row.task, row.year, row.paper, row.arxiv || ""].join(" ").toLowerCase();
  return words.every((w) => text.includes(w));
}

function zooPage() {
  const rows = (CONVZOO.zoo && CONVZOO.zoo.networks) || [];
  const filter = el("input", { id: "zoo-filter", type: "search", value: zooState.filter, placeholder: "e.g. resnet, 2015, mobile",
    "aria-describedby": "zoo-count", autocomplete: "off" });
  const count = el("span", { id: "zoo-count", "aria-live": "polite" });
  const tbody = el("tbody");
  const headRow = el("tr");
  const table = el("table", { class: "data", id: "zoo-table" }, el("thead", {}, headRow), tbody);
  const chartBox = el("div", { id: "zoo-chart-box" });
  const metrics = [...new Set(rows.map((r) => r.error_key).filter(Boolean))];
  if (!metrics.includes(zooState.metric) && metrics.length) zooState.metric = metrics[0];
  const metricSelect = el("select", { id: "chart-metric" }, metrics.map((m) => el("option", { value: m, selected: m === zooState.metric }, REPORTED[m] || m)));

  function render() {
    const words = zooState.filter.toLowerCase().split(/\s+/).filter(Boolean);
    const column = ZOO_COLUMNS.find((c) => c.key === zooState.sort);
    const shown = rows.filter((r) => zooMatches(r, words)).sort((a, b) => {
      const x = column.get(a), y = column.get(b);
      if (x === y) return a.name.localeCompare(b.name);
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * zooState.dir;
    });
    headRow.replaceChildren(...ZOO_COLUMNS.map((c) => el("th", {
      scope: "col", class: c.num ? "num" : null,
      "aria-sort": c.key === zooState.sort ? (zooState.dir > 0 ? "ascending" : "descending") : "none",
    }, el("button", { "data-sort": c.key, onclick: () => {
      if (zooState.sort === c.key) zooState.dir = -zooState.dir; else { zooState.sort = c.key; zooState.dir = 1; }
      render();
      table.querySelector(`button[data-sort="${c.key}"]`).focus();
    } }, c.label + (c.key === zooState.sort ? (zooState.dir > 0 ? " \u25b2" : " \u25bc") : "")))));
    tbody.replaceChildren(...shown.map((r) => el("tr", { "data-name": r.name }, ZOO_COLUMNS.map((c) => {
      const v = c.get(r);
      const text = c.show ? c.show(v, r) : (v === null ? "-" : String(v));
      if (c.key === "name") return el("td", {}, el("a", { href: "#/net/" + encodeURIComponent(r.name) }, r.name));
      if (c.key === "paper") return el("td", { class: "paper" }, text, r.arxiv ? el("span", { class: "note" }, " arXiv:" + r.arxiv) : null);
      return el("td", { class: c.num ? "num" : null }, text);
    }))));
    count.textContent = `${shown.length} of ${rows.length} networks`;
    chartBox.replaceChildren(complexityChart(shown, zooState.metric));
  }
  filter.addEventListener("input", () => { zooState.filter = filter.value; render(); });
  metricSelect.addEventListener("change", () => { zooState.metric = metricSelect.value; render(); });
  const runs = (CONVZOO.zoo && CONVZOO.zoo.runs) || [];
  setPage("the zoo",
    el("h1", {}, "The zoo"),
    el("p", { class: "lead" }, "Every network in this site, measured by convzoo.summary on the meta device at its card's input. " +
      "MACs count every operation (FLOPs = 2 x MACs). Click a name or a bubble to open its diagram."),
    el("div", { class: "toolbar" }, el("label", { for: "zoo-filter" }, "Filter"), filter, count),
    el("div", { class: "table-wrap" }, table),
    el("h2", {}, "Complexity: operations against error"),
    el("div", { class: "toolbar" }, el("label", { for: "chart-metric" }, "Error"), metricSelect,
      el("span", { class: "note" }, "bubble area: parameters; the networks the filter shows that report this error")),
    chartBox,
    runs.length ? el("h2", {}, "Training runs") : null,
    runs.length ? el("ul", {}, runs.map((r) => el("li", {}, el("a", { href: "#/run/" + encodeURIComponent(r.id) }, r.id),
      ` ${r.model} on ${r.data}` + (r.results.top1_accuracy !== undefined ? `: test top-1 ${r.results.top1_accuracy.toFixed(2)}%` : "")))) : null,
  );
  render();
}

function niceTicks(lo, hi, count) {
  const step0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(+t.toFixed(6));
  return ticks;
}

function complexityChart(rows, metric) {
  const W = 1000, H = 560, L = 90, R = 30, T = 24, B = 70;
  const points = rows.map((r) => ({ r, y: metricValue(r, metric) }))
    .filter((p) => p.y !== null && p.r.macs > 0);
  const svg = svgEl("svg", { class: "chart", id: "zoo-chart", viewBox: `0 0 ${W} ${H}`, role: "group",
    "aria-label": `operations against ${REPORTED[metric] || metric}, ${points.length} networks` });
  if (!points.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "No network shown reports this error." }));
    return svg;
  }
  const lx = points.map((p) => Math.log10(p.r.macs));
  let x0 = Math.floor(Math.min(...lx) * 2) / 2, x1 = Math.ceil(Math.max(...lx) * 2) / 2;
  if (x1 - x0 < 1) { x0 -= 0.5; x1 += 0.5; }
  const ys = points.map((p) => p.y);
  let y0 = Math.floor(Math.min(...ys) - 2), y1 = Math.ceil(Math.max(...ys) + 2);
  const sx = (v) => L + (v - x0) / (x1 - x0) * (W - L - R);
  const sy = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const grid = svgEl("g", { class: "grid" });
  const axisG = svgEl("g", { class: "axis" });
  for (let e = Math.floor(x0); e <= x1; e++) {
    for (const m of x1 - x0 <= 3 ? [1, 3] : [1]) {  // decades, and 3x between them on a short axis
      const v = e + Math.log10(m);
      if (v < x0 - 1e-9 || v > x1 + 1e-9) continue;
      grid.append(svgEl("line", { x1: sx(v), x2: sx(v), y1: T, y2: H - B }));
      axisG.append(svgEl("text", { x: sx(v), y: H - B + 24, "text-anchor": "middle", text: fmtSI(m * 10 ** e).replace(".00 ", " ") }));
    }
  }
  for (const t of niceTicks(y0, y1, 6)) {
    grid.append(svgEl("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t) }));
    axisG.append(svgEl("text", { x: L - 10, y: sy(t) + 5, "text-anchor": "end", text: String(t) }));
  }
  axisG.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }), svgEl("line", { x1: L, x2: L, y1: T, y2: H - B }));
  axisG.append(svgEl("text", { x: (L + W - R) / 2, y: H - 18, "text-anchor": "middle", text: "MACs at the network's input (log scale)" }));
  axisG.append(svgEl("text", { x: 22, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 22 ${(T + H - B) / 2})`,
    text: (REPORTED[metric] || metric) + " (%)" }));
  svg.append(grid, axisG);
  const largest = Math.max(...points.map((p) => p.r.params));
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const families = [...new Set(points.map((p) => p.r.family))];
  points.sort((a, b) => b.r.params - a.r.params);  // the largest first, so small bubbles stay clickable
  const placed = [];  // label boxes: a label that would cover another is left out (hover or Tab shows it)
  function labelAt(cx, cy, radius, text) {
    const w = text.length * 8.2, h = 15;
    for (const [dx, dy, anchor] of [[0, -radius - 4, "middle"], [0, radius + 15, "middle"], [radius + 4, 5, "start"], [-radius - 4, 5, "end"]]) {
      const x = anchor === "middle" ? cx + dx - w / 2 : anchor === "start" ? cx + dx : cx + dx - w;
      const box = { x, y: cy + dy - h + 3, w, h };
      if (box.x < L || box.x + w > W - R || box.y < 0) continue;
      if (placed.some((o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h)) continue;
      placed.push(box);
      return svgEl("text", { x: cx + dx, y: cy + dy, "text-anchor": anchor, "font-size": "13", text });
    }
    return null;
  }
  for (const { r, y } of points) {
    const radius = 4 + 36 * Math.sqrt(r.params / largest);
    const lines = [r.name, `${r.family}, ${r.year}`, `${fmtInt(r.params)} parameters`, `${fmtSI(r.macs)} MACs at ${r.input_size.join("x")}`,
      `${REPORTED[metric] || metric}: ${y}%`, "Enter or click: open its diagram"];
    const open = () => { location.hash = "#/net/" + encodeURIComponent(r.name); };
    const g = svgEl("g", { class: "bubble", tabindex: "0", role: "link", "data-name": r.name, "aria-label": lines.slice(0, 5).join("; "),
      onmouseenter: (e) => showTip(e, lines), onmousemove: (e) => showTip(e, lines), onmouseleave: hideTip,
      onfocus: (e) => showTip(e, lines), onblur: hideTip, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
    svgEl("circle", { cx: sx(Math.log10(r.macs)), cy: sy(y), r: radius, fill: colours[families.indexOf(r.family) % colours.length] }));
    svg.append(g);
  }
  // Labels after every bubble, smallest bubbles' first (they are the hardest to find), each on top.
  for (const { r, y } of [...points].reverse()) {
    const label = labelAt(sx(Math.log10(r.macs)), sy(y), 4 + 36 * Math.sqrt(r.params / largest), r.name);
    if (label) { label.setAttribute("class", "bubble-label"); label.setAttribute("pointer-events", "none"); svg.append(label); }
  }
  return svg;
}

function metricValue(row, metric) {
  if (row.error_key === metric) return row.error;
  return row.reported && row.reported[metric] !== undefined ? row.reported[metric] : null;
}

// -- the network page ----------------------------------------------------------------------------------------------

async function netPage(name, other) {
  const data = await loadNet(name);
  const second = other ? await loadNet(other) : null;
  const names = ((CONVZOO.zoo && CONVZOO.zoo.networks) || []).map((r) => r.name).sort();
  const beside = el("select", { id: "beside" }, el("option", { value: "" }, "(none)"),
    names.filter((n) => n !== name).map((n) => el("option", { value: n, selected: n === other }, n)));
  beside.addEventListener("change", () => {
    location.hash = "#/net/" + encodeURIComponent(name) + (beside.value ? "/" + encodeURIComponent(beside.value) : "");
  });
  const row = el("div", { class: "net-row" });
  setPage(name, el("p", {}, el("a", { href: "#/zoo" }, "\u2190 the zoo")),
    el("div", { class: "toolbar" }, el("label", { for: "beside" }, "Open beside it"), beside,
      el("span", { class: "note" }, "click a layer (or Tab to it and press Enter) to see its summary row")),
    row);
  row.append(netView(data, "a", !!second));
  if (second) row.append(netView(second, "b", true));
}

function netView(data, key, narrow) {
  const card = data.card;
  const rowsByKey = new Map(data.rows.map((r) => [r.name + "#" + r.call, r]));
  const col = el("section", { class: "net-col", id: "net-" + key, "data-model": card.name, "aria-label": card.name });
  const heading = el("h1", {}, card.name);
  const facts = el("p", { class: "lead" },
    `${card.paper} (${card.authors}, ${card.year}). ${fmtInt(data.totals.params)} parameters, ${fmtSI(data.totals.macs)} MACs at ` +
    `${data.input_size.join(" x ")}; activations at inference ${fmtBytes(data.totals.inference_activation_bytes)} per image.`);
  const viewport = el("div", { class: "viewport", tabindex: "0", role: "application",
    "aria-label": `diagram of ${card.name}: + and - zoom, arrows pan, 0 fits` });
  viewport.innerHTML = data.svg;
  const svg = viewport.querySelector("svg");
  svg.removeAttribute("width"); svg.removeAttribute("height");
  const full = svg.viewBox.baseVal;
  const home = { x: full.x, y: full.y, w: full.width, h: full.height };
  const view = { ...home };
  function apply() { svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`); }
  function fitTop() {  // the top of the diagram at a readable scale: the width fitted, within 0.8 to 1.4 px a unit
    const box = viewport.getBoundingClientRect();
    const s = Math.min(1.4, Math.max(0.8, box.width / home.w));
    view.w = box.width / s; view.h = box.height / s;
    view.x = home.x + (home.w - view.w) / 2; view.y = home.y; apply();
  }
  function zoom(factor, cx, cy) {
    cx = cx === undefined ? view.x + view.w / 2 : cx; cy = cy === undefined ? view.y + view.h / 2 : cy;
    const w = Math.min(Math.max(view.w * factor, 40), home.w * 4);
    const f = w / view.w;
    view.x = cx - (cx - view.x) * f; view.y = cy - (cy - view.y) * f; view.w *= f; view.h *= f; apply();
  }
  function pan(dx, dy) { view.x += dx * view.w; view.y += dy * view.h; apply(); }
  function toSvg(e) {
    const box = svg.getBoundingClientRect();
    // preserveAspectRatio xMidYMid meet: one scale, centred
    const s = Math.min(box.width / view.w, box.height / view.h);
    return { x: view.x + (e.clientX - box.left - (box.width - view.w * s) / 2) / s,
      y: view.y + (e.clientY - box.top - (box.height - view.h * s) / 2) / s, s };
  }
  viewport.addEventListener("wheel", (e) => { e.preventDefault(); const p = toSvg(e); zoom(e.deltaY > 0 ? 1.2 : 1 / 1.2, p.x, p.y); }, { passive: false });
  let drag = null;
  viewport.addEventListener("pointerdown", (e) => { if (e.button === 0) drag = { x: e.clientX, y: e.clientY, moved: false }; });
  viewport.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true; viewport.classList.add("dragging");
    const s = toSvg(e).s;
    view.x -= dx / s; view.y -= dy / s; drag.x = e.clientX; drag.y = e.clientY; apply();
  });
  const endDrag = () => { setTimeout(() => { drag = null; }, 0); viewport.classList.remove("dragging"); };
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointerleave", endDrag);
  viewport.addEventListener("keydown", (e) => {
    const keys = { "+": () => zoom(1 / 1.25), "=": () => zoom(1 / 1.25), "-": () => zoom(1.25), "0": fitTop,
      ArrowUp: () => pan(0, -0.15), ArrowDown: () => pan(0, 0.15), ArrowLeft: () => pan(-0.15, 0), ArrowRight: () => pan(0.15, 0) };
    if (keys[e.key] && (e.target === viewport)) { e.preventDefault(); keys[e.key](); }
  });

  const panel = el("aside", { class: "panel", "aria-live": "polite" });
  function select(node) {
    svg.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
    node.classList.add("selected");
    const path = node.getAttribute("data-path"), call = node.getAttribute("data-call") || "0";
    const layerRow = rowsByKey.get(path + "#" + call);
    showRow(panel, card.name, node, layerRow, data);
  }
  svg.querySelectorAll("g.node").forEach((node) => {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    const label = node.querySelector("text.label");
    node.setAttribute("aria-label", (node.getAttribute("data-path") || "model") + ": " + (label ? label.textContent : ""));
    node.addEventListener("click", (e) => { if (drag && drag.moved) return; e.stopPropagation(); select(node); });
    node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(node); } });
    node.addEventListener("focus", () => reveal(node));
  });
  function reveal(node) {  // keyboard focus (Tab) moves the view to the layer when it is outside it
    const r = geometry(node);
    if (!r || (r.x >= view.x && r.y >= view.y && r.x + r.w <= view.x + view.w && r.y + r.h <= view.y + view.h)) return;
    view.x = r.x + r.w / 2 - view.w / 2; view.y = r.y + r.h / 2 - view.h / 2; apply();
  }

  // Stages: frames collapse (their layers hidden, the frame filled) from the list or by clicking the frame.
  const frames = [...svg.querySelectorAll("g.frame")];
  const geometry = (g) => { const r = g.querySelector("rect"); return r ? { x: +r.getAttribute("x"), y: +r.getAttribute("y"), w: +r.getAttribute("width"), h: +r.getAttribute("height") } : null; };
  const inside = (a, b) => a && b && a.x >= b.x - 0.5 && a.y >= b.y - 0.5 && a.x + a.w <= b.x + b.w + 0.5 && a.y + a.h <= b.y + b.h + 0.5;
  const items = [...svg.querySelectorAll("g.node, g.edge, g.frame")].map((g) => ({ g, box: g.classList.contains("edge") ? edgeBox(g) : geometry(g) }));
  function refreshCollapsed() {
    const collapsed = frames.filter((f) => f.classList.contains("collapsed")).map(geometry);
    for (const { g, box } of items) {
      const hide = collapsed.some((c) => inside(box, c) && !(g.classList.contains("frame") && sameBox(box, c)));
      g.classList.toggle("hidden-by-frame", hide);
    }
  }
  function toggleFrame(frame, on) { frame.classList.toggle("collapsed", on); refreshCollapsed(); }
  frames.forEach((f) => f.addEventListener("click", (e) => { if (drag && drag.moved) return; e.stopPropagation(); toggleFrame(f, !f.classList.contains("collapsed")); syncStages(); }));
  const topFrames = frames.filter((f) => !frames.some((o) => o !== f && inside(geometry(f), geometry(o)) && !sameBox(geometry(f), geometry(o))));
  const stageList = el("ul", { class: "stages" });
  function syncStages() { stageList.querySelectorAll("input").forEach((box, i) => { box.checked = topFrames[i].classList.contains("collapsed"); }); }
  topFrames.forEach((f, i) => {
    const id = `stage-${key}-${i}`;
    stageList.append(el("li", {}, el("input", { type: "checkbox", id, onchange: (e) => toggleFrame(f, e.target.checked) }),
      " ", el("label", { for: id }, "collapse " + frameLabel(f))));
  });
  const zoomBar = el("div", { class: "toolbar" },
    el("button", { onclick: () => zoom(1 / 1.25), "aria-label": "zoom in" }, "+"),
    el("button", { onclick: () => zoom(1.25), "aria-label": "zoom out" }, "\u2212"),
    el("button", { onclick: fitTop }, "top"),
    el("button", { onclick: () => { Object.assign(view, home); apply(); } }, "whole network"),
    topFrames.length ? el("button", { onclick: () => { topFrames.forEach((f) => f.classList.add("collapsed")); refreshCollapsed(); syncStages(); } }, "collapse stages") : null,
    topFrames.length ? el("button", { onclick: () => { frames.forEach((f) => f.classList.remove("collapsed")); refreshCollapsed(); syncStages(); } }, "expand all") : null);
  panel.append(...[el("h2", {}, "Layer"), el("p", { class: "note" }, "Click a layer in the diagram."),
    topFrames.length ? el("h3", {}, "Stages") : null, topFrames.length ? stageList : null].filter(Boolean));
  col.append(heading, facts, zoomBar, el("div", { class: "net-view" }, viewport, narrow ? null : panel));
  if (narrow) col.append(panel);
  requestAnimationFrame(fitTop);
  return col;
}

function frameLabel(frame) {  // as the frame's caption: "layer1: BasicBlock x 2", "layer1.0: Bottleneck"
  const path = frame.getAttribute("data-path") || "", type = frame.getAttribute("data-type") || "";
  const repeat = frame.getAttribute("data-repeat");
  if (repeat && +repeat > 1) return `${path.replace(/\.\d+$/, "")}: ${type} x ${repeat}`;
  return path + (type ? ": " + type : "");
}

function sameBox(a, b) { return a && b && Math.abs(a.x - b.x) < 0.5 && Math.abs(a.y - b.y) < 0.5 && Math.abs(a.w - b.w) < 0.5 && Math.abs(a.h - b.h) < 0.5; }
function edgeBox(g) {
  const path = g.querySelector("path, polyline");
  if (!path) return null;
  const nums = (path.getAttribute("d") || path.getAttribute("points") || "").match(/-?\d+(\.\d+)?/g) || [];
  const xs = nums.filter((_, i) => i % 2 === 0).map(Number), ys = nums.filter((_, i) => i % 2 === 1).map(Number);
  if (!xs.length) return null;
  const x = Math.min(...xs), y = Math.min(...ys);
  return { x, y, w: Math.max(...xs) - x, h: Math.max(...ys) - y };
}

function showRow(panel, model, node, row, data) {
  const label = node.querySelector("text.label");
  const head = el("h2", {}, label ? label.textContent : node.getAttribute("data-kind"));
  if (!row) {
    panel.replaceChildren(head, el("p", {}, `${node.getAttribute("data-path") || "the model"}: no summary row of its own ` +
      `(${node.getAttribute("data-kind")}).`));
    return;
  }
  const cells = [
    ["layer", row.name || "(model)"], ["type", row.type], ["call", String(row.call + 1)],
    ["output shape", shapeText(row.output_shape)], ["parameters", fmtInt(row.params)], ["MACs", fmtInt(row.macs)],
    ["receptive field (px)", axes(row.rf)], ["jump (px)", axes(row.jump)], ["start (px)", axes(row.start)],
    ["output memory", fmtBytes(row.memory_bytes) + " (float32)"],
  ];
  const badges = node.getAttribute("data-badges");
  if (badges) cells.push(["badges", badges + " (" + fmtInt(+node.getAttribute("data-badge-params") || 0) + " params, " + fmtInt(+node.getAttribute("data-badge-macs") || 0) + " MACs)"]);
  const table = el("table", { id: "row-table", "data-path": row.name, "data-call": String(row.call) },
    cells.map(([k, v]) => el("tr", { "data-field": k }, el("th", { scope: "row" }, k), el("td", {}, v))));
  panel.replaceChildren(head, table, receptiveFieldView(row, data));
}

function receptiveFieldView(row, data) {
  const box = el("div", { class: "rf" }, el("h3", {}, "Receptive field on the input"));
  const shape = Array.isArray(row.output_shape[0]) ? row.output_shape[0] : row.output_shape;
  if (!row.rf || shape.length < 3) {
    box.append(el("p", { class: "note" }, "This layer's output has no spatial position on the input (or the field was not followed)."));
    return box;
  }
  const [, H, W] = data.input_size, [oh, ow] = [shape[shape.length - 2], shape[shape.length - 1]];
  const pos = { i: Math.floor((oh - 1) / 2), j: Math.floor((ow - 1) / 2) };
  const iInput = el("input", { type: "number", id: "rf-row", min: 0, max: oh - 1, value: pos.i });
  const jInput = el("input", { type: "number", id: "rf-col", min: 0, max: ow - 1, value: pos.j });
  const side = 340 / Math.max(H, W);
  const canvas = el("canvas", { width: Math.round(W * side), height: Math.round(H * side), id: "rf-canvas",
    "aria-label": "the input image with the receptive field drawn as a box" });
  const text = el("p", { id: "rf-text" });
  let image = null;
  const fileInput = el("input", { type: "file", accept: "image/*", "aria-label": "your own input image" });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (!file) return;
    const img = new Image();
    img.onload = () => { image = img; draw(); };
    img.src = URL.createObjectURL(file);
  });
  function draw() {
    pos.i = Math.min(Math.max(+iInput.value || 0, 0), oh - 1);
    pos.j = Math.min(Math.max(+jInput.value || 0, 0), ow - 1);
    const ctx = canvas.getContext("2d");
    if (image) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    else {  // a test card: 8-pixel squares, so the field's size can be counted
      for (let y = 0; y < H; y += 8) for (let x = 0; x < W; x += 8) {
        ctx.fillStyle = ((x + y) / 8) % 2 ? "#d8d8d8" : "#f4f4f4";
        ctx.fillRect(x * side, y * side, 8 * side, 8 * side);
      }
    }
    const centre = [row.start[0] + pos.i * row.jump[0], row.start[row.start.length - 1] + pos.j * row.jump[row.jump.length - 1]];
    const size = [row.rf[0], row.rf[row.rf.length - 1]];
    // pixel k covers [k, k+1): the field of centre c and size s covers [c - (s-1)/2, c + (s+1)/2)
    const y0 = centre[0] - (size[0] - 1) / 2, x0 = centre[1] - (size[1] - 1) / 2;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#a61b1b"; ctx.fillStyle = "rgba(166, 27, 27, 0.18)";
    ctx.fillRect(x0 * side, y0 * side, size[1] * side, size[0] * side);
    ctx.strokeRect(x0 * side, y0 * side, size[1] * side, size[0] * side);
    ctx.fillStyle = "#0b3d91";
    ctx.fillRect((centre[1] + 0.5) * side - 4, (centre[0] + 0.5) * side - 4, 8, 8);
    const clipped = y0 < 0 || x0 < 0 || y0 + size[0] > H || x0 + size[1] > W;
    text.textContent = `Output position (${pos.i}, ${pos.j}) of ${oh} x ${ow} sees input rows ${fmtNum(y0)} to ${fmtNum(y0 + size[0] - 1)}, ` +
      `columns ${fmtNum(x0)} to ${fmtNum(x0 + size[1] - 1)} (${axes(row.rf)} px, centre ${fmtNum(centre[0])}, ${fmtNum(centre[1])})` +
      (clipped ? "; part of it lies in the padding outside the image." : ".");
  }
  iInput.addEventListener("input", draw); jInput.addEventListener("input", draw);
  canvas.addEventListener("click", (e) => {  // click the input: the output position whose field is centred nearest
    const b = canvas.getBoundingClientRect();
    const y = (e.clientY - b.top) / b.height * H - 0.5, x = (e.clientX - b.left) / b.width * W - 0.5;
    iInput.value = Math.round((y - row.start[0]) / row.jump[0]); jInput.value = Math.round((x - row.start[row.start.length - 1]) / row.jump[row.jump.length - 1]);
    draw();
  });
  box.append(el("div", { class: "toolbar" }, el("label", { for: "rf-row" }, "row"), iInput, el("label", { for: "rf-col" }, "column"), jInput),
    canvas, text, el("label", {}, "Your image: ", fileInput));
  requestAnimationFrame(draw);
  return box;
}
const fmtNum = (v) => String(Math.round(v * 100) / 100);

// -- the run page --------------------------------------------------------------------------------------------------

async function runPage(id) {
  const run = await loadRun(id);
  const parts = [el("p", {}, el("a", { href: "#/zoo" }, "\u2190 the zoo")),
    el("h1", {}, `Run ${run.id}`),
    el("p", { class: "lead" }, `${run.model} trained on ${run.data}; ${run.split} split measured at the best epoch (${run.epoch}). `,
      CONVZOO.nets[run.model] || ((CONVZOO.zoo && CONVZOO.zoo.networks) || []).some((r) => r.name === run.model)
        ? el("a", { href: "#/net/" + encodeURIComponent(run.model) }, `The ${run.model} diagram`) : null),
    resultsTable(run.results)];
  parts.push(el("h2", {}, "Learning curves"), learningCurves(run.metrics));
  parts.push(el("h2", {}, "Confusion matrix"));
  if (run.confusion) parts.push(confusionMatrix(run));
  else parts.push(el("p", { class: "note" }, run.unavailable || "No per-image predictions for this run (a segmentation run: see its figures)."),
    run.confusion_png ? el("div", { class: "figures" }, el("img", { src: run.confusion_png, alt: "the run's confusion matrix" })) : null);
  parts.push(el("h2", {}, "Worst predictions"), worstPredictions(run));
  if (run.precision) parts.push(el("h2", {}, "Per class"), perClass(run));
  parts.push(el("h2", {}, "What the network sees (explain/)"), explainSection(run));
  setPage("run " + run.id, ...parts);
}

function resultsTable(results) {
  const keys = Object.keys(results).filter((k) => typeof results[k] === "number" && !/seconds/.test(k));
  return el("table", { class: "data", style: "width:auto" }, el("tbody", {}, keys.map((k) =>
    el("tr", {}, el("th", { scope: "row" }, k.replace(/_/g, " ")), el("td", { class: "num" }, Number.isInteger(results[k]) ? String(results[k]) : results[k].toFixed(3))))));
}

function learningCurves(metrics) {
  const epochs = metrics.epoch || [];
  if (!epochs.length) return el("p", { class: "note" }, "This run has no metrics.csv.");
  const columns = Object.keys(metrics).filter((k) => k !== "epoch" && metrics[k].some((v) => typeof v === "number"));
  const groups = [["loss", columns.filter((k) => /loss/.test(k))],
    ["top-1 accuracy / mIoU (%)", columns.filter((k) => /(top1_acc|miou)/.test(k))],
    ["learning rate", columns.filter((k) => /^lr/.test(k))]].filter(([, ks]) => ks.length);
  return el("div", { class: "curves" }, groups.map(([title, keys]) => lineChart(title, epochs, keys.map((k) => [k, metrics[k]]))));
}

function lineChart(title, xs, series) {
  const W = 620, H = 360, L = 80, R = 20, T = 36, B = 56;
  const values = series.flatMap(([, v]) => v.filter((x) => typeof x === "number"));
  let y0 = Math.min(...values), y1 = Math.max(...values);
  if (y1 - y0 < 1e-9) { y0 -= Math.abs(y0) * 0.1 + 1e-3; y1 += Math.abs(y1) * 0.1 + 1e-3; }
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }  // one epoch: its point in the middle
  const sx = (v) => L + (v - x0) / (x1 - x0) * (W - L - R), sy = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title + " against epoch" });
  svg.append(svgEl("text", { x: L, y: 22, "font-weight": "bold", text: title }));
  const axisG = svgEl("g", { class: "axis" });
  for (const t of niceTicks(y0, y1, 5)) {
    axisG.append(svgEl("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t), stroke: "#ccc" }),
      svgEl("text", { x: L - 8, y: sy(t) + 5, "text-anchor": "end", text: String(t) }));
  }
  for (const t of niceTicks(x0, x1, Math.min(8, Math.max(1, x1 - x0)))) if (Number.isInteger(t)) axisG.append(svgEl("text", { x: sx(t), y: H - B + 22, "text-anchor": "middle", text: String(t) }));
  axisG.append(svgEl("text", { x: (L + W - R) / 2, y: H - 12, "text-anchor": "middle", text: "epoch" }));
  svg.append(axisG);
  const colours = ["#0b3d91", "#a61b1b", "#2a7a2a", "#7a3d91", "#b8752d"];
  series.forEach(([name, ys], k) => {
    const pts = xs.map((x, i) => [x, ys[i]]).filter(([, y]) => typeof y === "number");
    const colour = colours[k % colours.length];
    svg.append(svgEl("polyline", { points: pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 3,
      "stroke-dasharray": /val/.test(name) ? null : "8 4" }));
    for (const [x, y] of pts) svg.append(svgEl("circle", { cx: sx(x), cy: sy(y), r: 5, fill: colour },
      svgEl("title", { text: `${name}, epoch ${x}: ${y}` })));
    svg.append(svgEl("text", { x: W - R - 4, y: T + 18 + 20 * k, "text-anchor": "end", fill: colour, "font-weight": "bold", text: name.replace(/_/g, " ") }));
  });
  return svg;
}

function thumb(run, index) {
  const wrong = run.labels[index] !== run.predicted[index];
  const src = run.thumbnails[index];
  return el("figure", { class: "thumb" + (wrong ? " wrong" : ""), "data-index": String(index) },
    src ? el("img", { src, alt: `test image ${index}` }) : null,
    el("figcaption", {}, `#${index}`, el("br"), `true ${run.classes[run.labels[index]]}`, el("br"),
      `pred ${run.classes[run.predicted[index]]} (${Math.round(run.confidence[index] * 100)}%)`));
}

function confusionMatrix(run) {
  const n = run.classes.length;
  const max = Math.max(1, ...run.confusion.flat());
  const images = el("div", { id: "cell-images", "aria-live": "polite" }, el("p", { class: "note" }, "Click a cell (or Tab to it and press Enter) to see its test images."));
  const rows = run.confusion.map((counts, t) => el("tr", {}, el("th", { scope: "row" }, run.classes[t]), counts.map((c, p) => {
    const shade = c / max;
    const button = el("button", { "data-true": String(t), "data-pred": String(p), "aria-label": `true ${run.classes[t]}, predicted ${run.classes[p]}: ${c} images`,
      style: `background: rgba(${t === p ? "11, 61, 145" : "166, 27, 27"}, ${0.08 + 0.92 * shade}); color: ${shade > 0.5 ? "#fff" : "#000"}`,
      onclick: () => {
        document.querySelectorAll(".cm button.selected").forEach((b) => b.classList.remove("selected"));
        button.classList.add("selected");
        const members = run.labels.map((l, i) => i).filter((i) => run.labels[i] === t && run.predicted[i] === p);
        const withPictures = members.filter((i) => run.thumbnails[i]);
        images.replaceChildren(...[el("h3", {}, `true ${run.classes[t]}, predicted ${run.classes[p]}: ${members.length} image${members.length === 1 ? "" : "s"}`),
          withPictures.length < members.length ? el("p", { class: "note" }, `${withPictures.length} shown (the site keeps the first ${run.thumbnails.length} thumbnails)`) : null,
          el("div", { class: "thumbs" }, withPictures.map((i) => thumb(run, i)))].filter(Boolean));
      } }, String(c));
    return el("td", {}, button);
  })));
  return el("div", {}, el("p", { class: "note" }, `${run.prediction_split} split, ${run.labels.length} images: rows are the true class, columns the predicted one.`),
    el("table", { class: "cm", id: "confusion" }, el("thead", {}, el("tr", {}, el("th", {}, "true \\ predicted"), run.classes.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, rows)), images);
}

function worstPredictions(run) {
  if (run.worst && run.worst.length && run.thumbnails) {
    return el("div", { class: "thumbs", id: "worst" }, run.worst.map((w) => el("figure", { class: "thumb wrong" },
      run.thumbnails[w.index] ? el("img", { src: run.thumbnails[w.index], alt: `test image ${w.index}` }) : null,
      el("figcaption", {}, `#${w.index}`, el("br"), `true ${w.true}`, el("br"), `pred ${w.predicted} (${Math.round(w.probability * 100)}%)`, el("br"), `loss ${w.loss.toFixed(2)}`))));
  }
  if (run.worst_png) return el("div", { class: "figures" }, el("img", { src: run.worst_png, alt: "the run's worst predictions" }));
  return el("p", { class: "note" }, "This run has no error analysis.");
}

function perClass(run) {
  const names = Object.keys(run.precision);
  const pct = (v) => (v === null || v === undefined ? "-" : v.toFixed(1));
  return el("table", { class: "data", style: "width:auto" }, el("thead", {}, el("tr", {}, el("th", {}, "class"), el("th", { class: "num" }, "precision (%)"), el("th", { class: "num" }, "recall (%)"))),
    el("tbody", {}, names.map((c) => el("tr", {}, el("td", {}, c), el("td", { class: "num" }, pct(run.precision[c])), el("td", { class: "num" }, pct(run.recall[c]))))));
}

function explainSection(run) {
  const gallery = run.explain;
  if (!gallery || !gallery.methods.length) {
    return el("p", { class: "note", id: "explain-missing" }, "This run folder has no explain/ gallery (feature maps, filters, class activation maps, " +
      "occlusion, effective receptive field). When it has one, its pictures show here, per test image.");
  }
  const imageNames = [...new Set(gallery.methods.flatMap((m) => m.pictures.map((p) => p.image)).filter(Boolean))];
  const chooser = el("select", { id: "explain-image" }, imageNames.map((n) => el("option", { value: n }, n.replace("test", "test image #"))));
  const grid = el("div", { id: "explain-pictures" });
  function render() {
    const chosen = chooser.value;
    const index = +String(chosen).replace("test", "");
    const seen = run.thumbnails && run.thumbnails[index] ? el("div", { class: "thumbs" }, thumb(run, index)) : null;  // the image as the network saw it
    grid.replaceChildren(...[seen].filter(Boolean), ...gallery.methods.map((m) => {
      const pictures = m.pictures.filter((p) => p.image === chosen || p.image === null);
      if (!pictures.length) return null;
      return el("section", {}, el("h3", {}, m.method), el("div", { class: "explain-grid" }, pictures.map((p) =>
        el("figure", {}, el("img", { src: p.src, alt: `${m.method}: ${p.name}` }), el("figcaption", { class: "note" }, p.name)))));
    }).filter(Boolean));
  }
  chooser.addEventListener("change", render);
  const box = el("div", {}, imageNames.length ? el("div", { class: "toolbar" }, el("label", { for: "explain-image" }, "Test image"), chooser) : null, grid);
  render();
  return box;
}

// -- start ---------------------------------------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if (e.key === "/" && document.activeElement.tagName !== "INPUT") {
    const filter = document.getElementById("zoo-filter");
    if (filter) { e.preventDefault(); filter.focus(); }
  }
});
window.addEventListener("hashchange", route);
navRuns();
route();
