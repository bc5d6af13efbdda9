"""The ports the project's own launchers give servers: never one an outgoing connection could take, never twice."""

from __future__ import annotations

import socket

from maillage.cli.kafka_local import ephemeral_ports, free_port


def test_free_ports_are_distinct_outside_the_kernels_ephemeral_range_and_bindable() -> None:
    ports = [free_port() for _ in range(200)]
    ephemeral = ephemeral_ports()

    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if p in ephemeral]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
