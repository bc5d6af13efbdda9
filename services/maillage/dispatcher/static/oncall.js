// Maillage: the on-call worker's page (oncall.html), its behaviour; what it shares with the dashboard is in
// common.js, its words in oncall.messages.json.
import {
  S, $, t, h, own, known, text, clockTime, learnServerTime, secondsSince, timeAgo, updateAges as refreshAges, claims,
  showBanner, hideBanner, showView, signInAgain, signedIn, start,
} from "./common.js";

const RANK = { info: 0, high: 1, imminent: 2 };
const SHOWN = ["open", "unacknowledged"];
const DONE_MS = 3000;          // how long an acknowledged card stays, saying so
const ACK_TIMEOUT_MS = 15000;  // no answer to an ack by then: let the worker tap again
const PING_MS = 20000;         // a ping this often; no message within PONG_MS after it: the socket is dead
const PONG_MS = 10000;
const MAX_BACKOFF_S = 30;

Object.assign(S, {
  ws: null,
  signedIn: false,            // a hello came on the current socket
  hello: null,
  conn: "connecting",         // connecting | live | waiting
  attempt: 0,
  retryAt: 0,
  retryTimer: 0,
  pingTimer: 0,
  pongTimer: 0,
  lastMessageAt: 0,
  hadSnapshot: false,
  alerts: new Map(),          // alert_id → alert, as the server last sent it
  done: new Map(),            // alert_id → {alert, byYou, level, timer}: acknowledged, shown a moment more
  pending: new Map(),         // alert_id → {timer, via}: an ack sent, no answer yet
  unseen: new Set(),          // paged since the worker last touched the page
});

const severityOf = (alert) => (own(RANK, alert.severity) !== undefined ? alert.severity : "info");
const kindLabel = (kind) => known("kind", kind) || t("kind.other");
const roleLabel = (role) => known("role", role) || "";

function personName(alert) {
  const identity = (alert.data && alert.data.identity) || {};
  return [text(identity.given_name), text(identity.family_name)].filter(Boolean).join(" ");
}

function municipality(alert) {
  return text(alert.data && alert.data.location && alert.data.location.municipality);
}

function ago(value) {
  const seconds = secondsSince(value);
  if (seconds == null) return "";
  if (seconds < 45) return t("justNow");
  const [n, unit] = seconds < 3600 ? [Math.max(1, Math.floor(seconds / 60)), "minute"]
    : seconds < 86400 ? [Math.floor(seconds / 3600), "hour"] : [Math.floor(seconds / 86400), "day"];
  return timeAgo(n, unit, "always");
}

const updateAges = () => refreshAges(ago);

function tokenExpiry(token) {
  const { exp } = claims(token);
  return typeof exp === "number" ? new Date(exp * 1000) : null;
}

// --- attention ---------------------------------------------------------------------------------

let audio = null;
function unlockAudio() {
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    if (audio && audio.state === "suspended") audio.resume();
  } catch (e) { audio = null; }
}

function beep() {
  if (!audio || audio.state !== "running") return;
  const start = audio.currentTime;
  [[0, 880], [0.28, 660], [0.56, 880]].forEach(([offset, frequency]) => {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.22);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.24);
  });
}

