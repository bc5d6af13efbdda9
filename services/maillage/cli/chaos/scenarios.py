"""The chaos scenarios: each a load of referrals with faults at chosen moments, checked the same way. The list is
open: a scenario is anything with a `name` and a `run`, and one that cannot run here says why in the table."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from maillage.cli.chaos.checks import Answer, Fault, Figures, tally
from maillage.cli.chaos.pole import Pole
from maillage.cli.chaos.workload import Inbox, Partner, read_fates
from maillage.cli.fuzz import FuzzReport, fuzz_service, network_targets

log = logging.getLogger("maillage.chaos")

Injection = tuple[float, Callable[[], Awaitable[Fault]]]


@dataclass(frozen=True)
class Plan:
    """How much of everything: `maillage chaos`'s options, as one value."""

    gateway_referrals: int = 100_000
    gateway_kills: int = 20
    broker_referrals: int = 10_000
    outage_seconds: float = 60.0
    rate: float = 50.0
    # After the last POST, how long every accepted event has to reach the inbox and its status the sender.
    drain_seconds: float = 300.0
    postgres_down_seconds: float = 30.0
    fuzz_requests: int = 1_000  # generated requests per service

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            gateway_referrals=1_000,
            gateway_kills=3,
            broker_referrals=500,
            outage_seconds=20.0,
            rate=20.0,
            drain_seconds=180.0,
            postgres_down_seconds=5.0,
            fuzz_requests=200,
        )


@dataclass
class Traffic:
    """The sender's partner system and the recipient's inbox, shared by every scenario of a run."""

    partner: Partner
    inbox: Inbox


