"""One `maillage bench` run: a broker (its own, unless one is given), the parts asked for, the report.

A benchmark, not a test. It starts its own broker (unless a bootstrap server is given), uses a fresh topic
prefix and a temporary data directory, and leaves nothing behind but its JSON report.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from maillage.cli.bench.broker import delete_topics
from maillage.cli.bench.broker_requests import BrokerRequests
from maillage.cli.bench.decision import Workload, measure_decision
from maillage.cli.bench.floor import measure_floor
from maillage.cli.bench.latency import measure_latency
from maillage.cli.bench.machine import CpuMeter, describe_machine, load_average
from maillage.cli.bench.oncall import measure_oncall
from maillage.cli.bench.options import BenchOptions, options_json
from maillage.cli.bench.report import Report, print_report, write_report
from maillage.cli.bench.sockets import run_fast
from maillage.cli.bench.throughput import measure_throughput, measure_unsealed
from maillage.cli.kafka_local import KAFKA_VERSION, LocalKafka, free_port
from maillage.core.config.network import Network, load_network

PARTS = ("throughput", "decision", "floor", "latency", "oncall")


def run_bench(opts: BenchOptions, *, console: Console) -> tuple[Report, Path]:
    # aiokafka logs its retries (a coordinator still loading, a new partition's replica not yet in sync)
    # as warnings; they are expected while the bench creates its topics, and only clutter the figures.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    network = load_network(opts.network_file)
    for agency_id in (opts.sender, opts.recipient):
        network.agency(agency_id)
    with tempfile.TemporaryDirectory(prefix="maillage-bench-") as tmp:
        report = _on_a_broker(opts, network, data_dir=Path(tmp), console=console)
    print_report(report, console)
    return report, write_report(report, opts.out_dir)


def _on_a_broker(opts: BenchOptions, network: Network, *, data_dir: Path, console: Console) -> Report:
    """The parts measured on the broker given, or on a local one started for the run and stopped after."""
    # `--profile` reads the broker's request metrics over JMX: only on the bench's own broker.
    jmx_port = free_port() if opts.profile and not opts.bootstrap else None
    kafka = None if opts.bootstrap else LocalKafka(data_dir=data_dir / "kafka", jmx_port=jmx_port)
    try:
        if kafka is not None:
            with console.status("Starting a local Kafka broker…"):
                kafka.start()
        bootstrap = opts.bootstrap or (kafka.bootstrap if kafka else "")
        report = Report(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            options=options_json(opts),
            machine=describe_machine(kafka=KAFKA_VERSION if kafka else f"external ({bootstrap})"),
        )
        kafka_pid = kafka.process.pid if kafka and kafka.process else None
        requests = BrokerRequests(jmx_port) if jmx_port is not None else None
        run_fast(
            _measure(
                report,
                opts,
                network,
                bootstrap=bootstrap,
                data_dir=data_dir,
                console=console,
                broker=_Broker(pid=kafka_pid, requests=requests),
            )
        )
        report.machine["load_after"] = load_average()
        return report
    finally:
        if kafka is not None:
            kafka.stop()


async def _measure(
    report: Report,
    opts: BenchOptions,
    network: Network,
    *,
    bootstrap: str,
    data_dir: Path,
    console: Console,
    broker: _Broker,
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    report.options["topic_prefix"] = prefix
    try:
        for part in PARTS:
            (data_dir / part).mkdir()
            if part in opts.parts:
                where = _Where(bootstrap=bootstrap, prefix=prefix, data_dir=data_dir / part, broker=broker)
                await _measure_part(part, report, opts, network, where=where, console=console)
    finally:
        if opts.bootstrap:  # someone else's broker: leave no bench topics behind
            await delete_topics(bootstrap, prefix=prefix)


@dataclass(frozen=True)
class _Broker:
    """The bench's own broker: its process (for its CPU) and, with `--profile`, its request metrics."""

    pid: int | None
    requests: BrokerRequests | None


@dataclass(frozen=True)
class _Where:
    bootstrap: str
    prefix: str  # the run's; each part after the first adds its own, so no two parts share a topic
    data_dir: Path  # the part's own
    broker: _Broker


async def _measure_part(
    part: str, report: Report, opts: BenchOptions, network: Network, *, where: _Where, console: Console
) -> None:
    bootstrap, prefix, data_dir = where.bootstrap, where.prefix, where.data_dir
    if part == "throughput":
        report.gateway, report.passthrough, report.gateway_outcomes = await measure_throughput(
            opts, network, bootstrap=bootstrap, prefix=prefix, data_dir=data_dir, console=console
        )
        (data_dir / "unsealed").mkdir()
        report.gateway_unsealed = await measure_unsealed(
            opts,
            network,
            bootstrap=bootstrap,
            prefix=f"{prefix}plain.",
            data_dir=data_dir / "unsealed",
            console=console,
        )
    elif part == "decision":
        work = Workload(events=opts.events // 2, subjects=opts.subjects, sender=opts.sender, recipient=opts.recipient)
        with console.status(f"decision: {work.events:,} referrals decided in batches of {work.batch}, no Kafka…"):
            report.decision = await measure_decision(data_dir=data_dir, network_file=opts.network_file, work=work)
    elif part == "floor":
        report.floor = [
            await measure_floor(
                network,
                bootstrap=bootstrap,
                prefix=prefix,
                rate=rate,
                duration=opts.duration,
                warmup=opts.warmup,
                transactional=transactional,
                console=console,
                meter=CpuMeter({"kafka": where.broker.pid, "bench (the hops)": os.getpid()}) if opts.profile else None,
            )
            for rate in opts.rates
            for transactional in (False, True)
        ]
    elif part == "latency":
        report.latency, report.saturation = await measure_latency(
            opts,
            network,
            bootstrap=bootstrap,
            prefix=f"{prefix}lat.",
            data_dir=data_dir,
            console=console,
            kafka_pid=where.broker.pid,
            requests=where.broker.requests,
        )
    elif part == "oncall":
        report.oncall = await measure_oncall(
            opts,
            bootstrap=bootstrap,
            prefix=f"{prefix}oncall.",
            data_dir=data_dir,
            console=console,
            kafka_pid=where.broker.pid,
            requests=where.broker.requests if opts.profile else None,
        )
