"""The SASL/SCRAM identity a service presents to Kafka; `None` everywhere means a plaintext broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaAuth:
    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM
    # SCRAM never sends the password itself; SASL_SSL where the network between services is not trusted.
    security_protocol: str = "SASL_PLAINTEXT"

    @property
    def principal(self) -> str:
        return f"User:{self.username}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        return {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def java_client_properties(self) -> str:
        """The same identity for Kafka's Java tools (`--command-config`)."""
        return (
            f"security.protocol={self.security_protocol}\n"
            f"sasl.mechanism={self.mechanism}\n"
            f"sasl.jaas.config={scram_jaas_config(self.username, self.password)}\n"
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
