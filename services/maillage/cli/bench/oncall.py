"""On-call latency (`--only oncall`): POST /v1/alerts on the sender → the alert on every worker's WebSocket.

The gateway, the sender and the dispatcher run as real servers on a copy of the network file in which the
police zone's level 1 is hundreds of workers on call at all times (no escalation, no grouping during a
run). The workers' WebSockets are spread over a few child processes (`sockets.py`) so that one client event
loop does not become the queue being measured; danger alerts are POSTed at a fixed rate, open loop, and
each (alert, worker) latency runs from the clock read just before the POST to the moment that worker's
socket handed over the `alert` message. The CPU of every process involved is read from /proc, so the
report says how busy the machine was and how much of it the bench's own sockets took.
"""

from __future__ import annotations

import os
import random
import time
import tomllib
from contextlib import closing
from pathlib import Path

import orjson
import tomli_w
from rich.console import Console

from maillage.cli.bench.broker import create_topics
from maillage.cli.bench.broker_requests import BrokerRequests, per_event
from maillage.cli.bench.fixtures import (
    ONCALL_AGENCY,
    alert_body,
    make_subjects,
    service_keys,
    system_token,
    worker_tokens,
)
from maillage.cli.bench.load import KeepAliveClient, Sent, open_loop
from maillage.cli.bench.machine import CpuMeter, CpuSample, ms_per
from maillage.cli.bench.oncall_figures import CpuUse, Measured, Oncall, oncall_figures
from maillage.cli.bench.options import BenchOptions
from maillage.cli.bench.servers import Server, servers, service_env, wait_ready
from maillage.cli.bench.sockets import SocketFleet
from maillage.core.config.network import NetworkError, load_network
from maillage.core.messaging.topics import Topics
from maillage.domain.vocabulary import Severity
from maillage.gateway.settings import GatewaySettings

NEVER_ESCALATE = 86_400  # seconds: nothing escalates (nor pages anyone else) during a run


def worker_ids(count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"bench-w{i:0{width}d}" for i in range(1, count + 1)]


def oncall_network(source: Path, directory: Path, *, workers: list[str]) -> Path:
    """A copy of the network file in which the police zone's level 1 is `workers`, all on call at all
    times, with no escalation and no grouping during a run, and no reconnect grace."""
    doc = tomllib.loads(source.read_text())
    doc["policy"] = str(load_network(source).policy)
    dispatcher = doc.setdefault("dispatcher", {})
    dispatcher["group_window_seconds"] = 0
    dispatcher["reconnect_grace_seconds"] = 0
    dispatcher.pop("database_url", None)
    police = doc.get("oncall", {}).get(ONCALL_AGENCY)
    if police is None:
        raise NetworkError(f"{source}: the on-call bench needs an on-call policy for {ONCALL_AGENCY!r}")
    if dispatcher.get("agencies") and ONCALL_AGENCY not in dispatcher["agencies"]:
        dispatcher["agencies"] = [*dispatcher["agencies"], ONCALL_AGENCY]
    police["escalate_after"] = {severity.value: NEVER_ESCALATE for severity in Severity}
    police.pop("fallback_url", None)
    police["levels"][0]["shifts"] = [{"workers": workers}]  # every day, 00:00 to midnight
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


async def measure_oncall(
    opts: BenchOptions,
    *,
    bootstrap: str,
    prefix: str,
    data_dir: Path,
    console: Console,
    kafka_pid: int | None = None,
    requests: BrokerRequests | None = None,
) -> Oncall:
    workers = worker_ids(opts.workers)
    network_file = oncall_network(opts.network_file, data_dir / "network", workers=workers)
    network = load_network(network_file)
    network.agency(opts.sender)
    await create_topics(bootstrap, network, Topics(prefix=prefix))
    keys = service_keys(GatewaySettings(network_file=network_file, data_dir=data_dir))
    auth = {"authorization": f"Bearer {system_token(keys, opts.sender)}"}
    env = service_env(bootstrap=bootstrap, network_file=network_file, data_dir=data_dir, prefix=prefix)
    wanted = [("gateway", ["gateway"]), (opts.sender, ["agency", opts.sender]), ("dispatcher", ["dispatcher"])]
    console.log(f"starting the gateway, {opts.sender} and the dispatcher as uvicorn servers")
    with servers(wanted, env=env, data_dir=data_dir) as running:
        await wait_ready(running)
        url = running["dispatcher"].url.replace("http", "ws", 1) + "/v1/ws"
        processes = max(1, min(opts.socket_processes, len(workers)))
        console.log(f"connecting {len(workers)} workers' WebSockets from {processes} processes")
        connect_started = time.monotonic()
        fleet = SocketFleet(url, worker_tokens(keys, workers), processes=processes, compression=opts.ws_compression)
        with closing(fleet), closing(KeepAliveClient(running[opts.sender].url, headers=auth)) as load:
            connected, errors = await fleet.ready()
            connect_s = time.monotonic() - connect_started
            if errors:
                console.log(f"[yellow]{len(errors)} workers could not sign in[/], e.g. {errors[0]}")
            meter = CpuMeter(_pids(running, fleet, kafka_pid=kafka_pid))
            run = _Run(opts, load, fleet, connected=connected, meter=meter, console=console, requests=requests)
            return oncall_figures(opts, await run.measure(connect_s=connect_s), data_dir=data_dir)


