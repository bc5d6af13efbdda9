"""Generated requests against each service's published OpenAPI (schemathesis): no 5xx, no answer outside the schema.

Requests go to loopback literals only. A generated webhook URL is rewritten to a loopback literal before it is
sent, so that no generated host name ever reaches a service that would resolve it or call it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

import httpx
from rich.table import Table

from maillage.core.config.network import Network
from maillage.core.crypto.keys import KeyDirs, KeyUse, OwnKeys, PublicKeys
from maillage.core.crypto.tokens import Scope, mint

if TYPE_CHECKING:
    from schemathesis import Case

Operation = Any  # schemathesis.APIOperation, generic over four of its own internal types

# Streams answer for as long as the client listens: they are exercised by their own tests, not by a fuzzer.
STREAMING = "text/event-stream"
# What a generated webhook `url` becomes: loopback literals only, of each kind a service must refuse or accept.
LOOPBACK_URLS = (
    "https://127.0.0.1:9/hook",
    "http://127.0.0.1:9/hook",
    "https://user:secret@127.0.0.1:9/hook",
    "https://[::1]:9/hook",
    "https://127.0.0.1/",
)
URL_FIELDS = frozenset({"url"})
SAMPLES_KEPT = 40
ROUNDS = 200  # an operation with few distinct inputs gives few examples a round: more rounds fill the budget


@dataclass
class OperationFigures:
    requests: int = 0
    server_errors: int = 0
    violations: int = 0
    refused_valid: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class FuzzReport:
    """What one service answered to the generated requests."""

    service: str
    base_url: str
    operations: dict[str, OperationFigures] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.operations.values())

    @property
    def server_errors(self) -> int:
        return sum(o.server_errors for o in self.operations.values())

    @property
    def violations(self) -> int:
        return sum(o.violations for o in self.operations.values())

    @property
    def refused_valid(self) -> int:
        return sum(o.refused_valid for o in self.operations.values())

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.server_errors == 0 and self.violations == 0


OPERATOR_SCOPES = (Scope.MONITOR_READ, Scope.MONITOR_ACT)
# Every scope an agency's token may hold: one token opens every operation of its agency, the gateway and the
# dispatcher, so that generated requests reach the code behind the scope checks.
AGENCY_SCOPES = tuple(s for s in Scope if s not in OPERATOR_SCOPES)


@dataclass(frozen=True)
class Target:
    service: str
    base_url: str
    token_owner: str
    scopes: tuple[Scope, ...]

    def token(self, dirs: KeyDirs) -> str:
        """Minted when the service's turn comes: a token lives an hour, a long run lasts longer."""
        keys = OwnKeys.load(dirs, self.token_owner, PublicKeys.load(dirs), uses=frozenset({KeyUse.TOKENS}))
        return mint(keys, subject="fuzz", scopes=self.scopes)


def network_targets(network: Network, *, agencies: tuple[str, ...] = ()) -> list[Target]:
    """Every service of a network (or only the agencies named besides the others), each with the issuer and
    scopes of a token that opens every operation there."""
    chosen = agencies or tuple(a.id for a in network.agencies)
    # The dispatcher serves the agencies with an on-call policy: a token of one of them reaches its alerts.
    on_call = (network.dispatched or chosen)[0]
    return [
        *(Target(f"agency:{a}", _local(network.agency(a).port), a, AGENCY_SCOPES) for a in chosen),
        Target("gateway", _local(network.gateway.port), chosen[0], AGENCY_SCOPES),
        Target("dispatcher", _local(network.dispatcher.port), on_call, AGENCY_SCOPES),
        Target("monitor", _local(network.monitor.port), network.operators.issuer, OPERATOR_SCOPES),
    ]


