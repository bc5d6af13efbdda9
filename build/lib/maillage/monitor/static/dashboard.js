// Maillage: the operators' dashboard (dashboard.html), its whole behaviour.
"use strict";
(function () {
  const LANGS = ["fr", "nl", "de", "en"];
  const LOCALES = { fr: "fr-BE", nl: "nl-BE", de: "de-BE", en: "en-GB" };
  const TOKEN_KEY = "maillage.monitor.token";
  const LANG_KEY = "maillage.monitor.lang";
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

  const T = {
    fr: {
      app: "Supervision", language: "Langue", close: "Fermer", signOut: "Se déconnecter",
      title: "Supervision du réseau", subtitle: "Le flux des événements, sans aucune donnée personnelle.",
      signInTitle: "Connexion opérateur", signIn: "Se connecter", tokenLabel: "Jeton d'accès",
      signInHelp: "Collez votre jeton d'opérateur : la portée monitor:read suffit pour consulter ; "
        + "monitor:act permet aussi de relancer et d'approuver.",
      signInNote: "Le jeton reste dans cet onglet uniquement ; il est effacé quand vous vous déconnectez.",
      tokenEmpty: "Collez d'abord votre jeton d'accès.",
      scopeRead: "Lecture seule", scopeAct: "Lecture et actions", until: "jusqu'à {time}",
      status: { loading: "Chargement…", live: "Actualisé à {time} · toutes les 5 s",
                partial: "Actualisé en partie à {time}", offline: "Serveur injoignable · nouvel essai dans 5 s" },
      refreshNow: "Actualiser",
      tile: { decisions: "Décisions", decisionsHint: "{minutes} dernières minutes", rejected: "Rejetés",
              rejectedHint: "refusés par la passerelle", dead: "Lettres mortes", deadHint: "en attente de relance",
              reviews: "Revues en attente", reviewsHint: "divulgations « danger »",
              alerts: "Alertes sans réponse", alertsHint: "aucun niveau n'a répondu",
              lag: "Retard maximal", lagHint: "messages pas encore lus" },
      outcomes: { delivered: "Délivrées", filtered: "Filtrées", denied: "Refusées" },
      outcome: { delivered: "Délivrée", filtered: "Filtrée", denied: "Refusée" },
      flowTitle: "Flux par secteur",
      flowHelp: "Décisions de la passerelle par secteur destinataire, minute par minute, sur les 60 dernières minutes.",
      yAxis: "décisions / min", xAxis: "heure · 60 dernières minutes", flowEmpty: "Aucune décision ces 60 dernières minutes.",
      allSectors: "Tous les secteurs",
      nDecisions: { one: "{n} décision", other: "{n} décisions" },
      chartLabel: "{sector} : {total} ({delivered} délivrées, {filtered} filtrées, {denied} refusées)",
      decisionsTitle: "Décisions · 24 h",
      decisionsHelp: "Par type d'événement, secteur destinataire, issue et base légale.",
      col: { type: "Type", sector: "Secteur", outcome: "Issue", basis: "Base légale", count: "Nombre",
             removed: "Catégories retirées", group: "Groupe", topic: "Topic", lag: "Retard", partitions: "Partitions",
             reason: "Raison", service: "Refusée par", eventType: "Type d'événement", source: "Source", at: "Reçue",
             replayed: "Relancée", action: "Action", recorded: "Enregistrée", recipient: "Destinataire",
             event: "Événement", status: "Statut", agency: "Agence", severity: "Gravité", levels: "Niveaux appelés",
             since: "Depuis" },
      decisionsEmpty: "Aucune décision ces dernières 24 heures.",
      lagTitle: "Retard par groupe", lagHelp: "Messages écrits mais pas encore lus, par groupe de consommateurs et topic.",
      measured: "Mesuré à {time}", lagEmpty: "Pas encore de mesure du retard.",
      deadTitle: "Lettres mortes", waitingN: "{n} en attente",
      deadHelp: "Enregistrements qu'aucun service n'a pu traiter. Leur contenu reste sur Kafka : seule la raison s'affiche ici.",
      deadEmpty: "Aucune lettre morte.", replay: "Relancer", replaying: "Relance…",
      replayedAt: "Oui · {time}", replayedTimes: "{n} fois", notReplayed: "Non",
      notReplayable: "Pas d'ici", notReplayableHelp: "Refusée par une agence : la passerelle la lui délivrera à nouveau.",
      replayDone: "Lettre morte relancée : la passerelle la traite à nouveau.",
      unknownType: "illisible", unknownSource: "inconnue",
      reasons: { envelope: "Enveloppe invalide", signature: "Signature invalide", sealing: "Chiffrement invalide",
                 schema: "Contenu non conforme", replay: "Identifiant réutilisé", unroutable: "Aucun destinataire",
                 not_a_recipient: "Réponse d'un non-destinataire", unknown_consent: "Consentement inconnu",
                 unknown: "Raison inconnue" },
      services: { gateway: "Passerelle", agency: "Agence {id}" },
      reviewsTitle: "Divulgations « danger » à revoir",
      reviewsHelp: "Art. 458bis : chaque divulgation sans consentement doit être approuvée par une deuxième personne, "
        + "autre que celle qui a donné l'alerte.",
      reviewsEmpty: "Aucune divulgation en attente de revue.", approve: "Approuver", approving: "Approbation…",
      pending: "En attente", approved: "Approuvée", approveDone: "Divulgation approuvée.",
      alertsTitle: "Alertes sans réponse",
      alertsHelp: "Alertes qu'aucune personne de garde n'a prises en charge, à aucun niveau.",
      alertsEmpty: "Toutes les alertes ont été prises en charge.",
      severity: { info: "Information", high: "Danger élevé", imminent: "Danger imminent" },
      sectors: { victim_support: "Aide aux victimes", perpetrator_support: "Accompagnement des auteurs",
                 police: "Police", justice: "Justice", health: "Santé", social: "Action sociale",
                 child_protection: "Protection de l'enfance", housing: "Logement" },
      bases: { consent: "Consentement", danger: "Danger grave (art. 458bis)", case_conference: "Concertation de cas",
               legal_obligation: "Obligation légale" },
      types: { "consent.granted": "Consentement donné", "consent.withdrawn": "Consentement retiré",
               "referral.created": "Orientation", "referral.responded": "Réponse à une orientation",
               "alert.raised": "Alerte", "alert.acknowledged": "Alerte prise en charge",
               "alert.escalated": "Alerte escaladée" },
      needRead: "Ce jeton ne donne pas accès à la supervision : il faut un jeton d'opérateur (émis par les opérateurs, jamais par une agence) avec la portée monitor:read.",
      needAct: "Votre jeton permet de consulter, pas d'agir : il faut un jeton avec la portée monitor:act "
        + "pour relancer ou approuver.",
      secondPerson: "Une deuxième personne doit approuver : celle qui a donné l'alerte ne peut pas approuver "
        + "sa propre divulgation.",
      conflict: "L'état a changé entre-temps ; la liste est actualisée.",
      offline: "Le serveur est injoignable. Vérifiez votre connexion.",
      tokenRefused: "Ce jeton est refusé. Vérifiez-le ou demandez-en un nouveau.",
      expired: "Votre session a expiré : connectez-vous avec un nouveau jeton.",
      errors: { unauthorized: "Authentification requise", forbidden: "Non autorisé", "not-found": "Introuvable",
                conflict: "Conflit avec l'état actuel", validation: "La requête n'est pas valide",
                internal: "Le service n'a pas pu traiter la requête", http: "Requête refusée" },
    },
    nl: {
      app: "Monitoring", language: "Taal", close: "Sluiten", signOut: "Afmelden",
      title: "Netwerkmonitoring", subtitle: "De stroom van gebeurtenissen, zonder enig persoonsgegeven.",
      signInTitle: "Aanmelden als operator", signIn: "Aanmelden", tokenLabel: "Toegangstoken",
      signInHelp: "Plak uw operatortoken: de scope monitor:read volstaat om te raadplegen; "
        + "met monitor:act kunt u ook opnieuw versturen en goedkeuren.",
      signInNote: "Het token blijft alleen in dit tabblad en wordt gewist wanneer u zich afmeldt.",
      tokenEmpty: "Plak eerst uw toegangstoken.",
      scopeRead: "Alleen lezen", scopeAct: "Lezen en handelen", until: "tot {time}",
      status: { loading: "Laden…", live: "Bijgewerkt om {time} · elke 5 s",
                partial: "Gedeeltelijk bijgewerkt om {time}", offline: "Server onbereikbaar · nieuwe poging over 5 s" },
      refreshNow: "Vernieuwen",
      tile: { decisions: "Beslissingen", decisionsHint: "laatste {minutes} minuten", rejected: "Afgewezen",
              rejectedHint: "geweigerd door de gateway", dead: "Dead letters", deadHint: "wachten op herverzending",
              reviews: "Te beoordelen", reviewsHint: "verstrekkingen bij « gevaar »",
              alerts: "Meldingen zonder antwoord", alertsHint: "geen enkel niveau reageerde",
              lag: "Grootste achterstand", lagHint: "nog niet gelezen berichten" },
      outcomes: { delivered: "Geleverd", filtered: "Gefilterd", denied: "Geweigerd" },
      outcome: { delivered: "Geleverd", filtered: "Gefilterd", denied: "Geweigerd" },
      flowTitle: "Stroom per sector",
      flowHelp: "Beslissingen van de gateway per ontvangende sector, minuut per minuut, over de laatste 60 minuten.",
      yAxis: "beslissingen / min", xAxis: "tijd · laatste 60 minuten", flowEmpty: "Geen beslissingen in de laatste 60 minuten.",
      allSectors: "Alle sectoren",
      nDecisions: { one: "{n} beslissing", other: "{n} beslissingen" },
      chartLabel: "{sector}: {total} ({delivered} geleverd, {filtered} gefilterd, {denied} geweigerd)",
      decisionsTitle: "Beslissingen · 24 u",
      decisionsHelp: "Per type gebeurtenis, ontvangende sector, uitkomst en rechtsgrond.",
      col: { type: "Type", sector: "Sector", outcome: "Uitkomst", basis: "Rechtsgrond", count: "Aantal",
             removed: "Verwijderde categorieën", group: "Groep", topic: "Topic", lag: "Achterstand",
             partitions: "Partities", reason: "Reden", service: "Geweigerd door", eventType: "Type gebeurtenis",
             source: "Bron", at: "Ontvangen", replayed: "Herverzonden", action: "Actie", recorded: "Geregistreerd",
             recipient: "Ontvanger", event: "Gebeurtenis", status: "Status", agency: "Organisatie",
             severity: "Ernst", levels: "Opgeroepen niveaus", since: "Sinds" },
      decisionsEmpty: "Geen beslissingen in de laatste 24 uur.",
      lagTitle: "Achterstand per groep", lagHelp: "Geschreven maar nog niet gelezen berichten, per consumentengroep en topic.",
      measured: "Gemeten om {time}", lagEmpty: "Nog geen meting van de achterstand.",
      deadTitle: "Dead letters", waitingN: "{n} wachtend",
      deadHelp: "Records die geen enkele dienst kon verwerken. Hun inhoud blijft op Kafka: alleen de reden staat hier.",
      deadEmpty: "Geen dead letters.", replay: "Opnieuw versturen", replaying: "Versturen…",
      replayedAt: "Ja · {time}", replayedTimes: "{n} keer", notReplayed: "Nee",
      notReplayable: "Niet van hier", notReplayableHelp: "Geweigerd door een organisatie: de gateway levert het opnieuw.",
      replayDone: "Dead letter opnieuw verstuurd: de gateway verwerkt het opnieuw.",
      unknownType: "onleesbaar", unknownSource: "onbekend",
      reasons: { envelope: "Ongeldige envelop", signature: "Ongeldige handtekening", sealing: "Ongeldige versleuteling",
                 schema: "Inhoud niet conform", replay: "Hergebruikte identificatie", unroutable: "Geen ontvanger",
                 not_a_recipient: "Antwoord van een niet-ontvanger", unknown_consent: "Onbekende toestemming",
                 unknown: "Onbekende reden" },
      services: { gateway: "Gateway", agency: "Organisatie {id}" },
      reviewsTitle: "Te beoordelen verstrekkingen bij « gevaar »",
      reviewsHelp: "Art. 458bis: elke verstrekking zonder toestemming moet worden goedgekeurd door een tweede persoon, "
        + "niet degene die de melding deed.",
      reviewsEmpty: "Geen verstrekkingen te beoordelen.", approve: "Goedkeuren", approving: "Goedkeuren…",
      pending: "Wachtend", approved: "Goedgekeurd", approveDone: "Verstrekking goedgekeurd.",
      alertsTitle: "Onbeantwoorde meldingen",
      alertsHelp: "Meldingen die niemand van wacht in behandeling nam, op geen enkel niveau.",
      alertsEmpty: "Alle meldingen werden in behandeling genomen.",
      severity: { info: "Informatie", high: "Hoog gevaar", imminent: "Dreigend gevaar" },
      sectors: { victim_support: "Slachtofferhulp", perpetrator_support: "Plegerhulp", police: "Politie",
                 justice: "Justitie", health: "Gezondheidszorg", social: "Maatschappelijk welzijn",
                 child_protection: "Kinderbescherming", housing: "Huisvesting" },
      bases: { consent: "Toestemming", danger: "Ernstig gevaar (art. 458bis)", case_conference: "Casusoverleg",
               legal_obligation: "Wettelijke verplichting" },
      types: { "consent.granted": "Toestemming gegeven", "consent.withdrawn": "Toestemming ingetrokken",
               "referral.created": "Doorverwijzing", "referral.responded": "Antwoord op doorverwijzing",
               "alert.raised": "Melding", "alert.acknowledged": "Melding in behandeling genomen",
               "alert.escalated": "Melding geëscaleerd" },
      needRead: "Dit token geeft geen toegang tot de monitoring: er is een operatortoken nodig (uitgegeven door de operatoren, nooit door een agentschap) met de scope monitor:read.",
      needAct: "Met uw token kunt u raadplegen, niet handelen: u hebt een token met de scope monitor:act nodig "
        + "om opnieuw te versturen of goed te keuren.",
      secondPerson: "Een tweede persoon moet goedkeuren: wie de melding deed, kan de eigen verstrekking niet goedkeuren.",
      conflict: "De toestand is intussen gewijzigd; de lijst wordt bijgewerkt.",
      offline: "De server is onbereikbaar. Controleer uw verbinding.",
      tokenRefused: "Dit token wordt geweigerd. Controleer het of vraag een nieuw aan.",
      expired: "Uw sessie is verlopen: meld u aan met een nieuw token.",
      errors: { unauthorized: "Authenticatie vereist", forbidden: "Niet toegestaan", "not-found": "Niet gevonden",
                conflict: "Conflict met de huidige toestand", validation: "Het verzoek is ongeldig",
                internal: "De dienst kon het verzoek niet afhandelen", http: "Verzoek geweigerd" },
    },
    de: {
      app: "Überwachung", language: "Sprache", close: "Schließen", signOut: "Abmelden",
      title: "Netzwerküberwachung", subtitle: "Der Fluss der Ereignisse, ohne personenbezogene Daten.",
      signInTitle: "Anmeldung für Betreiber", signIn: "Anmelden", tokenLabel: "Zugangstoken",
      signInHelp: "Fügen Sie Ihr Betreiber-Token ein: der Scope monitor:read genügt zum Einsehen; "
        + "mit monitor:act können Sie auch erneut senden und freigeben.",
      signInNote: "Das Token bleibt nur in diesem Tab und wird beim Abmelden gelöscht.",
      tokenEmpty: "Fügen Sie zuerst Ihr Zugangstoken ein.",
      scopeRead: "Nur lesen", scopeAct: "Lesen und handeln", until: "bis {time}",
      status: { loading: "Wird geladen…", live: "Aktualisiert um {time} · alle 5 s",
                partial: "Teilweise aktualisiert um {time}", offline: "Server nicht erreichbar · neuer Versuch in 5 s" },
      refreshNow: "Aktualisieren",
      tile: { decisions: "Entscheidungen", decisionsHint: "letzte {minutes} Minuten", rejected: "Abgewiesen",
              rejectedHint: "vom Gateway abgelehnt", dead: "Dead Letters", deadHint: "warten auf erneuten Versand",
              reviews: "Offene Prüfungen", reviewsHint: "Weitergaben bei « Gefahr »",
              alerts: "Alarme ohne Antwort", alertsHint: "keine Stufe hat reagiert",
              lag: "Größter Rückstand", lagHint: "noch nicht gelesene Nachrichten" },
      outcomes: { delivered: "Zugestellt", filtered: "Gefiltert", denied: "Verweigert" },
      outcome: { delivered: "Zugestellt", filtered: "Gefiltert", denied: "Verweigert" },
      flowTitle: "Fluss pro Sektor",
      flowHelp: "Entscheidungen des Gateways pro Empfängersektor, Minute für Minute, über die letzten 60 Minuten.",
      yAxis: "Entscheidungen / min", xAxis: "Uhrzeit · letzte 60 Minuten",
      flowEmpty: "Keine Entscheidungen in den letzten 60 Minuten.", allSectors: "Alle Sektoren",
      nDecisions: { one: "{n} Entscheidung", other: "{n} Entscheidungen" },
      chartLabel: "{sector}: {total} ({delivered} zugestellt, {filtered} gefiltert, {denied} verweigert)",
      decisionsTitle: "Entscheidungen · 24 Std.",
      decisionsHelp: "Nach Ereignistyp, Empfängersektor, Ergebnis und Rechtsgrundlage.",
      col: { type: "Typ", sector: "Sektor", outcome: "Ergebnis", basis: "Rechtsgrundlage", count: "Anzahl",
             removed: "Entfernte Kategorien", group: "Gruppe", topic: "Topic", lag: "Rückstand",
             partitions: "Partitionen", reason: "Grund", service: "Abgelehnt von", eventType: "Ereignistyp",
             source: "Quelle", at: "Eingegangen", replayed: "Erneut gesendet", action: "Aktion",
             recorded: "Erfasst", recipient: "Empfänger", event: "Ereignis", status: "Status", agency: "Stelle",
             severity: "Schwere", levels: "Alarmierte Stufen", since: "Seit" },
      decisionsEmpty: "Keine Entscheidungen in den letzten 24 Stunden.",
      lagTitle: "Rückstand pro Gruppe",
      lagHelp: "Geschriebene, aber noch nicht gelesene Nachrichten, pro Consumer-Gruppe und Topic.",
      measured: "Gemessen um {time}", lagEmpty: "Noch keine Messung des Rückstands.",
      deadTitle: "Dead Letters", waitingN: "{n} wartend",
      deadHelp: "Datensätze, die kein Dienst verarbeiten konnte. Ihr Inhalt bleibt in Kafka: hier steht nur der Grund.",
      deadEmpty: "Keine Dead Letters.", replay: "Erneut senden", replaying: "Wird gesendet…",
      replayedAt: "Ja · {time}", replayedTimes: "{n}-mal", notReplayed: "Nein",
      notReplayable: "Nicht von hier", notReplayableHelp: "Von einer Stelle abgelehnt: das Gateway stellt ihn erneut zu.",
      replayDone: "Dead Letter erneut gesendet: das Gateway verarbeitet ihn neu.",
      unknownType: "unlesbar", unknownSource: "unbekannt",
      reasons: { envelope: "Ungültiger Umschlag", signature: "Ungültige Signatur", sealing: "Ungültige Verschlüsselung",
                 schema: "Inhalt nicht konform", replay: "Wiederverwendete Kennung", unroutable: "Kein Empfänger",
                 not_a_recipient: "Antwort eines Nicht-Empfängers", unknown_consent: "Unbekannte Einwilligung",
                 unknown: "Unbekannter Grund" },
      services: { gateway: "Gateway", agency: "Stelle {id}" },
      reviewsTitle: "Zu prüfende Weitergaben bei « Gefahr »",
      reviewsHelp: "Art. 458bis: jede Weitergabe ohne Einwilligung muss von einer zweiten Person freigegeben werden, "
        + "nicht von der, die den Alarm ausgelöst hat.",
      reviewsEmpty: "Keine Weitergaben zu prüfen.", approve: "Freigeben", approving: "Wird freigegeben…",
      pending: "Offen", approved: "Freigegeben", approveDone: "Weitergabe freigegeben.",
      alertsTitle: "Unbeantwortete Alarme",
      alertsHelp: "Alarme, die niemand in Bereitschaft übernommen hat, auf keiner Stufe.",
      alertsEmpty: "Alle Alarme wurden übernommen.",
      severity: { info: "Information", high: "Hohe Gefahr", imminent: "Unmittelbare Gefahr" },
      sectors: { victim_support: "Opferhilfe", perpetrator_support: "Täterarbeit", police: "Polizei",
                 justice: "Justiz", health: "Gesundheit", social: "Sozialhilfe", child_protection: "Kinderschutz",
                 housing: "Wohnen" },
      bases: { consent: "Einwilligung", danger: "Ernste Gefahr (Art. 458bis)", case_conference: "Fallkonferenz",
               legal_obligation: "Gesetzliche Pflicht" },
      types: { "consent.granted": "Einwilligung erteilt", "consent.withdrawn": "Einwilligung widerrufen",
               "referral.created": "Überweisung", "referral.responded": "Antwort auf Überweisung",
               "alert.raised": "Alarm", "alert.acknowledged": "Alarm übernommen", "alert.escalated": "Alarm eskaliert" },
      needRead: "Dieses Token gewährt keinen Zugang zur Überwachung: nötig ist ein Betreiber-Token (von den Betreibern ausgestellt, nie von einer Agentur) mit dem Scope monitor:read.",
      needAct: "Ihr Token erlaubt das Einsehen, nicht das Handeln: zum erneuten Senden oder Freigeben braucht es "
        + "ein Token mit dem Scope monitor:act.",
      secondPerson: "Eine zweite Person muss freigeben: wer den Alarm ausgelöst hat, kann die eigene Weitergabe "
        + "nicht freigeben.",
      conflict: "Der Zustand hat sich inzwischen geändert; die Liste wird aktualisiert.",
      offline: "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung.",
      tokenRefused: "Dieses Token wird abgelehnt. Prüfen Sie es oder fordern Sie ein neues an.",
      expired: "Ihre Sitzung ist abgelaufen: melden Sie sich mit einem neuen Token an.",
      errors: { unauthorized: "Authentifizierung erforderlich", forbidden: "Nicht erlaubt",
                "not-found": "Nicht gefunden", conflict: "Konflikt mit dem aktuellen Zustand",
                validation: "Die Anfrage ist ungültig", internal: "Der Dienst konnte die Anfrage nicht bearbeiten",
                http: "Anfrage abgelehnt" },
    },
    en: {
      app: "Monitor", language: "Language", close: "Close", signOut: "Sign out",
      title: "Network monitor", subtitle: "The flow of events, without any personal data.",
      signInTitle: "Operator sign-in", signIn: "Sign in", tokenLabel: "Access token",
      signInHelp: "Paste your operator token: the monitor:read scope is enough to watch; "
        + "monitor:act also lets you replay and approve.",
      signInNote: "The token stays in this tab only; it is erased when you sign out.",
      tokenEmpty: "Paste your access token first.",
      scopeRead: "Read only", scopeAct: "Read and act", until: "until {time}",
      status: { loading: "Loading…", live: "Updated at {time} · every 5 s",
                partial: "Partly updated at {time}", offline: "Server unreachable · retrying in 5 s" },
      refreshNow: "Refresh",
      tile: { decisions: "Decisions", decisionsHint: "last {minutes} minutes", rejected: "Rejected",
              rejectedHint: "refused by the gateway", dead: "Dead letters", deadHint: "waiting for a replay",
              reviews: "Reviews pending", reviewsHint: "“danger” disclosures",
              alerts: "Unanswered alerts", alertsHint: "no level answered",
              lag: "Largest lag", lagHint: "messages not yet read" },
      outcomes: { delivered: "Delivered", filtered: "Filtered", denied: "Denied" },
      outcome: { delivered: "Delivered", filtered: "Filtered", denied: "Denied" },
      flowTitle: "Flow per sector",
      flowHelp: "The gateway's decisions per recipient sector, minute by minute, over the last 60 minutes.",
      yAxis: "decisions / min", xAxis: "time · last 60 minutes", flowEmpty: "No decision in the last 60 minutes.",
      allSectors: "All sectors",
      nDecisions: { one: "{n} decision", other: "{n} decisions" },
      chartLabel: "{sector}: {total} ({delivered} delivered, {filtered} filtered, {denied} denied)",
      decisionsTitle: "Decisions · 24 h",
      decisionsHelp: "By event type, recipient sector, outcome and legal basis.",
      col: { type: "Type", sector: "Sector", outcome: "Outcome", basis: "Legal basis", count: "Count",
             removed: "Categories removed", group: "Group", topic: "Topic", lag: "Lag", partitions: "Partitions",
             reason: "Reason", service: "Refused by", eventType: "Event type", source: "Source", at: "Received",
             replayed: "Replayed", action: "Action", recorded: "Recorded", recipient: "Recipient", event: "Event",
             status: "Status", agency: "Agency", severity: "Severity", levels: "Levels paged", since: "Since" },
      decisionsEmpty: "No decision in the last 24 hours.",
      lagTitle: "Lag per group", lagHelp: "Messages written but not yet read, per consumer group and topic.",
      measured: "Measured at {time}", lagEmpty: "No lag measured yet.",
      deadTitle: "Dead letters", waitingN: "{n} waiting",
      deadHelp: "Records no service could process. Their content stays on Kafka: only the reason shows here.",
      deadEmpty: "No dead letters.", replay: "Replay", replaying: "Replaying…",
      replayedAt: "Yes · {time}", replayedTimes: "{n}×", notReplayed: "No",
      notReplayable: "Not from here", notReplayableHelp: "Refused by an agency: the gateway delivers it again.",
      replayDone: "Dead letter replayed: the gateway processes it again.",
      unknownType: "unreadable", unknownSource: "unknown",
      reasons: { envelope: "Invalid envelope", signature: "Invalid signature", sealing: "Invalid encryption",
                 schema: "Content off schema", replay: "Event id reused", unroutable: "No recipient",
                 not_a_recipient: "Answer from a non-recipient", unknown_consent: "Unknown consent",
                 unknown: "Unknown reason" },
      services: { gateway: "Gateway", agency: "Agency {id}" },
      reviewsTitle: "“Danger” disclosures to review",
      reviewsHelp: "Art. 458bis: every disclosure without consent must be approved by a second person, "
        + "not the one who raised the alert.",
      reviewsEmpty: "No disclosure awaiting review.", approve: "Approve", approving: "Approving…",
      pending: "Pending", approved: "Approved", approveDone: "Disclosure approved.",
      alertsTitle: "Unanswered alerts",
      alertsHelp: "Alerts no on-call worker acknowledged, at any level.",
      alertsEmpty: "Every alert was acknowledged.",
      severity: { info: "Information", high: "High danger", imminent: "Imminent danger" },
      sectors: { victim_support: "Victim support", perpetrator_support: "Perpetrator support", police: "Police",
                 justice: "Justice", health: "Health", social: "Social services",
                 child_protection: "Child protection", housing: "Housing" },
      bases: { consent: "Consent", danger: "Serious danger (art. 458bis)", case_conference: "Case conference",
               legal_obligation: "Legal obligation" },
      types: { "consent.granted": "Consent granted", "consent.withdrawn": "Consent withdrawn",
               "referral.created": "Referral", "referral.responded": "Referral answered",
               "alert.raised": "Alert", "alert.acknowledged": "Alert acknowledged", "alert.escalated": "Alert escalated" },
      needRead: "This token gives no access to the monitor: it takes an operator's token (issued by the operators, never by an agency) with the monitor:read scope.",
      needAct: "Your token lets you watch, not act: replaying or approving needs a token with the monitor:act scope.",
      secondPerson: "A second person must approve: whoever raised the alert cannot approve its own disclosure.",
      conflict: "The state changed in the meantime; the list is refreshed.",
      offline: "The server cannot be reached. Check your connection.",
      tokenRefused: "This token is refused. Check it or ask for a new one.",
      expired: "Your session has expired: sign in with a new token.",
      errors: { unauthorized: "Authentication required", forbidden: "Not allowed", "not-found": "Not found",
                conflict: "Conflict with the current state", validation: "The request is not valid",
                internal: "The service could not complete the request", http: "Request refused" },
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
    loaded: false,             // one full refresh succeeded with this token
    data: {},                  // the last answer of each endpoint
    conn: "loading",           // loading | live | partial | offline
    updatedAt: null,
    busy: false,
    timer: 0,
    again: false,              // a refresh was asked for while one was under way
    replaying: new Set(),      // dead-letter ids with a replay under way
    approving: new Set(),      // review ids with an approval under way
    banner: null,
    keys: {},                  // what each section last showed: rebuilt only when it changes
    clockOffset: 0,
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
    return key.split(".").reduce((node, part) => (node == null ? node : own(node, part)), table);
  }

  function fill(textValue, vars) {
    return vars ? String(textValue).replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all))
      : String(textValue);
  }

  function t(key, vars) {
    let value = lookup(T[S.lang], key);
    if (value == null) value = lookup(T.en, key);
    if (value == null) return key;
    return fill(value, vars);
  }

  function plural(key, n) {
    let category = "other";
    try { category = new Intl.PluralRules(LOCALES[S.lang]).select(n); } catch (e) { /* old browser */ }
    const forms = lookup(T[S.lang], key) || {};
    return fill(forms[category] || forms.other || "{n}", { n: formatNumber(n) });
  }

  /* A label from a closed vocabulary, or the raw code when this page does not know it. */
  function label(table, code) {
    const known = own(T[S.lang][table] || {}, code);
    return known || (code == null || code === "" ? "—" : String(code));
  }

  function own(table, key) {
    return table && typeof key === "string" && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  }

  /* An element; strings become text nodes, so nothing from the API is ever parsed as markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    return build(el, attrs, children);
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
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

  const text = (value) => (typeof value === "string" && value.trim() ? value.trim() : "");
  const num = (value) => (Number.isFinite(Number(value)) ? Number(value) : 0);
  const items = (body) => (body && Array.isArray(body.items) ? body.items : []);

  function formatNumber(n) {
    try { return new Intl.NumberFormat(LOCALES[S.lang]).format(n); } catch (e) { return String(n); }
  }

  function clockTime(value, seconds) {
    const moment = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(moment.getTime())) return "";
    const today = new Date().toDateString() === moment.toDateString();
    const options = { hour: "2-digit", minute: "2-digit" };
    if (seconds) options.second = "2-digit";
    if (!today) Object.assign(options, { day: "numeric", month: "short" });
    try { return new Intl.DateTimeFormat(LOCALES[S.lang], options).format(moment); } catch (e) { return moment.toLocaleString(); }
  }

  function serverNow() { return Date.now() + S.clockOffset; }
  function learnServerTime(now) {
    const at = Date.parse(now);
    if (Number.isFinite(at)) S.clockOffset = at - Date.now();
  }

  function ago(value) {
    const ms = serverNow() - Date.parse(value);
    if (!Number.isFinite(ms)) return "";
    const secs = Math.max(0, Math.round(ms / 1000));
    const [n, unit] = secs < 60 ? [secs, "second"] : secs < 3600 ? [Math.floor(secs / 60), "minute"]
      : secs < 86400 ? [Math.floor(secs / 3600), "hour"] : [Math.floor(secs / 86400), "day"];
    try {
      return new Intl.RelativeTimeFormat(LOCALES[S.lang], { numeric: "auto", style: "short" }).format(-n, unit);
    } catch (e) {
      return n + " " + unit.charAt(0);
    }
  }

  /* A moment: its clock time, and how long ago below it (kept fresh by updateAges). */
  function when(value) {
    if (!value) return "—";
    return h("span", null, clockTime(value),
      h("span", { class: "sub", "data-at": value }, ago(value)));
  }

  function updateAges() {
    for (const el of document.querySelectorAll("[data-at]")) {
      const value = ago(el.dataset.at);
      if (el.textContent !== value) el.textContent = value;
    }
  }

  function typeKey(type) {
    return String(type || "").replace(/^maillage\./, "").replace(/\.v\d+$/, "");
  }

  function typeLabel(type) {
    if (!type) return t("unknownType");
    return own(T[S.lang].types, typeKey(type)) || String(type);
  }

  function claims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const parsed = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (e) {
      return {};
    }
  }

  // --- the API ---------------------------------------------------------------------------------------

  async function api(path, method) {
    const response = await fetch(path, {
      method: method || "GET", cache: "no-store", credentials: "omit",
      headers: { Authorization: "Bearer " + S.token, Accept: "application/json", "Accept-Language": S.lang },
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
    if (!S.token) return;
    if (S.busy) { S.again = true; return; }
    S.busy = true;
    S.again = false;
    clearTimeout(S.timer);
    const token = S.token;
    try {
      const results = await Promise.all(ENDPOINTS.map(([key, path]) => api(path).then((result) => [key, result])));
      if (S.token !== token) return;  // signed out meanwhile
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
      if (S.token !== token) return;
      S.conn = "offline";
    } finally {
      S.busy = false;
      if (S.token === token) render();
      if (S.token) {  // the same operator: again in 5 s; another one signed in meanwhile: now
        clearTimeout(S.timer);
        S.timer = setTimeout(refresh, S.again || S.token !== token ? 0 : REFRESH_MS);
      }
    }
  }

  async function act(kind, id) {
    const pending = kind === "replay" ? S.replaying : S.approving;
    if (pending.has(id) || !S.token) return;
    pending.add(id);
    render();
    const path = kind === "replay" ? "/v1/dead-letters/" + encodeURIComponent(id) + "/replay"
      : "/v1/reviews/" + encodeURIComponent(id) + "/approve";
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
      const key = kind === "replay" ? "deadLetters" : "reviews";
      const list = items(S.data[key]);
      S.data[key] = { items: list.map((item) => (String(item.id) === String(id) ? result.body : item)) };
      hideBanner("action");
      notice(t(kind === "replay" ? "replayDone" : "approveDone"));
    } else if (result.status === 403) {
      const problem = problemOf(result);
      // Without monitor:act, the detail names the scope; otherwise it is the four-eyes rule.
      const help = kind === "approve" && !/monitor:act/.test(text(problem.detail)) ? "secondPerson" : "needAct";
      showBanner(problem, "action", help);
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

  function applyLanguage() {
    document.documentElement.lang = S.lang;
    document.title = "Maillage · " + t("app");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
    $("lang").value = S.lang;
    renderBanner();
    render();
  }

  function showView() {
    const signedIn = Boolean(S.token);
    $("signin").hidden = signedIn;
    $("board").hidden = !signedIn;
  }

  function renderWho() {
    const c = S.token ? claims(S.token) : {};
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

  /* A table whose cells carry their column's name, so that on a phone each row reads as a small card. */
  function table(testid, columns, rows) {
    return h("table", { class: "data", "data-testid": testid },
      h("thead", null, h("tr", null, columns.map((col) =>
        h("th", { scope: "col", class: col.cls || null }, col.label)))),
      h("tbody", null, rows.map((row) => h("tr", row.attrs, row.cells.map((cell, i) =>
        h("td", { class: columns[i].cls || null, "data-label": columns[i].label }, cell))))));
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

  function code(value) {
    return value ? h("span", { class: "code" }, String(value)) : "—";
  }

  function renderDecisions() {
    const body = S.data.decisions;
    $("decisions-title").textContent = t("decisionsTitle");
    if (!changed("decisions", body)) return;
    const rows = items(body).slice().sort((a, b) => num(b.count) - num(a.count)
      || String(a.sector).localeCompare(String(b.sector)) || String(a.outcome).localeCompare(String(b.outcome)));
    const out = $("decisions-body");
    if (!rows.length) { out.replaceChildren(emptyNote("decisions-empty", "decisionsEmpty")); return; }
    out.replaceChildren(table("decisions-table", cols("type", "sector", "outcome", "basis", "count:num", "removed:num"),
      rows.map((d) => ({
        attrs: { "data-testid": "decision-row", "data-outcome": d.outcome, "data-sector": d.sector },
        cells: [h("span", { title: String(d.type || "") }, typeLabel(d.type)), label("sectors", d.sector),
                h("span", { class: "pill " + (OUTCOMES.includes(d.outcome) ? d.outcome : "info") },
                  label("outcome", d.outcome)),
                label("bases", d.legal_basis), formatNumber(num(d.count)), formatNumber(num(d.categories_removed))],
      }))));
  }

  function renderLag() {
    const body = S.data.lag;
    $("lag-measured").textContent = body && body.measured_at ? t("measured", { time: clockTime(body.measured_at, true) }) : "";
    const groups = body && Array.isArray(body.groups) ? body.groups : [];
    if (!changed("lag", groups)) return;
    const out = $("lag-body");
    if (!groups.length) { out.replaceChildren(emptyNote("lag-empty", "lagEmpty")); return; }
    out.replaceChildren(table("lag-table", cols("group", "topic", "lag:num", "partitions:num"),
      groups.map((g) => ({
        attrs: { "data-testid": "lag-row", "data-group": g.group, "data-lag": num(g.lag) },
        cells: [ident(g.group), ident(g.topic),
                h("span", { class: num(g.lag) > 0 ? "lagging" : null }, formatNumber(num(g.lag))),
                formatNumber(num(g.partitions))],
      }))));
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
    if (!changed("deadLetters", list, [...S.replaying])) return;
    const out = $("dead-letters-body");
    if (!list.length) { out.replaceChildren(emptyNote("dead-letters-empty", "deadEmpty")); return; }
    out.replaceChildren(table("dead-letters-table",
      cols("reason", "service", "eventType", "source", "at", "replayed", "action:act-cell"),
      list.map((d) => {
        const id = String(d.id);
        const replayed = Boolean(d.replayed_at);
        let action;
        if (d.replayable && !replayed) {
          const busy = S.replaying.has(id);
          action = h("button", { type: "button", class: "btn", "data-testid": "replay-button", disabled: busy },
            busy ? t("replaying") : t("replay"));
          action.addEventListener("click", () => act("replay", id));
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
      })));
  }

  function renderReviews() {
    const list = items(S.data.reviews);
    const pendingCount = list.filter((r) => r.status === "pending").length;
    $("reviews-title").replaceChildren(t("reviewsTitle"),
      pendingCount ? h("span", { class: "n" }, "(" + pendingCount + ")") : "");
    if (!changed("reviews", list, [...S.approving])) return;
    const out = $("reviews-body");
    if (!list.length) { out.replaceChildren(emptyNote("reviews-empty", "reviewsEmpty")); return; }
    out.replaceChildren(table("reviews-table",
      cols("recorded", "source", "recipient", "sector", "event", "status", "action:act-cell"),
      list.map((r) => {
        const id = String(r.id);
        const pending = r.status === "pending";
        let action = "";
        if (pending) {
          const busy = S.approving.has(id);
          action = h("button", { type: "button", class: "btn", "data-testid": "approve-button", disabled: busy },
            busy ? t("approving") : t("approve"));
          action.addEventListener("click", () => act("approve", id));
        }
        return {
          attrs: { "data-testid": "review-row", "data-id": id, "data-status": r.status,
                   class: pending ? null : "is-done" },
          cells: [when(r.recorded_at), ident(r.source), ident(r.recipient), label("sectors", r.sector),
                  h("span", { class: "ident", title: String(r.event_id || "") }, String(r.event_id || "").slice(0, 8)),
                  h("span", { class: "pill " + (pending ? "waiting" : "ok") },
                    pending ? t("pending") : t("approved")), action],
        };
      })));
  }

  function renderAlerts() {
    const list = items(S.data.alerts);
    $("alerts-title").replaceChildren(t("alertsTitle"), list.length ? h("span", { class: "n" }, "(" + list.length + ")") : "");
    if (!changed("alerts", list)) return;
    const out = $("alerts-body");
    if (!list.length) { out.replaceChildren(emptyNote("alerts-empty", "alertsEmpty")); return; }
    out.replaceChildren(table("alerts-table", cols("agency", "severity", "levels:num", "since"),
      list.map((a) => ({
        attrs: { "data-testid": "alert-row", "data-alert-id": a.alert_id, "data-severity": a.severity },
        cells: [ident(a.agency),
                h("span", { class: "pill " + (["info", "high", "imminent"].includes(a.severity) ? a.severity : "info") },
                  label("severity", a.severity)),
                formatNumber(num(a.levels_paged)), when(a.since || a.received_at)],
      }))));
  }

  // --- messages --------------------------------------------------------------------------------------

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
    banner.dataset.status = message.status || "";
    banner.dataset.help = help || "";
    $("banner-title").textContent = message.titleKey ? t(message.titleKey) : known || text(message.title) || t("errors.http");
    $("banner-help").textContent = help ? t(help) : "";
    $("banner-help").hidden = !help;
    $("banner-detail").textContent = text(message.detail);
    $("banner-detail").hidden = !text(message.detail);
  }

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
    S.approving = new Set();
  }

  function signInAgain(message, help) {
    S.token = null;
    session.remove(TOKEN_KEY);
    reset();
    showView();
    showBanner(message, "auth", help);
    $("token").focus();
  }

  function signOut() {
    S.token = null;
    session.remove(TOKEN_KEY);
    reset();
    hideBanner();
    showView();
    $("token").value = "";
    $("token").focus();
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
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
    reset();
    showView();
    render();
    refresh();
  });

  $("signout").addEventListener("click", signOut);
  $("refresh").addEventListener("click", () => refresh());
  $("banner-close").addEventListener("click", () => hideBanner());
  $("lang").addEventListener("change", (event) => {
    const lang = event.target.value;
    if (!LANGS.includes(lang)) return;
    S.lang = lang;
    local.set(LANG_KEY, lang);
    applyLanguage();
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (S.token) renderFlow(); }, 150);
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && S.token) refresh(); });
  window.addEventListener("online", () => { if (S.token) refresh(); });

  applyLanguage();
  showView();
  if (S.token) refresh(); else $("token").focus();
})();
