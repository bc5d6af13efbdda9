"""One `maillage chaos` run: the Pôle started as `maillage up --brokers 3` starts it, the consents the referrals
need, each scenario in turn, the table; everything stopped at the end, whatever happened."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from maillage.cli.bench.fixtures import system_token
from maillage.cli.bench.load import KeepAliveClient
from maillage.cli.bench.machine import describe_machine
from maillage.cli.chaos.checks import Figures
from maillage.cli.chaos.pole import Pole
from maillage.cli.chaos.report import print_figures
from maillage.cli.chaos.scenarios import Fuzz, Plan, Scenario, Traffic
from maillage.cli.chaos.workload import Inbox, Partner, agency_client
from maillage.cli.fuzz import fuzz_table

SENDER, RECIPIENT = "refuge-liege", "cpas-seraing"
SUBJECTS = 50


def run_chaos(
    plan: Plan, scenarios: Sequence[Scenario], *, data_dir: Path, seed: int, console: Console, gateways: int = 1
) -> list[Figures]:
    run_dir = (data_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")).resolve()
    _log_restarts()
    machine = describe_machine(kafka="3-node KRaft cluster")
    console.print(f"machine: {machine['cores']} cores, {machine['cpu']}, load average {machine['load_before']}")
    console.print(f"keys, databases, cluster and services' logs: {run_dir}")
    with console.status(f"Starting a 3-node Kafka cluster, PostgreSQL, {gateways} gateway(s) and two agencies…"):
        pole = Pole.start(run_dir, agencies=(SENDER, RECIPIENT), seed=seed, gateways=gateways)
    try:
        figures = asyncio.run(_campaign(pole, plan, scenarios, seed=seed, console=console))
    finally:
        with console.status("Stopping…"):
            pole.stop()
    title = f"maillage chaos — {plan.rate:g} referrals/s, seed {seed}, {gateways} gateway(s), PostgreSQL"
    print_figures(figures, console, title=title)
    for scenario in scenarios:
        if isinstance(scenario, Fuzz) and scenario.reports:
            console.print(fuzz_table(scenario.reports))
            for report in scenario.reports:
                for sample in report.samples[:5] if not report.ok else ():
                    console.print(f"{report.service}: {sample}", markup=False, highlight=False)
    return figures


async def _campaign(
    pole: Pole, plan: Plan, scenarios: Sequence[Scenario], *, seed: int, console: Console
) -> list[Figures]:
    supervision = asyncio.create_task(pole.supervise())
    sender = agency_client(pole.url(SENDER), "")
    recipient = agency_client(pole.url(RECIPIENT), "")
    traffic = Traffic(
        partner=Partner(client=sender, recipient=RECIPIENT, rng=random.Random(seed)), inbox=Inbox(recipient)
    )
    try:
        _fresh_tokens(pole, traffic)
        await traffic.partner.register_consents(SUBJECTS, timeout=plan.drain_seconds)
        results = []
        for scenario in scenarios:
            console.log(f"{scenario.name}…")
            _fresh_tokens(pole, traffic)  # a token lives an hour; a full run lasts longer
            figures = await scenario.run(pole, traffic, plan)
            results.append(figures)
            if figures.ran:
                console.log(
                    f"{figures.scenario}: {figures.accepted:,} accepted, {figures.delivered:,} delivered, "
                    f"{figures.lost} lost, {figures.duplicated} duplicated"
                )
        return results
    finally:
        supervision.cancel()
        if traffic.partner.poster is not None:
            traffic.partner.poster.close()
        await sender.aclose()
        await recipient.aclose()


def _fresh_tokens(pole: Pole, traffic: Traffic) -> None:
    keys = pole.supervisor.key_dirs
    for client, agency in ((traffic.partner.client, SENDER), (traffic.inbox.client, RECIPIENT)):
        client.headers["authorization"] = f"Bearer {system_token(keys, agency)}"
    if traffic.partner.poster is not None:
        traffic.partner.poster.close()
    traffic.partner.poster = KeepAliveClient(
        pole.url(SENDER), headers={"authorization": traffic.partner.client.headers["authorization"]}
    )


def _log_restarts() -> None:
    """The supervisor's crash and restart lines on the terminal, as `maillage up` logs them; the Kafka client's
    retries while a node is down are expected, and only clutter the figures."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    for name in ("maillage.up", "maillage.chaos"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