def _local(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def fuzz_network(
    network: Network,
    dirs: KeyDirs,
    *,
    requests: int,
    seed: int = 0,
    agencies: tuple[str, ...] = (),
    on_report: Callable[[FuzzReport], None] = lambda _: None,
) -> list[FuzzReport]:
    """`fuzz_service` on every service of the network, one after the other."""
    reports = []
    for target in network_targets(network, agencies=agencies):
        token = target.token(dirs)
        report = fuzz_service(target.base_url, token, requests=requests, seed=seed, service=target.service)
        on_report(report)
        reports.append(report)
    return reports


def fuzz_table(reports: list[FuzzReport]) -> Table:
    table = Table(title="Generated requests (schemathesis) per service")
    for column in ("service", "operations", "requests", "5xx", "schema violations", "valid but refused", "seconds"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for r in reports:
        table.add_row(
            r.service,
            str(len(r.operations)),
            str(r.requests),
            _red_unless_zero(r.server_errors),
            _red_unless_zero(r.violations),
            str(r.refused_valid),
            f"{r.seconds:.0f}",
        )
    return table


def _red_unless_zero(count: int) -> str:
    return str(count) if count == 0 else f"[red]{count}[/]"


def require_loopback(base_url: str) -> None:
    """Refuse any target but a loopback IP literal: a name would be resolved, and this runs on a real machine."""
    host = httpx.URL(base_url).host
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"fuzzing targets loopback IP literals only, not {host!r}")


def fuzz_service(
    base_url: str, token: str, *, requests: int, seed: int = 0, service: str = "", timeout: float = 10.0
) -> FuzzReport:
    """Send at least `requests` generated requests (valid and invalid ones) over the service's operations,
    with `token`, and count the 5xx answers and the answers that break the published schema."""
    import requests as http
    import schemathesis

    require_loopback(base_url)
    report = FuzzReport(service=service or base_url, base_url=base_url)
    started = time.monotonic()
    operations = _operations(_load_schema(base_url), skipped=report.skipped)
    session = http.Session()
    session.trust_env = False  # no proxy from the environment: loopback stays loopback
    headers = {"Authorization": f"Bearer {token}"}
    checks = _checks()

    def send(case: Case[Any]) -> None:
        figures = report.operations.setdefault(case.operation.label, OperationFigures())
        _keep_loopback(case)
        figures.requests += 1
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=timeout)
        except http.RequestException as exc:
            figures.server_errors += 1
            _sample(report, f"{case.operation.label}: no answer ({type(exc).__name__})")
            return
        figures.statuses[response.status_code] = figures.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            figures.server_errors += 1
            _sample(report, f"{case.operation.label}: {response.status_code}")
        if _refused_as_invalid(case, response):
            figures.refused_valid += 1
            _sample(report, f"{case.operation.label}: valid by the schema, refused: {_problem_errors(response)}")
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (schemathesis.errors.FailureGroup, AssertionError) as exc:
            figures.violations += 1
            _sample(report, f"{case.operation.label} → {response.status_code}: {_first_line(exc)}")

    for round_ in range(ROUNDS):
        missing = requests - report.requests
        if missing <= 0 or not operations:
            break
        per_operation = max(1, math.ceil(missing / len(operations)))
        for operation in operations:
            _explore(operation, per_operation=per_operation, seed=seed * ROUNDS + round_, send=send)
    session.close()
    report.seconds = time.monotonic() - started
    return report


def _load_schema(base_url: str) -> Any:
    import schemathesis

    with httpx.Client(base_url=base_url, trust_env=False, timeout=10.0) as client:
        answer = client.get("/openapi.json")
        answer.raise_for_status()
        document = answer.json()
    # An explicit configuration: a schemathesis.toml lying in the working directory must not change the run.
    return schemathesis.openapi.from_dict(document, config=schemathesis.Config())


def _operations(schema: Any, *, skipped: list[str]) -> list[Operation]:
    from schemathesis.core.result import Ok

    found = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise ValueError(f"the published schema has an operation schemathesis cannot read: {result.err()}")
        operation = result.ok()
        if _streams(operation.definition.raw):
            skipped.append(f"{operation.label} (a stream)")
        else:
            found.append(operation)
    return found


def _streams(definition: dict[str, Any]) -> bool:
    return any(STREAMING in (answer.get("content") or {}) for answer in definition.get("responses", {}).values())


def _explore(operation: Operation, *, per_operation: int, seed: int, send: Callable[[Case[Any]], None]) -> None:
    """Up to `per_operation` cases of this operation, valid and invalid ones mixed, each sent once."""
    import hypothesis
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    # An operation with nothing to break has no invalid cases to generate.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @hypothesis.settings(
        max_examples=per_operation,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @hypothesis.seed(seed)
    @hypothesis.given(case=st.one_of(strategies))
    def run(case: Case[Any]) -> None:
        send(case)

    run()


def _keep_loopback(case: Case[Any]) -> None:
    """Whatever URL was generated for a webhook, a loopback literal is sent instead (chosen from the generated
    value, so that runs stay reproducible): a generated public name must never become a destination."""
    body = case.body
    if not isinstance(body, dict):
        return
    for key in URL_FIELDS & set(body):
        value = body[key]
        if isinstance(value, str):
            body[key] = LOOPBACK_URLS[sum(value.encode()) % len(LOOPBACK_URLS)]


def _refused_as_invalid(case: Case[Any], response: Any) -> bool:
    """A request the published schema calls valid, refused by the service's own validation: the service
    checks something its schema does not say."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return False
    try:
        return str(response.json().get("type", "")).endswith("/validation")
    except ValueError:
        return False


def _problem_errors(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return "?"
    errors = body.get("errors", [])
    found = "; ".join(f"{'.'.join(e.get('loc', []))}: {e.get('msg', '')}" for e in errors)
    return (found or str(body.get("detail", "")))[:300]


def _sample(report: FuzzReport, line: str) -> None:
    if len(report.samples) < SAMPLES_KEPT and line not in report.samples:
        report.samples.append(line)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, BaseExceptionGroup):
        text = "; ".join(str(e).strip().splitlines()[0] for e in exc.exceptions if str(e).strip())
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
