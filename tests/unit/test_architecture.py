"""The shape the code keeps: a pure domain, queries in repositories only."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import maillage
import maillage.domain

pytestmark = pytest.mark.unit

PACKAGE = Path(maillage.__file__).parent
FRAMEWORKS = ("fastapi", "starlette", "aiokafka", "sqlalchemy", "sqlmodel", "httpx", "uvicorn")
# A query of any kind: a statement built or run, a row fetched by key, raw SQL.
QUERY = re.compile(r"(?<![.\w])(select|update|delete|text|insert)\(|\.exec\(|\.execute\(|session\.get\(")


def test_the_domain_imports_no_framework_and_no_driver() -> None:
    modules = [f"maillage.domain.{m.name}" for m in pkgutil.iter_modules(maillage.domain.__path__)]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout

    assert len(modules) >= 10
    assert loaded.strip() == "[]", f"the domain pulls in {loaded.strip()}"


def test_queries_live_in_repositories_only() -> None:
    offending = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        # A revision that rebuilds a table copies its rows: schema work, beside the schema's history. The
        # loop-thread SQLite connection is a driver, and `plain` hands it the repositories' statements as
        # SQLAlchemy compiled them: both run the repositories' queries.
        if path.name not in ("repository.py", "loop_sqlite.py", "plain.py") and path.parent.name != "migrations"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if QUERY.search(line) and not line.lstrip().startswith("#")
    ]

    assert offending == []


def test_no_service_waits_with_asyncio_wait_for() -> None:
    # On Python 3.11 asyncio.wait_for loses a cancellation that arrives as what it waits for completes: a loop
    # around it runs on after its service stopped, and the stop that awaits it hangs. asyncio.timeout (or
    # maillage.core.polling.wait_set) never does.
    offending = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "cli" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "asyncio.wait_for(" in line
    ]

    assert offending == []
