"""The SASL/SCRAM identity a service presents to Kafka; `None` everywhere means a plaintext broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maillage.core.crypto.network_ca import client_context

SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaAuth:
    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM
    # SCRAM never sends the password itself; TLS (SASL_SSL) wherever the network between machines is not
    # trusted: the brokers' certificates are checked against the system's CAs and `ca_file` (the network CA).
    tls: bool = False
    ca_file: Path | None = None

    @property
    def principal(self) -> str:
        return f"User:{self.username}"

    @property
    def security_protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        kwargs: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if self.tls:
            kwargs["ssl_context"] = client_context(self.ca_file)
        return kwargs

    def java_client_properties(self) -> str:
        """The same identity for Kafka's Java tools (`--command-config`)."""
        trust = (
            f"ssl.truststore.type=PEM\nssl.truststore.location={self.ca_file}\n" if self.tls and self.ca_file else ""
        )
        return (
            f"security.protocol={self.security_protocol}\n"
            f"sasl.mechanism={self.mechanism}\n"
            f"sasl.jaas.config={scram_jaas_config(self.username, self.password)}\n"
            f"{trust}"
        )


def scram_jaas_config(username: str, password: str) -> str:
    return (
        f"org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{_jaas_quoted(username)}" password="{_jaas_quoted(password)}";'
    )


def _jaas_quoted(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise ValueError("SCRAM user names and passwords must not contain quotes, backslashes or newlines")
    return value


def client_kwargs(auth: KafkaAuth | None) -> dict[str, Any]:
    return auth.client_kwargs() if auth is not None else {}
