/**
 * The dashboard page: one static document, no build step. Its script and styles are inline;
 * the charts are uPlot, loaded from the server's own asset route (`assetPrefix`). It reads
 * the push feed (`/v1/dashboard/feed`), and for one stream the existing routes: status,
 * outputs (server-sent events), logs (followed) and cancel.
 */
export function dashboardPage(assetPrefix: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamfn</title>
<link rel="stylesheet" href="${assetPrefix}uPlot.min.css">
<style>${kCss}</style>
</head>
<body>
<header>
  <h1>streamfn</h1>
  <span id="summary" class="muted"></span>
  <span id="conn" data-state="connecting">connecting…</span>
</header>
<section id="login" hidden>
  <form id="login-form">
    <h2>This server needs a token</h2>
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required>
    <button type="submit">Open dashboard</button>
    <p id="login-error" class="err" role="alert"></p>
  </form>
</section>
<main id="app" hidden>
  <section id="functions"></section>
  <section id="sources-panel" class="card" hidden>
    <div class="row-head"><h2>Sources</h2><span id="sources-count" class="muted"></span></div>
    <table id="sources">
      <thead><tr><th>function</th><th>broker</th><th>topic</th><th>state</th><th class="num">messages in</th><th class="num">parse failures</th><th class="num">streams opened</th><th class="num">duplicates</th><th class="num">dropped</th><th class="num">outputs</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div id="lower">
    <section id="streams-panel" class="card">
      <div class="row-head">
        <h2>Streams</h2>
        <label>function <select id="filter-fn"><option value="">all</option></select></label>
        <label>state <select id="filter-state">
          <option value="">all</option><option value="live">live</option><option value="waiting">waiting</option>
          <option value="running">running</option><option value="ended">ended</option>
          <option value="completed">completed</option><option value="failed">failed</option>
        </select></label>
        <span id="streams-count" class="muted"></span>
      </div>
      <table id="streams">
        <thead><tr><th>function</th><th>stream</th><th>version</th><th>state</th><th>age / duration</th><th class="num">events</th><th class="num">outputs</th><th>end</th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="streams-empty" class="muted">No streams yet. Open one and it shows up here.</p>
    </section>
    <aside id="detail" class="card" hidden></aside>
  </div>
</main>
<script src="${assetPrefix}uPlot.iife.min.js"></script>
<script>${kScript}</script>
</body>
</html>
`;
}

const kCss = String.raw`
:root { --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb;
  --ok: #15803d; --fail: #b91c1c; --wait: #b45309; --run: #2563eb; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--ink); background: var(--bg); }
header { display: flex; gap: 1rem; align-items: baseline; padding: .7rem 1.2rem; background: #111827; color: #e5e7eb; }
header h1 { font-size: 1.1rem; margin: 0; letter-spacing: .02em; }
header .muted { color: #9ca3af; }
#conn { margin-left: auto; font-size: .85rem; }
#conn::before { content: ""; display: inline-block; width: .55rem; height: .55rem; border-radius: 50%; margin-right: .35rem; background: #9ca3af; }
#conn[data-state="live"]::before { background: #22c55e; }
#conn[data-state="error"]::before { background: #ef4444; }
main { padding: 1rem 1.2rem; }
h2 { font-size: 1rem; margin: 0; }
.muted { color: var(--muted); }
.err { color: var(--fail); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
#functions { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: .8rem; margin-bottom: .8rem; }
.fn-head { display: flex; gap: .6rem; align-items: baseline; flex-wrap: wrap; }
.badge { font: 11px ui-monospace, monospace; padding: .05rem .4rem; border-radius: 4px; background: #eef2ff; color: #3730a3; }
.badge.retiring { background: #fef3c7; color: #92400e; }
.opts { color: var(--muted); font-size: .75rem; margin: .15rem 0 .4rem; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: .3rem; margin-bottom: .3rem; }
.tile { background: var(--bg); border-radius: 6px; padding: .2rem .4rem; min-width: 0; }
.tile b { display: block; font-size: .95rem; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tile span { color: var(--muted); font-size: .68rem; white-space: nowrap; }
.key { font-weight: 600; }
.charts { display: grid; grid-template-columns: 1fr; gap: .1rem; }
.chart-title { font-size: .75rem; color: var(--muted); margin: .2rem 0; }
.dists { display: grid; grid-template-columns: 3fr 2fr; gap: .6rem; margin-top: .4rem; }
.bars { display: flex; align-items: flex-end; gap: 2px; height: 40px; border-bottom: 1px solid var(--line); }
.bars div { flex: 1; background: #93c5fd; min-height: 1px; position: relative; }
.bars div[data-n="0"] { background: #e5e7eb; }
.bar-labels { display: flex; gap: 2px; font-size: .62rem; color: var(--muted); }
.bar-labels span { flex: 1; text-align: left; overflow: visible; white-space: nowrap; }
.failures { list-style: none; margin: 0; padding: 0; font-size: .8rem; }
.failures li { display: flex; justify-content: space-between; border-bottom: 1px dashed var(--line); }
.failures code { color: var(--fail); }
#lower { display: grid; grid-template-columns: 1fr; gap: 1rem; }
#lower.with-detail { grid-template-columns: 3fr 2fr; }
.row-head { display: flex; gap: 1rem; align-items: baseline; margin-bottom: .4rem; }
.row-head label { color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .22rem .5rem .22rem 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: .78rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
#streams tbody tr { cursor: pointer; }
#streams tbody tr:hover { background: #f0f5ff; }
#streams tbody tr.selected { background: #dbeafe; }
td code, .mono { font: 12px ui-monospace, monospace; }
.state { font-weight: 600; }
.state-running { color: var(--run); } .state-waiting { color: var(--wait); }
.state-completed { color: var(--ok); } .state-failed { color: var(--fail); }
#detail h2 { display: flex; gap: .5rem; align-items: baseline; }
#detail ol { padding-left: 1.1rem; margin: .4rem 0 .8rem; }
#detail ol li { margin: .1rem 0; }
#detail h3 { font-size: .85rem; margin: .6rem 0 .2rem; color: var(--muted); }
#detail pre { background: var(--bg); border-radius: 6px; padding: .4rem .5rem; margin: 0; max-height: 180px; overflow: auto; font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.log-warn { color: var(--wait); } .log-error { color: var(--fail); }
button { font: inherit; padding: .3rem .8rem; border-radius: 6px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
button.danger { border-color: #fca5a5; color: var(--fail); }
button.close { margin-left: auto; }
#login { display: flex; justify-content: center; padding: 4rem 1rem; }
#login form { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1.5rem; width: 340px; display: grid; gap: .6rem; }
#login input { font: inherit; padding: .4rem .5rem; border: 1px solid var(--line); border-radius: 6px; }
#login button { background: var(--accent); color: #fff; border: 0; }

`;

const kScript = String.raw`
"use strict";
const $ = (sel, root) => (root || document).querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("streamfn-token") || "";

// ---- units a person reads ----
function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 10) return ms.toFixed(1) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 10000) return (ms / 1000).toFixed(2) + " s";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  if (ms < 3600000) { const m = Math.floor(ms / 60000); const s = Math.round((ms % 60000) / 1000); return m + " min" + (s ? " " + s + " s" : ""); }
  return (ms / 3600000).toFixed(1) + " h";
}
function ago(t, now) {
  const s = Math.max(0, Math.round(((now || Date.now()) - t) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
const mib = (b) => (b / 1048576).toFixed(b < 10485760 ? 1 : 0) + " MiB";
const rate = (v) => (v === null || v === undefined ? "–" : v >= 100 ? Math.round(v).toLocaleString() : String(Math.round(v * 10) / 10));
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false }) + "." + String(new Date(t).getMilliseconds()).padStart(3, "0");
function boundLabel(ms) {
  if (ms <= 0) return "0";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return ms / 1000 + " s";
  return ms / 60000 + " min";
}
function optionsLine(o) {
  if (!o) return "no current version: only finishing its streams";
  const parts = [
    "idle " + fmtMs(o.idleTimeoutMs), "max " + fmtMs(o.maxDurationMs), o.minInstances + "–" + o.maxInstances + " instances",
    o.concurrency + " streams each", "keep-alive " + fmtMs(o.keepAliveMs), o.memoryMb + " MiB", o.sandbox,
  ];
  return parts.join(" · ");
}

// ---- auth ----
const authHeaders = () => (token ? { authorization: "Bearer " + token } : {});
const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);
async function errorText(res) {
  try { const body = await res.json(); return body.error ? body.error.code + ": " + body.error.message : res.statusText; } catch { return res.statusText; }
}

async function boot() {
  const res = await fetch("/v1/status", { headers: authHeaders() });
  if (res.status === 401) return showLogin(token ? "The token was refused: " + (await errorText(res)) : "");
  if (!res.ok) { setConn("error", await errorText(res)); return; }
  if (token) sessionStorage.setItem("streamfn-token", token);
  $("#login").hidden = true;
  $("#app").hidden = false;
  connect();
}
function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  setConn("error", "token needed");
  $("#token").focus();
}
$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value.trim();
  $("#login-error").textContent = "checking…";
  boot().catch((err) => ($("#login-error").textContent = err.message));
});
function setConn(state, text) {
  const el = $("#conn");
  el.dataset.state = state;
  el.textContent = text;
}

// ---- the feed ----
const state = { hello: null, history: {}, tick: null, cards: new Map(), selected: null };
window.dashboard = state; // for people poking around (and tests): the data behind the page
let source;
function connect() {
  if (source) source.close();
  source = new EventSource(withToken("/v1/dashboard/feed"));
  source.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    state.hello = hello;
    state.history = hello.history;
    setConn("live", "live");
  });
  source.addEventListener("tick", (e) => {
    const tick = JSON.parse(e.data);
    for (const [fn, sample] of Object.entries(tick.samples)) {
      const h = state.history[fn] || (state.history[fn] = []);
      if (!h.length || h[h.length - 1].t < sample.t) h.push(sample);
      if (h.length > state.hello.historyLength) h.splice(0, h.length - state.hello.historyLength);
    }
    state.tick = tick;
    setConn("live", "live");
    render(tick);
  });
  source.onerror = () => setConn("error", "reconnecting…");
}

function render(tick) {
  $("#summary").textContent = plural(tick.liveTotal, "live stream") + " · up " + (tick.process.uptimeS < 60 ? tick.process.uptimeS + " s" : fmtMs(tick.process.uptimeS * 1000)) +
    " · RSS " + mib(tick.process.rssBytes) + (tick.process.watching ? " · watching for changes" : "");
  const names = new Set(tick.functions.map((f) => f.name));
  for (const [name, card] of state.cards) if (!names.has(name)) { card.el.remove(); card.plot.destroy(); card.ratePlot.destroy(); state.cards.delete(name); }
  for (const fn of tick.functions) renderFunction(fn, tick);
  if (!tick.functions.length) $("#functions").innerHTML = '<p class="muted">No functions deployed.</p>';
  renderFilters(tick);
  renderStreams(tick);
  renderSources(tick);
  if (state.selected) refreshDetail(tick);
}

// ---- broker sources (MQTT topics, NATS subjects) ----
function renderSources(tick) {
  const list = tick.sources || [];
  $("#sources-panel").hidden = list.length === 0;
  $("#sources tbody").innerHTML = list.map((s) => {
    const st = s.connected ? '<td class="state state-running">connected</td>' : '<td class="state state-failed" title="' + esc(s.error || "") + '">' + (s.error ? "not bound" : "disconnected") + "</td>";
    return '<tr data-fn="' + esc(s.function) + '" data-topic="' + esc(s.topic) + '"><td>' + esc(s.function) + "</td><td>" + esc(s.broker) + "</td><td><code>" + esc(s.topic) + "</code></td>" + st +
      '<td class="num in">' + s.messagesIn + '</td><td class="num parse">' + s.parseFailures + '</td><td class="num opened">' + s.streamsOpened + '</td><td class="num">' + s.duplicates +
      '</td><td class="num">' + s.dropped + '</td><td class="num">' + s.outputs + "</td></tr>";
  }).join("");
  $("#sources-count").textContent = list.length ? plural(list.length, "source") : "";
}

// ---- one card per function ----
function renderFunction(fn, tick) {
  let card = state.cards.get(fn.name);
  if (!card) card = makeCard(fn.name);
  const el = card.el;
  const s = tick.samples[fn.name] || {};
  const retiring = fn.versions.filter((v) => v.role === "retiring");
  $(".versions", el).innerHTML = (fn.version ? '<span class="badge" title="current version">' + esc(fn.version) + "</span>" : "") +
    retiring.map((v) => '<span class="badge retiring" title="retiring: finishing its streams">' + esc(v.version) + " retiring · " + v.live + " live</span>").join(" ");
  $(".opts", el).textContent = optionsLine(fn.options);
  const tiles = [
    ["instances", s.instances], ["live", s.live], ["waiting", s.waiting], ["events/s in", rate(s.eventsPerS)],
    ["outputs/s out", rate(s.outputsPerS)], ["p50 / event", fmtMs(s.p50Ms)], ["p99 / event", fmtMs(s.p99Ms)], ["cold starts", fn.totals.coldStarts],
  ];
  $(".tiles", el).innerHTML = tiles.map(([k, v]) => "<div class=tile><b>" + esc(v ?? "–") + "</b><span>" + k + "</span></div>").join("");
  const h = state.history[fn.name] || [];
  const xs = h.map((x) => x.t / 1000);
  const cold = h.map((x) => (x.coldStarts > 0 ? Math.max(x.instances || 0, 1) : null));
  card.plot.setData([xs, h.map((x) => x.instances), h.map((x) => x.live), cold]);
  card.ratePlot.setData([xs, h.map((x) => x.eventsPerS), h.map((x) => x.outputsPerS)]);
  // What the chart shows, as data: cold starts and scale-to-zero moments in the kept history.
  let coldStarts = 0, toZero = 0, peak = 0, prev = null;
  for (const x of h) {
    coldStarts += x.coldStarts || 0;
    if (x.instances !== null) {
      peak = Math.max(peak, x.instances);
      if (prev !== null && prev > 0 && x.instances === 0) toZero++;
      prev = x.instances;
    }
  }
  const chart = $(".instances-chart", el);
  chart.dataset.coldStarts = coldStarts;
  chart.dataset.scaleToZero = toZero;
  chart.dataset.instances = s.instances ?? 0;
  chart.dataset.peak = peak;
  chart.dataset.samples = h.length;
  // Stream durations since start, and failures by code.
  const b = state.hello.durationBoundsMs;
  const max = Math.max(1, ...fn.durations);
  $(".bars", el).innerHTML = fn.durations.map((n, i) =>
    '<div data-n="' + n + '" style="height:' + Math.round((n / max) * 100) + '%" title="' + n + " streams " +
    (i < b.length ? "≤ " + boundLabel(b[i]) : "> " + boundLabel(b[b.length - 1])) + '"></div>').join("");
  // Every third bound is labelled: all of them do not fit.
  $(".bar-labels", el).innerHTML = fn.durations.map((_, i) => "<span>" + (i % 3 === 0 && i < b.length ? boundLabel(b[i]) : "") + "</span>").join("");
  const codes = Object.entries(fn.failures).sort((a, c) => c[1] - a[1]);
  $(".failures", el).innerHTML = codes.length
    ? codes.map(([code, n]) => '<li data-code="' + esc(code) + '"><code>' + esc(code) + "</code><b>" + n + "</b></li>").join("")
    : '<li class="muted">none</li>';
}

function makeCard(name) {
  const el = document.createElement("article");
  el.className = "card fn";
  el.dataset.fn = name;
  el.innerHTML = '<div class="fn-head"><h2>' + esc(name) + '</h2><span class="versions"></span></div><div class="opts"></div><div class="tiles"></div>' +
    '<div class="charts"><div><div class="chart-title"><span class="key" style="color:#2563eb">instances</span>, <span class="key" style="color:#16a34a">live streams</span>, <span class="key" style="color:#dc2626">● cold start</span></div><div class="instances-chart"></div></div>' +
    '<div><div class="chart-title"><span class="key" style="color:#7c3aed">events/s in</span>, <span class="key" style="color:#ea580c">outputs/s out</span></div><div class="rate-chart"></div></div></div>' +
    '<div class="dists"><div><div class="chart-title">stream durations since start</div><div class="bars"></div><div class="bar-labels"></div></div>' +
    '<div><div class="chart-title">failures by code since start</div><ul class="failures"></ul></div></div>';
  $("#functions").appendChild(el);
  const w = chartWidth(el);
  // Samples are a second apart: ticks on whole seconds (or minutes), read as a wall clock.
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const xAxis = { stroke: "#6b7280", grid: { stroke: "#f0f0f0" }, space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600], values: (u, splits) => splits.map(clock) };
  const axes = [xAxis, { stroke: "#6b7280", grid: { stroke: "#f0f0f0" }, size: 36 }];
  const plot = new uPlot({
    width: w, height: 110, axes, legend: { show: false }, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(2, hi + 1)] } },
    series: [{}, { label: "instances", stroke: "#2563eb", width: 2, paths: uPlot.paths.stepped({ align: 1 }), fill: "rgba(37,99,235,.08)" },
      { label: "live streams", stroke: "#16a34a", width: 1.5 },
      { label: "cold start", stroke: "#dc2626", width: 0, points: { show: true, size: 9, fill: "#dc2626" }, paths: () => null }],
  }, [[], [], [], []], $(".instances-chart", el));
  const ratePlot = new uPlot({
    width: w, height: 70, axes, legend: { show: false }, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
    series: [{}, { label: "events/s", stroke: "#7c3aed", width: 1.5 }, { label: "outputs/s", stroke: "#ea580c", width: 1.5 }],
  }, [[], [], []], $(".rate-chart", el));
  const card = { el, plot, ratePlot };
  state.cards.set(name, card);
  return card;
}

function chartWidth(el) {
  return Math.max(240, el.clientWidth - 26);
}
window.addEventListener("resize", () => {
  for (const card of state.cards.values()) {
    const w = chartWidth(card.el);
    card.plot.setSize({ width: w, height: 110 });
    card.ratePlot.setSize({ width: w, height: 70 });
  }
});

// ---- streams table ----
function renderFilters(tick) {
  const sel = $("#filter-fn");
  const have = [...sel.options].map((o) => o.value);
  for (const fn of tick.functions) if (!have.includes(fn.name)) sel.add(new Option(fn.name, fn.name));
}
$("#filter-fn").addEventListener("change", () => state.tick && renderStreams(state.tick));
$("#filter-state").addEventListener("change", () => state.tick && renderStreams(state.tick));
function matches(row, fn, st) {
  if (fn && row.fn !== fn) return false;
  if (!st || st === row.state) return true;
  if (st === "live") return row.state === "waiting" || row.state === "running";
  if (st === "ended") return row.state === "completed" || row.state === "failed";
  return false;
}
function renderStreams(tick) {
  const fn = $("#filter-fn").value, st = $("#filter-state").value;
  const rows = tick.streams.filter((r) => matches(r, fn, st));
  $("#streams tbody").innerHTML = rows.map((r) => {
    const live = r.endedAt === null;
    const time = live ? ago(r.openedAt, tick.now).replace(" ago", "") : fmtMs(r.endedAt - r.openedAt);
    const end = r.code ? '<code class="err">' + esc(r.code) + "</code>" : esc(r.reason || "");
    const sel = state.selected && state.selected.fn === r.fn && state.selected.id === r.id ? ' class="selected"' : "";
    return "<tr" + sel + ' data-fn="' + esc(r.fn) + '" data-id="' + esc(r.id) + '" data-state="' + r.state + '"><td>' + esc(r.fn) + "</td><td><code>" + esc(r.id) +
      "</code></td><td><code>" + esc(r.version) + '</code></td><td class="state state-' + r.state + '">' + r.state + "</td><td" + (live ? ' title="age"' : ' title="duration"') + ">" +
      time + '</td><td class="num events">' + r.events + '</td><td class="num outputs">' + r.outputs + '</td><td class="end">' + end + "</td></tr>";
  }).join("");
  $("#streams-empty").hidden = rows.length > 0;
  $("#streams-count").textContent = rows.length + " shown";
}
$("#streams tbody").addEventListener("click", (e) => {
  const tr = e.target.closest("tr");
  if (tr) openDetail(tr.dataset.fn, tr.dataset.id);
});

// ---- one stream ----
function streamUrl(fn, id) {
  return "/v1/functions/" + encodeURIComponent(fn) + "/streams/" + encodeURIComponent(id);
}
function closeDetail() {
  const d = state.selected;
  if (d) { d.outputs && d.outputs.close(); d.logs && d.logs.abort(); }
  state.selected = null;
  $("#detail").hidden = true;
  $("#lower").classList.remove("with-detail");
  if (state.tick) renderStreams(state.tick);
}
async function openDetail(fn, id) {
  closeDetail();
  const d = { fn, id, status: null, lastState: null, outputs: null, logs: null, lines: [], outs: [] };
  state.selected = d;
  const el = $("#detail");
  el.hidden = false;
  $("#lower").classList.add("with-detail");
  el.dataset.fn = fn;
  el.dataset.id = id;
  el.innerHTML = "<h2><span>" + esc(fn) + " / <code>" + esc(id) + '</code></span><span class="state"></span><button class="close" title="close">✕</button></h2>' +
    '<div class="cancel-row"></div><h3>Timeline</h3><ol class="timeline"><li class="muted">loading…</li></ol>' +
    '<h3>Last outputs</h3><pre class="outputs">none yet</pre><h3>Log</h3><pre class="logs">no lines</pre>';
  $(".close", el).addEventListener("click", closeDetail);
  if (state.tick) renderStreams(state.tick);
  await loadStatus(d);
  followOutputs(d);
  followLogs(d);
}
async function loadStatus(d) {
  const res = await fetch(streamUrl(d.fn, d.id), { headers: authHeaders() });
  if (state.selected !== d) return;
  if (!res.ok) { $("#detail .timeline").innerHTML = '<li class="err">' + esc(await errorText(res)) + "</li>"; return; }
  d.status = await res.json();
  d.lastState = d.status.state;
  renderDetail(d);
}
function renderDetail(d) {
  const s = d.status, el = $("#detail");
  const ended = s.state === "ended";
  const st = ended ? s.status : s.state;
  el.dataset.state = st;
  $(".state", el).className = "state state-" + st;
  $(".state", el).textContent = st;
  const items = [];
  const opened = Date.parse(s.openedAt);
  items.push("opened " + clock(opened) + " (" + ago(opened) + ")");
  if (s.boundAt) {
    const bound = Date.parse(s.boundAt);
    const wait = bound - opened;
    const inst = s.instance === null || s.instance === undefined ? "an instance" : "instance #" + s.instance;
    items.push("bound to " + inst + (wait < 1 ? " at once" : " after " + fmtMs(wait)) + ": " +
      (s.start === "cold" ? "a cold start (the instance took " + fmtMs(s.coldStartMs) + " to start)" : s.start === "warm" ? "warm (the instance was running)" : "started"));
  } else if (!ended) items.push("waiting for a slot");
  items.push(plural(s.events, "event") + (s.lastEventAt ? ", the last at " + clock(Date.parse(s.lastEventAt)) : ""));
  items.push(plural(s.outputs, "output"));
  if (ended) {
    const dur = fmtMs(Date.parse(s.endedAt) - opened);
    items.push((s.status === "failed" ? "failed" : "completed") + " after " + dur + " (reason " + esc(s.reason) + ")" +
      (s.error ? ': <code class="err">' + esc(s.error.code) + "</code> " + esc(s.error.message) : ""));
  } else if (s.inputEnded) items.push("input ended (" + esc(s.inputEnded) + "), finishing");
  $(".timeline", el).innerHTML = items.map((x) => "<li>" + x + "</li>").join("");
  $(".cancel-row", el).innerHTML = ended ? "" : '<button class="danger cancel">Cancel stream</button> <span class="cancel-msg"></span>';
  if (!ended) $(".cancel", el).addEventListener("click", () => cancel(d));
}
function refreshDetail(tick) {
  const d = state.selected;
  if (!d || !d.status) return;
  const row = tick.streams.find((r) => r.fn === d.fn && r.id === d.id);
  if (!row) return;
  const ended = row.endedAt !== null;
  if (ended && d.status.state !== "ended") { loadStatus(d); return; }
  if (!ended && (row.state !== d.lastState || row.events !== d.status.events || row.outputs !== d.status.outputs)) {
    d.lastState = row.state;
    if (row.state !== d.status.state || row.instance !== d.status.instance) { loadStatus(d); return; }
    d.status.events = row.events;
    d.status.outputs = row.outputs;
    renderDetail(d);
  }
}
async function cancel(d) {
  const msg = $("#detail .cancel-msg");
  msg.textContent = "cancelling…";
  const res = await fetch(streamUrl(d.fn, d.id) + "?reason=" + encodeURIComponent("from the dashboard"), { method: "DELETE", headers: authHeaders() });
  if (res.ok) { msg.textContent = "cancelled"; loadStatus(d); return; }
  const text = await errorText(res);
  msg.className = "cancel-msg err";
  msg.textContent = res.status === 403 ? "Not allowed (403): " + text + ". Cancelling a stream needs an admin token." :
    res.status === 401 ? "Refused (401): " + text : "Could not cancel (" + res.status + "): " + text;
}
function followOutputs(d) {
  const from = Math.max(0, ((d.status && d.status.outputs) || 0) - 10);
  const es = new EventSource(withToken(streamUrl(d.fn, d.id) + "/outputs?from=" + from));
  d.outputs = es;
  const show = () => {
    if (state.selected !== d) return;
    $("#detail .outputs").textContent = d.outs.length ? d.outs.map((o) => "#" + o.n + "  " + o.text).join("\n") : "none";
  };
  es.addEventListener("output", (e) => {
    const rec = JSON.parse(e.data);
    const text = rec.data !== undefined ? JSON.stringify(rec.data) : "<binary, " + (rec.bytes || "").length + " base64 chars>";
    d.outs.push({ n: rec.n, text: text.length > 500 ? text.slice(0, 500) + "…" : text });
    if (d.outs.length > 10) d.outs.shift();
    show();
  });
  es.addEventListener("end", () => { es.close(); show(); });
  es.addEventListener("error", (e) => {
    // An error event with data is the server's (OUTPUTS_EXPIRED: only the last outputs are kept).
    if (e.data) { const r = JSON.parse(e.data); if (r.code !== "OUTPUTS_EXPIRED") { es.close(); } return; }
    if (es.readyState === EventSource.CLOSED) show();
  });
}
async function followLogs(d) {
  const ctl = new AbortController();
  d.logs = ctl;
  try {
    const res = await fetch(streamUrl(d.fn, d.id) + "/logs?follow=1", { headers: authHeaders(), signal: ctl.signal });
    if (!res.ok) { $("#detail .logs").textContent = await errorText(res); return; }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const rec = JSON.parse(line);
        if (rec.type === "log") {
          d.lines.push(rec);
          if (d.lines.length > 200) d.lines.shift();
        }
      }
      if (state.selected !== d) return;
      const pre = $("#detail .logs");
      pre.innerHTML = d.lines.length ? d.lines.map((l) => '<span class="log-' + l.level + '">' + clock(l.time) + " " + l.level.padEnd(5) + " " + esc(l.msg) + "</span>").join("\n") : "no lines";
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (err) {
    if (err.name !== "AbortError" && state.selected === d) $("#detail .logs").textContent = "log follow stopped: " + err.message;
  }
}

boot().catch((err) => setConn("error", err.message));
`;
