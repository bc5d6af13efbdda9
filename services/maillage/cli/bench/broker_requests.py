"""How many requests the broker received, by API: its own request metrics (`kafka.network:type=RequestMetrics,
name=RequestsPerSec`, the meter's `Count`, summed over the API's versions), read over JMX with Kafka's JmxTool."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections import Counter
from dataclasses import dataclass

from maillage.cli.kafka_local import ensure_jars

_METRIC = "kafka.network:type=RequestMetrics,name=RequestsPerSec,*"
_LINE = re.compile(r"request=(?P<api>[A-Za-z]+),version=\d+:Count=(?P<count>\d+)$")


@dataclass(frozen=True)
class BrokerRequests:
    jmx_port: int

    async def sample(self) -> Counter[str]:
        """Requests received since the broker started, per API (Produce, Fetch, AddPartitionsToTxn…)."""
        return parse_counts(await asyncio.to_thread(self._read))

    def _read(self) -> str:
        command = [
            "java",
            "-Xmx64m",
            "-cp",
            f"{ensure_jars()}/*",
            "org.apache.kafka.tools.JmxTool",
            "--jmx-url",
            f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{self.jmx_port}/jmxrmi",
            "--object-name",
            _METRIC,
            "--attributes",
            "Count",
            "--one-time",
            "true",
            "--report-format",
            "properties",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"JmxTool could not read the broker's metrics: {done.stderr[-500:]}")
        return done.stdout


# The broker also counts every Fetch a second time as FetchConsumer or FetchFollower: left out, so that a sum is a
# count of requests.
_SUBSETS = frozenset({"FetchConsumer", "FetchFollower"})


def parse_counts(report: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in report.splitlines():
        if (found := _LINE.search(line.strip())) and found["api"] not in _SUBSETS:
            counts[found["api"]] += int(found["count"])
    return counts


def per_event(before: Counter[str], after: Counter[str], *, events: int) -> dict[str, float]:
    """Requests per event by API between two samples, the most frequent first (APIs that did not move left out)."""
    moved = {api: after[api] - before.get(api, 0) for api in after}
    ordered = sorted(((api, n) for api, n in moved.items() if n > 0), key=lambda kv: -kv[1])
    return {api: round(n / max(events, 1), 2) for api, n in ordered}
