"""Reachability check before a download that has no timeout of its own (Keras's get_file)."""

from __future__ import annotations

import urllib.request

PROBE_TIMEOUT_S = 10


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise OSError within ``timeout`` seconds when ``url`` cannot be reached."""
    if not url.startswith(("https://", "http://")):
        raise OSError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, method="HEAD")
    # The scheme is checked above, so no file:// or custom scheme reaches urlopen.
    with urllib.request.urlopen(request, timeout=timeout):
        pass
