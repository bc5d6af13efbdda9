// Maillage: the Pôles' figures (stats.html), its behaviour; the frame's sign-in and banner are in common.js, the
// page's own few words in stats.messages.json, the figures' words in the `stats` catalogs (/v1/stats/labels).
import { S, $, h, formatNumber, showBanner, hideBanner, signInAgain, signedIn, start } from "./common.js";

const WITHHELD = "—";

Object.assign(S, { figures: null, words: {}, wordsLang: null, shown: "" });

function word(key, vars) {
  const value = Object.prototype.hasOwnProperty.call(S.words, key) ? S.words[key] : key;
  return String(value).replace(/\{(\w+)\}/g, (all, name) => (vars && name in vars ? String(vars[name]) : all));
}

const label = (code) => (Object.prototype.hasOwnProperty.call(S.words, "label." + code) ? word("label." + code) : code);

function request(path, accept) {
  return fetch(path, {
    cache: "no-store", credentials: S.token ? "omit" : "same-origin",
    headers: { ...(S.token ? { Authorization: "Bearer " + S.token } : {}), Accept: accept, "Accept-Language": S.lang },
  });
}

function query() {
  const params = new URLSearchParams();
  const quarter = $("quarter").value.trim();
  if (quarter) params.set("quarter", quarter);
  return params.toString() ? "?" + params.toString() : "";
}

async function refused(response) {
  const body = await response.json().catch(() => ({}));
  const code = typeof body.type === "string" ? body.type.split("/").pop() : "http";
  const problem = { code, status: response.status, title: body.title, detail: body.detail };
  if (response.status === 401 || response.status === 403) {
    signInAgain(problem, response.status === 403 ? "needRead" : S.figures ? "expired" : "tokenRefused");
  } else {
    showBanner(problem, "figures");
  }
}

async function loadWords() {
  if (S.wordsLang === S.lang) return;
  const response = await request("/v1/stats/labels", "application/json");
  if (response.ok) { S.words = await response.json(); S.wordsLang = S.lang; }
}

async function load() {
  if (!signedIn()) return;
  try {
    await loadWords();
    const response = await request("/v1/stats" + query(), "application/json");
    if (!response.ok) { await refused(response); return; }
    S.figures = await response.json();
    hideBanner("figures");
  } catch (e) {
    showBanner({ titleKey: "offline" }, "figures");
  }
  render();
}

async function download() {
  const response = await request("/v1/stats.csv" + query(), "text/csv");
  if (!response.ok) { await refused(response); return; }
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (/filename="([^"]+)"/.exec(disposition) || [])[1] || "maillage-stats.csv";
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function count(value, total) {
  const cls = (total ? "total " : "") + (value == null ? "withheld" : "");
  return h("td", { class: cls.trim() || null }, value == null ? WITHHELD : formatNumber(value));
}

function countTable(table) {
  const head = h("tr", null, h("td"), table.columns.map((c) => h("th", { scope: "col" }, label(c))),
    h("th", { scope: "col", class: "total" }, label("total")));
  const rows = table.rows.map((r, i) => h("tr", null, h("th", { scope: "row" }, label(r)),
    table.cells[i].map((v) => count(v)), count(table.row_totals[i], true)));
  const totals = h("tr", null, h("th", { scope: "row", class: "total" }, label("total")),
    table.column_totals.map((v) => count(v, true)), count(table.total, true));
  return h("table", { "data-table": table.name }, h("thead", null, head), h("tbody", null, rows, totals));
}

function seconds(value) {
  return value == null ? WITHHELD : word("page.seconds", { value: formatNumber(value) });
}

function timingTable(timings) {
  const columns = ["acknowledged", "median_seconds", "p90_seconds"];
  const head = h("tr", null, h("td"), columns.map((c) => h("th", { scope: "col" }, label(c))));
  const rows = timings.map((t) => h("tr", null, h("th", { scope: "row" }, label(t.severity)),
    count(t.acknowledged), h("td", { class: t.median_seconds == null ? "withheld" : null }, seconds(t.median_seconds)),
    h("td", { class: t.p90_seconds == null ? "withheld" : null }, seconds(t.p90_seconds))));
  return h("table", { "data-table": "time_to_acknowledge" }, h("thead", null, head), h("tbody", null, rows));
}

function figure(name, table) {
  return h("section", { class: "figure", "data-testid": "figure-" + name }, h("h3", null, word("table." + name)), table);
}

function poleSection(pole) {
  const tables = pole.tables.filter((t) => t.rows.length).map((t) => figure(t.name, countTable(t)));
  if (pole.acknowledgement.length) tables.push(figure("time_to_acknowledge", timingTable(pole.acknowledgement)));
  return h("section", { class: "pole", "data-pole": pole.pole },
    h("h2", null, word("page.pole-quarter", { pole: pole.pole === "unknown" ? label("unknown") : pole.pole,
      quarter: pole.quarter })), tables);
}

function renderPoles() {
  const select = $("pole");
  const poles = S.figures ? S.figures.poles.map((p) => p.pole) : [];
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "" }, word("page.all-poles")),
    ...poles.map((p) => h("option", { value: p }, p === "unknown" ? label("unknown") : p)));
  select.value = poles.includes(chosen) ? chosen : "";
}

function render() {
  $("stats-title").textContent = word("page.title");
  document.title = word("page.title") + " — Maillage";
  $("stats-intro").textContent = word("page.intro");
  $("quarter-label").textContent = word("page.quarter");
  $("pole-label").textContent = word("page.pole");
  $("show").textContent = word("page.show");
  $("download").textContent = word("page.download");
  if (S.figures && !$("quarter").value) $("quarter").value = S.figures.quarter;
  renderPoles();
  $("legend").textContent = S.figures ? word("page.legend", { threshold: S.figures.threshold }) : "";
  const shown = S.figures ? S.figures.poles.filter((p) => !$("pole").value || p.pole === $("pole").value) : [];
  $("figures").replaceChildren(...(S.figures && !shown.length ? [h("p", null, word("page.empty"))]
    : shown.map(poleSection)));
}

function reset() {
  S.figures = null;
}

$("stats-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
$("pole").addEventListener("change", () => render());
$("download").addEventListener("click", () => download());

await start({
  messages: "stats", storage: "maillage.monitor", sessionPath: "/v1/session",
  render: () => { if (signedIn() && S.wordsLang !== S.lang) load(); else render(); },
  reset, begin: load,
});
