"""The gateway's crypto on both cores: verify, open and validate a batch's records; seal and sign its shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from maillage.core.crypto.trust import Refused, Trust
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope
from maillage.gateway.outgoing import Outgoing, Share
from maillage.gateway.services import Arrival

T = TypeVar("T")
U = TypeVar("U")
THREADS = 2
# A batch this small is checked, opened or sealed on the event loop itself: there is little second core's work to
# win (some 130 µs of CPU per record), and each hand-over to a thread and back costs more than the work (a lone
# record at 20/s: open 1.6 → 0.6 ms, seal 1.2 → 0.3 ms, wall; README "A lean pipeline", eleventh round; at 200/s,
# where batches are a few records, up to 16 on the loop: the gateway's CPU per referral 8 % less, its stage's median
# 6 ms shorter, fifteenth round). Not when some owner's keys come from its JWKS URL: a key id not known yet is fetched
# there first (`Trust.refresh`, a blocking request), which only a thread may wait for.
INLINE = 16


class CryptoThreads:
    """pyca/cryptography releases the GIL: checking, opening and sealing a batch's records in threads runs
    on both cores, while the decisions themselves stay in order on the event loop. A lone record is done on the
    loop itself, and so is a small batch, when no key can have to be fetched first (`INLINE`)."""

    def __init__(self, trust: Trust, *, threads: int = THREADS) -> None:
        self.trust = trust
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gateway-crypto")
        self.inline = 0 if trust.fetches_keys else INLINE

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    async def open(self, records: Sequence[Record]) -> list[Arrival]:
        """Each record's event, signed by its source, opened and valid; or why not (Trust.receive)."""
        return await self._map(self._open, records)

    async def seal(self, records: Sequence[Outgoing | Share]) -> list[Outgoing]:
        """The records to publish, in the same order: each share sealed to its recipient, and all of them signed
        by one batch signature (signing.py: version 2), each with its path."""
        shares = [(i, r) for i, r in enumerate(records) if isinstance(r, Share)]
        if not shares:
            return [r for r in records if isinstance(r, Outgoing)]
        sealed = await self._map(self._seal, [share for _, share in shares])
        if len(sealed) <= self.inline:
            signed = self.trust.sign_batch(sealed)
        else:
            signed = await asyncio.get_running_loop().run_in_executor(self.pool, self.trust.sign_batch, sealed)
        published = await self._map(_outgoing, [(share.topic, e) for (_, share), e in zip(shares, signed, strict=True)])
        ready = list(records)
        for (i, _), record in zip(shares, published, strict=True):
            ready[i] = record
        return [r for r in ready if isinstance(r, Outgoing)]

    def _open(self, record: Record) -> Arrival:
        try:
            received = self.trust.receive(record)
        except Refused as refused:
            return Arrival(record, refused)
        assert received is not None  # only None for types outside `only`, and every type is wanted here
        return Arrival(record, received)

    def _seal(self, share: Share) -> Envelope:
        return self.trust.seal(share.envelope, share.plaintext, to=share.envelope.recipient)

    async def _map(self, work: Callable[[T], U], items: Sequence[T]) -> list[U]:
        if len(items) <= self.inline:
            return _apply(work, items)
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(items) // self.threads))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self.pool, _apply, work, c) for c in chunks))
        return [result for chunk in done for result in chunk]


def _outgoing(item: tuple[str, Envelope]) -> Outgoing:
    topic, envelope = item
    key, value, headers = envelope.to_kafka()
    return Outgoing(topic, key, value, headers)


def _apply(work: Callable[[T], U], items: Sequence[T]) -> list[U]:
    return [work(item) for item in items]
