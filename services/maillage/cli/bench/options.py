"""What a `maillage bench` run measures and with how much load: the command's options, as one value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maillage.core.config.settings import DEFAULT_NETWORK


@dataclass(frozen=True)
class BenchOptions:
    events: int = 20_000
    subjects: int = 300
    # Gateway processes deciding the throughput part's records together (one consumer group, one database).
    gateways: int = 2
    # Referrals per second of the latency runs (one run each, the same servers), and of the bare floor beside.
    rates: tuple[float, ...] = (20.0, 200.0)
    # Then, on the same servers, higher rates one after the other until POST → inbox p99 first exceeds 250 ms
    # (or not every referral arrives): where the network saturates. Empty: no climb.
    ladder: tuple[float, ...] = (300.0, 400.0, 500.0, 600.0)
    duration: float = 10.0
    warmup: float = 2.0
    sender: str = "refuge-liege"
    recipient: str = "cpas-seraing"
    network_file: Path = DEFAULT_NETWORK
    bootstrap: str = ""
    out_dir: Path = Path("bench-results")
    parts: tuple[str, ...] = ("throughput", "decision", "floor", "latency")
    # The latency runs also measure each process's CPU per referral and the broker's requests per referral.
    profile: bool = False
    # The on-call part (`--only oncall`): alerts POSTed to the sender, pushed to this many workers' sockets.
    workers: int = 500
    alert_rate: float = 20.0
    oncall_duration: float = 10.0
    socket_processes: int = 2
    ws_compression: bool = True  # the workers offer permessage-deflate, as browsers do


def options_json(opts: BenchOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
