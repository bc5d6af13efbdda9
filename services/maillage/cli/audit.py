"""`maillage audit verify` and `maillage disclosures`: what data-protection officers ask of the gateway."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from maillage.cli.credentials import TokenFileOption, bearer_token
from maillage.cli.words import phrase
from maillage.core.config.network import NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.network_ca import client_context
from maillage.core.messaging.envelope import ENVELOPE_SUBJECT
from maillage.gateway.contracts import ChainReport, DisclosureLine, DisclosureReport, WalkState, WalkStatus

audit_app = typer.Typer(no_args_is_help=True, help="The gateway's tamper-evident audit chain.")
disclosures_app = typer.Typer()
console = Console()

CANNOT_CHECK = 2  # exit code when no answer could be had (1 is kept for a broken chain)

NetworkOption = Annotated[
    Path, typer.Option("--network", envvar="MAILLAGE_NETWORK_FILE", help="The network file (gives the gateway's port).")
]
GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        envvar="MAILLAGE_GATEWAY_URL",
        show_default=False,
        help="The gateway's base URL (default: http://127.0.0.1:PORT, PORT from the network file).",
    ),
]


class CannotCheck(Exception):
    """No answer could be had; the message is safe to print (it never holds the token)."""


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]", highlight=False)
    return typer.Exit(CANNOT_CHECK)


# --- asking the gateway ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayApi:
    """Where the gateway answers, and the TLS trust to reach it (the system's CAs and the network CA)."""

    url: str
    verify: ssl.SSLContext

    def __str__(self) -> str:
        return self.url


def _base_url(gateway: str | None, network: Path) -> GatewayApi:
    try:
        net = load_network(network)
    except NetworkError as exc:
        if not gateway:
            raise CannotCheck(f"{exc} — or name the gateway with --gateway URL.") from None
        return GatewayApi(gateway.rstrip("/"), client_context(None))
    return GatewayApi((gateway or net.gateway.base_url).rstrip("/"), client_context(net.ca_file))


def _get(base_url: GatewayApi, path: str, token: str | None, *, method: str = "GET") -> dict[str, Any]:
    if not token:
        raise CannotCheck(
            "A token with the audit:read scope is needed (`maillage token --agency ID --scope "
            "audit:read`): set MAILLAGE_TOKEN or pass --token-file."
        )
    try:
        response = httpx.request(
            method,
            base_url.url + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=120.0),
            verify=base_url.verify,
        )
    except httpx.HTTPError as exc:
        raise CannotCheck(f"Cannot reach the gateway at {base_url} ({type(exc).__name__}). Is it running?") from None
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    raise CannotCheck(_problem_text(response))


def _problem_text(response: httpx.Response) -> str:
    try:
        problem = response.json()
        return f"The gateway refused ({response.status_code} {problem['title']}): {problem['detail']}"
    except (ValueError, KeyError, TypeError):
        return f"The gateway answered {response.status_code}."


# --- maillage audit verify ---------------------------------------------------------------------------


@audit_app.command("verify")
def verify(
    gateway: GatewayOption = None,
    token_file: TokenFileOption = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            show_default=False,
            help="Verify this gateway database directly, without a running gateway "
            "(e.g. sqlite+aiosqlite:///copy/gateway.db; a SQLite file is opened read-only).",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Have the gateway walk every chain from its first record (the only check that sees an edit "
            "which kept the hashes; minutes on a long chain), and wait for its report. A copy given with "
            "--database is always walked in full.",
        ),
    ] = False,
    network: NetworkOption = DEFAULT_NETWORK,
) -> None:
    """Verify the audit chains and name the first broken record: on from the last signed checkpoint, with the
    last full walk's result (or a full walk with --full). Exit code 1 when broken, 2 when it could not be
    checked."""
    try:
        if database:
            report = _verify_database(database)
        elif full:
            report = _walk_online(_base_url(gateway, network), bearer_token(token_file))
        else:
            report = _verify_online(_base_url(gateway, network), bearer_token(token_file))
    except CannotCheck as exc:
        raise _fail(str(exc)) from None
    _print_chain(report)
    if not report.intact:
        raise typer.Exit(1)


