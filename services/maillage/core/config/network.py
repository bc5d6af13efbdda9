"""The network file: one Pôle's agencies, its Kafka settings and its policy, loaded and validated."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maillage.core.crypto.keys import ALL_USES, GATEWAY, TOKENS_ONLY, KeyUse
from maillage.core.messaging.topics import TopicKind, Topics
from maillage.domain.disclosure import Recipient
from maillage.domain.events import RecipientId
from maillage.domain.retention import KEEP, Stored, cutoffs
from maillage.domain.rota import OncallPolicy
from maillage.domain.vocabulary import Sector


class NetworkError(ValueError):
    """The network file is not usable."""


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2000:
        raise ValueError("an http(s) URL")
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgencyConfig(_Model):
    id: RecipientId
    name: str
    sector: Sector
    poles: tuple[str, ...] = ()
    port: int = Field(ge=0, le=65535)
    database_url: str | None = None
    # The Pôle's consultation desk: where anonymous consultations of its Pôle(s) go.
    consultation_desk: bool = False
    # Authorised to convene case conferences (art. 458ter: the Pôle's own service, a prosecutor's office).
    convenes_case_conferences: bool = False
    # Where the agency's service publishes its public keys (its `/.well-known/jwks.json`): every other service
    # fetches them from there. Unset: read from the public key folder (one machine, or a copied folder).
    jwks_url: HttpUrlText | None = None
    # Where its API is reached (`https://…` across machines); unset: http://127.0.0.1:{port}.
    url: HttpUrlText | None = None

    @property
    def base_url(self) -> str:
        return base_url(self.url, self.port)


def base_url(url: str | None, port: int) -> str:
    """A service's address as the network file gives it, or the loopback one of `maillage up`."""
    return (url or f"http://127.0.0.1:{port}").rstrip("/")


FOREVER = -1
_DAY_MS = 24 * 3600 * 1000


class RetentionConfig(_Model):
    """How many days each kind of topic keeps its records (`-1`: forever), whatever its consumers have read.

    The audit topic is the Pôle's record of every disclosure decision: it is kept forever unless the file
    says otherwise. The others are queues whose consumers keep what they read in their own databases; they
    are kept long enough for a service stopped over a long holiday to catch up, or an operator to replay.
    """

    audit: int = Field(default=FOREVER, ge=FOREVER)
    submitted: int = Field(default=7, ge=FOREVER)
    deliveries: int = Field(default=14, ge=FOREVER)
    statuses: int = Field(default=14, ge=FOREVER)
    dead_letters: int = Field(default=30, ge=FOREVER)
    oncall: int = Field(default=30, ge=FOREVER)

    @field_validator("*")
    @classmethod
    def _not_zero(cls, days: int) -> int:
        if days == 0:
            raise ValueError("a retention of 0 days would delete records before anyone reads them; -1 keeps them")
        return days

    def ms(self, kind: TopicKind) -> int:
        """Kafka's `retention.ms` for a topic of this kind."""
        days: int = getattr(self, kind.value)
        return FOREVER if days == FOREVER else days * _DAY_MS


class StorageRetention(_Model):
    """`[retention]`: how many days each kind of stored data is kept once finished (`-1`: kept; a key left out:
    the default here). Every service purges its own tables every `purge_interval_minutes`, `purge_batch` rows
    per transaction; what is not finished (an open referral, an alert no one acknowledged, a webhook not yet
    delivered, an outbox row not yet published, a consent in force) is never purged, however old.

    The gateway's audit chain has no period here: it is the legal record of every disclosure (pseudonymous
    metadata), hash-chained, and no purge touches it.
    """

    inbox_items: int = 365
    closed_referrals: int = 730
    sent_events: int = 730
    acknowledged_alerts: int = 365
    webhook_bodies: int = 30
    webhook_deliveries: int = 365
    published_outbox: int = 7
    # A consent that ended is the legal basis of what was disclosed under it: kept as long as a closed referral.
    ended_consents: int = 730
    signin_sessions: int = 30
    idempotency_keys: int = 30
    dedup_records: int = 30
    dead_letters: int = 90
    purge_interval_minutes: int = Field(default=60, ge=1)
    purge_batch: int = Field(default=500, ge=1)

    @field_validator(*(kind.value for kind in Stored))
    @classmethod
    def _period(cls, days: int) -> int:
        if days == 0:
            raise ValueError("a retention of 0 days would delete what just finished; -1 keeps it")
        if days < KEEP:
            raise ValueError("a retention is a number of days (at least 1), or -1 to keep")
        return days

    @property
    def periods(self) -> dict[Stored, int]:
        return {kind: getattr(self, kind.value) for kind in Stored}

    def cutoffs(self, now: datetime) -> dict[Stored, datetime]:
        """Each kind's cut-off at `now` (the kinds kept have none)."""
        return cutoffs(self.periods, now=now)


