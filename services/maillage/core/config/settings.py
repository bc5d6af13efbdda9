"""Settings shared by every service (pydantic-settings, env prefix MAILLAGE_)."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from maillage.core.config.network import Network, load_network
from maillage.core.crypto.jwks import JwksSource
from maillage.core.crypto.keys import KeyDirs, ensure_secret
from maillage.core.messaging.kafka_auth import KafkaAuth
from maillage.core.messaging.topics import Topics
from maillage.core.storage.private import keep_private
from maillage.domain.policy import Policy, parse_policy

METRICS_TOKEN_FILE = "metrics.token"
# The demo Pôle, shipped as package data (also at deploy/network.toml in a checkout).
DEFAULT_NETWORK = Path(str(resources.files("maillage.defaults").joinpath("network.toml")))


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILLAGE_", extra="ignore")

    network_file: Path = DEFAULT_NETWORK
    kafka_bootstrap: str = ""
    topic_prefix: str | None = None
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    # Another SQLAlchemy async URL than the service's SQLite file in data_dir (or the network file's).
    database_url: str | None = None
    max_body_bytes: int = 16 * 1024
    # SASL/SCRAM identity on a broker that enforces ACLs (`maillage acl apply`); empty: plaintext.
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    # Or the password in a 0600 file (what `maillage up` hands its services: no secret in the environment).
    kafka_password_file: Path | None = None
    # Private keys (0600, never in git) and the public keys every service loads; default under data_dir.
    key_dir: Path | None = None
    public_key_dir: Path | None = None
    # How often a running service reloads the public keys: a retired key id is refused within this bound.
    key_refresh_seconds: float = Field(default=60.0, gt=0)
    # The bearer secret a Prometheus scraper presents at /metrics (`bearer_token_file`); empty: made once
    # and kept in the private key directory, shared by the services of one data directory.
    metrics_token: SecretStr = SecretStr("")
    # How every server is served (core/serving.py). Connections at once, beyond which a request gets a 503
    # (uvicorn's limit_concurrency): idle and half-sent connections count too, so it stands well above the
    # workers' sockets (the on-call benchmark: 1,000) plus a flood of idle ones; each needs a file descriptor.
    max_connections: int = Field(default=4096, gt=0)
    # Idle time allowed between two requests on a kept-alive connection.
    keep_alive_seconds: int = Field(default=5, gt=0)
    # A new connection must begin a request within this, and a request's head and body arrive within this of
    # its first byte; a half-sent request is then answered 408 and closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # uvicorn's HTTP/1.1 parser: httptools (C, what uvicorn picks when installed) or h11 (pure Python).
    http_parser: Literal["httptools", "h11"] = "httptools"
    # Serve HTTPS with this certificate chain and key (PEM; `maillage keys init` issues them from the network
    # CA): across machines every API is reached over TLS. Unset: plain HTTP, for the loopback only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("MAILLAGE_TLS_CERT_FILE and MAILLAGE_TLS_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _kafka_password_with_username(self) -> ServiceSettings:
        if self.kafka_username and not (self.kafka_password.get_secret_value() or self.kafka_password_file):
            raise ValueError(
                "MAILLAGE_KAFKA_USERNAME is set but neither MAILLAGE_KAFKA_PASSWORD nor MAILLAGE_KAFKA_PASSWORD_FILE is"
            )
        return self

    def scrape_token(self) -> str:
        configured = self.metrics_token.get_secret_value()
        if configured:
            return configured
        return ensure_secret(self.key_dirs.private / METRICS_TOKEN_FILE, lambda: secrets.token_urlsafe(32))

    @cached_property
    def network(self) -> Network:
        return load_network(self.network_file)

    @cached_property
    def policy(self) -> Policy:
        return parse_policy(self.network.policy.read_bytes())

    @property
    def kafka_auth(self) -> KafkaAuth | None:
        if not self.kafka_username:
            return None
        password = self.kafka_password.get_secret_value()
        if not password and self.kafka_password_file is not None:
            password = self.kafka_password_file.read_text().strip()
        return KafkaAuth(
            username=self.kafka_username,
            password=password,
            tls=self.network.kafka.tls,
            ca_file=self.network.ca_file,
        )

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or self.network.kafka.bootstrap or "127.0.0.1:9092"

    @property
    def topics(self) -> Topics:
        prefix = self.topic_prefix if self.topic_prefix is not None else self.network.kafka.topic_prefix
        return Topics(prefix=prefix)

    @property
    def key_dirs(self) -> KeyDirs:
        base = self.data_dir / "keys"
        return KeyDirs(private=self.key_dir or base / "private", public=self.public_key_dir or base / "public")

    def key_source(self, *, own: Collection[str] = ()) -> JwksSource | None:
        """The other owners' keys from their JWKS URLs, if the network file names any (not those of `own`,
        whose keys are in this service's own folder)."""
        urls = {owner: url for owner, url in self.network.jwks_urls.items() if owner not in own}
        if not urls:
            return None
        return JwksSource(urls, refresh_seconds=self.key_refresh_seconds, ca_file=self.network.ca_file)

    def db_url(self) -> str:
        """The service's database: configured here, else in the network file, else SQLite in data_dir."""
        raise NotImplementedError

    def sqlite_url(self, name: str) -> str:
        keep_private(self.data_dir)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').resolve()}"
