// Meshlet's management page. It holds no data of its own: every view asks
// the product's JSON routes with the bearer token typed into the page, so a
// role sees here exactly what it may read with curl. Text from the server
// is only ever set as textContent, never parsed as HTML.

const PAST_ROLES = ["auditor", "owner", "governance"];
const HISTORY_LIMIT = 2000; // versions drawn at most; the table says when there are more
const LIST_LIMIT = 50;

const state = { token: sessionStorage.getItem("meshlet.token") || "", who: null, product: null, entity: null };

// ---- helpers ----

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const k of kids.flat()) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  for (const k of kids.flat()) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
}

function fill(id, ...kids) {
  const box = typeof id === "string" ? $(id) : id;
  box.replaceChildren(...kids.flat().filter((k) => k != null));
  return box;
}

function badge(ok, yes = "ok", no = "failing") {
  return el("span", { class: "badge " + (ok ? "ok" : "bad") }, ok ? yes : no);
}

function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [k, v] of pairs) {
    if (v == null || v === "") continue;
    dl.append(el("dt", null, k), el("dd", null, v));
  }
  return dl;
}

function table(caption, heads, rows, attrs) {
  const t = el("table", attrs);
  if (caption) t.append(el("caption", { class: "muted small" }, caption));
  t.append(el("thead", null, el("tr", null, heads.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const r of rows) body.append(r instanceof Node ? r : el("tr", null, r.map((c) => el("td", null, c))));
  t.append(body);
  return t;
}

function show(v) {
  if (v == null) return "null";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function say(msg) { $("status").textContent = msg || ""; }

class HTTPError extends Error {
  constructor(status, body) {
    super((body && body.error) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { text = false } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, { headers, cache: "no-store" });
  if (text) {
    if (!r.ok) throw new HTTPError(r.status, null);
    return r.text();
  }
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) throw new HTTPError(r.status, body);
  return body;
}

const canSeePast = () => state.who && PAST_ROLES.includes(state.who.role);
const enc = encodeURIComponent;

// Times arrive as RFC 3339 with microseconds, in UTC and of one width, so
// they sort as strings; JavaScript dates would drop the microseconds.
function shortTime(t, prev) {
  if (!t) return "";
  const [d, rest] = t.replace("Z", "").split("T");
  const time = rest || "";
  return !prev || prev.split("T")[0] !== d ? d + " " + time : time;
}

// ---- sign in ----

async function signIn(token) {
  state.token = token;
  if (!token) { state.who = null; sessionStorage.removeItem("meshlet.token"); renderWho(); return; }
  try {
    state.who = await api("/v1/whoami");
    sessionStorage.setItem("meshlet.token", token);
    say("");
  } catch (e) {
    state.who = null;
    state.token = "";
    sessionStorage.removeItem("meshlet.token");
    say(e.status === 401 ? "That token is not valid here." : "Sign-in failed: " + e.message);
  }
  renderWho();
}

function renderWho() {
  const signedIn = !!state.who;
  state.entity = null; // what was shown belonged to the previous token
  fill("entity");
  fill("results");
  $("login").hidden = signedIn;
  $("who").hidden = !signedIn;
  $("who-text").textContent = signedIn ? `Signed in as ${state.who.name} (${state.who.role})` : "";
  route();
}

// ---- router ----

function route() {
  const h = location.hash.startsWith("#/") ? location.hash.slice(2) : "product";
  const [view, query] = h.split("?");
  const name = ["product", "mesh", "entities"].includes(view) ? view : "product";
  for (const v of ["product", "mesh", "entities"]) $("view-" + v).hidden = v !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const params = new URLSearchParams(query || "");
  if (name === "product") loadProduct();
  if (name === "mesh") loadMesh();
  if (name === "entities") loadEntities(params.get("key"));
}

// ---- product card ----

async function loadProduct() {
  const [product, owners, status, contracts, schemas, lineage, changelog] = await Promise.allSettled([
    api("/v1/product"), api("/v1/owners"), api("/v1/status"), api("/v1/contracts"), api("/v1/schemas"),
    api("/v1/lineage"), api("/v1/changelog"),
  ]);
  const p = product.value || {};
  state.product = p;
  $("title").textContent = p.name || p.id || "Meshlet";
  $("subtitle").textContent = p.id || "";
  document.title = (p.name || "Meshlet") + " · Meshlet";
  renderManifest(p, owners.value);
  renderHealth(status.value, status.reason);
  renderPorts(p, schemas.value);
  renderContract(contracts.value);
  renderQuality(status.value);
  renderLineage(lineage.value);
  renderChangelog(changelog.value, changelog.reason);
  renderDead();
}

function renderManifest(p, owners) {
  const team = p.team || {};
  const members = (owners && owners.members) || [];
  fill("manifest",
    facts([["Name", p.name], ["Id", p.id], ["Domain", p.domain], ["Version", p.version], ["Status", p.status],
      ["Owners", [team.name, team.email].filter(Boolean).join(" · ")]]),
    p.description ? el("p", null, p.description) : null,
    members.length ? table("Contract team", ["User", "Name", "Role"], members.map((m) => [m.username || m.Username || "", m.name || m.Name || "", m.role || m.Role || ""])) : null);
}

function renderHealth(s, err) {
  if (!s) { fill("health", el("p", null, "Status unavailable: " + (err ? err.message : ""))); return; }
  const rows = (s.ports || []).map((port) => {
    const m = port.measured || {};
    return [port.port, m.freshness || "", m.publish_latency_p99 || "", show(m.consumer_lag), show(m.dead_letters), show(m.change_log_bytes)];
  });
  fill("health",
    el("p", null, badge(s.healthy, "healthy", "not healthy"), " ", s.state, " · up ", s.uptime),
    table(null, ["Port", "Freshness", "Latency p99", "Lag", "Dead letters", "Log bytes"], rows));
}

function renderPorts(p, schemas) {
  const byPort = {};
  for (const s of (schemas && schemas.schemas) || []) byPort[s.port] = s;
  const outs = (p.outputPorts || []).map((o) => {
    const s = byPort[o.name] || {};
    return [o.name, o.topic, o.subject || s.subject || "", s.id ? String(s.id) : "", (s.versions || []).join(", "), o.version || ""];
  });
  const ins = (p.inputPorts || []).map((i) => [i.name, i.topic, i.format || ""]);
  fill("ports",
    table("Output ports", ["Port", "Topic", "Subject", "Schema id", "Schema versions", "Port version"], outs),
    table("Input ports", ["Port", "Topic", "Format"], ins),
    p.deadLetter && p.deadLetter.topic ? el("p", { class: "muted small" }, "Dead letters go to ", el("span", { class: "mono" }, p.deadLetter.topic)) : null);
}

async function renderContract(list) {
  const cs = (list && list.contracts) || [];
  if (!cs.length) { fill("contract", el("p", null, "No data contract.")); return; }
  const parts = [];
  for (const c of cs) {
    parts.push(facts([["Port", c.port], ["Contract", c.id], ["Version", c.version], ["Status", c.status]]));
    if (c.link) {
      try {
        const y = await api(c.link, { text: true });
        parts.push(el("details", null, el("summary", null, "ODCS contract of " + c.port + " (YAML)"), el("pre", { tabindex: "0", "aria-label": "ODCS contract YAML" }, y)));
      } catch (e) { parts.push(el("p", null, "Contract text unavailable: " + e.message)); }
    }
  }
  fill("contract", parts);
}

function renderQuality(s) {
  if (!s) { fill("quality"); return; }
  const parts = [];
  for (const port of s.ports || []) {
    parts.push(table("SLOs of " + port.port, ["Objective", "Measured", "Status", "Why"],
      (port.slos || []).map((o) => [o.name + ": " + o.objective, o.measured || "", badge(o.ok), o.reason || ""])));
    const q = (port.measured && port.measured.quality) || [];
    if (q.length) {
      parts.push(table("Quality counters of " + port.port, ["Rule", "Field", "Metric", "Checked", "Counted", "Violations", "Dead-letters"],
        q.map((r) => [r.rule, r.field || "", r.metric || "", show(r.checked), show(r.bad), show(r.violations), r.dead_letter ? "yes" : "no"])));
    }
  }
  fill("quality", parts);
}

function renderLineage(l) {
  if (!l) { fill("lineage"); return; }
  const ref = (r) => (r.url ? el("a", { href: r.url.replace(/\/$/, "") + "/ui/#/product" }, r.name || r.id) : (r.name || r.id));
  fill("lineage",
    table(null, ["Direction", "Product or topic", "Topics"], [
      ...(l.upstream || []).map((r) => ["upstream", ref(r), (r.topics || []).join(", ")]),
      ...(l.downstream || []).map((r) => ["downstream", ref(r), (r.topics || []).join(", ")]),
    ]),
    l.mesh_error ? el("p", { class: "muted small" }, "Mesh: " + l.mesh_error) : null,
    el("p", null, el("a", { href: "#/mesh" }, "The whole mesh")));
}

function renderChangelog(c, err) {
  if (!c) { fill("changelog", el("p", null, "Change log unavailable: " + (err ? err.message : ""))); return; }
  const rows = c.logs.map((l) => {
    const cp = l.checkpoint;
    return el("tr", { "data-log": l.name }, [
      l.name, show(l.entries), show(l.bytes),
      cp ? String(cp.size) : "none yet",
      cp ? String(cp.behind) : "",
      cp ? el("span", null, badge(cp.verified, "verified", cp.signature === "unchecked" ? "unchecked" : "FAILED"), cp.error ? " " + cp.error : "") : "",
      cp ? el("details", null, el("summary", null, "note"), el("pre", { tabindex: "0", "aria-label": "Signed checkpoint of " + l.name }, cp.note)) : "",
    ].map((x) => el("td", null, x)));
  });
  const verify = el("button", { type: "button", class: "secondary", id: "verify-all" }, "Verify every entry against its checkpoint");
  const out = el("div", { id: "verify-out", "aria-live": "polite" });
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    fill(out, el("p", null, "Verifying…"));
    try {
      const v = await api("/v1/changelog/verify");
      fill(out, el("p", null, badge(v.verified, "every log verified", "verification FAILED")),
        table(null, ["Log", "Checkpoint", "Entries", "Result"], v.logs.map((l) => [l.name, show(l.checkpoint), show(l.entries), l.verified ? "verified" : l.error])));
    } catch (e) { fill(out, el("p", null, "Verification: " + e.message)); }
    verify.disabled = false;
  });
  fill("changelog",
    el("p", null, `${c.entries} entries, ${c.bytes} bytes in ${c.logs.length} log(s)`, c.verifier ? el("span", { class: "muted" }, " · signed by " + c.verifier) : ""),
    table(null, ["Log", "Entries", "Bytes", "Latest checkpoint", "Entries since", "Checkpoint", "Note"], rows),
    canSeePast() ? [verify, out] : el("p", { class: "muted small" }, "Sign in as auditor, owner or governance to verify every entry."));
}

async function renderDead() {
  if (!canSeePast()) {
    fill("dead", el("p", { class: "muted" }, "Dead letters may quote the data they carry: sign in as auditor, owner or governance to see them."));
    return;
  }
  try {
    const d = await api("/v1/deadletters?limit=20");
    if (!d.dead_letters.length) { fill("dead", el("p", null, "None: every input record was processed.")); return; }
    fill("dead", table(d.topic ? "Newest first, from " + d.topic : null, ["Time", "Class", "Origin", "Key", "Message"],
      d.dead_letters.map((x) => el("tr", { class: "dead-letter" }, [
        x.time, el("span", { class: "badge warn" }, x.class || "?"),
        `${x.origin_topic}/${x.origin_partition}@${x.origin_offset}`, el("span", { class: "mono" }, x.key), x.message,
      ].map((c) => el("td", null, c))))));
  } catch (e) { fill("dead", el("p", null, "Dead letters unavailable: " + e.message)); }
}

// ---- mesh ----

async function loadMesh() {
  const [list, graph] = await Promise.allSettled([api("/v1/mesh/products"), api("/v1/mesh/lineage")]);
  if (!state.product) { try { state.product = await api("/v1/product"); } catch { state.product = {}; } }
  const link = (p) => {
    if (p.urn === state.product.id) return "#/product";
    return p.managementUrl ? p.managementUrl.replace(/\/$/, "") + "/ui/#/product" : null;
  };
  if (list.status === "rejected") {
    fill("mesh-products", el("p", null, "The mesh registry is unavailable: " + list.reason.message));
    fill("mesh-graph");
    return;
  }
  const products = list.value.products || [];
  const byURN = Object.fromEntries(products.map((p) => [p.urn, p]));
  fill("mesh-products", table(null, ["Product", "URN", "Domain", "Owner", "Version", "Status"], products.map((p) => {
    const href = link(p);
    return [href ? el("a", { href }, p.name || p.urn) : p.name || p.urn, el("span", { class: "mono" }, p.urn), p.domain, (p.owner || {}).name || "", p.version, p.status || ""];
  })));
  if (graph.status === "fulfilled") fill("mesh-graph", lineageGraph(graph.value, (id) => byURN[id] && link(byURN[id])));
  else fill("mesh-graph", el("p", null, "Lineage unavailable: " + graph.reason.message));
}

// lineageGraph lays the mesh out in columns: a node's column is the
// longest path to it from a node nothing feeds.
function lineageGraph(g, hrefOf) {
  const nodes = g.nodes || [], edges = g.edges || [];
  if (!nodes.length) return el("p", null, "No live products in the registry.");
  const col = Object.fromEntries(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let moved = false;
    for (const e of edges) if (col[e.to] < col[e.from] + 1 && col[e.from] + 1 < nodes.length) { col[e.to] = col[e.from] + 1; moved = true; }
    if (!moved) break;
  }
  const cols = {};
  for (const n of nodes) (cols[col[n.id]] ||= []).push(n);
  const W = 230, H = 54, GX = 190, GY = 34;
  const pos = {};
  let maxRows = 0;
  for (const [c, ns] of Object.entries(cols)) {
    ns.forEach((n, i) => { pos[n.id] = { x: 20 + c * (W + GX), y: 20 + i * (H + GY) }; });
    maxRows = Math.max(maxRows, ns.length);
  }
  const width = 40 + (Object.keys(cols).length) * (W + GX) - GX, height = 40 + maxRows * (H + GY) - GY;
  const svg = sv("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-labelledby": "mesh-graph-title", id: "mesh-svg" },
    sv("title", { id: "mesh-graph-title" }, `Lineage: ${nodes.filter((n) => n.kind === "product").length} product(s), ${edges.length} port(s) between them`),
    sv("defs", null, sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      sv("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6e7781" }))));
  for (const e of edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    svg.append(sv("g", { class: "edge-g", "data-topic": e.topic },
      sv("path", { class: "edge", d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" },
        sv("title", null, `${e.topic}: ${e.outputPort || "(external)"} → ${e.inputPort}`)),
      sv("text", { x: mx, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, clipText(e.topic, GX - 16))));
  }
  for (const n of nodes) {
    const p = pos[n.id];
    const box = sv("g", { class: "node " + n.kind, transform: `translate(${p.x},${p.y})`, "data-id": n.id },
      sv("rect", { width: W, height: H, rx: 8 }),
      sv("text", { x: 10, y: 22, "font-weight": "600" }, clipText(n.name || n.id, W - 20)),
      sv("text", { x: 10, y: 40 }, clipText(n.kind === "product" ? n.domain || n.id : "topic", W - 20)));
    const href = n.kind === "product" ? hrefOf(n.id) : null;
    svg.append(href ? sv("a", { href }, box) : box);
  }
  return el("div", { class: "chart-box", tabindex: "0", role: "region", "aria-label": "Lineage graph, scrollable" }, svg);
}

function clipText(s, px) {
  const max = Math.max(1, Math.floor(px / 6.6));
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

// ---- entities ----

let searchSeq = 0;

function loadEntities(key) {
  $("entities-need").textContent = !state.who
    ? "Sign in to search entities: every role reads current state; auditor, owner and governance also see each entity's history."
    : canSeePast() ? "" : `Your role (${state.who.role}) reads current state only; the bitemporal history needs auditor, owner or governance.`;
  $("search").hidden = !state.who;
  if (!state.who) { fill("results"); fill("entity"); return; }
  if (key && (!state.entity || state.entity.key !== key)) { $("q").value = key; openEntity(key); }
  if (!key) { fill("entity"); state.entity = null; listKeys($("q").value, ""); }
}

async function listKeys(q, after, append) {
  const seq = ++searchSeq;
  try {
    const a = await api(`/v1/entities?q=${enc(q)}&limit=${LIST_LIMIT}&after=${enc(after)}`);
    if (seq !== searchSeq) return;
    let ul = append && $("results").querySelector("ul");
    if (!ul) {
      ul = el("ul", { class: "results", "aria-label": "Matching keys" });
      fill("results", el("p", { class: "muted small", id: "results-count" }), ul);
    }
    $("results").dataset.q = q;
    $("results-count").textContent = `${a.matching} key(s) believed now match${a.capped ? " (list capped)" : ""}`;
    for (const old of $("results").querySelectorAll(".more")) old.remove();
    for (const e of a.entities) {
      ul.append(el("li", null, el("button", { type: "button", onclick: () => { clearTimeout(typing); location.hash = "#/entities?key=" + enc(e.key); } }, e.key)));
    }
    if (a.next) $("results").append(el("button", { type: "button", class: "secondary more", onclick: () => listKeys(q, a.next, true) }, "More keys"));
  } catch (e) { if (seq === searchSeq) fill("results", el("p", null, "Search: " + e.message)); }
}

async function openEntity(key) {
  state.entity = { key };
  fill("results");
  const box = fill("entity", el("h3", { id: "entity-h" }, "Entity " + key), el("div", { id: "current" }, "Loading…"));
  try {
    const c = await api(`/v1/entities/${enc(key)}`);
    fill("current", el("h4", null, "Current state"), rowTable(c.entry, "current-row"),
      el("p", { class: "muted small" }, `valid from ${c.entry._valid_from} · recorded ${c.entry._system_from} · from ${c.source}`));
  } catch (e) {
    fill("current", el("h4", null, "Current state"), el("p", null, e.status === 404 ? "Not believed present now (unknown or deleted)." : e.message));
  }
  if (!canSeePast()) return; // the chart is not built at all for current-state roles
  const hist = el("div", { id: "history" }, "Loading history…");
  box.append(hist);
  try {
    const h = await api(`/v1/entities/${enc(key)}/history?entries=true&limit=${HISTORY_LIMIT}`);
    renderHistory(hist, key, h);
  } catch (e) {
    fill(hist, el("p", null, e.status === 404 ? "No version of this key was ever recorded." : "History: " + e.message));
  }
}

function rowTable(entry, id) {
  const fields = (entry && entry.fields) || {};
  return table(null, ["Field", "Value"], Object.keys(fields).sort().map((k) => el("tr", null, el("th", { scope: "row" }, k), el("td", { "data-field": k }, show(fields[k])))), { id });
}

function renderHistory(box, key, h) {
  const vs = h.versions, marks = h.entries || [];
  const corrections = new Set(marks.filter((m) => m.correction).map((m) => m.log + "/" + m.seq));
  const deletes = marks.filter((m) => m.op === "retract");
  const ref = { chart: bitemporalChart(vs, deletes, corrections, false) };
  const holder = el("div", { id: "chart-holder" }, ref.chart.box);
  const detail = el("input", { id: "chart-detail", type: "checkbox" });
  const controls = asOfControls(key, ref);
  detail.addEventListener("change", () => {
    ref.chart = bitemporalChart(vs, deletes, corrections, detail.checked);
    fill(holder, ref.chart.box);
    controls.remark();
  });
  const info = el("p", { class: "muted small" },
    `${h.total} version(s)` + (h.total > vs.length ? `, the first ${vs.length} drawn (the CLI's meshlet history has all)` : "") +
    `; ${corrections.size} correction(s), ${deletes.length} delete(s).`);
  const legend = el("div", { class: "legend", "aria-hidden": "true" },
    el("span", null, el("span", { class: "swatch" }), "a version, believed over its system period for its valid period"),
    el("span", null, el("span", { class: "swatch correction" }), "written by a correction"),
    el("span", null, el("span", { class: "swatch delete" }), "a delete"),
    el("span", null, el("span", { class: "swatch believed" }), "believed at the as-of point"));
  fill(box, el("h4", null, "Bitemporal history"), info, legend,
    el("div", { class: "row small" }, detail, el("label", { for: "chart-detail" }, "Wide steps: every boundary readable, the chart scrolls")),
    holder, controls.box, correctionsPanel(key, vs),
    el("details", null, el("summary", null, "Versions as a table"), versionTable(vs, corrections)));
}

function versionTable(vs, corrections) {
  return table(null, ["#", "Valid from", "Valid to", "System from", "System to", "Entry", "Fields"], vs.map((v, i) => [
    String(i + 1), v._valid_from, v._valid_to || "open", v._system_from, v._system_to || "still believed",
    `${v.log}#${v.seq}` + (corrections.has(v.log + "/" + v.seq) ? " (correction)" : ""), JSON.stringify(v.fields || {}),
  ]), { id: "versions-table" });
}

// bitemporalChart draws valid time across and system time upwards. Both
// axes are ordinal: every distinct boundary gets an equal step, so versions
// a microsecond apart stay as visible as versions years apart.
function bitemporalChart(vs, deletes, corrections, wide) {
  const vset = new Set(), sset = new Set();
  let openValid = false, openSystem = false;
  for (const v of vs) {
    vset.add(v._valid_from); if (v._valid_to) vset.add(v._valid_to); else openValid = true;
    sset.add(v._system_from); if (v._system_to) sset.add(v._system_to); else openSystem = true;
  }
  for (const d of deletes) { vset.add(d._valid_from); if (d._valid_to) vset.add(d._valid_to); else openValid = true; sset.add(d._system_from); }
  const vb = [...vset].sort(), sb = [...sset].sort();
  const nx = vb.length + (openValid ? 1 : 0), ny = sb.length + (openSystem ? 1 : 0);
  const ML = 170, MB = 120, MT = 14, MR = 24;
  // Fitted, a chart of hundreds of versions stays on screen with thin
  // rectangles; wide steps give every boundary room for its label.
  const stepX = Math.max(wide ? 34 : 4, Math.min(180, 1000 / Math.max(1, nx - 1)));
  const stepY = Math.max(wide ? 20 : 3, Math.min(70, (wide ? 360 : 560) / Math.max(1, ny - 1)));
  const X = (t) => ML + (t == null ? vb.length : vb.indexOf(t)) * stepX;
  const Y = (t) => MT + (ny - 1 - (t == null ? sb.length : sb.indexOf(t))) * stepY;
  const width = ML + (nx - 1) * stepX + MR, height = MT + (ny - 1) * stepY + MB;
  const svg = sv("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title", id: "chart" },
    sv("title", { id: "chart-title" }, `Bitemporal chart: ${vs.length} version(s); valid time across, system time upwards. The versions table below lists the same.`));
  const axis = sv("g", { class: "axis" });
  const labelEvery = Math.max(1, Math.ceil(16 / stepX));
  vb.forEach((t, i) => {
    axis.append(sv("line", { class: "grid-line", x1: X(t), x2: X(t), y1: MT, y2: Y(sb[0]) }));
    if (i % labelEvery === 0) axis.append(sv("text", { x: X(t), y: Y(sb[0]) + 12, transform: `rotate(35 ${X(t)} ${Y(sb[0]) + 12})` }, shortTime(t, vb[i - labelEvery])));
  });
  if (openValid) axis.append(sv("text", { x: X(null), y: Y(sb[0]) + 14, "text-anchor": "middle" }, "∞"));
  sb.forEach((t, i) => {
    axis.append(sv("line", { class: "grid-line", x1: ML, x2: X(null), y1: Y(t), y2: Y(t) }));
    if (i % Math.max(1, Math.ceil(12 / stepY)) === 0) axis.append(sv("text", { x: ML - 6, y: Y(t) + 4, "text-anchor": "end" }, shortTime(t, sb[i - 1])));
  });
  if (openSystem) axis.append(sv("text", { x: ML - 6, y: Y(null) + 4, "text-anchor": "end" }, "now"));
  axis.append(sv("text", { x: ML + ((nx - 1) * stepX) / 2, y: height - 8, "text-anchor": "middle" }, "valid time →"));
  axis.append(sv("text", { x: 14, y: MT + ((ny - 1) * stepY) / 2, transform: `rotate(-90 14 ${MT + ((ny - 1) * stepY) / 2})`, "text-anchor": "middle" }, "system time →"));
  svg.append(axis);

  const rects = [];
  const layer = sv("g", { class: "versions" });
  vs.forEach((v, i) => {
    const x1 = X(v._valid_from), x2 = X(v._valid_to), y1 = Y(v._system_to), y2 = Y(v._system_from);
    const corr = corrections.has(v.log + "/" + v.seq);
    const r = sv("rect", {
      class: "version" + (corr ? " correction" : ""), x: x1, y: y1, width: Math.max(2, x2 - x1), height: Math.max(2, y2 - y1),
      fill: colorOf(v.log + "/" + v.seq), "data-index": i, "data-seq": v.seq,
    });
    r.addEventListener("mousemove", (ev) => tip(ev, v, corr));
    r.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    layer.append(r);
    rects.push({ v, r });
    const label = Object.entries(v.fields || {}).filter(([k]) => k !== "id").map(([, x]) => show(x)).join(" · ");
    if (x2 - x1 > 50 && y2 - y1 > 14) {
      layer.append(sv("text", { class: "version-label", x: x1 + 5, y: y1 + Math.min(16, (y2 - y1) / 2 + 4) }, clipText(label, x2 - x1 - 10)));
    }
  });
  svg.append(layer);
  for (const d of deletes) {
    const x1 = X(d._valid_from), x2 = X(d._valid_to), y = Y(d._system_from);
    svg.append(sv("line", { class: "delete", x1, x2, y1: y, y2: y }, sv("title", null, `deleted at ${d._system_from}, valid from ${d._valid_from}`)),
      sv("text", { class: "delete-label", x: x1 + 4, y: y - 4 }, "✕ deleted"));
  }
  const cross = sv("g", { class: "crosshair-g" });
  svg.append(cross);
  const box = el("div", { class: "chart-box", tabindex: "0", role: "region", "aria-label": "Bitemporal chart, scrollable" }, svg);
  return {
    box, vb, sb, rects,
    mark(T, V) {
      cross.replaceChildren(
        sv("line", { class: "crosshair", x1: X(V), x2: X(V), y1: MT, y2: Y(sb[0]) }),
        sv("line", { class: "crosshair", x1: ML, x2: X(null), y1: Y(T), y2: Y(T) }));
      for (const { v, r } of rects) {
        const on = v._system_from <= T && (!v._system_to || T < v._system_to) && v._valid_from <= V && (!v._valid_to || V < v._valid_to);
        r.classList.toggle("believed", on);
      }
    },
  };
}

const PALETTE = ["#cfe8ff", "#d8f5d0", "#fde2c4", "#eadcff", "#ffd8e4", "#d0f0f0", "#f4f1c0", "#e2e6ea"];
function colorOf(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function tip(ev, v, corr) {
  const t = $("tooltip");
  const dl = el("dl");
  const add = (k, x) => dl.append(el("dt", null, k), el("dd", null, x));
  add("valid", `${v._valid_from} → ${v._valid_to || "open"}`);
  add("system", `${v._system_from} → ${v._system_to || "still believed"}`);
  add("entry", `${v.log}#${v.seq}${corr ? " (correction)" : ""}`);
  for (const [k, x] of Object.entries(v.fields || {})) add(k, show(x));
  t.replaceChildren(dl);
  t.hidden = false;
  t.style.left = Math.min(ev.clientX + 14, innerWidth - 440) + "px";
  t.style.top = ev.clientY + 14 + "px";
}

// asOfControls: two sliders over the chart's boundaries pick T and V; the
// row shown is the server's answer to ?asOf=T&validAt=V, the same question
// meshlet asof answers.
function asOfControls(key, ref) {
  const { vb, sb } = ref.chart;
  const mk = (id, label, steps, name) => {
    const input = el("input", { id, type: "range", min: 0, max: steps.length - 1, step: 1, value: steps.length - 1, "aria-describedby": id + "-out" });
    const out = el("output", { id: id + "-out", for: id });
    return { input, out, steps, wrap: el("div", { class: "slider" }, el("label", { for: id }, label), input, out), name };
  };
  const T = mk("asof-t", "System time T", sb), V = mk("asof-v", "Valid time V", vb);
  const row = el("div", { id: "asof-row", "aria-live": "polite" });
  let seq = 0;
  const update = async () => {
    const t = sb[+T.input.value], v = vb[+V.input.value];
    T.out.textContent = t; V.out.textContent = v;
    T.input.setAttribute("aria-valuetext", t); V.input.setAttribute("aria-valuetext", v);
    ref.chart.mark(t, v);
    const my = ++seq;
    row.dataset.state = "loading";
    try {
      const a = await api(`/v1/entities/${enc(key)}?asOf=${enc(t)}&validAt=${enc(v)}`);
      if (my !== seq) return;
      fill(row, el("p", null, `Believed as of ${t} about ${v}: entry ${a.entry.log}#${a.entry.seq}`), rowTable(a.entry, "asof-table"));
      row.dataset.found = "true";
    } catch (e) {
      if (my !== seq) return;
      fill(row, el("p", null, e.status === 404 ? `Nothing believed as of ${t} about ${v}.` : e.message));
      row.dataset.found = "false";
    }
    row.dataset.asOf = t; row.dataset.validAt = v; row.dataset.state = "ready";
  };
  T.input.addEventListener("input", update);
  V.input.addEventListener("input", update);
  update();
  return {
    box: el("fieldset", null, el("legend", null, "As of (T, V): what was believed at system time T about valid time V"), T.wrap, V.wrap, row),
    remark: () => ref.chart.mark(sb[+T.input.value], vb[+V.input.value]),
  };
}

function correctionsPanel(key, vs) {
  const times = vs.map((v) => v._system_from).sort();
  const from = el("input", { id: "corr-from", type: "text", value: times[0] || "", spellcheck: "false" });
  const to = el("input", { id: "corr-to", type: "text", value: "now", spellcheck: "false" });
  const out = el("div", { id: "corr-out", "aria-live": "polite" });
  const form = el("form", { class: "row", id: "corr-form" },
    el("label", { for: "corr-from" }, "From (system time)"), from,
    el("label", { for: "corr-to" }, "To (system time)"), to,
    el("button", { type: "submit" }, "List corrections"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fill(out, el("p", null, "Loading…"));
    try {
      const a = await api(`/v1/corrections?from=${enc(from.value)}&to=${enc(to.value)}&key=${enc(key)}&limit=200`);
      if (!a.corrections.length) { fill(out, el("p", null, `No correction of ${key} recorded in [${a.from}, ${a.to}).`)); return; }
      fill(out, table(`${a.total} correction(s) of ${key} recorded in [${a.from}, ${a.to})` + (a.truncated ? ", the first 200 shown" : ""),
        ["Recorded", "Op", "Valid from", "Valid to", "Before it, valid from", "Entry", "Fields"],
        a.corrections.map((c) => [c._system_from, c.op, c._valid_from, c._valid_to || "open", c.prior_valid_from, `${c.log}#${c.seq}`, JSON.stringify(c.fields || {})])));
    } catch (e) { fill(out, el("p", null, "Corrections: " + e.message)); }
  });
  return el("section", { "aria-labelledby": "corr-h" }, el("h4", { id: "corr-h" }, "Corrections between two system times"), form, out);
}

// ---- start ----

let typing;
document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); $("token").value = ""; });
  $("logout").addEventListener("click", () => { signIn(""); });
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("q").value.trim();
    clearTimeout(typing);
    if (k) { state.entity = null; location.hash = "#/entities?key=" + enc(k); if (location.hash === "#/entities?key=" + enc(k)) route(); }
  });
  $("q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => listKeys($("q").value.trim(), ""), 200);
  });
  addEventListener("hashchange", route);
  // Live status: the health and SLO cards follow /v1/status while shown.
  setInterval(async () => {
    if ($("view-product").hidden || document.hidden) return;
    try { const s = await api("/v1/status"); renderHealth(s); renderQuality(s); } catch { /* the next tick tries again */ }
  }, 10000);
  api("/v1/product").then((p) => {
    state.product = p;
    $("title").textContent = p.name || p.id || "Meshlet";
    $("subtitle").textContent = p.id || "";
  }, () => {});
  if (state.token) signIn(state.token); else renderWho();
});
