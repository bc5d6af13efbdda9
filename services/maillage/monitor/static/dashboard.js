// Maillage: the operators' dashboard (dashboard.html), its behaviour; what it shares with the on-call page is in
// common.js, its words in dashboard.messages.json.
import {
  S, $, t, h, s, known, plural, formatNumber, text, clockTime, learnServerTime, secondsSince, timeAgo,
  updateAges as refreshAges, claims, showBanner, hideBanner, signInAgain, signedIn, identity, start,
} from "./common.js";

const REFRESH_MS = 5000;
const NOTICE_MS = 4000;
const LAG_WARN = 100;  // messages behind: worth a look
const OUTCOMES = ["delivered", "filtered", "denied"];
const FLOW = { minutes: 60, bucket: 60 };
const ENDPOINTS = [
  ["overview", "/v1/overview"],
  ["flow", "/v1/flow?minutes=" + FLOW.minutes + "&bucket_seconds=" + FLOW.bucket],
  ["decisions", "/v1/decisions"],
  ["lag", "/v1/lag"],
  ["deadLetters", "/v1/dead-letters"],
  ["reviews", "/v1/reviews"],
  ["alerts", "/v1/alerts/unacknowledged"],
];

Object.assign(S, {
  loaded: false,             // one full refresh succeeded with this token
  data: {},                  // the last answer of each endpoint
  conn: "loading",           // loading | live | partial | offline
  updatedAt: null,
  busy: false,
  timer: 0,
  again: false,              // a refresh was asked for while one was under way
  replaying: new Set(),      // dead-letter ids with a replay under way
  keys: {},                  // what each section last showed: rebuilt only when it changes
});

/* A label from a closed vocabulary, or the raw code when this page does not know it. */
function label(table, code) {
  return known(table, code) || (code == null || code === "" ? "—" : String(code));
}

const num = (value) => (Number.isFinite(Number(value)) ? Number(value) : 0);
const items = (body) => (body && Array.isArray(body.items) ? body.items : []);

function ago(value) {
  const secs = secondsSince(value);
  if (secs == null) return "";
  const [n, unit] = secs < 60 ? [secs, "second"] : secs < 3600 ? [Math.floor(secs / 60), "minute"]
    : secs < 86400 ? [Math.floor(secs / 3600), "hour"] : [Math.floor(secs / 86400), "day"];
  return timeAgo(n, unit, "auto");
}

/* A moment: its clock time, and how long ago below it (kept fresh by updateAges). */
function when(value) {
  if (!value) return "—";
  return h("span", null, clockTime(value),
    h("span", { class: "sub", "data-at": value }, ago(value)));
}

const updateAges = () => refreshAges(ago);

function typeKey(type) {
  return String(type || "").replace(/^maillage\./, "").replace(/\.v\d+$/, "");
}

function typeLabel(type) {
  if (!type) return t("unknownType");
  return known("types", typeKey(type)) || String(type);
}

// --- the API ---------------------------------------------------------------------------------------