def _pids(running: dict[str, Server], fleet: SocketFleet, *, kafka_pid: int | None) -> dict[str, int | None]:
    return {
        "bench (load generator)": os.getpid(),
        "kafka": kafka_pid,
        **{f"sockets {i}": pid for i, pid in enumerate(fleet.pids)},
        **{name: s.process.pid for name, s in running.items()},
    }


class _Run:
    """One run's alerts: a warm-up, then the alerts measured, while the CPU meter samples every process."""

    def __init__(
        self,
        opts: BenchOptions,
        load: KeepAliveClient,
        fleet: SocketFleet,
        *,
        connected: int,
        meter: CpuMeter,
        console: Console,
        requests: BrokerRequests | None = None,
    ) -> None:
        self.opts, self.load, self.fleet, self.meter, self.console = opts, load, fleet, meter, console
        self.requests = requests  # the broker's request counts, read before and after (`--profile`)
        self.connected = connected
        self.rng = random.Random(500)
        self.people = make_subjects(50, self.rng)

    async def measure(self, *, connect_s: float) -> Measured:
        opts = self.opts
        self.console.log(f"warming up: {opts.warmup:g}s at {opts.alert_rate:g} alerts/s to {self.connected} workers")
        before = await self.fleet.wait_for(self._pairs(await self._send(opts.warmup)), timeout=60)
        self.console.log(f"measuring: {opts.oncall_duration:g}s at {opts.alert_rate:g} alerts/s, open loop")
        measured = self._bodies(opts.oncall_duration)
        counted = await self.requests.sample() if self.requests else None
        sending = self.meter.sample()
        started = time.time()
        sent = await open_loop(self.load, measured, rate=opts.alert_rate, path="/v1/alerts")
        ended = time.time()
        sent_all = self.meter.sample()
        drained = await self._drain(before + self._pairs(sent))
        alerts = sum(s.event_id is not None for s in sent)
        cpu = _cpu_use(sending, sent_all, drained, alerts=alerts)
        # Read after the drain: the requests of the alerts measured, and of whatever ran meanwhile (heartbeats,
        # the consumers' polls, a JmxTool start-up's worth of seconds).
        requests = None
        if self.requests is not None and counted is not None:
            requests = per_event(counted, await self.requests.sample(), events=alerts)
        seen = await self.fleet.stop()
        return Measured(
            sent,
            seen,
            connected=self.connected,
            connect_s=connect_s,
            window=(started, ended),
            cpu=cpu,
            broker_requests=requests,
        )

    def _bodies(self, seconds: float) -> list[bytes]:
        count = round(seconds * self.opts.alert_rate)
        return [orjson.dumps(alert_body(self.rng.choice(self.people), self.rng)) for _ in range(count)]

    async def _send(self, seconds: float) -> list[Sent]:
        return await open_loop(self.load, self._bodies(seconds), rate=self.opts.alert_rate, path="/v1/alerts")

    def _pairs(self, sent: list[Sent]) -> int:
        """The (alert, worker) messages these POSTs should bring: each accepted alert on every socket."""
        return sum(s.event_id is not None for s in sent) * self.connected

    async def _drain(self, expected: int) -> CpuSample:
        """Until every socket got every alert (or a minute passed): the CPU sample at that moment."""
        got = await self.fleet.wait_for(expected, timeout=60)
        drained = self.meter.sample()
        if got < expected:
            self.console.log(f"[yellow]{expected - got} (alert, worker) pairs never arrived[/]")
        return drained


def _cpu_use(sending: CpuSample, sent_all: CpuSample, drained: CpuSample, *, alerts: int) -> CpuUse:
    percent, busy = CpuMeter.percent(sending, sent_all)
    # From the first POST until the last alert reached every socket: the work these alerts cost.
    per_alert = ms_per(CpuMeter.used(sending, drained), alerts, digits=1)
    return CpuUse(percent=percent, machine_busy=busy, ms_per_alert=per_alert, drain_s=drained.at - sent_all.at)
