"""Headless Chromium for the demo's browser tests: Debian's chromium driven by Playwright, or a clear skip."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

#: The browser to drive: Debian's package by default (Playwright's own download is not used).
CHROMIUM = os.environ.get("LEXI_CHROMIUM", "/usr/bin/chromium")
#: Quiet, offline, container-friendly flags.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
#: Milliseconds any single browser wait may take.
WAIT_MS = 15_000


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "browser tests need the playwright package: pip install -e '.[test]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium, or set LEXI_CHROMIUM"
    return None


@contextmanager
def chromium(**options: Any) -> Iterator[BrowserContext]:
    """A fresh headless Chromium profile (skipping the test, with the reason, when there is no browser)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lexi-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, **options
        )
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()