class KafkaConfig(_Model):
    bootstrap: str = ""
    topic_prefix: str = ""
    # 1 on the local single broker; `maillage up --brokers 3` takes 3 and 2 when the file says nothing.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    partitions: int = Field(default=3, ge=1)
    retention: RetentionConfig = RetentionConfig()
    # Clients reach the brokers over TLS (SASL_SSL), checking their certificates against the network CA.
    tls: bool = False

    @model_validator(mode="before")
    @classmethod
    def _insync_from_replicas(cls, data: object) -> object:
        # Replicated topics not told otherwise accept a write while one replica is away, never with one alone.
        if isinstance(data, dict) and "replication_factor" in data and "min_insync_replicas" not in data:
            replicas = data["replication_factor"]
            if isinstance(replicas, int) and replicas > 1:
                data = {**data, "min_insync_replicas": replicas - 1}
        return data

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> KafkaConfig:
        if self.min_insync_replicas > self.replication_factor:
            # Every acks=all write would then be refused (NOT_ENOUGH_REPLICAS): nothing could be sent.
            raise ValueError("min_insync_replicas must not exceed replication_factor")
        return self

    def on_brokers(self, brokers: int) -> KafkaConfig:
        """These settings on a cluster of `brokers` started here: a replica per broker up to three (and
        `min_insync_replicas` one fewer) where the file says nothing; more replicas than brokers is refused."""
        given = self.model_dump(include=self.model_fields_set)
        settled = KafkaConfig.model_validate({"replication_factor": min(brokers, 3), **given})
        if settled.replication_factor > brokers:
            raise NetworkError(
                f"the network file asks for {settled.replication_factor} replicas of each topic, "
                f"but {brokers} broker(s) are started"
            )
        return settled

    def topic_configs(self, kinds: Mapping[str, TopicKind]) -> dict[str, dict[str, str]]:
        """Each topic's Kafka configs, from its kind."""
        return {name: self._configs(kind) for name, kind in kinds.items()}

    def _configs(self, kind: TopicKind) -> dict[str, str]:
        retention = self.retention.ms(kind)
        configs = {"min.insync.replicas": str(self.min_insync_replicas), "retention.ms": str(retention)}
        if retention != FOREVER:
            # Kafka deletes whole closed segments: a segment rolled daily bounds how long a record outlives its
            # retention to one day (the broker's default roll is a week) — an erased person's ciphertext too.
            configs["segment.ms"] = str(_DAY_MS)
        return configs


class GatewayConfig(_Model):
    port: int = Field(default=8700, ge=0, le=65535)
    database_url: str | None = None
    jwks_url: HttpUrlText | None = None  # as an agency's
    url: HttpUrlText | None = None

    @property
    def base_url(self) -> str:
        return base_url(self.url, self.port)


class DispatcherConfig(_Model):
    port: int = Field(default=8709, ge=0, le=65535)
    database_url: str | None = None
    # The agencies whose alerts it serves; empty: every agency with an on-call policy.
    agencies: tuple[str, ...] = ()
    timezone: str = "Europe/Brussels"
    url: HttpUrlText | None = None
    # The same subject's alerts to one agency within this many seconds are grouped, not paged again.
    group_window_seconds: int = Field(default=600, ge=0)
    # After a restart, how long workers have to reconnect before "no one connected" escalates at once.
    reconnect_grace_seconds: int = Field(default=30, ge=0)

    @property
    def base_url(self) -> str:
        return base_url(self.url, self.port)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class MonitorConfig(_Model):
    port: int = Field(default=8710, ge=0, le=65535)
    database_url: str | None = None
    url: HttpUrlText | None = None
    # The Pôles' published figures withhold every count below it, and any figure that would give one away
    # (domain/statistics.py). A request may raise it, never lower it.
    stats_threshold: int = Field(default=5, ge=2, le=1000)
    # A holder that has not confirmed an erasure this long after it was asked is shown to operators.
    erasure_confirm_hours: int = Field(default=72, ge=1, le=24 * 90)

    @property
    def base_url(self) -> str:
        return base_url(self.url, self.port)


