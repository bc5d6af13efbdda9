"""One escalation turn of a dispatcher, in a process of its own, when the test says so (a line on stdin): two of
them on one database turn to the same due alerts at the same moment (test_escalation_claims)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from maillage.core.clock import ManualClock
from maillage.core.crypto.trust import Trust
from maillage.core.storage.db import make_engine, session_factory
from maillage.dispatcher.app import ACTS_FOR
from maillage.dispatcher.live import Live
from maillage.dispatcher.services import Dispatcher, Served
from maillage.dispatcher.settings import DispatcherSettings
from maillage.domain.rota import Rota


async def main(settings_json: str, at: str) -> None:
    settings = DispatcherSettings(**json.loads(settings_json))
    network = settings.network
    engine = make_engine(settings.db_url())
    served = {
        a: Served(
            agency=network.agency(a),
            rota=Rota(network.oncall[a], timezone=network.dispatcher.timezone),
            trust=Trust.load(settings.key_dirs, a, uses=ACTS_FOR),
        )
        for a in network.dispatched
    }
    dispatcher = Dispatcher(
        network=network,
        topics=settings.topics,
        sessions=session_factory(engine),
        served=served,
        live=Live(max_per_worker=1, max_per_agency=1),
        clock=ManualClock(datetime.fromisoformat(at)),
    )
    await dispatcher.start()
    print("ready", flush=True)
    sys.stdin.readline()
    await dispatcher.run_due()
    print("done", flush=True)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
