"""Headless browser tests: Playwright for Python driving Debian's Chromium (`make system-deps` installs it).

We never run `playwright install`; the browser is the system's /usr/bin/chromium.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import ConsoleMessage, Dialog, Page, async_playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"

# Root in a container: Chromium's sandbox refuses to start as root (Playwright already passes --no-sandbox unless
# asked for the sandbox; we say it anyway), and a container's /dev/shm is often too small for Chromium.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


def chromium_executable() -> str:
    """Debian's Chromium; `MAILLAGE_CHROMIUM` overrides it."""
    path = os.environ.get("MAILLAGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise FileNotFoundError(f"no Chromium at {path}: run `make system-deps` (apt-get install chromium)")
    return path


@asynccontextmanager
async def chromium_page(viewport: tuple[int, int] = (390, 844), *, timeout_ms: float = 10_000,
                        locale: str | None = None, timezone_id: str | None = None) -> AsyncIterator[Page]:
    """A fresh page in a headless Chromium, closed with its browser on exit.

    `locale` sets navigator.language and Accept-Language (e.g. "fr-BE"); `timezone_id` the page's time zone.
    """
    width, height = viewport
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                                timezone_id=timezone_id)
            context.set_default_timeout(timeout_ms)
            yield await context.new_page()
        finally:
            await browser.close()


def screenshot_path(name: str) -> Path:
    """Where a test saves its screenshot `name` (`.png` added): test-artifacts/ at the repo root."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).removesuffix(".png")
    return ARTIFACTS / f"{stem}.png"


def watch_for_problems(page: Page, problems: list[str]) -> None:
    """Collect what a user would notice or an attacker would need: script errors, CSP refusals, dialogs."""
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(message.text)

    async def on_dialog(dialog: Dialog) -> None:
        problems.append(f"a dialog opened: {dialog.message}")
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("dialog", on_dialog)