class OperatorsConfig(_Model):
    """The operators' token issuer: the only one whose tokens carry the monitor's scopes. An agency mints
    its own staff's tokens, so it could name anyone an operator; operators' powers come from operators."""

    issuer: RecipientId = "operators"
    # Where the operators' public token keys are published (the monitor serves them from its key folder).
    jwks_url: HttpUrlText | None = None


class AllowedDestination(_Model):
    host: str = Field(min_length=1, description="An IP literal or a name, as webhook URLs write it.")
    port: int = Field(ge=1, le=65535)


class WebhooksConfig(_Model):
    """Where webhooks may go besides public addresses: each (host, port) allowed although it is not public,
    and an extra CA bundle trusted for their TLS (relative to the network file)."""

    allow: tuple[AllowedDestination, ...] = ()
    ca_file: Path | None = None
    # False on a test or development network: webhooks go to the allow-listed destinations only, and a name
    # not on the list is refused without being resolved (no DNS query for a name a client made up).
    public: bool = True


class Network(_Model):
    name: str
    policy: Path
    kafka: KafkaConfig = KafkaConfig()
    gateway: GatewayConfig = GatewayConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    monitor: MonitorConfig = MonitorConfig()
    operators: OperatorsConfig = OperatorsConfig()
    agencies: tuple[AgencyConfig, ...]
    oncall: dict[str, OncallPolicy] = Field(default_factory=dict)
    webhooks: WebhooksConfig = WebhooksConfig()
    retention: StorageRetention = StorageRetention()
    # The network CA's certificate (PEM, relative to the network file): trusted, besides the system's, by
    # every service and command for the network's own TLS (JWKS documents, the services' APIs, the brokers).
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Network:
        ids = [a.id for a in self.agencies]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"agency ids must be unique: {sorted(dupes)}")
        clashes = {i for i in ids if i in set(Sector)}
        if clashes:
            raise ValueError(f"agency ids must not be sector names: {sorted(clashes)}")
        if self.operators.issuer in {*ids, "gateway", "dispatcher", "monitor"}:
            raise ValueError(f"the operators' issuer {self.operators.issuer!r} must not be an agency or service id")
        strangers = sorted(set(self.oncall) - set(ids))
        if strangers:
            raise ValueError(f"on-call policies for agencies not in the network: {strangers}")
        unserved = sorted(set(self.dispatcher.agencies) - set(self.oncall))
        if unserved:
            raise ValueError(f"the dispatcher serves agencies without an on-call policy: {unserved}")
        return self

    @model_validator(mode="after")
    def _dedup_outlives_submissions(self) -> Network:
        # The gateway tells a record it already decided by its dedup record: one forgotten while the record can
        # still be read again from maillage.submitted (a rewind, a replay) would be decided and delivered twice.
        dedup, submitted = self.retention.dedup_records, self.kafka.retention.submitted
        if dedup != KEEP and (submitted == FOREVER or dedup < submitted):
            kept = "kept forever" if submitted == FOREVER else f"{submitted} days"
            raise ValueError(
                f"retention.dedup_records ({dedup} days) must be at least kafka.retention.submitted ({kept}), "
                "or -1: the gateway would decide an event it can read again a second time"
            )
        return self

    def topic_configs(self, topics: Topics) -> dict[str, dict[str, str]]:
        """Every topic of the network under these names, with its configs (replicas in sync, retention)."""
        return self.kafka.topic_configs(topics.kinds([a.id for a in self.agencies]))

    @property
    def key_owners(self) -> dict[str, tuple[KeyUse, ...]]:
        """Everyone with keys of their own, and which: the gateway and every agency sign, seal and mint
        tokens; the operators' issuer only mints tokens."""
        return {GATEWAY: ALL_USES, self.operators.issuer: TOKENS_ONLY, **{a.id: ALL_USES for a in self.agencies}}

    @property
    def jwks_urls(self) -> dict[str, str]:
        """The owners whose public keys are fetched from a JWKS URL, and from where."""
        urls = {GATEWAY: self.gateway.jwks_url, self.operators.issuer: self.operators.jwks_url}
        urls |= {a.id: a.jwks_url for a in self.agencies}
        return {owner: url for owner, url in urls.items() if url}

    def tls_hosts(self, *, brokers: int) -> dict[str, tuple[str, ...]]:
        """The names each service, broker and the database server is reached at, from its URLs here: what its
        certificate must name (and nothing more: a certificate valid for another service's name could pass
        for it). Broker i is the i-th address of the bootstrap list."""

        def hosts(*urls: str | None) -> tuple[str, ...]:
            return tuple(dict.fromkeys(h for u in urls if u and (h := urlsplit(u).hostname)))

        names = {
            GATEWAY: hosts(self.gateway.url, self.gateway.jwks_url),
            "dispatcher": hosts(self.dispatcher.url),
            "monitor": hosts(self.monitor.url, self.operators.jwks_url),
            **{a.id: hosts(a.url, a.jwks_url) for a in self.agencies},
        }
        databases = [self.gateway.database_url, self.dispatcher.database_url, self.monitor.database_url]
        names["postgres"] = hosts(*databases, *(a.database_url for a in self.agencies))
        addresses = [a.strip() for a in self.kafka.bootstrap.split(",") if a.strip()]
        for i in range(1, brokers + 1):
            names[f"kafka-{i}"] = hosts(f"//{addresses[i - 1]}") if i <= len(addresses) else ()
        return names

    @property
    def dispatched(self) -> tuple[str, ...]:
        """The agencies whose alerts the dispatcher serves."""
        return self.dispatcher.agencies or tuple(self.oncall)

    @cached_property
    def by_id(self) -> dict[str, AgencyConfig]:
        return {a.id: a for a in self.agencies}

    def agency(self, agency_id: str) -> AgencyConfig:
        try:
            return self.by_id[agency_id]
        except KeyError:
            raise NetworkError(f"no agency {agency_id!r} in network {self.name!r}") from None

    def knows(self, recipient: str) -> bool:
        return recipient in self.by_id or recipient in set(Sector)

    @cached_property
    def by_sector(self) -> dict[str, tuple[AgencyConfig, ...]]:
        """Each sector's agencies, in the network's order."""
        found: dict[str, list[AgencyConfig]] = {}
        for agency in self.agencies:
            found.setdefault(agency.sector.value, []).append(agency)
        return {sector: tuple(agencies) for sector, agencies in found.items()}

    def resolve(self, recipients: tuple[str, ...], *, sender: str, pole: str | None) -> tuple[Recipient, ...]:
        """Each named agency, wherever it works, and every agency of each named sector that serves `pole` —
        never the rest of the network: a danger alert "to the police" reaches the police zone of the
        event's Pôle, not every police zone. Never the sender itself. Looked up, not searched: a network of all
        Wallonia's Pôles costs an event no more than one of ten agencies (an agency's id is never a sector's
        name, so a recipient names one or the other)."""
        chosen: dict[str, Recipient] = {}
        for token in recipients:
            named = self.by_id.get(token)
            if named is not None:
                candidates: tuple[AgencyConfig, ...] = (named,)
            else:
                in_sector = self.by_sector.get(token, ())
                candidates = tuple(a for a in in_sector if pole is None or pole in a.poles)
            for agency in candidates:
                if agency.id != sender and agency.id not in chosen:
                    chosen[agency.id] = Recipient(agency_id=agency.id, sector=agency.sector)
        return tuple(chosen.values())

    def pole_of(self, agency_id: str, *, asked: str | None) -> str:
        """The Pôle an agency's event belongs to: the one asked, if the agency serves it; else its only one.
        Raises NetworkError when none fits (asked for one it does not serve, or several to choose from)."""
        poles = self.agency(agency_id).poles
        if asked is not None:
            if asked not in poles:
                raise NetworkError(f"{agency_id} does not serve the Pôle {asked!r}")
            return asked
        if len(poles) != 1:
            raise NetworkError(f"{agency_id} serves {len(poles)} Pôles: say which one the event belongs to")
        return poles[0]

    def consultation_desk(self, pole: str) -> AgencyConfig | None:
        return next((a for a in self.agencies if a.consultation_desk and pole in a.poles), None)


def load_network(path: Path) -> Network:
    try:
        doc = tomllib.loads(path.read_text())
        doc["policy"] = (path.parent / doc.get("policy", "policy.toml")).resolve()
        if "ca_file" in doc.get("webhooks", {}):
            doc["webhooks"]["ca_file"] = (path.parent / doc["webhooks"]["ca_file"]).resolve()
        if "ca_file" in doc:
            doc["ca_file"] = (path.parent / doc["ca_file"]).resolve()
        return Network.model_validate(doc)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise NetworkError(f"{path}: {exc}") from exc
