"""Prometheus metrics of every service: counts and timings by type, sector, outcome — never content."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_SUBMITTED = Counter(
    "maillage_events_submitted_total", "Events an agency submitted, by type.", ["agency", "type"]
)
EVENTS_RECEIVED = Counter(
    "maillage_events_received_total", "Events an agency received from the gateway, by type.", ["agency", "type"]
)
DECISIONS = Counter(
    "maillage_gateway_decisions_total",
    "Per-recipient decisions of the gateway.",
    ["type", "sector", "outcome", "legal_basis"],
)
DECISION_SECONDS = Histogram(
    "maillage_gateway_batch_seconds",
    "Time to decide and publish one batch of submitted records.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEAD_LETTERS = Counter(
    "maillage_dead_letters_total",
    "Records sent to the dead-letter topic, by service and reason.",
    ["service", "reason"],
)
REVIEW_QUEUE = Counter(
    "maillage_danger_disclosures_total",
    "Disclosures under the danger basis (each enters the review queue).",
    ["sector"],
)

ALERTS_RECEIVED = Counter(
    "maillage_oncall_alerts_received_total",
    "Alerts the dispatcher received for an agency, by severity.",
    ["agency", "severity"],
)
ALERT_PAGES = Counter(
    "maillage_oncall_pages_total", "Workers paged, by agency and escalation level.", ["agency", "level"]
)
ALERT_ESCALATIONS = Counter(
    "maillage_oncall_escalations_total",
    "Alerts escalated past a level, and alerts with every level exhausted.",
    ["agency", "outcome"],
)
ALERT_ACK_SECONDS = Histogram(
    "maillage_alert_acknowledgement_seconds",
    "Time from an alert's arrival to its acknowledgement.",
    ["severity"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
ONCALL_CONNECTIONS = Gauge(
    "maillage_oncall_connections", "Live worker connections (WebSocket and SSE), by agency.", ["agency"]
)

CONSUMER_LAG = Gauge(
    "maillage_consumer_lag_records",
    "Records not yet consumed, per consumer group and topic (from the broker).",
    ["group", "topic"],
)
REVIEWS_PENDING = Gauge(
    "maillage_review_queue_pending", "Disclosures under the danger basis awaiting a second person's review."
)
ERASURES_UNCONFIRMED = Gauge(
    "maillage_erasures_unconfirmed",
    "Erasures a holder has not confirmed within the network's time ([monitor] erasure_confirm_hours).",
)
ALERTS_UNACKNOWLEDGED = Gauge(
    "maillage_alerts_unacknowledged", "Alerts every on-call level let pass, not acknowledged since."
)
OUTBOX_BACKLOG = Gauge("maillage_outbox_backlog", "Outbox rows not yet published to Kafka, by service.", ["service"])
OUTBOX_REFUSED = Counter(
    "maillage_outbox_refused_total",
    "Outbox rows the relay would not sign (no valid integrity tag: not written by this service), by service.",
    ["service"],
)
RETENTION_PURGED = Counter(
    "maillage_retention_purged_total",
    "Stored rows past their retention period, purged (webhook bodies: erased), by service and kind of data.",
    ["service", "kind"],
)