def _verify_online(base_url: GatewayApi, token: str | None) -> ChainReport:
    """Asked again while the gateway stops at its limit per request (a long chain not yet checkpointed)."""
    with console.status(f"The gateway at {base_url} is verifying its audit chains…") as status:
        report = ChainReport.model_validate(_get(base_url, "/v1/audit/verify", token))
        walked = report.walked
        while not report.complete and report.intact:
            status.update(f"The gateway at {base_url} is verifying its audit chains… {walked:,} records hashed")
            report = ChainReport.model_validate(_get(base_url, "/v1/audit/verify", token))
            walked += report.walked
    return report.model_copy(update={"walked": walked})


def _walk_online(base_url: GatewayApi, token: str | None, *, every: float = 1.0) -> ChainReport:
    walk = WalkStatus.model_validate(_get(base_url, "/v1/audit/walks", token, method="POST"))
    columns = (SpinnerColumn(), TextColumn("The gateway walks every chain"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("walk", total=None)
        while walk.state is WalkState.RUNNING:
            progress.update(task, completed=walk.records_done, total=walk.records_total or None)
            time.sleep(every)
            walk = WalkStatus.model_validate(_get(base_url, f"/v1/audit/walks/{walk.id}", token))
    if walk.report is None:
        raise CannotCheck(f"The full walk {walk.id} was interrupted (its gateway stopped): ask for another.")
    return walk.report


def _verify_database(url: str) -> ChainReport:
    columns = (SpinnerColumn(), TextColumn("Walking the audit chain"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("walk", total=None)
        return asyncio.run(
            _walk_database(url, progress=lambda done, total: progress.update(task, completed=done, total=total))
        )


async def _walk_database(url: str, *, progress: Any) -> ChainReport:
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    from maillage.core.storage.db import session_factory
    from maillage.gateway.verification import verify_chain

    # Not make_engine: its pragmas would write to what may be the evidence.
    engine = create_async_engine(_read_only(url))
    try:
        return await verify_chain(session_factory(engine), progress=progress)
    except DBAPIError as exc:
        raise CannotCheck(f"Cannot read the audit table of {url}: {exc.orig}") from None
    finally:
        await engine.dispose()


def _read_only(url: str) -> str:
    """A SQLite URL opened read-only, and refused when the file is missing (SQLite would create it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CannotCheck(f"Not a database URL: {url} (e.g. sqlite+aiosqlite:///var/gateway.db)") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return url
    path = Path(parsed.database or "")
    if parsed.query.get("uri") or str(path).startswith("file:"):
        return url
    if not path.is_file():
        raise CannotCheck(f"No database file at {path}.")
    return parsed.set(
        database=f"file:{path.resolve()}", query={**parsed.query, "mode": "ro", "uri": "true"}
    ).render_as_string(hide_password=False)


def _print_chain(report: ChainReport) -> None:
    broken = report.first_broken
    chains = escape(phrase("cli.audit.chains", count=report.chains))
    intact, broken_word = f"[green]{phrase('cli.audit.word-intact')}[/]", f"[red]{phrase('cli.audit.word-broken')}[/]"
    if broken is None:
        console.print(phrase("cli.audit.intact", records=report.records, intact=intact, chains=chains))
    else:
        console.print(
            phrase(
                "cli.audit.broken",
                records=report.records,
                broken=broken_word,
                chains=chains,
                chain=broken.chain,
                seq=broken.seq,
                event=escape(broken.event_id),
                recorded=escape(broken.recorded_at),
            ),
            highlight=False,
        )
    if report.walked < report.records:
        earlier = report.records - report.walked
        console.print(phrase("cli.audit.checkpointed", walked=report.walked, earlier=earlier), highlight=False)
    last = report.last_full_walk
    if last is not None:
        finished = f"{last.finished_at:%Y-%m-%d %H:%M}"
        state = intact if last.intact else broken_word
        console.print(
            phrase("cli.audit.last-walk", finished=finished, records=last.records, state=state), highlight=False
        )
    elif report.walked < report.records:
        console.print(phrase("cli.audit.no-full-walk"), highlight=False)
    for sha in report.policy_sha256s:
        console.print(phrase("cli.audit.policy", sha=sha), highlight=False)


# --- maillage disclosures ----------------------------------------------------------------------------


@disclosures_app.command("disclosures")
def disclosures(
    subject_ref: Annotated[str, typer.Argument(help="The person's pseudonymous reference, or a consultation's (c-…).")],
    gateway: GatewayOption = None,
    token_file: TokenFileOption = None,
    network: NetworkOption = DEFAULT_NETWORK,
) -> None:
    """List who received which categories about a person, when, and on which basis (scope audit:read)."""
    if not ENVELOPE_SUBJECT.fullmatch(subject_ref):
        raise typer.BadParameter(phrase("cli.disclosures.bad-subject"), param_hint="SUBJECT_REF")
    try:
        base_url = _base_url(gateway, network)
        with console.status(phrase("cli.disclosures.asking")):
            report = _all_disclosures(base_url, subject_ref, bearer_token(token_file))
    except CannotCheck as exc:
        raise _fail(str(exc)) from None
    if not report.disclosures:
        console.print(phrase("cli.disclosures.none", subject=subject_ref), highlight=False)
        return
    console.print(_disclosure_table(report))


def _all_disclosures(base_url: GatewayApi, subject_ref: str, token: str | None) -> DisclosureReport:
    """Every page of the report, as one."""
    pages = [DisclosureReport.model_validate(_get(base_url, f"/v1/disclosures/{subject_ref}", token))]
    while pages[-1].next_cursor:
        path = f"/v1/disclosures/{subject_ref}?cursor={pages[-1].next_cursor}"
        pages.append(DisclosureReport.model_validate(_get(base_url, path, token)))
    return DisclosureReport(subject_ref=subject_ref, disclosures=[d for page in pages for d in page.disclosures])


def _disclosure_table(report: DisclosureReport) -> Table:
    table = Table(title=f"Disclosures about {report.subject_ref}", show_lines=True)
    table.add_column("when (UTC)", min_width=10, overflow="fold")
    for column in ("recipient", "sector", "basis", "delivered", "removed"):
        # Fold, never truncate: an auditor must see every category, whatever the terminal's width.
        table.add_column(column, overflow="fold")
    for line in report.disclosures:
        event = line.event_type.removeprefix("maillage.").removesuffix(".v1")
        recipient = f"{line.recipient_name}\n({line.recipient})" if line.recipient_name else line.recipient
        basis = f"{line.legal_basis}\n[yellow](to review)[/]" if line.review else line.legal_basis
        basis += _grounds(line)
        removed = "\n".join(f"{category}: {why.replace('_', ' ')}" for category, why in line.removed.items())
        table.add_row(
            f"{_when(line.recorded_at)}\n[dim]{escape(event)}[/]",
            escape(recipient),
            line.sector,
            basis,
            "\n".join(line.delivered) or _notice(line) or _decision(line) or "—",
            escape(removed) or "—",
        )
    return table


def _grounds(line: DisclosureLine) -> str:
    """What a disclosure without consent rests on: the court order or article, the case conference."""
    if line.legal_reference:
        return f"\n{escape(line.legal_reference)}"
    if line.conference_id:
        return f"\n[dim]conference[/] {escape(line.conference_id)}"
    return ""


def _notice(line: DisclosureLine) -> str:
    """A notice carried no data: say what it was about instead (which categories, which kind)."""
    if not line.notice:
        return ""
    about = ", ".join(line.notice.get("categories") or ())
    return escape(f"notice ({str(line.notice.get('kind', '')).replace('_', ' ')}): {about}")


def _decision(line: DisclosureLine) -> str:
    """A review of a danger alert's disclosures (art. 458bis) carried no data: say what was decided."""
    return escape(f"review: {line.decision}") if line.decision else ""


def _when(recorded_at: str) -> str:
    try:
        return datetime.fromisoformat(recorded_at).astimezone(UTC).strftime("%Y-%m-%d\n%H:%M:%S")
    except ValueError:
        return escape(recorded_at)
