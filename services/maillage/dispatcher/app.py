"""Composition root of the dispatcher: settings → database, Kafka clients, the on-call engine → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import Network
from maillage.core.crypto.keys import KeyUse, ensure_secret
from maillage.core.crypto.tokens import DISPATCHER_AUDIENCE, Scope
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import running, service_app
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.sessions.service import SignInSessions
from maillage.core.webhooks.delivery import WebhookDispatcher, new_secret
from maillage.core.webhooks.egress import Destination, EgressPolicy
from maillage.dispatcher.api import router
from maillage.dispatcher.handlers import DeliveryHandler
from maillage.dispatcher.live import Live
from maillage.dispatcher.models import SCHEMA
from maillage.dispatcher.services import Dispatcher, Served, register_fallbacks, retention
from maillage.dispatcher.settings import DispatcherSettings
from maillage.dispatcher.streams import KeepSocketSend
from maillage.domain.rota import Rota

ACTS_FOR = frozenset({KeyUse.SIGNING, KeyUse.SEALING})
FALLBACK_SECRET_FILE = "dispatcher-fallback.secret"
# How uvicorn serves the workers' sockets. Pages are small JSON frames pushed to hundreds of sockets at
# once: compressing each (permessage-deflate) cost more than it saves; the sans-I/O websockets protocol
# kept the 99th percentile under the target in more runs (README, on-call benchmark); a worker only
# ever sends small messages.
UVICORN_OPTIONS: dict[str, object] = {
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "ws_max_size": 64 * 1024,
}


def fallback_secret(settings: DispatcherSettings) -> str:
    """The HMAC secret of the fallback webhooks: configured, or made once and kept beside the private keys."""
    configured = settings.fallback_secret.get_secret_value()
    if configured:
        return configured
    return ensure_secret(settings.key_dirs.private / FALLBACK_SECRET_FILE, new_secret)


def fallback_egress(network: Network) -> EgressPolicy:
    """Fallback URLs are named by the network operator in the network file, like its allow-list: their own
    (host, port) is allowed even when it is not public. They are still https only (checked when the file loads)."""
    urls = [p.fallback_url for a, p in network.oncall.items() if a in network.dispatched and p.fallback_url]
    named = [Destination.of_url(str(url)) for url in urls]
    return EgressPolicy.from_network(network.webhooks, also_allow=named)


COOKIE = "maillage_oncall"  # the on-call page's session (the monitor's dashboard has its own: one host, two ports)


def create_app(settings: DispatcherSettings, *, clock: Clock | None = None) -> FastAPI:
    network = settings.network
    topics = settings.topics
    agencies = network.dispatched

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, schema=SCHEMA) as service:
            remote = await service.key_source(own=set(agencies))  # their keys are in its own folder
            served = {
                a: Served(
                    agency=network.agency(a),
                    rota=Rota(network.oncall[a], timezone=network.dispatcher.timezone),
                    # It signs and opens for the agencies it serves, never mints their tokens.
                    trust=Trust.load(settings.key_dirs, a, uses=ACTS_FOR, remote=remote),
                )
                for a in agencies
            }
            # Webhook attempts run on the real clock, whatever clock paces the escalation (a test's manual one).
            real_clock = SystemClock()
            await register_fallbacks(service.sessions, served, secret=fallback_secret(settings), clock=real_clock)
            signers = {a: s.trust for a, s in served.items()}
            relay = OutboxRelay(service.sessions, service.producer, signers=signers, name="dispatcher")
            webhooks = WebhookDispatcher(
                service.sessions,
                clock=real_clock,
                egress=fallback_egress(network),
                attempt_seconds=settings.webhook_attempt_seconds,
            )
            live = Live(max_per_worker=settings.max_streams_per_worker, max_per_agency=settings.max_streams_per_agency)
            dispatcher = Dispatcher(
                network=network,
                topics=topics,
                sessions=service.sessions,
                served=served,
                live=live,
                relay=relay,
                clock=clock,
                webhook_clock=real_clock,
                on_fallback=webhooks.notify,
            )
            await dispatcher.start()
            handler = DeliveryHandler(dispatcher, topics)
            service.tasks.start(relay.run(), name="outbox-relay")
            service.tasks.start(webhooks.run(), name="fallback-webhooks")
            service.tasks.start(dispatcher.run(), name="escalation")
            service.tasks.start(retention(service.sessions, network).run(dispatcher.clock), name="retention")
            await service.consume(
                *(topics.deliver(a) for a in agencies), group_id=settings.group_id, handle=handler.handle, name="alerts"
            )
            service.watch_keys([s.trust for s in served.values()], on_change=dispatcher.keys_changed)
            app.state.dispatcher = dispatcher
            app.state.signin_sessions = SignInSessions(
                service.sessions,
                trust=next(iter(served.values())).trust if served else None,
                audience=DISPATCHER_AUDIENCE,
                issuers=tuple(served),
                required=Scope.ALERTS_ACK,
                granted=frozenset({Scope.ALERTS_ACK}),
                lifetime=timedelta(hours=settings.oncall_shift_hours),
                cookie=COOKIE,
                on_end=lambda kids: live.revoke(lambda kid: kid not in kids),
            )
            app.state.trust = next(iter(served.values())).trust if served else None
            app.state.key_owners = tuple(served)
            app.state.ready = service.ready()
            yield

    app = service_app(
        settings,
        title="Maillage on-call dispatcher",
        summary="Safety alerts reach an on-call worker live, are acknowledged, and escalate.",
        audience=DISPATCHER_AUDIENCE,
        lifespan=lifespan,
    )
    app.state.sign_in_seconds = settings.sign_in_seconds
    app.include_router(router)
    app.add_middleware(KeepSocketSend)  # added last: outermost, it sees the server's own send
    return app
