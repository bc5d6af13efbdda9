// Maillage: what the on-call page and the operators' dashboard share: their words in four languages, DOM helpers,
// the server's clock, the banner and the sign-in (their markup is in page.html). An ES module: each page's script
// imports it and calls start() once. Either service serves it at /static/common.js.

export const LANGS = ["fr", "nl", "de", "en"];
export const LOCALES = { fr: "fr-BE", nl: "nl-BE", de: "de-BE", en: "en-GB" };

/* The state both pages keep; each page's script adds its own to the same object. */
export const S = { lang: "fr", token: null, session: null, banner: null, clockOffset: 0 };

/* Signed in: by a token this tab holds, or by a session cookie (the on-call page; `S.session` its end). */
export const signedIn = () => Boolean(S.token) || Boolean(S.session);
/* Who is signed in, as a value that stays the same while they are (a token, or a session's issuer and subject). */
export const identity = () => S.token || (S.session ? S.session.key : null);
const REFRESH_MS = 10 * 60 * 1000;  // a session's cookie is renewed this often while the page is open
let refreshTimer = 0;

let T = {};  // language → messages: the shared ones with the page's own over them
let page = null;  // what the page gave start()

export const $ = (id) => document.getElementById(id);

function store(kind) {
  const area = () => { try { return window[kind]; } catch (e) { return null; } };
  return {
    get(key) { try { return area() ? area().getItem(key) : null; } catch (e) { return null; } },
    set(key, value) { try { if (area()) area().setItem(key, value); } catch (e) { /* private mode */ } },
    remove(key) { try { if (area()) area().removeItem(key); } catch (e) { /* private mode */ } },
  };
}
const session = store("sessionStorage");
const local = store("localStorage");

// --- messages ------------------------------------------------------------------------------------

const plain = (value) => Boolean(value) && typeof value === "object" && !Array.isArray(value);

function merge(base, over) {
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) {
    out[key] = plain(value) && plain(base[key]) ? merge(base[key], value) : value;
  }
  return out;
}

/* The messages both pages use and the page's own, as data: the same origin, so the CSP's connect-src 'self'. */
async function loadMessages(name) {
  const [shared, own] = await Promise.all(["common", name].map(async (file) => {
    const response = await fetch("/static/" + file + ".messages.json", { cache: "no-store", credentials: "omit" });
    if (!response.ok) throw new Error("the page's messages did not load (" + response.status + ")");
    return response.json();
  }));
  return Object.fromEntries(LANGS.map((lang) => [lang, merge(shared[lang] || {}, own[lang] || {})]));
}

export function own(table, key) {
  return table && typeof key === "string" && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function lookup(table, key) {
  return key.split(".").reduce((node, part) => (node == null ? node : own(node, part)), table);
}

function fill(textValue, vars) {
  return vars ? String(textValue).replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all))
    : String(textValue);
}

export function t(key, vars) {
  let value = lookup(T[S.lang], key);
  if (value == null) value = lookup(T.en, key);
  if (value == null) return key;
  return fill(value, vars);
}

/* The message for `code` in the closed vocabulary `table` (severities, kinds, sectors…), if this page knows it. */
export function known(table, code) {
  return own(lookup(T[S.lang], table) || {}, code);
}

export function plural(key, n) {
  let category = "other";
  try { category = new Intl.PluralRules(LOCALES[S.lang]).select(n); } catch (e) { /* old browser */ }
  const forms = lookup(T[S.lang], key) || {};
  return fill(forms[category] || forms.other || "{n}", { n: formatNumber(n) });
}

export function formatNumber(n) {
  try { return new Intl.NumberFormat(LOCALES[S.lang]).format(n); } catch (e) { return String(n); }
}

// --- elements ------------------------------------------------------------------------------------

