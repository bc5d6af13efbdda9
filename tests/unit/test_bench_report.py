"""The bench's verdicts: latency judged against the bare floor of the same run, the broker's request counts read
from its metrics as JmxTool prints them."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
from rich.console import Console

from maillage.cli.bench.broker_requests import parse_counts, per_event
from maillage.cli.bench.decision import DecisionCost
from maillage.cli.bench.floor import Floor
from maillage.cli.bench.gateway_process import Progress
from maillage.cli.bench.latency import LOAD_GENERATOR, Latency, Profile, Saturation, climb
from maillage.cli.bench.report import Report, print_report
from maillage.cli.bench.spread import Spread
from maillage.cli.bench.throughput import Throughput, Timed

JMX_OUTPUT = """time=1796079065161
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=11:Count=40
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=12:Count=2
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Fetch,version=17:Count=900
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=FetchConsumer,version=17:Count=900
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=EndTxn,version=5:Count=10
"""
MACHINE = {
    "cores": 2,
    "ram_gib": 23.6,
    "cpu": "x",
    "python": "3.11",
    "kafka": "4.1.1",
    "platform": "p",
    "load_before": 0,
}


def floor(rate: float, p50: float, p99: float, *, transactional: bool = False) -> Floor:
    return Floor(rate, transactional, 100, 100, Spread(p50, p99, p99), 0.0)


def latency(rate: float, p50: float, p99: float, *, profile: Profile | None = None, arrived: int = 100) -> Latency:
    spread = Spread(p50, p99, p99)
    return Latency(rate, 10, 2, 100, 100, arrived, spread, spread, 0.0, {}, {}, profile=profile)


def report(*, floors: list[Floor], latencies: list[Latency]) -> Report:
    return Report(started_at="", options={}, machine={}, floor=floors, latency=latencies)


def test_broker_requests_are_summed_over_versions_counted_once_and_per_event() -> None:
    before = parse_counts(JMX_OUTPUT)
    after = before + Counter({"Produce": 20, "Fetch": 300})

    assert before == {"Produce": 42, "Fetch": 900, "EndTxn": 10}
    assert per_event(before, after, events=10) == {"Fetch": 30.0, "Produce": 2.0}


def test_at_a_low_rate_p50_and_p99_are_each_judged_against_twice_the_idempotent_floor() -> None:
    floors = [floor(20, 5, 15), floor(20, 12, 36, transactional=True)]

    assert report(floors=floors, latencies=[]).latency_verdict(latency(20, 10, 30))
    assert not report(floors=floors, latencies=[]).latency_verdict(latency(20, 11, 30))  # p50 over 2 x 5
    assert not report(floors=floors, latencies=[]).latency_verdict(latency(20, 10, 31))  # p99 over 2 x 15
    assert report(floors=floors, latencies=[]).latency_marks(latency(20, 11, 30)) == (False, True)  # each row its own


def test_at_a_high_rate_p99_is_judged_against_three_times_the_floor_and_no_floor_is_a_miss() -> None:
    floors = [floor(200, 6, 20)]

    assert report(floors=floors, latencies=[]).latency_verdict(latency(200, 50, 60))
    assert not report(floors=floors, latencies=[]).latency_verdict(latency(200, 50, 61))
    assert not report(floors=[], latencies=[]).latency_verdict(latency(200, 1, 1))
    assert report(floors=floors, latencies=[]).latency_marks(latency(200, 500, 60)) == (None, True)  # no p50 target


def test_cpu_per_referral_counts_every_service_and_the_broker_but_not_the_partner_system() -> None:
    profile = Profile(
        cpu_ms={LOAD_GENERATOR: 5.0, "kafka": 0.9, "gateway": 0.6, "refuge-liege": 0.4}, broker_requests={}
    )
    run = report(floors=[], latencies=[latency(20, 1, 1, profile=profile), latency(200, 1, 1, profile=profile)])

    assert profile.cpu_ms_all == 1.9
    assert run.profiled is run.latency[1]
    assert run.verdicts()["cpu_ms_per_referral"]


def test_sealing_and_signing_are_judged_on_the_gateway_with_them_over_without_them_in_the_same_run() -> None:
    run = Report(started_at="", options={}, machine={}, gateway=Throughput(20_000, 10.0))

    assert run.sealing_ratio == 0.0 and not run.verdicts()["sealing_ratio"]  # not measured: a miss
    run.gateway_unsealed = Throughput(20_000, 7.0)
    assert run.sealing_ratio == 0.7 and run.verdicts()["sealing_ratio"]
    run.gateway_unsealed = Throughput(20_000, 6.9)
    assert not run.verdicts()["sealing_ratio"]


def test_the_gateways_throughput_names_its_processes_and_what_each_decided() -> None:
    two = Throughput.of(20_000, Timed(seconds=8.0, cpu_seconds=12.0), shares=(9_600, 10_400))
    one = Throughput.of(20_000, Timed(seconds=16.0, cpu_seconds=15.0))
    passthrough = Throughput.of(20_000, Timed(seconds=1.0, cpu_seconds=1.0))
    console = Console(record=True, width=200)

    print_report(Report(started_at="", options={}, machine=MACHINE, gateway=two, passthrough=passthrough), console)
    printed = console.export_text()

    assert (two.processes, one.processes, one.shares) == (2, 1, ())
    assert "gateway throughput, 2 processes" in printed and "2,500 events/s" in printed
    assert "9,600 / 10,400" in printed
    assert "600 µs" in printed  # the CPU of both processes, per event


def test_the_gateways_own_cost_without_kafka_is_printed_step_by_step_and_kept_in_the_json() -> None:
    cost = DecisionCost(
        events=10_000, batch=500, open_us=84.0, decide_us=160.0, seal_us=41.0, collector_us=0.7, collections=1, shares=1
    )
    console = Console(record=True, width=200)

    print_report(Report(started_at="", options={}, machine=MACHINE, decision=cost), console)
    printed = console.export_text()

    assert "gateway's own CPU per event, no Kafka (batches of 500)" in printed and "285 µs" in printed
    assert "84 / 160 / 41 µs" in printed and "0.7 µs (1 collections)" in printed
    document = orjson.loads(Report(started_at="", options={}, machine=MACHINE, decision=cost).to_json())
    assert document["decision"]["open_us"] == 84.0 and document["decision"]["total_us"] == 285.0
    assert DecisionCost.of_json(cost.to_json()) == cost


def test_a_gateway_process_reports_its_progress_as_one_line_of_json() -> None:
    progress = Progress(decided=300, cpu_seconds=1.5, owned=2, deciding=True, held=False)

    assert progress.line().endswith(b"\n") and b"\n" not in progress.line()[:-1]
    assert Progress.of_line(progress.line()) == progress


class Network:
    """Stands for the servers in the climb: a run's p99 at each rate, and the rates actually run."""

    def __init__(self, p99_at: dict[float, float], *, lost_at: float | None = None) -> None:
        self.p99_at = p99_at
        self.lost_at = lost_at
        self.ran: list[tuple[float, bool]] = []

    async def __call__(self, rate: float, *, profiled: bool = True) -> Latency:
        self.ran.append((rate, profiled))
        return latency(rate, 1, self.p99_at[rate], arrived=90 if rate == self.lost_at else 100)


