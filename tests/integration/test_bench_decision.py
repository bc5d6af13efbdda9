"""The bench's `decision` part: real referrals handed straight to a real gateway (its database, its policy, its crypto
threads), no Kafka, each step's CPU per event counted in a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from maillage.cli.bench.decision import Workload, measure_decision
from maillage.core.config.settings import DEFAULT_NETWORK

pytestmark = pytest.mark.integration


async def test_the_decision_part_decides_every_referral_and_counts_each_steps_cpu(tmp_path: Path) -> None:
    work = Workload(events=200, batch=50, subjects=40)

    cost = await measure_decision(data_dir=tmp_path, network_file=DEFAULT_NETWORK, work=work)

    assert (cost.events, cost.batch) == (200, 50), "the warm-up batches are not counted"
    assert cost.shares == 200, "every referral consented to its recipient gave it a share, sealed and signed"
    assert len(cost.per_batch_us) == 4
    assert min(cost.open_us, cost.decide_us, cost.seal_us) > 0
    assert cost.total_us == cost.open_us + cost.decide_us + cost.seal_us
    assert 0 <= cost.collector_us < cost.total_us
