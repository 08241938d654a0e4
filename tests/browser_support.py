"""Debian's chromium for the console tests (Playwright drives it; no browser download)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",  # a test tone as the microphone
    "--use-fake-ui-for-media-stream",
    "--lang=vi-VN",  # date and time inputs as a Vietnamese phone shows them
]
