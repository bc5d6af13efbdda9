"""The network file: one Pôle's agencies, its Kafka settings and its policy, loaded and validated."""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maillage.core.disclosure import Recipient
from maillage.core.events import RecipientId
from maillage.core.vocabulary import Sector


class NetworkError(ValueError):
    """The network file is not usable."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgencyConfig(_Model):
    id: RecipientId
    name: str
    sector: Sector
    poles: tuple[str, ...] = ()
    port: int = Field(ge=0, le=65535)
    database_url: str | None = None


class KafkaConfig(_Model):
    bootstrap: str = ""
    topic_prefix: str = ""
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    partitions: int = Field(default=3, ge=1)


class GatewayConfig(_Model):
    port: int = Field(default=8700, ge=0, le=65535)
    database_url: str | None = None


class Network(_Model):
    name: str
    policy: Path
    kafka: KafkaConfig = KafkaConfig()
    gateway: GatewayConfig = GatewayConfig()
    agencies: tuple[AgencyConfig, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Network:
        ids = [a.id for a in self.agencies]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"agency ids must be unique: {sorted(dupes)}")
        clashes = {i for i in ids if i in set(Sector)}
        if clashes:
            raise ValueError(f"agency ids must not be sector names: {sorted(clashes)}")
        return self

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

    def resolve(self, recipients: tuple[str, ...], *, sender: str) -> tuple[Recipient, ...]:
        """Each named agency, and every agency of each named sector, except the sender itself."""
        chosen: dict[str, Recipient] = {}
        for token in recipients:
            for agency in self.agencies:
                if token in (agency.id, agency.sector.value) and agency.id != sender:
                    chosen[agency.id] = Recipient(agency_id=agency.id, sector=agency.sector)
        return tuple(chosen.values())


def load_network(path: Path) -> Network:
    try:
        doc = tomllib.loads(path.read_text())
        doc["policy"] = (path.parent / doc.get("policy", "policy.toml")).resolve()
        return Network.model_validate(doc)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise NetworkError(f"{path}: {exc}") from exc
