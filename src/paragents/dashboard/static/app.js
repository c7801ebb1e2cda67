// The paragents dashboard page: renders one run's view (task graph, Gantt, utilisation,
// latency split, tokens and cost, adaptations) and keeps it live.
//
// Theory of operation.  The page has two sources.  Served by the dashboard, it lists the
// store's runs (/api/runs), loads one run's view (/api/runs/ID) and, while the run is
// not finished, subscribes to its server-sent event stream (/api/runs/ID/stream): each
// batch of log events is applied to the nodes at once (dispatched -> running, finished
// -> done, ...), and a full view is re-fetched at most once a second to redraw the
// Gantt and the numbers.  Written into a static report, the view and the log are
// embedded as window.PARAGENTS_REPORT and nothing is fetched.  A finished run replays
// from its log: states are reset and the events applied again on a timer.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["pending", "ready", "running", "backoff", "done", "failed", "cancelled"];
  const FINISHED = new Set(["done", "failed", "stopped"]);
  const NODE_W = 150, NODE_H = 28, COL_W = 200, ROW_H = 40, PAD = 12;
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  const embedded = window.PARAGENTS_REPORT || null;

  let view = null;         // the run's view, as /api/runs/ID answers it
  let states = {};         // task id -> state shown now
  let stream = null;       // the EventSource of a live run
  let refreshTimer = null; // the pending full refresh
  let replayTimers = [];

  const $ = (id) => document.getElementById(id);

  function api(path) {
    const url = new URL(path, window.location.href);
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }

  async function getJSON(path) {
    const response = await fetch(api(path));
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const fmt = (x, digits) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits === undefined ? 2 : digits));

  // ------------------------------------------------------------------ run list
  async function loadRuns(current) {
    const doc = await getJSON("/api/runs");
    const list = $("runs");
    list.replaceChildren();
    for (const run of doc.runs) {
      const query = new URLSearchParams({ run: run.run_id });
      if (token) query.set("token", token);
      const link = el("a", { href: "?" + query.toString(), "data-run": run.run_id });
      if (run.run_id === current) link.classList.add("current");
      link.append(el("span", {}, run.name + " " + run.run_id));
      link.append(el("span", { class: "meta" }, run.status + " · " + run.tasks_done + "/" + run.tasks_total + " tasks"));
      const item = el("li");
      item.append(link);
      list.append(item);
    }
    return doc.runs;
  }

  // ------------------------------------------------------------------ states
  function predecessors() {
    const preds = {};
    for (const t of view.tasks) preds[t.id] = t.depends_on;
    return preds;
  }

  function markReady() {
    const preds = predecessors();
    for (const id of Object.keys(states)) {
      if (states[id] === "pending" && (preds[id] || []).every((p) => states[p] === "done")) states[id] = "ready";
    }
  }

  function applyEvent(e) {
    if (!e.task || !(e.task in states)) return e.kind === "added";
    const next = {
      dispatched: "running", finished: "done", restored: "done", retry: "backoff",
      failed: "failed", cancelled: "cancelled", requeued: "ready",
    }[e.kind];
    if (next) states[e.task] = next;
    return false;
  }

  function applyEvents(events) {
    let grew = false;
    for (const e of events) {
      grew = applyEvent(e) || grew;
      if (e.kind === "adapted" || e.kind === "stopped") addAdaptation(e);
    }
    markReady();
    paintNodes();
    return grew;
  }

  function paintNodes() {
    for (const node of $("graph").querySelectorAll("g.node")) {
      const state = states[node.dataset.task] || "pending";
      if (node.dataset.state === state) continue;
      node.dataset.state = state;
      for (const s of STATES) node.classList.toggle("state-" + s, s === state);
      node.querySelector("title").textContent = node.dataset.task + ": " + state;
    }
  }

  // ------------------------------------------------------------------ graph
  function layers() {
    const preds = predecessors();
    const depth = {};
    const visit = (id) => {
      if (depth[id] !== undefined) return depth[id];
      depth[id] = 0; // guards a malformed (cyclic) view
      depth[id] = Math.max(-1, ...(preds[id] || []).filter((p) => p in preds).map(visit)) + 1;
      return depth[id];
    };
    view.tasks.forEach((t) => visit(t.id));
    return depth;
  }

  function drawGraph() {
    const svg = $("graph");
    svg.replaceChildren();
    const depth = layers();
    const rows = {};
    const pos = {};
    for (const t of view.tasks) {
      const d = depth[t.id];
      rows[d] = (rows[d] || 0) + 1;
      pos[t.id] = { x: PAD + d * COL_W, y: PAD + (rows[d] - 1) * ROW_H };
    }
    const width = PAD * 2 + (Math.max(0, ...Object.values(depth)) * COL_W) + NODE_W;
    const height = PAD * 2 + Math.max(1, ...Object.values(rows)) * ROW_H;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const path = view.critical_path;
    const criticalEdges = new Set(path.slice(1).map((id, i) => path[i] + ">" + id));
    const criticalNodes = new Set(path);
    const edges = el("svg:g", { class: "edges" });
    for (const [u, v] of view.edges) {
      if (!pos[u] || !pos[v]) continue;
      const x1 = pos[u].x + NODE_W, y1 = pos[u].y + NODE_H / 2, x2 = pos[v].x, y2 = pos[v].y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      const cls = "edge" + (criticalEdges.has(u + ">" + v) ? " critical" : "");
      edges.append(el("svg:path", { class: cls, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
                                    "data-from": u, "data-to": v }));
    }
    svg.append(edges);
    for (const t of view.tasks) {
      const g = el("svg:g", { class: "node" + (criticalNodes.has(t.id) ? " critical" : ""), "data-task": t.id,
                               "data-state": "", transform: `translate(${pos[t.id].x},${pos[t.id].y})` });
      g.append(el("svg:title", {}, t.id));
      g.append(el("svg:rect", { width: NODE_W, height: NODE_H, rx: 4 }));
      const label = t.id.length > 22 ? t.id.slice(0, 21) + "…" : t.id;
      g.append(el("svg:text", { x: 8, y: NODE_H / 2 + 4 }, label));
      svg.append(g);
    }
    paintNodes();
  }

  function drawLegend() {
    const legend = $("legend");
    legend.replaceChildren();
    for (const s of STATES) {
      const item = el("span");
      item.append(el("i", { class: "state-" + s }), s);
      legend.append(item);
    }
  }

  // ------------------------------------------------------------------ Gantt
  function drawGantt() {
    const svg = $("gantt");
    svg.replaceChildren();
    const horizon = Math.max(view.report.makespan_s || 0, ...view.tasks.map((t) => t.end || t.start || 0), 0.001);
    const lanes = [];        // [{agent, ends: [slot end times]}] -> one row per slot used
    const byAgent = {};
    const bars = view.tasks.filter((t) => t.start !== null && t.agent).sort((a, b) => a.start - b.start);
    for (const t of bars) {
      const lane = byAgent[t.agent] || (byAgent[t.agent] = { agent: t.agent, slots: [] });
      const end = t.end === null ? horizon : t.end;
      let slot = lane.slots.findIndex((free) => free <= t.start + 1e-9);
      if (slot < 0) { slot = lane.slots.length; lane.slots.push(end); } else lane.slots[slot] = end;
      t._slot = slot;
      t._end = end;
    }
    for (const name of Object.keys(view.report.agents || {})) if (!byAgent[name]) byAgent[name] = { agent: name, slots: [0] };
    let row = 0;
    const rowOf = {};
    for (const lane of Object.values(byAgent).sort((a, b) => a.agent.localeCompare(b.agent))) {
      rowOf[lane.agent] = row;
      lanes.push({ agent: lane.agent, row: row, rows: Math.max(1, lane.slots.length) });
      row += Math.max(1, lane.slots.length);
    }
    const left = 110, plot = 760, barH = 18, top = 22;
    const width = left + plot + PAD, height = top + row * (barH + 4) + PAD;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const x = (t) => left + (t / horizon) * plot;
    const axis = el("svg:g", { class: "axis" });
    for (let i = 0; i <= 5; i++) {
      const t = (horizon * i) / 5;
      axis.append(el("svg:line", { x1: x(t), x2: x(t), y1: top - 4, y2: height - PAD }));
      axis.append(el("svg:text", { x: x(t) - 10, y: 12 }, fmt(t, 1) + "s"));
    }
    svg.append(axis);
    for (const lane of lanes) {
      svg.append(el("svg:text", { class: "lane-label", x: 4, y: top + lane.row * (barH + 4) + 13 }, lane.agent));
    }
    const critical = new Set(view.critical_path);
    for (const t of bars) {
      const y = top + (rowOf[t.agent] + t._slot) * (barH + 4);
      const rect = el("svg:rect", {
        class: "bar state-" + t.state + (critical.has(t.id) ? " critical" : ""), "data-task": t.id,
        x: x(t.start), y: y, width: Math.max(1, x(t._end) - x(t.start)), height: barH,
      });
      rect.append(el("svg:title", {}, `${t.id} on ${t.agent}: ${fmt(t.start)}s - ${fmt(t.end)}s (${t.state})`));
      svg.append(rect);
    }
    svg.append(el("svg:line", { id: "cursor", x1: left, x2: left, y1: top - 4, y2: height - PAD, visibility: "hidden" }));
    svg.dataset.left = left;
    svg.dataset.plot = plot;
    svg.dataset.horizon = horizon;
  }

  // ------------------------------------------------------------------ numbers
  function meter(name, parts, value) {
    const row = el("div", { class: "meter" });
    row.append(el("span", { class: "name", title: name }, name));
    const track = el("span", { class: "track" });
    for (const [cls, fraction] of parts) {
      track.append(el("span", { class: "fill " + cls, style: "width:" + (100 * Math.max(0, Math.min(1, fraction))) + "%" }));
    }
    row.append(track, el("span", { class: "value" }, value));
    return row;
  }

  function definitions(target, pairs) {
    target.replaceChildren();
    for (const [k, v] of pairs) target.append(el("dt", {}, k), el("dd", {}, v));
  }

  function drawNumbers() {
    const r = view.report;
    definitions($("summary"), [
      ["makespan", fmt(r.makespan_s) + " s"], ["critical path", fmt(r.critical_path_s) + " s"],
      ["speedup", fmt(r.speedup) + "x"], ["utilisation", fmt(100 * r.utilization, 0) + " %"],
      ["tasks", `${r.tasks.done}/${r.tasks.total} done`], ["failed", String(r.tasks.failed)],
    ]);
    const util = $("utilization");
    util.replaceChildren();
    for (const [name, a] of Object.entries(r.agents)) {
      const row = meter(name, [["", a.utilization]], fmt(100 * a.utilization, 0) + " %");
      row.dataset.agent = name;
      util.append(row);
    }
    const lat = r.latency;
    const total = lat.compute_s + lat.transfer_s + lat.processing_s || 1;
    const latency = $("latency");
    latency.replaceChildren(
      meter("split", [["compute", lat.compute_s / total], ["transfer", lat.transfer_s / total],
                      ["processing", lat.processing_s / total]], fmt(total) + " s"));
    const keys = el("dl");
    definitions(keys, [["compute", fmt(lat.compute_s) + " s"], ["transfer", fmt(lat.transfer_s) + " s"],
                       ["processing", fmt(lat.processing_s) + " s"]]);
    latency.append(keys);
    definitions($("tokens"), [["prompt", String(r.tokens.prompt)], ["completion", String(r.tokens.completion)],
                              ["cost", fmt(r.cost, 4)]]);
  }

  function addAdaptation(e) {
    const data = e.data || {};
    const what = e.kind === "stopped" ? `stopped: ${data.budget} limit ${data.limit} reached (${data.used})`
      : `${data.control || "adapted"}: ${data.reason || ""}` + (e.task ? ` [${e.task}]` : "") + (e.agent ? ` on ${e.agent}` : "");
    const item = el("li", { "data-kind": e.kind }, `${fmt(e.time)} s  ${what}`);
    $("adaptations").append(item);
  }

  // ------------------------------------------------------------------ the run
  function render(next) {
    view = next;
    states = {};
    for (const t of view.tasks) states[t.id] = t.state;
    $("run").hidden = false;
    $("run-title").textContent = view.run.name + " · run " + view.run.run_id;
    $("status").textContent = view.run.status;
    $("status").dataset.status = view.run.status;
    document.title = "paragents · " + view.run.name + " " + view.run.run_id;
    drawLegend();
    drawGraph();
    drawGantt();
    drawNumbers();
    $("adaptations").replaceChildren();
    view.adaptations.forEach(addAdaptation);
  }

  async function refresh() {
    refreshTimer = null;
    render(await getJSON("/api/runs/" + encodeURIComponent(view.run.run_id)));
  }

  function scheduleRefresh(delay) {
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, delay);
  }

  function follow(runId, after) {
    $("live").hidden = false;
    stream = new EventSource(api("/api/runs/" + encodeURIComponent(runId) + "/stream?after=" + after));
    stream.addEventListener("events", (message) => {
      const batch = JSON.parse(message.data);
      const grew = applyEvents(batch.events);
      scheduleRefresh(grew ? 0 : 1000);
    });
    stream.addEventListener("end", () => {
      stream.close();
      stream = null;
      $("live").hidden = true;
      if (refreshTimer !== null) clearTimeout(refreshTimer);
      refreshTimer = null;
      refresh().then(() => { loadRuns(runId); offerReplay(); });
    });
  }

  // ------------------------------------------------------------------ replay
  let replayLog = null;

  function offerReplay() {
    $("replay-controls").hidden = false;
  }

  async function replay() {
    replayTimers.forEach(clearTimeout);
    replayTimers = [];
    if (replayLog === null) {
      replayLog = embedded ? embedded.events
        : (await getJSON("/api/runs/" + encodeURIComponent(view.run.run_id) + "/events")).events;
    }
    for (const id of Object.keys(states)) states[id] = "pending";
    $("adaptations").replaceChildren();
    markReady();
    paintNodes();
    const speed = Number($("replay-speed").value) || 1;
    const gantt = $("gantt");
    const cursor = $("cursor");
    const left = Number(gantt.dataset.left), plot = Number(gantt.dataset.plot), horizon = Number(gantt.dataset.horizon);
    cursor.setAttribute("visibility", "visible");
    for (const e of replayLog) {
      replayTimers.push(setTimeout(() => {
        applyEvents([e]);
        const cx = left + (Math.min(e.time, horizon) / horizon) * plot;
        cursor.setAttribute("x1", cx);
        cursor.setAttribute("x2", cx);
      }, (1000 * e.time) / speed));
    }
  }

  async function openRun(runId) {
    render(await getJSON("/api/runs/" + encodeURIComponent(runId)));
    if (FINISHED.has(view.run.status)) offerReplay();
    else follow(runId, view.seq);
  }

  async function main() {
    $("replay").addEventListener("click", replay);
    if (embedded) {
      $("runs-panel").hidden = true;
      render(embedded.view);
      offerReplay();
      return;
    }
    const wanted = params.get("run");
    const runs = await loadRuns(wanted);
    const runId = wanted || (runs.length ? runs[0].run_id : null);
    if (runId) await openRun(runId);
  }

  main().catch((error) => {
    document.body.dataset.error = String(error);
    $("run-title").textContent = "error: " + error.message;
  });
})();