def test_the_climb_runs_the_ladder_above_the_latency_runs_unprofiled_and_stops_at_the_first_p99_over_250_ms() -> None:
    network = Network({300: 120, 400: 251, 500: 90, 600: 90})
    runs = [latency(20, 10, 30), latency(200, 50, 110)]

    saturation = asyncio.run(climb(network, runs, (150, 300, 400, 500, 600)))

    assert network.ran == [(300, False), (400, False)]  # not 150 (below the runs), nothing after 400
    assert [lat.rate for lat in saturation.runs] == [20, 200, 300, 400]
    assert (saturation.first_over, saturation.highest_within) == (400, 300)
    assert saturation.saturates_below(500) is True


def test_the_climb_counts_a_run_whose_referrals_did_not_all_arrive_as_over_and_may_not_need_to_climb() -> None:
    lost = Network({300: 100, 400: 100}, lost_at=400)
    assert asyncio.run(climb(lost, [latency(200, 50, 110)], (300, 400))).first_over == 400

    already = Network({})
    saturation = asyncio.run(climb(already, [latency(20, 10, 30), latency(200, 300, 900)], (300,)))
    assert already.ran == [] and saturation.first_over == 200


def test_no_saturation_below_500_per_s_holds_only_when_measured_up_to_it() -> None:
    def verdict(*runs: Latency) -> bool:
        run = Report(started_at="", options={}, machine={}, saturation=Saturation(list(runs)))
        return run.verdicts()["no_saturation_below_rate"]

    assert verdict(latency(200, 50, 110), latency(500, 50, 240), latency(600, 50, 900))
    assert verdict(latency(500, 50, 900))  # over at 500 itself, not below it
    assert not verdict(latency(200, 50, 110), latency(400, 50, 260))
    assert not verdict(latency(200, 50, 110), latency(400, 50, 200))  # the climb stopped short of 500
    assert not Report(started_at="", options={}, machine={}).verdicts()["no_saturation_below_rate"]


def test_the_climb_is_printed_rate_by_rate_with_the_first_rate_over() -> None:
    saturation = Saturation([latency(200, 50, 110), latency(300, 80, 180), latency(400, 400, 900, arrived=97)])
    console = Console(record=True, width=200)

    print_report(Report(started_at="", options={}, machine=MACHINE, saturation=saturation), console)
    printed = console.export_text()

    assert "at 300/s" in printed and "p50 80.0, p99 180.0 ms" in printed
    assert "97 of 100 arrived" in printed
    assert "first rate with p99 over 250 ms" in printed and "400/s" in printed and "MISS" in printed
    document = orjson.loads(Report(started_at="", options={}, machine=MACHINE, saturation=saturation).to_json())
    assert document["saturation"]["first_over"] == 400 and document["saturation"]["highest_within"] == 300
    assert [run["rate"] for run in document["saturation"]["runs"]] == [200, 300, 400]
