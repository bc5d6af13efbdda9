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
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Dialog, Page, Response, async_playwright

from maillage.core.polling import eventually
from maillage.core.web.http import ASSET_TYPES, PAGE_CSP
from maillage.core.web.problems import PROBLEM_JSON

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
async def chromium_page(
    viewport: tuple[int, int] = (390, 844),
    *,
    timeout_ms: float = 10_000,
    locale: str | None = None,
    timezone_id: str | None = None,
) -> AsyncIterator[Page]:
    """A fresh page in a headless Chromium, closed with its browser on exit.

    `locale` sets navigator.language and Accept-Language (e.g. "fr-BE"); `timezone_id` the page's time zone.
    """
    width, height = viewport
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": width, "height": height}, locale=locale, timezone_id=timezone_id
            )
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


# The browser's own report of each refusal: Chromium's console wording changes between releases, the event does not.
_CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.maillageCspViolation([event.effectiveDirective, event.blockedURI || "inline",
                               (event.sourceFile || "") + ":" + event.lineNumber].join(" "));
}, true);
"""
# What the CSP refuses in a page's markup, a browser reporting some of them only once they run (a click, a link).
_INLINE_MARKUP = re.compile(r"<style|<script(?![^>]*\bsrc=)|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


async def watch_for_csp_violations(page: Page, problems: list[str]) -> None:
    """Add each `securitypolicyviolation` event of the page to `problems`, from its first byte (call before goto)."""
    await page.expose_function("maillageCspViolation", lambda text: problems.append(f"CSP violation: {text}"))
    await page.add_init_script(_CSP_REPORTER)


async def assert_strict_csp(page: Page, response: Response | None) -> None:
    """The page came under the strict CSP, holds no inline code, and loads its scripts and stylesheets from its
    own origin, each typed, never sniffed and never cached; a name it does not serve is a 404 problem."""
    assert response is not None and response.ok
    policy = await response.header_value("content-security-policy") or ""
    assert policy == PAGE_CSP and "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    markup = re.sub(r"<!--.*?-->", "", await response.text(), flags=re.DOTALL)
    assert _INLINE_MARKUP.findall(markup) == []
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(response.url))
    loaded: list[str] = await page.evaluate("""() => [...document.scripts].map((s) => s.src)
        .concat([...document.querySelectorAll('link[rel="stylesheet"]')].map((l) => l.href))""")
    assert {Path(urlsplit(url).path).suffix for url in loaded} == {".css", ".js"}, loaded
    for url in loaded:
        assert url.startswith(origin + "/"), url
        served = await page.request.get(url)
        assert served.ok, url
        assert served.headers["content-type"] == ASSET_TYPES[Path(urlsplit(url).path).suffix], served.headers
        assert served.headers["cache-control"] == "no-store" and served.headers["x-content-type-options"] == "nosniff"
    missing = await page.request.get(origin + "/static/nothing.js")
    assert missing.status == 404 and missing.headers["content-type"] == PROBLEM_JSON, missing.headers


async def assert_inline_code_refused(page: Page, problems: list[str]) -> None:
    """The browser enforces the policy: an inline script and a style attribute injected now do nothing, and each
    refusal is reported (so a page that ran without a report ran without a refusal)."""
    seen = len(problems)
    outcome = await page.evaluate("""() => {
      const probe = document.createElement("div");
      probe.setAttribute("style", "position: absolute; width: 123px");
      const script = document.createElement("script");
      script.textContent = "document.documentElement.dataset.inlineRan = 'yes';";
      document.body.append(probe, script);
      const ran = "inlineRan" in document.documentElement.dataset;
      const result = { width: probe.getBoundingClientRect().width, ran };
      probe.remove();
      script.remove();
      return result;
    }""")
    assert outcome["ran"] is False and outcome["width"] != 123, outcome

    async def reported() -> list[str] | None:
        new = [p for p in problems[seen:] if p.startswith("CSP violation: ")]
        directives = {p.split()[2] for p in new}
        return new if {"script-src-elem", "style-src-attr"} <= directives else None

    await eventually(reported, timeout=5, what="the browser to report both refusals")
