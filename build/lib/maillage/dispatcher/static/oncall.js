// Maillage: the on-call worker's page (oncall.html), its whole behaviour.
"use strict";
(function () {
  const LANGS = ["fr", "nl", "de", "en"];
  const LOCALES = { fr: "fr-BE", nl: "nl-BE", de: "de-BE", en: "en-GB" };
  const TOKEN_KEY = "maillage.oncall.token";
  const LANG_KEY = "maillage.oncall.lang";
  const RANK = { info: 0, high: 1, imminent: 2 };
  const SHOWN = ["open", "unacknowledged"];
  const DONE_MS = 3000;          // how long an acknowledged card stays, saying so
  const ACK_TIMEOUT_MS = 15000;  // no answer to an ack by then: let the worker tap again
  const PING_MS = 20000;         // a ping this often; no message within PONG_MS after it: the socket is dead
  const PONG_MS = 10000;
  const MAX_BACKOFF_S = 30;

  const T = {
    fr: {
      app: "Garde", language: "Langue", close: "Fermer", signOut: "Se déconnecter",
      signInTitle: "Se connecter", signIn: "Se connecter", tokenLabel: "Jeton d'accès",
      signInHelp: "Collez le jeton d'accès que votre service vous a remis.",
      signInNote: "Le jeton reste dans cet onglet uniquement ; il est effacé quand vous vous déconnectez.",
      tokenEmpty: "Collez d'abord votre jeton d'accès.",
      openAlerts: "Alertes ouvertes", noAlert: "Aucune alerte ouverte",
      noAlertHelp: "Les nouvelles alertes s'affichent ici dès leur arrivée.",
      onCall: "De garde : niveau {levels}", onCallMany: "De garde : niveaux {levels}", offDuty: "Hors service",
      until: "Session valable jusqu'à {time}",
      conn: { connecting: "Connexion…", live: "En direct",
              waiting: "Connexion perdue · nouvel essai dans {s} s",
              waitingHelp: "Les nouvelles alertes ne vous parviennent pas tant qu'elle n'est pas rétablie." },
      retry: "Réessayer",
      severity: { info: "Information", high: "Danger élevé", imminent: "Danger imminent" },
      kind: { threat: "Menaces", custody_release: "Sortie de détention", weapon: "Arme",
              protection_order_breach: "Non-respect d'une mesure de protection", other: "Autre" },
      role: { victim: "Victime", perpetrator: "Auteur", child: "Enfant", other: "Autre personne" },
      level: "Niveau {level} sur {levels}", source: "Envoyée par {name}",
      grouped: "{n} alertes sur cette personne", received: "Reçue à {time}", justNow: "à l'instant",
      noIdentity: "Identité non communiquée",
      unackTitle: "Sans réponse à tous les niveaux",
      unackDetail: "Chaque niveau a été appelé en vain. Prenez-la en charge si vous le pouvez.",
      ack: "Prendre en charge", acking: "Envoi…", ackedYou: "Alerte prise en charge",
      ackedOther: "Prise en charge par un collègue", ackedOtherLevel: "Prise en charge par un collègue (niveau {level})",
      isNew: "Nouvelle", newAlert: "Nouvelle alerte", announceNew: "Nouvelle alerte : {severity}, {kind}",
      ackTimeout: "La prise en charge n'a pas été confirmée. Réessayez.",
      offline: "Le serveur est injoignable. Vérifiez votre connexion.",
      tokenRefused: "Ce jeton est refusé. Vérifiez-le ou demandez-en un nouveau à votre service.",
      expired: "Votre session a expiré : connectez-vous avec un nouveau jeton.",
      alreadyTaken: "Quelqu'un d'autre a déjà pris cette alerte en charge.",
      gone: "Cette alerte n'est plus ouverte pour vous.",
      errors: { unauthorized: "Authentification requise", forbidden: "Non autorisé", "not-found": "Introuvable",
                conflict: "Conflit avec l'état actuel", validation: "La requête n'est pas valide",
                http: "Requête refusée" },
    },
    nl: {
      app: "Wachtdienst", language: "Taal", close: "Sluiten", signOut: "Afmelden",
      signInTitle: "Aanmelden", signIn: "Aanmelden", tokenLabel: "Toegangstoken",
      signInHelp: "Plak het toegangstoken dat u van uw dienst hebt gekregen.",
      signInNote: "Het token blijft alleen in dit tabblad en wordt gewist wanneer u zich afmeldt.",
      tokenEmpty: "Plak eerst uw toegangstoken.",
      openAlerts: "Open meldingen", noAlert: "Geen open melding",
      noAlertHelp: "Nieuwe meldingen verschijnen hier zodra ze binnenkomen.",
      onCall: "Van wacht: niveau {levels}", onCallMany: "Van wacht: niveaus {levels}", offDuty: "Niet van wacht",
      until: "Sessie geldig tot {time}",
      conn: { connecting: "Verbinden…", live: "Live",
              waiting: "Verbinding verbroken · nieuwe poging over {s} s",
              waitingHelp: "Nieuwe meldingen bereiken u niet zolang ze niet hersteld is." },
      retry: "Opnieuw proberen",
      severity: { info: "Informatie", high: "Hoog gevaar", imminent: "Dreigend gevaar" },
      kind: { threat: "Bedreigingen", custody_release: "Vrijlating uit hechtenis", weapon: "Wapen",
              protection_order_breach: "Schending van een beschermingsmaatregel", other: "Andere" },
      role: { victim: "Slachtoffer", perpetrator: "Pleger", child: "Kind", other: "Andere persoon" },
      level: "Niveau {level} van {levels}", source: "Verstuurd door {name}",
      grouped: "{n} meldingen over deze persoon", received: "Ontvangen om {time}", justNow: "zonet",
      noIdentity: "Identiteit niet meegedeeld",
      unackTitle: "Geen antwoord op enig niveau",
      unackDetail: "Elk niveau werd tevergeefs opgeroepen. Neem deze melding in behandeling als u kunt.",
      ack: "In behandeling nemen", acking: "Versturen…", ackedYou: "Melding in behandeling genomen",
      ackedOther: "In behandeling genomen door een collega",
      ackedOtherLevel: "In behandeling genomen door een collega (niveau {level})",
      isNew: "Nieuw", newAlert: "Nieuwe melding", announceNew: "Nieuwe melding: {severity}, {kind}",
      ackTimeout: "De behandeling werd niet bevestigd. Probeer opnieuw.",
      offline: "De server is onbereikbaar. Controleer uw verbinding.",
      tokenRefused: "Dit token wordt geweigerd. Controleer het of vraag een nieuw aan uw dienst.",
      expired: "Uw sessie is verlopen: meld u aan met een nieuw token.",
      alreadyTaken: "Iemand anders heeft deze melding al in behandeling genomen.",
      gone: "Deze melding is niet meer open voor u.",
      errors: { unauthorized: "Authenticatie vereist", forbidden: "Niet toegestaan", "not-found": "Niet gevonden",
                conflict: "Conflict met de huidige toestand", validation: "Het verzoek is ongeldig",
                http: "Verzoek geweigerd" },
    },
    de: {
      app: "Bereitschaft", language: "Sprache", close: "Schließen", signOut: "Abmelden",
      signInTitle: "Anmelden", signIn: "Anmelden", tokenLabel: "Zugangstoken",
      signInHelp: "Fügen Sie das Zugangstoken ein, das Sie von Ihrer Dienststelle erhalten haben.",
      signInNote: "Das Token bleibt nur in diesem Tab und wird beim Abmelden gelöscht.",
      tokenEmpty: "Fügen Sie zuerst Ihr Zugangstoken ein.",
      openAlerts: "Offene Alarme", noAlert: "Kein offener Alarm",
      noAlertHelp: "Neue Alarme erscheinen hier, sobald sie eintreffen.",
      onCall: "Bereitschaft: Stufe {levels}", onCallMany: "Bereitschaft: Stufen {levels}",
      offDuty: "Nicht im Dienst", until: "Sitzung gültig bis {time}",
      conn: { connecting: "Verbinden…", live: "Live",
              waiting: "Verbindung unterbrochen · neuer Versuch in {s} s",
              waitingHelp: "Neue Alarme erreichen Sie erst wieder, wenn sie hergestellt ist." },
      retry: "Erneut versuchen",
      severity: { info: "Information", high: "Hohe Gefahr", imminent: "Unmittelbare Gefahr" },
      kind: { threat: "Drohungen", custody_release: "Haftentlassung", weapon: "Waffe",
              protection_order_breach: "Verstoß gegen eine Schutzanordnung", other: "Sonstiges" },
      role: { victim: "Opfer", perpetrator: "Täter", child: "Kind", other: "Andere Person" },
      level: "Stufe {level} von {levels}", source: "Gesendet von {name}",
      grouped: "{n} Alarme zu dieser Person", received: "Eingegangen um {time}", justNow: "gerade eben",
      noIdentity: "Identität nicht übermittelt",
      unackTitle: "Keine Stufe hat reagiert",
      unackDetail: "Alle Stufen wurden vergeblich alarmiert. Übernehmen Sie, wenn Sie können.",
      ack: "Übernehmen", acking: "Wird gesendet…", ackedYou: "Alarm übernommen",
      ackedOther: "Von einer anderen Person übernommen",
      ackedOtherLevel: "Von einer anderen Person übernommen (Stufe {level})",
      isNew: "Neu", newAlert: "Neuer Alarm", announceNew: "Neuer Alarm: {severity}, {kind}",
      ackTimeout: "Die Übernahme wurde nicht bestätigt. Bitte erneut versuchen.",
      offline: "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung.",
      tokenRefused: "Dieses Token wird abgelehnt. Prüfen Sie es oder fordern Sie bei Ihrer Dienststelle ein neues an.",
      expired: "Ihre Sitzung ist abgelaufen: melden Sie sich mit einem neuen Token an.",
      alreadyTaken: "Jemand anderes hat diesen Alarm bereits übernommen.",
      gone: "Dieser Alarm ist für Sie nicht mehr offen.",
      errors: { unauthorized: "Authentifizierung erforderlich", forbidden: "Nicht erlaubt",
                "not-found": "Nicht gefunden", conflict: "Konflikt mit dem aktuellen Zustand",
                validation: "Die Anfrage ist ungültig", http: "Anfrage abgelehnt" },
    },
    en: {
      app: "On call", language: "Language", close: "Close", signOut: "Sign out",
      signInTitle: "Sign in", signIn: "Sign in", tokenLabel: "Access token",
      signInHelp: "Paste the access token your agency gave you.",
      signInNote: "The token stays in this tab only; it is erased when you sign out.",
      tokenEmpty: "Paste your access token first.",
      openAlerts: "Open alerts", noAlert: "No open alert",
      noAlertHelp: "New alerts appear here as soon as they arrive.",
      onCall: "On call: level {levels}", onCallMany: "On call: levels {levels}", offDuty: "Off duty",
      until: "Session valid until {time}",
      conn: { connecting: "Connecting…", live: "Live", waiting: "Connection lost · retrying in {s} s",
              waitingHelp: "New alerts cannot reach you until it is back." },
      retry: "Retry now",
      severity: { info: "Information", high: "High danger", imminent: "Imminent danger" },
      kind: { threat: "Threats", custody_release: "Release from custody", weapon: "Weapon",
              protection_order_breach: "Protection order breach", other: "Other" },
      role: { victim: "Victim", perpetrator: "Perpetrator", child: "Child", other: "Other person" },
      level: "Level {level} of {levels}", source: "Sent by {name}",
      grouped: "{n} alerts about this person", received: "Received at {time}", justNow: "just now",
      noIdentity: "Identity not shared",
      unackTitle: "No answer at any level",
      unackDetail: "Every level was paged in vain. Take it in hand if you can.",
      ack: "Acknowledge", acking: "Sending…", ackedYou: "Alert acknowledged",
      ackedOther: "Acknowledged by a colleague", ackedOtherLevel: "Acknowledged by a colleague (level {level})",
      isNew: "New", newAlert: "New alert", announceNew: "New alert: {severity}, {kind}",
      ackTimeout: "The acknowledgement was not confirmed. Try again.",
      offline: "The server cannot be reached. Check your connection.",
      tokenRefused: "This token is refused. Check it or ask your agency for a new one.",
      expired: "Your session has expired: sign in with a new token.",
      alreadyTaken: "Someone else already acknowledged this alert.",
      gone: "This alert is no longer open for you.",
      errors: { unauthorized: "Authentication required", forbidden: "Not allowed", "not-found": "Not found",
                conflict: "Conflict with the current state", validation: "The request is not valid",
                http: "Request refused" },
    },
  };

  const $ = (id) => document.getElementById(id);
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

  const S = {
    lang: initialLang(),
    token: session.get(TOKEN_KEY),
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
    banner: null,
  };

  function initialLang() {
    const saved = local.get(LANG_KEY);
    if (LANGS.includes(saved)) return saved;
    const wanted = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language];
    for (const tag of wanted) {
      const code = String(tag || "").slice(0, 2).toLowerCase();
      if (LANGS.includes(code)) return code;
    }
    return "fr";
  }

  function lookup(table, key) {
    return key.split(".").reduce((node, part) => (node == null ? node : node[part]), table);
  }

  function t(key, vars) {
    let text = lookup(T[S.lang], key);
    if (text == null) text = lookup(T.en, key);
    if (text == null) return key;
    return vars ? String(text).replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all)) : text;
  }

  /* An element; strings become text nodes, so nothing from an alert is ever parsed as markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value != null && value !== false) el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const text = (value) => (typeof value === "string" && value.trim() ? value.trim() : "");
  const own = (table, key) => (typeof key === "string" && Object.prototype.hasOwnProperty.call(table, key)
    ? table[key] : undefined);
  const severityOf = (alert) => (own(RANK, alert.severity) !== undefined ? alert.severity : "info");
  const kindLabel = (kind) => own(T[S.lang].kind, kind) || T[S.lang].kind.other;
  const roleLabel = (role) => own(T[S.lang].role, role) || "";

  function personName(alert) {
    const identity = (alert.data && alert.data.identity) || {};
    return [text(identity.given_name), text(identity.family_name)].filter(Boolean).join(" ");
  }

  function municipality(alert) {
    return text(alert.data && alert.data.location && alert.data.location.municipality);
  }

  function clockTime(value) {
    const moment = new Date(value);
    if (Number.isNaN(moment.getTime())) return "";
    const today = new Date().toDateString() === moment.toDateString();
    const options = today ? { hour: "2-digit", minute: "2-digit" }
      : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
    try { return new Intl.DateTimeFormat(LOCALES[S.lang], options).format(moment); } catch (e) { return moment.toLocaleString(); }
  }

  // The server's clock, as last told (hello, snapshot): ages stay true on a phone whose clock is wrong.
  function serverNow() { return Date.now() + (S.clockOffset || 0); }
  function learnServerTime(now) {
    const at = Date.parse(now);
    if (Number.isFinite(at)) S.clockOffset = at - Date.now();
  }

  function ago(value) {
    const ms = serverNow() - Date.parse(value);
    if (!Number.isFinite(ms)) return "";
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds < 45) return t("justNow");
    const [n, unit] = seconds < 3600 ? [Math.max(1, Math.floor(seconds / 60)), "minute"]
      : seconds < 86400 ? [Math.floor(seconds / 3600), "hour"] : [Math.floor(seconds / 86400), "day"];
    try {
      return new Intl.RelativeTimeFormat(LOCALES[S.lang], { numeric: "always", style: "short" }).format(-n, unit);
    } catch (e) {
      return n + " " + unit.charAt(0);
    }
  }

  function tokenExpiry(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      return typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null;
    } catch (e) {
      return null;
    }
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

  function applyLanguage() {
    document.documentElement.lang = S.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
    $("lang").value = S.lang;
    renderHello();
    renderStatus();
    renderBanner();
    renderAlerts();
  }

  function showView() {
    const signedIn = Boolean(S.token);
    $("signin").hidden = signedIn;
    $("board").hidden = !signedIn;
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
    const expiry = S.token ? tokenExpiry(S.token) : null;
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

  function showBanner(message, kind, help) {
    S.banner = { message: message || {}, kind, help };
    renderBanner();
  }

  function hideBanner(kind) {
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
    const known = own(T[S.lang].errors, message.code);
    $("banner-title").textContent = message.titleKey ? t(message.titleKey)
      : known || text(message.title) || t("errors.http");
    $("banner-help").textContent = help ? t(help) : "";
    $("banner-help").hidden = !help;
    $("banner-detail").textContent = text(message.detail);
    $("banner-detail").hidden = !text(message.detail);
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
        h("span", { class: "age", "data-testid": "age", "data-received": alert.received_at || "" },
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

  function updateAges() {
    for (const el of document.querySelectorAll("[data-received]")) {
      const value = ago(el.dataset.received);
      if (el.textContent !== value) el.textContent = value;
    }
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
        method: "POST", cache: "no-store", credentials: "omit",
        headers: { Authorization: "Bearer " + S.token, "Accept-Language": S.lang, Accept: "application/json" },
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
    if (!S.token) { showView(); return; }
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
      ws.send(JSON.stringify({ type: "auth", token: S.token, lang: S.lang }));
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
      if (S.token) scheduleReconnect();
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
    if (S.token) scheduleReconnect();
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
    if (S.token && !S.ws) { S.attempt = 0; connect(); }
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

  function resetBoard() {
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

  function signInAgain(message, help) {
    clearTimeout(S.retryTimer);
    closeSocket();
    S.token = null;
    session.remove(TOKEN_KEY);
    resetBoard();
    showView();
    showBanner(message, "auth", help);
    $("token").focus();
  }

  function signOut() {
    clearTimeout(S.retryTimer);
    closeSocket();
    S.token = null;
    session.remove(TOKEN_KEY);
    resetBoard();
    hideBanner();
    showView();
    $("token").value = "";
    $("token").focus();
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    unlockAudio();
    const token = $("token").value.trim().replace(/^bearer\s+/i, "").replace(/\s+/g, "");
    if (!token) {
      showBanner({ titleKey: "tokenEmpty" }, "auth");
      $("token").focus();
      return;
    }
    $("token").value = "";
    S.token = token;
    session.set(TOKEN_KEY, token);
    hideBanner();
    resetBoard();
    S.attempt = 0;
    showView();
    connect();
  });

  $("signout").addEventListener("click", signOut);
  $("retry").addEventListener("click", reconnectNow);
  $("banner-close").addEventListener("click", () => hideBanner());
  $("lang").addEventListener("change", (event) => {
    const lang = event.target.value;
    if (!LANGS.includes(lang)) return;
    S.lang = lang;
    local.set(LANG_KEY, lang);
    applyLanguage();
  });
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

  applyLanguage();
  showView();
  if (S.token) connect(); else $("token").focus();
})();