/* An element; strings become text nodes, so nothing from the server is ever parsed as markup. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value != null && value !== false) el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const text = (value) => (typeof value === "string" && value.trim() ? value.trim() : "");

// --- time ----------------------------------------------------------------------------------------

export function clockTime(value, seconds) {
  const moment = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(moment.getTime())) return "";
  const today = new Date().toDateString() === moment.toDateString();
  const options = { hour: "2-digit", minute: "2-digit" };
  if (seconds) options.second = "2-digit";
  if (!today) Object.assign(options, { day: "numeric", month: "short" });
  try { return new Intl.DateTimeFormat(LOCALES[S.lang], options).format(moment); } catch (e) { return moment.toLocaleString(); }
}

// The server's clock, as last told: ages stay true on a device whose clock is wrong.
function serverNow() { return Date.now() + S.clockOffset; }
export function learnServerTime(now) {
  const at = Date.parse(now);
  if (Number.isFinite(at)) S.clockOffset = at - Date.now();
}

/* Whole seconds from `value` to now by the server's clock; null when `value` is not a time. */
export function secondsSince(value) {
  const ms = serverNow() - Date.parse(value);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms / 1000)) : null;
}

/* "n units ago", in the page's language. */
export function timeAgo(n, unit, numeric) {
  try {
    return new Intl.RelativeTimeFormat(LOCALES[S.lang], { numeric, style: "short" }).format(-n, unit);
  } catch (e) {
    return n + " " + unit.charAt(0);
  }
}

/* Every element that shows how long ago its data-at was, told again (`ago` turns a time into words). */
export function updateAges(ago) {
  for (const el of document.querySelectorAll("[data-at]")) {
    const value = ago(el.dataset.at);
    if (el.textContent !== value) el.textContent = value;
  }
}

/* What a token says of itself (not checked here: the server does); {} when it cannot be read. */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const parsed = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch (e) {
    return {};
  }
}

// --- the banner ----------------------------------------------------------------------------------

/* `message`: a problem ({code, status, title, detail}) or {titleKey}; `kind` says who may hide it again. */
export function showBanner(message, kind, help) {
  S.banner = { message: message || {}, kind, help };
  renderBanner();
}

export function hideBanner(kind) {
  if (S.banner && (!kind || S.banner.kind === kind)) {
    S.banner = null;
    renderBanner();
  }
}

function renderBanner() {
  const banner = $("banner");
  banner.hidden = !S.banner;
  if (!S.banner) return;
  const { message, help } = S.banner;
  banner.dataset.status = message.status || "";
  banner.dataset.help = help || "";
  $("banner-title").textContent = message.titleKey ? t(message.titleKey)
    : known("errors", message.code) || text(message.title) || t("errors.http");
  $("banner-help").textContent = help ? t(help) : "";
  $("banner-help").hidden = !help;
  $("banner-detail").textContent = text(message.detail);
  $("banner-detail").hidden = !text(message.detail);
}

// --- language, view, signing in and out ----------------------------------------------------------

function initialLang() {
  const saved = local.get(page.storage + ".lang");
  if (LANGS.includes(saved)) return saved;
  const wanted = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const code = String(tag || "").slice(0, 2).toLowerCase();
    if (LANGS.includes(code)) return code;
  }
  return "fr";
}

function applyLanguage() {
  document.documentElement.lang = S.lang;
  document.title = "Maillage · " + t("app");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  $("lang").value = S.lang;
  renderBanner();
  page.render();
}

export function showView() {
  const inside = signedIn();
  $("signin").hidden = inside;
  $("board").hidden = !inside;
}

function forget() {
  S.token = null;
  session.remove(page.storage + ".token");
  if (S.session) {
    clearInterval(refreshTimer);
    S.session = null;
    fetch(page.sessionPath, { method: "DELETE", cache: "no-store", credentials: "same-origin" }).catch(() => {});
  }
  page.reset();
  showView();
}

// --- a session (the on-call page): an invitation exchanged once for a cookie the page never reads ----------

