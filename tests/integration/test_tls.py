"""Across machines every hop is encrypted: a network CA and certificates from `maillage keys init` (or an
operator's CA), every API over HTTPS, Kafka's listeners over SASL_SSL — on a real broker and a real server."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from typer.testing import CliRunner

from maillage.cli.kafka_local import BrokerTls, LocalKafka, ScramSetup
from maillage.cli.main import app as cli
from maillage.core.config.settings import ServiceSettings
from maillage.core.crypto.network_ca import TlsDirs, client_context
from maillage.core.messaging.kafka_auth import client_kwargs
from tests.support import listening

pytestmark = pytest.mark.integration

SERVICES = ["gateway", "refuge-liege", "cpas-seraing", "dispatcher", "monitor", "postgres", "kafka-1"]


def keys_init(data_dir: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["keys", "init", "--data-dir", str(data_dir), "--brokers", "1", *options], env={"COLUMNS": "250"}
    )
    return result.exit_code, result.output


def tls_dirs(data_dir: Path) -> TlsDirs:
    return TlsDirs.under(data_dir / "keys" / "private", data_dir / "keys" / "public")


def test_keys_init_issues_a_network_ca_and_a_certificate_for_every_service_and_broker(tmp_path: Path) -> None:
    code, output = keys_init(
        tmp_path / "pole", "--tls-host", "gateway=gw.pole.example", "--tls-host", "kafka-1=10.0.0.7"
    )
    assert code == 0, output
    tls = tls_dirs(tmp_path / "pole")
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    named: dict[str, set[str]] = {}
    for name in SERVICES:
        cert = x509.load_pem_x509_certificate(tls.cert(name).read_bytes())
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        named[name] = set(alt.get_values_for_type(x509.DNSName)) | {
            str(a) for a in alt.get_values_for_type(x509.IPAddress)
        }
        assert {name, "localhost", "127.0.0.1"} <= named[name]
        assert tls.key(name).stat().st_mode & 0o077 == 0, "private keys are the service's own"
    # Each certificate names its own service only: the refuge's could not pass for the gateway or a broker.
    assert "gw.pole.example" in named["gateway"] and "10.0.0.7" in named["kafka-1"]
    assert not named["refuge-liege"] & {"gw.pole.example", "10.0.0.7", "gateway", "kafka-1"}
    assert tls.ca_key.stat().st_mode & 0o077 == 0
    private = tmp_path / "pole" / "keys" / "private"
    assert (private / "kafka.cluster-id").exists() and (private / "kafka-admin.password").exists()
    again_code, again = keys_init(tmp_path / "pole")
    assert again_code == 0 and "issued for: nobody" in again, "a second run keeps what exists"

    # An operator's CA instead of a new one: the certificates are its.
    code, output = keys_init(tmp_path / "other", "--ca-cert", str(tls.ca_cert), "--ca-key", str(tls.ca_key))
    assert code == 0, output
    issued = x509.load_pem_x509_certificate(tls_dirs(tmp_path / "other").cert("gateway").read_bytes())
    assert issued.issuer == ca.subject
    # A key that is not the certificate's is refused, and nothing is issued with it.
    mismatched = tls_dirs(tmp_path / "other").key("gateway")
    code, output = keys_init(tmp_path / "third", "--ca-cert", str(tls.ca_cert), "--ca-key", str(mismatched))
    assert code == 1 and "does not belong" in output
    code, output = keys_init(tmp_path / "pole", "--tls-host", "nobody=x.example")
    assert code == 2 and "NAME=HOST" in output
    assert not tls_dirs(tmp_path / "third").cert("gateway").exists()


async def test_a_service_answers_over_tls_only_to_clients_that_trust_the_network_ca(tmp_path: Path) -> None:
    code, output = keys_init(tmp_path)
    assert code == 0, output
    tls = tls_dirs(tmp_path)
    settings = ServiceSettings(tls_cert_file=tls.cert("refuge-liege"), tls_key_file=tls.key("refuge-liege"))
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    async with listening(app, settings=settings) as url:
        assert url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=client_context(tls.ca_cert)) as trusting:
            assert (await trusting.get(f"{url}/readyz")).json() == {"status": "ready"}
        async with httpx.AsyncClient() as stranger:  # the system's CAs only
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await stranger.get(f"{url}/readyz")
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(url.replace("https://", "http://") + "/readyz")


async def test_kafka_over_sasl_ssl_carries_records_and_refuses_plaintext(tmp_path: Path) -> None:
    code, output = keys_init(tmp_path)
    assert code == 0, output
    private, public = tmp_path / "keys" / "private", tmp_path / "keys" / "public"
    sasl = ScramSetup(tls=BrokerTls.issued(private, public, "kafka-1"))
    broker = LocalKafka(data_dir=tmp_path / "kafka", sasl=sasl)
    await asyncio.to_thread(broker.start)
    try:
        auth = broker.admin_auth
        assert auth is not None and auth.security_protocol == "SASL_SSL"
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **client_kwargs(auth))
        await admin.start()
        try:
            await admin.create_topics([NewTopic("tls.check", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **client_kwargs(auth))
        await producer.start()
        try:
            await producer.send_and_wait("tls.check", b"over TLS")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "tls.check", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", **client_kwargs(auth)
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
            assert record.value == b"over TLS"
        finally:
            await consumer.stop()

        # The same identity without TLS does not get through; nor does TLS without the network CA.
        plaintext = {**client_kwargs(auth), "security_protocol": "SASL_PLAINTEXT"}
        plaintext.pop("ssl_context")
        for kwargs in (plaintext, {**client_kwargs(auth), "ssl_context": ssl.create_default_context()}):
            stranger = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000, **kwargs)
            with pytest.raises(Exception):  # noqa: B017 - aiokafka raises a connection error of its own kind
                await stranger.start()
            await stranger.close()
    finally:
        await asyncio.to_thread(broker.stop)


async def test_an_agency_makes_its_keys_on_its_own_machine_and_the_operator_signs_its_request(tmp_path: Path) -> None:
    operator, agency = tmp_path / "operator", tmp_path / "refuge"
    code, output = keys_init(operator)
    assert code == 0, output
    code, output = keys_init(agency, "--owner", "refuge-liege")
    assert code == 0, output
    private = agency / "keys" / "private"
    assert (private / "refuge-liege").is_dir(), "its signing, sealing and token keys are made where they are used"
    assert not (private / "gateway").exists() and not tls_dirs(agency).ca_key.exists()
    csr = tls_dirs(agency).public / "refuge-liege.csr"
    assert "maillage keys sign" in output and csr.exists()

    result = CliRunner().invoke(
        cli,
        [
            "keys",
            "sign",
            "--csr",
            str(csr),
            "--data-dir",
            str(operator),
            "--out",
            str(tls_dirs(agency).cert("refuge-liege")),
        ],
    )
    assert result.exit_code == 0, result.output
    ca = tls_dirs(operator).ca_cert
    settings = ServiceSettings(
        tls_cert_file=tls_dirs(agency).cert("refuge-liege"), tls_key_file=tls_dirs(agency).key("refuge-liege")
    )
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    async with listening(app, settings=settings) as url, httpx.AsyncClient(verify=client_context(ca)) as client:
        assert (await client.get(f"{url}/readyz")).status_code == 200, "its own key, the operator's CA"

    # A request for a name the network does not have is refused; so is anything but a request.
    forged = tmp_path / "forged"
    code, output = keys_init(forged, "--owner", "refuge-liege")
    bogus = tls_dirs(forged).public / "refuge-liege.csr"
    bogus.write_bytes(bogus.read_bytes().replace(b"CERTIFICATE REQUEST", b"CERTIFICATE"))
    refused = CliRunner().invoke(cli, ["keys", "sign", "--csr", str(bogus), "--data-dir", str(operator)])
    assert refused.exit_code == 1 and "request" in refused.output
    unknown = CliRunner().invoke(cli, ["keys", "init", "--data-dir", str(forged), "--owner", "nobody"])
    assert unknown.exit_code == 2 and "not a service of this network" in unknown.output