class Scenario(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures: ...


@dataclass(frozen=True)
class NotRun:
    """A row of the table for a scenario this run cannot play, and why: never a figure it did not measure."""

    name: str
    reason: str

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        return Figures.not_run(self.name, reason=self.reason)


async def under_faults(
    name: str, pole: Pole, traffic: Traffic, plan: Plan, *, count: int, injections: Sequence[Injection]
) -> Figures:
    """`count` referrals at the plan's rate, each fault injected at its second from the first POST; then a
    bounded wait for every accepted one to arrive and be decided, and the tally."""
    faults: list[Fault] = []

    async def inject() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, fault in sorted(injections, key=lambda i: i[0]):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            faults.append(await fault())

    began = time.monotonic()
    answers, _ = await asyncio.gather(traffic.partner.refer_at(plan.rate, count=count), inject())
    accepted = [a.event_id for a in answers if a.accepted and a.event_id is not None]
    log.info("%s: %d POSTs in %.0f s, %d accepted", name, count, time.monotonic() - began, len(accepted))
    _when_it_failed(name, answers, faults)
    posted = time.monotonic()
    arrived = await traffic.inbox.wait_for(set(accepted), timeout=plan.drain_seconds)
    log.info("%s: %s in the inbox %.0f s after the last POST", name, "all" if arrived else "NOT all", _since(posted))
    # The whole drain time: after 100,000 referrals, reading every status back took 150 s of one run and more
    # than that in the next (each GET costs the sender four queries), with every status there all along.
    fates = await read_fates(traffic.partner.client, accepted, timeout=plan.drain_seconds)
    decided = sum(1 for state in fates.values() if state != "pending")
    log.info(
        "%s: %d of the sender's %d statuses read %.0f s after the last POST",
        name,
        decided,
        len(accepted),
        _since(posted),
    )
    return tally(name, answers=answers, inbox=traffic.inbox.items, fates=fates, faults=faults)


def _when_it_failed(name: str, answers: Sequence[Answer], faults: Sequence[Fault]) -> None:
    """When the POSTs answered otherwise than 2xx or a clear 503 were sent, beside the faults: from the first
    POST, in seconds."""
    failed = [a.posted_at for a in answers if not a.accepted and not a.clear_refusal]
    if not failed or not answers:
        return
    zero = answers[0].posted_at

    def at(moment: datetime) -> str:
        return f"+{(moment - zero).total_seconds():.0f} s"

    spans = ", ".join(f"{f.what} {at(f.began)}-{at(f.ended)}" for f in faults)
    log.warning("%s: %d failed POSTs sent %s to %s (%s)", name, len(failed), at(min(failed)), at(max(failed)), spans)


def _since(moment: float) -> float:
    return time.monotonic() - moment


@dataclass(frozen=True)
class GatewayKills:
    """SIGKILLs of the gateway at random moments, one in each equal slice of the load; the supervisor restarts
    it. Every recipient must hold every delivered event exactly once, every sender see every status."""

    name: str = "gateway SIGKILLed"

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        seconds = plan.gateway_referrals / plan.rate
        slice_ = seconds / max(plan.gateway_kills, 1)
        moments = [slice_ * (i + pole.rng.uniform(0.1, 0.9)) for i in range(plan.gateway_kills)]
        injections = [(at, lambda: pole.kill("gateway")) for at in moments]
        figures = await under_faults(
            self.name, pole, traffic, plan, count=plan.gateway_referrals, injections=injections
        )
        return figures


@dataclass(frozen=True)
class BrokerKill:
    """One node of three SIGKILLed under load, restarted by the supervisor: 0 lost, 0 duplicated."""

    name: str = "one broker of 3 SIGKILLed"

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        at = plan.broker_referrals / plan.rate * pole.rng.uniform(0.2, 0.5)
        return await under_faults(
            self.name, pole, traffic, plan, count=plan.broker_referrals, injections=[(at, pole.kill_a_broker)]
        )


@dataclass(frozen=True)
class ClusterOutage:
    """The whole cluster stopped while the partner keeps posting: every POST answers 2xx or a clear 503 with
    Retry-After, and every accepted event is delivered once the cluster is back."""

    name: str = "whole cluster stopped"
    lead_seconds: float = 10.0  # of load before the stop, and as much after the restart

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        count = round(plan.rate * (plan.outage_seconds + 2 * self.lead_seconds))

        async def outage() -> Fault:
            began = await pole.stop_cluster()
            await asyncio.sleep(plan.outage_seconds)
            return Fault(what="cluster stopped", began=began, ended=pole.start_cluster())

        figures = await under_faults(
            f"{self.name} {plan.outage_seconds:g} s",
            pole,
            traffic,
            plan,
            count=count,
            injections=[(self.lead_seconds, outage)],
        )
        return figures


@dataclass(frozen=True)
class PostgresRestart:
    """The PostgreSQL server stopped (fast shutdown) under load, kept down a few seconds, started again: 0 lost,
    0 duplicated, every POST 2xx or a clear 503, and no service restarted meanwhile — they recover by
    themselves."""

    name: str = "PostgreSQL restarted"
    lead_seconds: float = 10.0  # of load before the stop, and as much after the restart

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        count = round(plan.rate * (plan.postgres_down_seconds + 2 * self.lead_seconds))

        async def restart() -> Fault:
            began = await pole.stop_postgres()
            await asyncio.sleep(plan.postgres_down_seconds)
            return Fault(what="PostgreSQL stopped", began=began, ended=await pole.start_postgres())

        before = pole.service_restarts()
        figures = await under_faults(
            f"{self.name} ({plan.postgres_down_seconds:g} s down)",
            pole,
            traffic,
            plan,
            count=count,
            injections=[(self.lead_seconds, restart)],
        )
        after = pole.service_restarts()
        restarted = sum(after[name] - before.get(name, 0) for name in after)
        if restarted:
            log.warning("%s: services restarted meanwhile: %s", self.name, after)
        return dataclasses.replace(figures, service_restarts=restarted)


@dataclass(frozen=True)
class Fuzz:
    """`maillage fuzz` against the Pôle the faults left behind: generated requests (schemathesis) to each
    running service with a valid token; 0 answers 5xx, 0 outside the published schema. Its own table follows."""

    name: str = "schemathesis, every service"
    reports: list[FuzzReport] = field(default_factory=list)

    async def run(self, pole: Pole, traffic: Traffic, plan: Plan) -> Figures:
        supervisor = pole.supervisor
        running = {s.name for s in supervisor.services}
        targets = [
            t
            for t in network_targets(supervisor.network, agencies=tuple(a.id for a in supervisor.network.agencies))
            if t.service.removeprefix("agency:") in running
        ]
        for target in targets:
            token = target.token(supervisor.key_dirs)
            report = await asyncio.to_thread(
                fuzz_service, target.base_url, token, requests=plan.fuzz_requests, seed=0, service=target.service
            )
            log.info(
                "%s: %d requests, %d 5xx, %d violations",
                target.service,
                report.requests,
                report.server_errors,
                report.violations,
            )
            self.reports.append(report)
        bad = sum(r.server_errors + r.violations + (r.requests == 0) for r in self.reports)
        return Figures(
            scenario=f"{self.name} ({plan.fuzz_requests:,} each)",
            sent=sum(r.requests for r in self.reports),
            accepted=0,
            refused=0,
            failed=bad,
            delivered=0,
            lost=0,
            duplicated=0,
            statuses={},
            missing_statuses=0,
            max_delay_s=None,
            recovery_s=None,
            faults=0,
            answers={
                f"{r.service}: {r.server_errors} 5xx, {r.violations} violations": 1 for r in self.reports if not r.ok
            },
            note=f"{len(self.reports)} services, table below",
        )


def scenarios() -> list[Scenario]:
    """In the order they run: the generated requests last, against the Pôle the faults left behind."""
    return [GatewayKills(), BrokerKill(), ClusterOutage(), PostgresRestart(), Fuzz()]