async function sessionCall(path, body) {
  const response = await fetch(path, {
    method: "POST", cache: "no-store", credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": S.lang },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  return { ok: response.ok, answer };
}

function sessionFrom(answer) {
  return {
    key: "session:" + answer.issuer + ":" + answer.subject,
    issuer: String(answer.issuer), subject: String(answer.subject),
    scopes: Array.isArray(answer.scopes) ? answer.scopes.map(String) : [], expiresAt: new Date(answer.expires_at),
  };
}

function inSession(answer) {
  S.session = sessionFrom(answer);
  clearInterval(refreshTimer);
  refreshTimer = setInterval(async () => {
    try {
      const { ok, answer: next } = await sessionCall(page.sessionPath + "/refresh");
      if (ok) S.session = sessionFrom(next);
      else signInAgain({ code: "unauthorized" }, "expired");
    } catch (e) { /* offline: the next turn tries again, the cookie lasts the shift */ }
  }, REFRESH_MS);
}

/* An invitation from the link's fragment (#invitation=…) or pasted: true once signed in with it. */
async function acceptInvitation(invitation) {
  try {
    const { ok, answer } = await sessionCall(page.sessionPath, { invitation });
    if (!ok) { showBanner(answer, "auth", "invitationRefused"); return false; }
    inSession(answer);
    return true;
  } catch (e) {
    showBanner({ titleKey: "offline" }, "auth");
    return false;
  }
}

function invitationIn(value) {
  const found = /(?:^|[#&?])invitation=([^&\s]+)/.exec(value || "");
  return found ? decodeURIComponent(found[1]) : null;
}

/* The server refused the token (`help` says why, in words): back to the sign-in, the token forgotten. */
export function signInAgain(message, help) {
  forget();
  showBanner(message, "auth", help);
  $("token").focus();
}

function signOut() {
  forget();
  hideBanner();
  $("token").value = "";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const invitation = page.sessionPath ? invitationIn($("token").value.trim()) : null;
  if (invitation) {
    $("token").value = "";
    if (await acceptInvitation(invitation)) { hideBanner(); page.reset(); showView(); page.begin(); }
    return;
  }
  const token = $("token").value.trim().replace(/^bearer\s+/i, "").replace(/\s+/g, "");
  if (!token) {
    showBanner({ titleKey: "tokenEmpty" }, "auth");
    $("token").focus();
    return;
  }
  $("token").value = "";
  S.token = token;
  session.set(page.storage + ".token", token);
  hideBanner();
  page.reset();
  showView();
  page.begin();
}

function chooseLanguage(event) {
  const lang = event.target.value;
  if (!LANGS.includes(lang)) return;
  S.lang = lang;
  local.set(page.storage + ".lang", lang);
  applyLanguage();
}

/**
 * Loads the page's messages, then shows the sign-in, or the board for a token this tab already holds.
 * `messages`: the page's messages file (/static/<messages>.messages.json); `storage`: the prefix of what it keeps
 * in the browser; `render()`: draws everything in the current language; `reset()`: forgets what the last token
 * showed; `begin()`: starts working with S.token.
 */
export async function start(options) {
  page = options;
  T = await loadMessages(options.messages);
  S.lang = initialLang();
  S.token = session.get(page.storage + ".token");
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("banner-close").addEventListener("click", () => hideBanner());
  $("lang").addEventListener("change", chooseLanguage);
  applyLanguage();
  if (!S.token && page.sessionPath) {
    const invitation = invitationIn(location.hash);
    if (invitation) {
      history.replaceState(null, "", location.pathname + location.search);  // never left in the address bar
      await acceptInvitation(invitation);
    } else {
      // A session this browser already holds (the page reloaded, the phone woke up).
      try {
        const { ok, answer } = await sessionCall(page.sessionPath + "/refresh");
        if (ok) inSession(answer);
      } catch (e) { /* offline: sign in again once back */ }
    }
  }
  showView();
  if (signedIn()) page.begin(); else $("token").focus();
}
