"""What a command presents to a service: a bearer token, never taken from its own command line (every
user of the machine sees command lines in `ps`), and the scrape secret of `/metrics`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from maillage.core.config.settings import METRICS_TOKEN_FILE

TOKEN_ENV = "MAILLAGE_TOKEN"

TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="MAILLAGE_TOKEN_FILE",
        show_default=False,
        exists=True,
        dir_okay=False,
        help=f"A file holding the token (or set {TOKEN_ENV}); never the token itself on the command line.",
    ),
]


def bearer_token(token_file: Path | None) -> str | None:
    if token_file is not None:
        return token_file.read_text().strip() or None
    return os.environ.get(TOKEN_ENV) or None


def scrape_secret(data_dir: Path) -> str | None:
    """The `/metrics` bearer secret that `maillage up` made for the services of `data_dir`."""
    path = data_dir / "keys" / "private" / METRICS_TOKEN_FILE
    return path.read_text().strip() if path.exists() else None