function announce(message) {
  const region = $("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = message; }, 50);
}

function attention(alert) {
  S.unseen.add(alert.alert_id);
  try { if (navigator.vibrate) navigator.vibrate([300, 120, 300, 120, 300]); } catch (e) { /* not allowed */ }
  beep();
  announce(t("announceNew", { severity: t("severity." + severityOf(alert)), kind: kindLabel(alert.kind) }));
}

function markSeen() {
  unlockAudio();
  if (!S.unseen.size) return;
  S.unseen.clear();
  // No re-render: a card rebuilt under the finger would swallow the tap that is under way.
  for (const card of document.querySelectorAll(".card.fresh")) card.classList.remove("fresh");
  updateTitle();
}

// --- rendering ---------------------------------------------------------------------------------

/* Everything in the current language (common.js has done the page's fixed labels). */
function render() {
  renderHello();
  renderStatus();
  renderAlerts();
}

function renderHello() {
  const hello = S.hello;
  $("hello-worker").textContent = hello ? String(hello.worker) : "…";
  $("hello-agency").textContent = hello ? String(hello.agency_name || hello.agency || "") : "";
  const levels = $("hello-levels");
  levels.hidden = !hello;
  if (hello) {
    const list = Array.isArray(hello.levels) ? hello.levels : [];
    levels.textContent = list.length ? t(list.length > 1 ? "onCallMany" : "onCall", { levels: list.join(", ") })
      : t("offDuty");
    levels.classList.toggle("off", !list.length);
  }
  const expiry = S.token ? tokenExpiry(S.token) : S.session ? S.session.expiresAt : null;
  $("hello-until").hidden = !(hello && expiry);
  if (hello && expiry) $("hello-until").textContent = t("until", { time: clockTime(expiry) });
}

function renderStatus() {
  const box = $("status");
  box.dataset.state = S.conn;
  const seconds = Math.max(1, Math.ceil((S.retryAt - Date.now()) / 1000));
  $("status-text").textContent = t("conn." + S.conn, { s: seconds });
  $("status-help").textContent = S.conn === "waiting" ? t("conn.waitingHelp") : "";
  $("status-help").hidden = S.conn !== "waiting";
  $("retry").hidden = S.conn !== "waiting";
}

function updateTitle() {
  const base = "Maillage · " + t("app");
  const open = S.alerts.size;
  const fresh = S.unseen.size ? t("newAlert") + " · " : "";
  document.title = open ? "(" + open + ") " + fresh + base : base;
}

function ordered() {
  const items = [];
  for (const alert of S.alerts.values()) items.push({ alert, done: null });
  for (const [id, done] of S.done) if (!S.alerts.has(id)) items.push({ alert: done.alert, done });
  const unack = (item) => (item.alert.state === "unacknowledged" ? 1 : 0);
  items.sort((a, b) => RANK[severityOf(b.alert)] - RANK[severityOf(a.alert)] || unack(b) - unack(a)
    || (Date.parse(a.alert.received_at) || 0) - (Date.parse(b.alert.received_at) || 0));
  return items;
}

const cards = new Map(); // alert_id → {key, el}: a card is rebuilt only when what it shows changed

function renderAlerts() {
  const list = $("alerts");
  const wanted = [];
  const keep = new Set();
  for (const { alert, done } of ordered()) {
    const id = String(alert.alert_id);
    keep.add(id);
    const key = JSON.stringify([S.lang, alert, done && done.byYou, done && done.level, S.pending.has(id)]);
    let entry = cards.get(id);
    if (!entry || entry.key !== key) {
      entry = { key, el: card(alert, done) };
      cards.set(id, entry);
    }
    entry.el.classList.toggle("fresh", S.unseen.has(id) && !done);
    wanted.push(entry.el);
  }
  for (const id of [...cards.keys()]) if (!keep.has(id)) cards.delete(id);
  let cursor = list.firstChild; // move only what is out of place, so untouched cards keep their state
  for (const el of wanted) {
    if (el === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(el, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
  $("empty").hidden = wanted.length > 0;
  $("count").textContent = S.alerts.size ? "(" + S.alerts.size + ")" : "";
  updateTitle();
}

function card(alert, done) {
  const id = String(alert.alert_id);
  const severity = severityOf(alert);
  const unacknowledged = alert.state === "unacknowledged" && !done;
  const titleId = "alert-" + id;
  const name = personName(alert);
  const place = municipality(alert);
  const role = roleLabel(alert.subject_role);
  const grouped = Number(alert.grouped) > 1;

  const parts = [
    h("div", { class: "head" },
      h("span", { class: "sev", "data-testid": "severity" }, t("severity." + severity)),
      h("span", { class: "new" }, t("isNew")),
      h("span", { class: "age", "data-testid": "age", "data-at": alert.received_at || "" },
        ago(alert.received_at))),
    h("p", { class: "kind", "data-testid": "kind" }, kindLabel(alert.kind)),
  ];
  if (unacknowledged) {
    parts.push(h("div", { class: "unack", "data-testid": "unacknowledged" },
      h("strong", null, t("unackTitle")), h("span", null, t("unackDetail"))));
  }
  if (role) parts.push(h("p", { class: "role", "data-testid": "role" }, role));
  parts.push(h("h2", { class: "person" + (name ? "" : " unknown"), id: titleId, "data-testid": "person" },
    name || t("noIdentity")));
  if (place) parts.push(h("p", { class: "place", "data-testid": "municipality" }, place));
  parts.push(h("ul", { class: "meta" },
    h("li", { "data-testid": "level" },
      h("strong", null, t("level", { level: alert.level, levels: alert.levels || alert.level })),
      text(alert.level_name) ? " · " + text(alert.level_name) : ""),
    h("li", { "data-testid": "source" }, t("source", { name: text(alert.source_name) || alert.source_agency })),
    grouped ? h("li", { class: "grouped", "data-testid": "grouped" }, t("grouped", { n: alert.grouped })) : null,
    h("li", { class: "muted" }, t("received", { time: clockTime(alert.received_at) }))));
  // Every alert grouped under this one: acknowledged with it, so each is shown.
  const members = Array.isArray(alert.group) ? alert.group : [];
  if (members.length) {
    parts.push(h("ul", { class: "meta group", "data-testid": "group" }, members.map((m) =>
      h("li", { "data-testid": "group-member", "data-alert-id": String(m.alert_id) },
        h("strong", null, t("severity." + severityOf(m))),
        " · " + kindLabel(m.kind) + " · " + t("source", { name: text(m.source_name) || m.source_agency })
        + " · " + clockTime(m.received_at)))));
  }

  if (done) {
    const message = done.byYou ? t("ackedYou")
      : done.level ? t("ackedOtherLevel", { level: done.level }) : t("ackedOther");
    parts.push(h("div", { class: "done-msg", "data-testid": "ack-done", role: "status" }, message));
  } else {
    const pending = S.pending.has(id);
    const button = h("button", { type: "button", class: "ack", "data-testid": "ack-button", disabled: pending,
                                 "aria-describedby": titleId }, pending ? t("acking") : t("ack"));
    button.addEventListener("click", () => acknowledge(id));
    parts.push(button);
  }
  return h("article", {
    class: "card sev-" + severity + (unacknowledged ? " is-unack" : "") + (done ? " is-done" : ""),
    "data-testid": "alert-card", "data-alert-id": id, "data-severity": severity,
    "data-state": done ? "acknowledged" : alert.state, "aria-labelledby": titleId,
  }, parts);
}

// --- alerts ------------------------------------------------------------------------------------

function upsert(alert) {
  if (!alert || !alert.alert_id) return false;
  const id = String(alert.alert_id);
  if (!SHOWN.includes(alert.state)) {
    S.alerts.delete(id);
    return false;
  }
  if (S.done.has(id)) return false; // already acknowledged here: a late update does not bring it back
  S.alerts.set(id, alert);
  return true;
}

function finish(id, byYou, level) {
  clearPending(id);
  const alert = S.alerts.get(id);
  S.alerts.delete(id);
  S.unseen.delete(id);
  if (alert && !S.done.has(id)) {
    const done = { alert, byYou, level, timer: 0 };
    done.timer = setTimeout(() => { S.done.delete(id); renderAlerts(); }, DONE_MS);
    S.done.set(id, done);
    announce(byYou ? t("ackedYou") : t("ackedOther"));
  }
  renderAlerts();
}

function clearPending(id) {
  const pending = S.pending.get(id);
  if (pending) clearTimeout(pending.timer);
  S.pending.delete(id);
}

function acknowledge(id) {
  markSeen();
  if (S.pending.has(id) || !S.alerts.has(id)) return;
  const ws = S.ws;
  let via = "http";
  if (ws && ws.readyState === WebSocket.OPEN && S.signedIn) {
    try {
      ws.send(JSON.stringify({ type: "ack", alert_id: id }));
      via = "ws";
    } catch (e) { via = "http"; }
  }
  const timer = setTimeout(() => {
    S.pending.delete(id);
    renderAlerts();
    showBanner({ titleKey: "ackTimeout" }, "ack");
  }, ACK_TIMEOUT_MS);
  S.pending.set(id, { timer, via });
  if (via === "http") ackOverHttp(id);
  renderAlerts();
}

/* When the socket is down, the same acknowledgement over HTTP. */
async function ackOverHttp(id) {
  try {
    const response = await fetch("/v1/alerts/" + encodeURIComponent(id) + "/ack", {
      method: "POST", cache: "no-store", credentials: S.token ? "omit" : "same-origin",
      headers: {
        ...(S.token ? { Authorization: "Bearer " + S.token } : {}), "Accept-Language": S.lang, Accept: "application/json",
      },
    });
    const body = await response.json().catch(() => ({}));
    if (!S.pending.has(id)) return;
    if (response.ok) {
      finish(id, true, null);
    } else {
      const code = typeof body.type === "string" ? body.type.split("/").pop() : "http";
      handle({ type: "error", status: response.status, code, title: body.title, detail: body.detail, alert_id: id });
    }
  } catch (e) {
    clearPending(id);
    renderAlerts();
    showBanner({ titleKey: "offline" }, "ack");
  }
}

function handle(message) {
  switch (message.type) {
    case "hello":
      learnServerTime(message.now);
      S.signedIn = true;
      S.hello = message;
      S.attempt = 0;
      S.conn = "live";
      hideBanner("auth");
      renderHello();
      renderStatus();
      startHeartbeat();
      break;
    case "snapshot": {
      learnServerTime(message.now);
      const known = new Set(S.alerts.keys());
      S.alerts = new Map();
      const fresh = [];
      for (const alert of Array.isArray(message.alerts) ? message.alerts : []) {
        if (upsert(alert) && S.hadSnapshot && !known.has(String(alert.alert_id))) fresh.push(alert);
      }
      for (const id of [...S.unseen]) if (!S.alerts.has(id)) S.unseen.delete(id);
      S.hadSnapshot = true;
      fresh.forEach(attention); // paged while this page was reconnecting
      renderAlerts();
      break;
    }
    case "alert":
      if (upsert(message.alert)) attention(message.alert);
      renderAlerts();
      break;
    case "update":
      upsert(message.alert);
      renderAlerts();
      break;
    case "acknowledged":
      finish(String(message.alert_id), Boolean(message.by_you), message.level);
      break;
    case "acked":
      if (message.alert) finish(String(message.alert.alert_id), true, null);
      break;
    case "error":
      onError(message);
      break;
    default: // pong, and whatever a later server adds
      break;
  }
}

function onError(message) {
  if (message.status === 401 || (!S.signedIn && message.status === 403)) {
    signInAgain(message, S.signedIn || S.hello ? "expired" : "tokenRefused");
    return;
  }
  if (message.alert_id) {
    const id = String(message.alert_id);
    clearPending(id);
    if (message.status === 409) {
      finish(id, false, null);
      showBanner(message, "ack", "alreadyTaken");
    } else if (message.status === 404) {
      S.alerts.delete(id);
      S.unseen.delete(id);
      showBanner(message, "ack", "gone");
    } else {
      showBanner(message, "ack");
    }
    renderAlerts();
    return;
  }
  showBanner(message, "error");
  if (!S.signedIn) dropSocket(); // refused before signing in, for another reason: try again later
}

// --- the socket --------------------------------------------------------------------------------

function socketUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws";
}

function connect() {
  clearTimeout(S.retryTimer);
  if (!signedIn()) { showView(); return; }
  closeSocket();
  S.signedIn = false;
  S.conn = "connecting";
  renderStatus();
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (e) {
    scheduleReconnect();
    return;
  }
  S.ws = ws;
  ws.onopen = () => {
    if (S.ws !== ws) return;
    S.lastMessageAt = Date.now();
    // With a session, the cookie signed the socket in at its handshake: the hello is on its way.
    if (S.token) ws.send(JSON.stringify({ type: "auth", token: S.token, lang: S.lang }));
  };
  ws.onmessage = (event) => {
    if (S.ws !== ws) return;
    S.lastMessageAt = Date.now();
    let message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message && typeof message === "object") handle(message);
  };
  ws.onclose = (event) => {
    if (S.ws !== ws) return;
    S.ws = null;
    stopHeartbeat();
    failPending();
    if (event.code === 4401) { signInAgain({ code: "unauthorized" }, "expired"); return; }
    if (event.code === 1008 && !S.signedIn) { signInAgain({ code: "unauthorized" }, "tokenRefused"); return; }
    if (signedIn()) scheduleReconnect();
  };
}

function closeSocket() {
  const ws = S.ws;
  S.ws = null;
  S.signedIn = false;
  stopHeartbeat();
  if (ws) { try { ws.close(1000); } catch (e) { /* already closing */ } }
}

function dropSocket() {
  closeSocket();
  failPending();
  if (signedIn()) scheduleReconnect();
}

function failPending() {
  for (const [id, pending] of [...S.pending]) if (pending.via === "ws") clearPending(id);
  renderAlerts();
}

function scheduleReconnect() {
  clearTimeout(S.retryTimer);
  const base = Math.min(MAX_BACKOFF_S, 2 ** S.attempt);
  S.attempt += 1;
  const delay = base * 1000 * (0.75 + Math.random() * 0.5);
  S.retryAt = Date.now() + delay;
  S.conn = "waiting";
  S.retryTimer = setTimeout(connect, delay);
  renderStatus();
}

function reconnectNow() {
  if (signedIn() && !S.ws) { S.attempt = 0; connect(); }
}

function startHeartbeat() {
  stopHeartbeat();
  S.pingTimer = setInterval(() => {
    const ws = S.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const sent = Date.now();
    try { ws.send(JSON.stringify({ type: "ping" })); } catch (e) { return; }
    clearTimeout(S.pongTimer);
    S.pongTimer = setTimeout(() => {
      if (S.ws === ws && S.lastMessageAt < sent) dropSocket(); // half-open: the network changed under us
    }, PONG_MS);
  }, PING_MS);
}

function stopHeartbeat() {
  clearInterval(S.pingTimer);
  clearTimeout(S.pongTimer);
}

// --- signing in and out ------------------------------------------------------------------------

/* Before another token, or none: nothing of the last one's socket, timers or alerts stays. */
function reset() {
  clearTimeout(S.retryTimer);
  closeSocket();
  for (const done of S.done.values()) clearTimeout(done.timer);
  for (const pending of S.pending.values()) clearTimeout(pending.timer);
  S.alerts = new Map();
  S.done = new Map();
  S.pending = new Map();
  S.unseen = new Set();
  S.hello = null;
  S.hadSnapshot = false;
  renderHello();
  renderAlerts();
}

function begin() {
  S.attempt = 0;
  connect();
}

await start({ messages: "oncall", storage: "maillage.oncall", sessionPath: "/v1/session", render, reset, begin });
$("signin-form").addEventListener("submit", unlockAudio);
$("retry").addEventListener("click", reconnectNow);
document.addEventListener("pointerdown", markSeen, { capture: true, passive: true });
document.addEventListener("keydown", markSeen, { capture: true });
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => { if (!document.hidden) { updateAges(); reconnectNow(); } });

let ticks = 0;
setInterval(() => {
  ticks += 1;
  if (S.conn === "waiting") renderStatus();
  if (ticks % 5 === 0) updateAges();
}, 1000);