async function api(path, method) {
  const response = await fetch(path, {
    method: method || "GET", cache: "no-store", credentials: S.token ? "omit" : "same-origin",
    headers: {
      ...(S.token ? { Authorization: "Bearer " + S.token } : {}), Accept: "application/json", "Accept-Language": S.lang,
    },
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return { status: response.status, ok: response.ok, body: body && typeof body === "object" ? body : {} };
}

/* What a problem body (RFC 9457) says, for the banner. */
function problemOf(result) {
  const body = result.body || {};
  const code = typeof body.type === "string" ? body.type.split("/").pop() : "http";
  return { code, status: result.status, title: body.title, detail: body.detail };
}

async function refresh() {
  if (!signedIn()) return;
  if (S.busy) { S.again = true; return; }
  S.busy = true;
  S.again = false;
  clearTimeout(S.timer);
  const token = identity();
  try {
    const results = await Promise.all(ENDPOINTS.map(([key, path]) => api(path).then((result) => [key, result])));
    if (identity() !== token) return;  // signed out meanwhile
    const refused = results.find(([, r]) => r.status === 401) || results.find(([, r]) => r.status === 403);
    if (refused) {
      const [, result] = refused;
      signInAgain(problemOf(result), result.status === 403 ? "needRead" : S.loaded ? "expired" : "tokenRefused");
      return;
    }
    const failed = results.filter(([, r]) => !r.ok);
    for (const [key, result] of results) if (result.ok) S.data[key] = result.body;
    if (S.data.overview) learnServerTime(S.data.overview.generated_at);
    S.loaded = true;
    S.updatedAt = new Date();
    S.conn = failed.length ? "partial" : "live";
    if (failed.length) showBanner(problemOf(failed[0][1]), "refresh");
    else hideBanner("refresh");
  } catch (e) {
    if (identity() !== token) return;
    S.conn = "offline";
  } finally {
    S.busy = false;
    if (identity() === token) render();
    if (signedIn()) {  // the same operator: again in 5 s; another one signed in meanwhile: now
      clearTimeout(S.timer);
      S.timer = setTimeout(refresh, S.again || identity() !== token ? 0 : REFRESH_MS);
    }
  }
}

const underWay = () => S.replaying;

// Operators act on dead letters only: a danger disclosure is reviewed at the agency that raised it.
async function act(kind, id) {
  const pending = underWay(kind);
  if (pending.has(id) || !signedIn()) return;
  pending.add(id);
  render();
  const path = "/v1/dead-letters/" + encodeURIComponent(id) + "/replay";
  let result;
  try {
    result = await api(path, "POST");
  } catch (e) {
    pending.delete(id);
    showBanner({ titleKey: "offline" }, "action");
    render();
    return;
  }
  pending.delete(id);
  if (result.status === 401) {
    signInAgain(problemOf(result), "expired");
    return;
  }
  if (result.ok) {
    const list = items(S.data.deadLetters);
    S.data.deadLetters = { items: list.map((item) => (String(item.id) === String(id) ? result.body : item)) };
    hideBanner("action");
    notice(t("replayDone"));
  } else if (result.status === 403) {
    showBanner(problemOf(result), "action", "needAct");
  } else {
    showBanner(problemOf(result), "action", result.status === 409 ? "conflict" : null);
  }
  render();
  refresh();
}

// --- rendering ---------------------------------------------------------------------------------

function render() {
  renderWho();
  renderStatus();
  renderTiles();
  renderFlow();
  renderDecisions();
  renderLag();
  renderDeadLetters();
  renderReviews();
  renderAlerts();
  updateAges();
}

/* Rebuild a section only when what it shows changed: a button under the pointer stays the same node. */
function changed(name, ...what) {
  const key = JSON.stringify([S.lang, ...what]);
  if (S.keys[name] === key) return false;
  S.keys[name] = key;
  return true;
}

function renderWho() {
  const c = S.token ? claims(S.token) : S.session ? {
    sub: S.session.subject, agency: S.session.issuer, scope: S.session.scopes.join(" "),
    exp: S.session.expiresAt.getTime() / 1000,
  } : {};
  const scopes = String(c.scope || "").split(/\s+/);
  $("who-name").textContent = [text(c.sub), text(c.agency)].filter(Boolean).join(" · ");
  const scope = $("who-scope");
  const canAct = scopes.includes("monitor:act");
  scope.textContent = canAct ? t("scopeAct") : t("scopeRead");
  scope.classList.toggle("act", canAct);
  scope.dataset.act = String(canAct);
  $("who-until").textContent = typeof c.exp === "number" ? t("until", { time: clockTime(new Date(c.exp * 1000)) }) : "";
}

function renderStatus() {
  const box = $("status");
  box.dataset.state = S.conn;
  const time = S.updatedAt ? clockTime(S.updatedAt, true) : "";
  $("status-text").textContent = t("status." + S.conn, { time });
}

function tile(attrs, labelText, value, hint, extra) {
  const tag = attrs.href ? "a" : "div";
  return h(tag, Object.assign({ class: "tile" }, attrs),
    h("span", { class: "tile-label" }, labelText),
    h("span", { class: "tile-value", "data-testid": "tile-value" }, value),
    extra || null,
    hint ? h("span", { class: "tile-hint" }, hint) : null);
}

function renderTiles() {
  const o = S.data.overview;
  if (!changed("tiles", o && [o.decisions, o.rejected, o.dead_letters_waiting, o.reviews_pending,
    o.alerts_unacknowledged, o.max_lag, o.minutes])) return;
  const dash = "—";
  const decisions = (o && o.decisions) || {};
  const counts = OUTCOMES.map((outcome) => num(decisions[outcome]));
  const total = counts.reduce((a, b) => a + b, 0);
  const minutes = o ? num(o.minutes) : FLOW.minutes;
  const split = h("div", { class: "split", "aria-hidden": "true" }, OUTCOMES.map((outcome, i) => {
    if (!counts[i]) return null;
    const part = h("span", { class: outcome });
    part.style.flex = String(counts[i]);  // through the CSSOM: the CSP refuses style attributes in markup
    return part;
  }));
  const list = h("ul", { class: "counts" }, OUTCOMES.map((outcome, i) =>
    h("li", { "data-testid": "tile-" + outcome, "data-value": o ? counts[i] : "" },
      h("span", { class: "sw " + outcome, "aria-hidden": "true" }), t("outcomes." + outcome),
      h("strong", null, o ? formatNumber(counts[i]) : dash))));
  const level = (n, warn) => (!o ? null : n > 0 ? warn : "ok");
  const dead = o ? num(o.dead_letters_waiting) : 0;
  const reviews = o ? num(o.reviews_pending) : 0;
  const alerts = o ? num(o.alerts_unacknowledged) : 0;
  const lag = o ? num(o.max_lag) : 0;
  const rejected = o ? num(o.rejected) : 0;
  $("tiles").replaceChildren(
    tile({ class: "tile wide", href: "#flow", "data-testid": "tile-decisions", "data-value": o ? total : "" },
      t("tile.decisions"), o ? formatNumber(total) : dash, t("tile.decisionsHint", { minutes }),
      h("div", null, split, list)),
    tile({ "data-testid": "tile-rejected", "data-value": o ? rejected : "", "data-level": level(rejected, "warn") },
      t("tile.rejected"), o ? formatNumber(rejected) : dash, t("tile.rejectedHint")),
    tile({ href: "#dead-letters", "data-testid": "tile-dead-letters", "data-value": o ? dead : "",
           "data-level": level(dead, "warn") }, t("tile.dead"), o ? formatNumber(dead) : dash, t("tile.deadHint")),
    tile({ href: "#reviews", "data-testid": "tile-reviews", "data-value": o ? reviews : "",
           "data-level": level(reviews, "warn") }, t("tile.reviews"), o ? formatNumber(reviews) : dash,
      t("tile.reviewsHint")),
    tile({ href: "#alerts", "data-testid": "tile-alerts", "data-value": o ? alerts : "",
           "data-level": level(alerts, "alarm") }, t("tile.alerts"), o ? formatNumber(alerts) : dash,
      t("tile.alertsHint")),
    tile({ href: "#lag", "data-testid": "tile-lag", "data-value": o ? lag : "",
           "data-level": !o ? null : lag >= LAG_WARN ? "warn" : "ok" }, t("tile.lag"),
      o ? formatNumber(lag) : dash, t("tile.lagHint")));
}

// --- the flow charts -------------------------------------------------------------------------------

function renderLegend() {
  $("legend").replaceChildren(...OUTCOMES.map((outcome) =>
    h("li", null, h("span", { class: "sw " + outcome, "aria-hidden": "true" }), t("outcomes." + outcome))));
}

function renderFlow() {
  const flow = S.data.flow;
  const box = $("charts");
  if (!changed("flow", flow, box.clientWidth)) return;
  renderLegend();
  const times = flow && Array.isArray(flow.times) ? flow.times : [];
  const bucket = flow ? num(flow.bucket_seconds) || FLOW.bucket : FLOW.bucket;
  let series = flow && Array.isArray(flow.series) ? flow.series.filter((x) => x && typeof x === "object") : [];
  const empty = !series.length;
  if (empty) series = [{ sector: "", delivered: [], filtered: [], denied: [] }];
  const cards = series.map((one) => {
    const totals = OUTCOMES.map((outcome) => (Array.isArray(one[outcome]) ? one[outcome] : [])
      .reduce((a, b) => a + num(b), 0));
    const total = totals.reduce((a, b) => a + b, 0);
    const name = empty ? t("allSectors") : label("sectors", one.sector);
    const plot = h("div", { class: "plot" });
    const card = h("figure", { class: "chart", "data-testid": "flow-card", "data-sector": one.sector || "" },
      h("div", { class: "chart-head" }, h("h3", null, name),
        h("span", { class: "chart-total" }, plural("nDecisions", total))),
      h("p", { class: "chart-counts" }, OUTCOMES.map((outcome, i) =>
        t("outcomes." + outcome) + " " + formatNumber(totals[i])).join(" · ")),
      plot);
    return { one, totals, total, name, plot, card };
  });
  box.replaceChildren(...cards.map((c) => c.card));
  for (const c of cards) {
    const width = Math.max(240, Math.floor(c.plot.clientWidth || 320));
    c.plot.append(chart(c, times, bucket, width));
    if (empty) c.plot.append(h("p", { class: "empty-note", "data-testid": "flow-empty" }, t("flowEmpty")));
  }
}

/* A round top for the y axis and a step between its ticks: 1, 2 or 5 times a power of ten. */
function scale(max) {
  if (max <= 4) return { top: Math.max(1, Math.ceil(max)), step: 1 };
  const rough = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((f) => f * magnitude).find((v) => v >= rough);
  return { top: Math.ceil(max / step) * step, step };
}

/* Stacked bars per time bucket (delivered at the bottom, then filtered, then denied), with axes. */
function chart(c, times, bucket, width) {
  const height = 190;
  const m = { left: 38, right: 10, top: 22, bottom: 42 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const n = Math.max(1, times.length);
  const stacks = [];
  for (let i = 0; i < n; i += 1) {
    stacks.push(OUTCOMES.map((outcome) => num(Array.isArray(c.one[outcome]) ? c.one[outcome][i] : 0)));
  }
  const { top, step } = scale(Math.max(0, ...stacks.map((v) => v.reduce((a, b) => a + b, 0))));
  const y = (v) => m.top + ph - (v / top) * ph;
  const slot = pw / n;
  const barWidth = Math.max(1.5, Math.min(slot * 0.72, 22));
  const parts = [];

  for (let v = 0; v <= top + 1e-9; v += step) {
    parts.push(s("line", { class: "gridline", x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v) }));
    parts.push(s("text", { class: "tick", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, formatNumber(v)));
  }
  stacks.forEach((values, i) => {
    let base = 0;
    const x = m.left + i * slot + (slot - barWidth) / 2;
    values.forEach((value, k) => {
      if (!value) return;
      const outcome = OUTCOMES[k];
      parts.push(s("rect", { class: "seg " + outcome, x: x.toFixed(2), y: y(base + value).toFixed(2),
                             width: barWidth.toFixed(2), height: Math.max(1, y(base) - y(base + value)).toFixed(2),
                             "data-outcome": outcome, "data-value": value },
        s("title", null, clockTime(times[i]) + " · " + t("outcomes." + outcome) + " : " + formatNumber(value))));
      base += value;
    });
  });
  parts.push(s("line", { class: "axis", x1: m.left, x2: m.left + pw, y1: y(0), y2: y(0) }));
  parts.push(s("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: y(0) }));

  if (times.length) {
    const end = new Date(Date.parse(times[times.length - 1]) + bucket * 1000);
    const every = Math.max(1, Math.ceil(n / (pw < 320 ? 3 : 4)));
    const ticks = [];
    for (let i = 0; i < n; i += every) ticks.push([i, times[i]]);
    if (n - ticks[ticks.length - 1][0] < every / 2) ticks.pop();  // too close to the end label
    ticks.push([n, end.toISOString()]);
    for (const [i, at] of ticks) {
      const x = m.left + i * slot;
      parts.push(s("line", { class: "axis", x1: x, x2: x, y1: y(0), y2: y(0) + 4 }));
      parts.push(s("text", { class: "tick", x, y: y(0) + 16, "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" },
        clockTime(at)));
    }
  }
  parts.push(s("text", { class: "axis-title", x: m.left, y: 12, "text-anchor": "start" }, t("yAxis")));
  parts.push(s("text", { class: "axis-title", x: m.left + pw / 2, y: height - 6, "text-anchor": "middle" }, t("xAxis")));

  const [delivered, filtered, denied] = c.totals;
  const summary = t("chartLabel", { sector: c.name, total: plural("nDecisions", c.total), delivered, filtered, denied });
  return s("svg", { viewBox: "0 0 " + width + " " + height, width, height, role: "img", "aria-label": summary,
                    "data-testid": "flow-chart", "data-sector": c.one.sector || "", "data-total": c.total,
                    "data-delivered": delivered, "data-filtered": filtered, "data-denied": denied,
                    preserveAspectRatio: "xMidYMid meet" },
    s("title", null, summary), parts);
}

// --- tables ----------------------------------------------------------------------------------------

/* A section that holds one table: a title the script writes, a help line, then the table. */
function tableSection(section) {
  const id = section.id;
  section.append(h("div", { class: "section-head" }, h("h2", { id: id + "-title", "data-testid": id + "-title" })),
    h("p", { class: "section-help", "data-i18n": section.dataset.help }),
    h("div", { id: id + "-body", class: "table-wrap" }));
}

/* A table whose cells carry their column's name, so that on a phone each row reads as a small card. */
function table(testid, columns, rows) {
  return h("table", { class: "data", "data-testid": testid },
    h("thead", null, h("tr", null, columns.map((col) =>
      h("th", { scope: "col", class: col.cls || null }, col.label)))),
    h("tbody", null, rows.map((row) => h("tr", row.attrs, row.cells.map((cell, i) =>
      h("td", { class: columns[i].cls || null, "data-label": columns[i].label }, cell))))));
}

/* The table of section `section` (its id), rebuilt only when its rows (or `also`) changed, so that a button under
   the pointer stays the same node; the note `empty` when there is no row. A column is "key" or "key:class". */
function fillTable(section, { rows, also = [], empty, columns, row }) {
  if (!changed(section, rows, ...also)) return;
  const out = $(section + "-body");
  if (!rows.length) { out.replaceChildren(emptyNote(section + "-empty", empty)); return; }
  out.replaceChildren(table(section + "-table", cols(...columns), rows.map(row)));
}

function emptyNote(testid, key) {
  return h("p", { class: "empty", "data-testid": testid }, t(key));
}

function cols(...names) {
  return names.map((name) => {
    const [key, cls] = name.split(":");
    return { label: t("col." + key), cls: cls || null };
  });
}

/* An identifier (group, topic, agency id): monospace, and if it must wrap, after a dot. */
function ident(value) {
  const parts = String(value || "").split(".");
  return h("span", { class: "ident", title: String(value || "") },
    parts.flatMap((part, i) => (i < parts.length - 1 ? [part + ".", h("wbr")] : [part])));
}

/* A row's action (replay): its button, disabled and saying `busyKey` while the action is under way. */
function actionButton(kind, id, busyKey) {
  const busy = underWay(kind).has(id);
  const button = h("button", { type: "button", class: "btn", "data-testid": kind + "-button", disabled: busy },
    t(busy ? busyKey : kind));
  button.addEventListener("click", () => act(kind, id));
  return button;
}

function code(value) {
  return value ? h("span", { class: "code" }, String(value)) : "—";
}

function renderDecisions() {
  $("decisions-title").textContent = t("decisionsTitle");
  const rows = items(S.data.decisions).slice().sort((a, b) => num(b.count) - num(a.count)
    || String(a.sector).localeCompare(String(b.sector)) || String(a.outcome).localeCompare(String(b.outcome)));
  fillTable("decisions", {
    rows, empty: "decisionsEmpty", columns: ["type", "sector", "outcome", "basis", "count:num", "removed:num"],
    row: (d) => ({
      attrs: { "data-testid": "decision-row", "data-outcome": d.outcome, "data-sector": d.sector },
      cells: [h("span", { title: String(d.type || "") }, typeLabel(d.type)), label("sectors", d.sector),
              h("span", { class: "pill " + (OUTCOMES.includes(d.outcome) ? d.outcome : "info") },
                label("outcome", d.outcome)),
              label("bases", d.legal_basis), formatNumber(num(d.count)), formatNumber(num(d.categories_removed))],
    }),
  });
}

function renderLag() {
  const body = S.data.lag;
  $("lag-measured").textContent = body && body.measured_at ? t("measured", { time: clockTime(body.measured_at, true) }) : "";
  fillTable("lag", {
    rows: body && Array.isArray(body.groups) ? body.groups : [],
    empty: "lagEmpty", columns: ["group", "topic", "lag:num", "partitions:num"],
    row: (g) => ({
      attrs: { "data-testid": "lag-row", "data-group": g.group, "data-lag": num(g.lag) },
      cells: [ident(g.group), ident(g.topic),
              h("span", { class: num(g.lag) > 0 ? "lagging" : null }, formatNumber(num(g.lag))),
              formatNumber(num(g.partitions))],
    }),
  });
}

function serviceLabel(service) {
  const value = String(service || "");
  if (value === "gateway") return t("services.gateway");
  if (value.startsWith("agency:")) return t("services.agency", { id: value.slice(7) });
  return value || "—";
}

function renderDeadLetters() {
  const list = items(S.data.deadLetters);
  const waiting = list.filter((d) => !d.replayed_at).length;
  const title = $("dead-letters-title");
  title.replaceChildren(t("deadTitle"), waiting ? h("span", { class: "n" }, t("waitingN", { n: waiting })) : "");
  fillTable("dead-letters", {
    rows: list, also: [[...S.replaying]], empty: "deadEmpty",
    columns: ["reason", "service", "eventType", "source", "at", "replayed", "action:act-cell"],
    row: (d) => {
      const id = String(d.id);
      const replayed = Boolean(d.replayed_at);
      let action;
      if (d.replayable && !replayed) {
        action = actionButton("replay", id, "replaying");
      } else if (!d.replayable) {
        action = h("span", { class: "muted", title: t("notReplayableHelp"), "data-testid": "not-replayable" },
          t("notReplayable"));
      } else {
        action = "";
      }
      return {
        attrs: { "data-testid": "dead-letter-row", "data-id": id, "data-reason": d.reason,
                 "data-replayed": String(replayed), class: replayed ? "is-done" : null },
        cells: [
          h("span", { "data-testid": "reason" }, label("reasons", d.reason), " ", code(d.reason),
            text(d.detail) ? h("span", { class: "sub" }, text(d.detail)) : null),
          serviceLabel(d.service),
          d.event_type ? h("span", { title: String(d.event_type) }, typeLabel(d.event_type))
            : h("span", { class: "muted" }, t("unknownType")),
          d.source ? ident(d.source) : h("span", { class: "muted" }, t("unknownSource")),
          when(d.at),
          h("span", { "data-testid": "replayed" }, replayed
            ? h("span", { class: "pill ok" }, t("replayedAt", { time: clockTime(d.replayed_at) }))
            : h("span", { class: "pill waiting" }, t("notReplayed")),
            num(d.replays) > 1 ? h("span", { class: "sub" }, t("replayedTimes", { n: num(d.replays) })) : null),
          action,
        ],
      };
    },
  });
}

/* Art. 458bis reviews, counted: each is done at the agency that raised the alert, where its justification is. */
function renderReviews() {
  const r = S.data.reviews;
  const pending = r ? num(r.pending) : 0;
  $("reviews-title").replaceChildren(t("reviewsTitle"), pending ? h("span", { class: "n" }, "(" + pending + ")") : "");
  const decided = r ? pending + num(r.approved) + num(r.rejected) : 0;
  fillTable("reviews", {
    rows: decided ? [r] : [], empty: "reviewsEmpty",
    columns: ["pending:num", "approved:num", "rejected:num", "oldestPending"],
    row: (counts) => ({
      attrs: { "data-testid": "review-counts", "data-pending": num(counts.pending),
               "data-approved": num(counts.approved), "data-rejected": num(counts.rejected) },
      cells: [formatNumber(num(counts.pending)), formatNumber(num(counts.approved)),
              formatNumber(num(counts.rejected)), counts.oldest_pending_since ? when(counts.oldest_pending_since) : "—"],
    }),
  });
}

function renderAlerts() {
  const list = items(S.data.alerts);
  $("alerts-title").replaceChildren(t("alertsTitle"), list.length ? h("span", { class: "n" }, "(" + list.length + ")") : "");
  fillTable("alerts", {
    rows: list, empty: "alertsEmpty", columns: ["agency", "severity", "levels:num", "since"],
    row: (a) => ({
      attrs: { "data-testid": "alert-row", "data-alert-id": a.alert_id, "data-severity": a.severity },
      cells: [ident(a.agency),
              h("span", { class: "pill " + (["info", "high", "imminent"].includes(a.severity) ? a.severity : "info") },
                label("severity", a.severity)),
              formatNumber(num(a.levels_paged)), when(a.since || a.received_at)],
    }),
  });
}

// --- messages --------------------------------------------------------------------------------------

let noticeTimer = 0;
function notice(message) {
  const el = $("notice");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, NOTICE_MS);
}

// --- signing in and out ------------------------------------------------------------------------

function reset() {
  clearTimeout(S.timer);
  S.data = {};
  S.keys = {};
  S.loaded = false;
  S.updatedAt = null;
  S.conn = "loading";
  S.replaying = new Set();
}

function begin() {
  render();
  refresh();
}

document.querySelectorAll("section[data-help]").forEach(tableSection);

await start({ messages: "dashboard", storage: "maillage.monitor", sessionPath: "/v1/session", render, reset, begin });
$("refresh").addEventListener("click", () => refresh());
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (signedIn()) renderFlow(); }, 150);
});
document.addEventListener("visibilitychange", () => { if (!document.hidden && signedIn()) refresh(); });
window.addEventListener("online", () => { if (signedIn()) refresh(); });

