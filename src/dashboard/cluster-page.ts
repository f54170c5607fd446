import type { ServerResponse } from "node:http";

/**
 * `GET /` of a cluster gateway: the catalog's functions and the workers' state (heartbeats,
 * slots, takeovers). One static document that polls the gateway's `/v1/status` once a second.
 * The embedded server's page (live charts, streams, logs) is src/dashboard/page.ts.
 * With a server token, open it as `/?token=…`: the page passes the token on to the status call.
 */
export function serveClusterDashboard(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(kPage),
    "cache-control": "no-store",
  });
  res.end(kPage);
}

const kPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>streamfn</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  .sub { color: #666; margin-bottom: 1.5rem; }
  table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
  th, td { text-align: left; padding: .25rem .8rem .25rem 0; border-bottom: 1px solid #eee; }
  th { color: #666; font-weight: 600; }
  code { background: #f4f4f4; padding: 0 .25rem; }
  .err { color: #b00; }
</style>
</head>
<body>
<h1>streamfn</h1>
<div class="sub" id="summary">loading…</div>
<div id="cluster"></div>
<div id="functions"></div>
<script>
const token = new URLSearchParams(location.search).get("token");
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
async function refresh() {
  try {
    const res = await fetch("/v1/status", token ? { headers: { authorization: "Bearer " + token } } : {});
    if (!res.ok) throw new Error((await res.json()).error?.message ?? res.statusText);
    const s = await res.json();
    document.getElementById("summary").textContent =
      (s.mode === "cluster" ? "cluster gateway " + s.gateway + " · " : "") +
      s.liveStreams + " live streams, " + s.queuedStreams + " waiting · up " + s.process.uptimeSeconds + " s · RSS " +
      Math.round(s.process.rssBytes / 1048576) + " MiB" + (s.mode === "cluster" ? "" : " · " + (s.watching ? "watching for changes" : "not watching"));
    document.getElementById("cluster").innerHTML = Array.isArray(s.workers) ? clusterTable(s) : "";
    let html = "";
    if (s.mode === "cluster") {
      html += "<h2>Functions</h2><table><tr><th>function</th><th>version</th><th>work waiting</th></tr>";
      for (const fn of s.functions) html += "<tr><td>" + esc(fn.name) + "</td><td><code>" + esc(fn.versions[0]?.version ?? "") + "</code></td><td>" + (fn.workPending ?? 0) + "</td></tr>";
      document.getElementById("functions").innerHTML = s.functions.length ? html + "</table>" : "<p>No functions in the catalog.</p>";
      return;
    }
    for (const fn of s.functions) {
      html += "<h2>" + esc(fn.name) + " <small><code>" + esc(fn.version ?? "removed") + "</code></small></h2>";
      html += "<table><tr><th>version</th><th>role</th><th>live</th><th>waiting</th><th>slots</th><th>cold starts</th><th>instances (streams/slots, cold start)</th></tr>";
      for (const v of fn.versions) {
        const inst = v.instances.map((i) => "#" + i.id + " " + i.state + " " + i.streams + "/" + i.slots +
          (i.coldStartMs === null ? "" : ", " + i.coldStartMs + " ms")).join("<br>") || "none (scaled to zero)";
        html += "<tr><td><code>" + esc(v.version) + "</code></td><td>" + v.role + "</td><td>" + v.liveStreams + "</td><td>" +
          v.queuedStreams + "</td><td>" + v.slots.inUse + " / " + v.slots.total + "</td><td>" + v.coldStarts + "</td><td>" + inst + "</td></tr>";
      }
      html += "</table>";
    }
    document.getElementById("functions").innerHTML = html || "<p>No functions deployed.</p>";
  } catch (err) {
    document.getElementById("summary").innerHTML = '<span class="err">' + esc(err.message) + "</span>";
  }
}
function clusterTable(s) {
  let html = '<h2 id="cluster-title">Cluster</h2><p>' + s.workers.filter((w) => !w.stale).length + " workers up, " + s.takeovers + " takeovers</p>";
  html += "<table><tr><th>worker</th><th>state</th><th>heartbeat</th><th>slots (active / total)</th><th>streams</th><th>takeovers</th></tr>";
  for (const w of s.workers) {
    const slots = w.functions.map((f) => esc(f.name) + " " + f.active + " / " + f.slots).join("<br>");
    html += "<tr><td>" + esc(w.worker) + "</td><td" + (w.stale ? ' class="err">stale' : ">up") + "</td><td>" + (w.ageMs / 1000).toFixed(1) + " s ago</td><td>" +
      slots + "</td><td>" + w.streams.length + "</td><td>" + w.takeovers + "</td></tr>";
  }
  return html + "</table>";
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
