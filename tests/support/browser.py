"""Debian's Chromium for Playwright (its own browser download is not used): where it is and how
it is started, for the browser tests and the screenshot script."""

from __future__ import annotations

import os
import shutil

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """FLOWERS_CHROMIUM, else chromium (or chromium-browser) on the PATH; None if none runs."""
    candidates = [os.environ.get("FLOWERS_CHROMIUM"), shutil.which("chromium")]
    candidates += [shutil.which("chromium-browser"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)
