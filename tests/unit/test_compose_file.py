"""The compose deployment describes the demo Pôle: the same agencies and on-call policies as deploy/network.toml,
every hop over TLS, and a container for every service of the network file, with its own certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from maillage.core.config.network import load_network

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def test_the_compose_network_is_the_demo_pole_with_every_hop_over_tls() -> None:
    demo, deployed = (
        load_network(ROOT / "deploy" / "network.toml"),
        load_network(ROOT / "deploy" / "network.compose.toml"),
    )
    strip = {"url", "jwks_url", "database_url"}
    assert [a.model_dump(exclude=strip) for a in deployed.agencies] == [
        a.model_dump(exclude=strip) for a in demo.agencies
    ]
    assert deployed.oncall == demo.oncall
    assert deployed.kafka.tls and deployed.kafka.replication_factor == 3 and deployed.ca_file is not None
    for agency in deployed.agencies:
        assert agency.base_url == f"https://127.0.0.1:{agency.port}"
        assert agency.jwks_url == f"{agency.base_url}/.well-known/jwks.json"
        assert agency.database_url is not None and agency.database_url.endswith("?ssl=verify-full")
    for service in (deployed.gateway, deployed.dispatcher, deployed.monitor):
        assert service.base_url.startswith("https://")


def test_every_service_of_the_network_has_a_container_with_its_certificate_and_health_check() -> None:
    services = compose_services()
    network = load_network(ROOT / "deploy" / "network.compose.toml")
    expected = {a.id: a.port for a in network.agencies} | {"gateway": 8700, "dispatcher": 8709, "monitor": 8710}
    for name, port in expected.items():
        service = services[name]
        env = service["environment"]
        assert env["MAILLAGE_TLS_CERT_FILE"] == f"/keys/public/tls/{name}.pem"
        assert env["MAILLAGE_KAFKA_USERNAME"] == name
        assert service["healthcheck"]["test"][-1] == f"https://127.0.0.1:{port}/readyz"
        assert service["network_mode"] == "host"
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "gateway-2", "init", "provision", "demo"} <= set(services)
    assert all("image" in s and s["image"] == "maillage:local" for s in services.values())
