"""``flowers-serve`` / ``python -m app.serve``: uvicorn with production settings for this app.

One worker per process (the model and the batch queue live in it; scale with processes or
containers).  ``--train-if-empty`` first trains the default model when the store has none.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from types import FrameType
from typing import Final

from app.config import SettingsError, load_settings
from app.http.server import ConnectionLimits, hardened_protocol
from app.store.versions import ModelStore

# Uvicorn timeouts (documented in the README): idle keep-alive connections are closed after
# KEEP_ALIVE_S; on SIGTERM, in-flight requests get shutdown_drain_s + GRACE_S to finish.
KEEP_ALIVE_S: Final = 5
GRACE_S: Final = 5
EXIT_USAGE: Final = 2
# The ready banner's watcher: first look after 0.5 s, then ever more rarely (up to 10 s), and
# one line if the server is still not ready after NOT_READY_NOTICE_S.
WATCH_FIRST_S: Final = 0.5
WATCH_MAX_S: Final = 10.0
NOT_READY_NOTICE_S: Final = 15.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowers-serve", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on")  # noqa: S104
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--train-if-empty",
        action="store_true",
        help="train the default model first when the model store holds no version",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.train_if_empty and ModelStore(settings.model_store).latest() is None:
        print(f"No model in {settings.model_store}: training the default flower model first.")
        code = subprocess.run([sys.executable, "-m", "app.train"], check=False).returncode
        if code != 0:
            return code
    import uvicorn

    threading.Thread(
        target=_announce_when_ready, args=(args.port, settings.grpc_port), daemon=True
    ).start()
    # uvicorn stops gracefully on SIGTERM/SIGINT (no new connections, requests and the batch
    # queue drained), then re-raises the signal into the handler that was installed before it.
    # Installing a no-op here turns that into a clean exit with status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    uvicorn.run(
        "app.main:app",
        http=hardened_protocol(
            ConnectionLimits(settings.header_timeout_s, settings.max_connections)
        ),
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,  # app.access logs each request with its id
        log_config=None,  # app.logs configures logging from the settings
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_drain_s + GRACE_S),
        limit_concurrency=settings.max_connections,
    )
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The graceful shutdown already happened; nothing is left to do."""


def _announce_when_ready(port: int, grpc_port: int | None) -> None:
    """Print where the server is once it is ready; say once if that takes long."""
    url = f"http://127.0.0.1:{port}/health/ready"
    started, delay, noticed = time.monotonic(), WATCH_FIRST_S, False
    while not _is_ready(url):
        if not noticed and time.monotonic() - started > NOT_READY_NOTICE_S:
            noticed = True
            print(
                "Not ready yet: no model is loaded (the log says why; an empty store needs "
                "`python -m app.train` or POST /admin/retrain). The banner follows once it is.",
                flush=True,
            )
        time.sleep(delay)
        delay = min(delay * 2, WATCH_MAX_S)
    base = f"http://localhost:{port}"
    grpc = f", gRPC localhost:{grpc_port}" if grpc_port else ""
    print(
        f"\nThe flower classifier is ready at {base}\n"
        f"  in a browser: {base}/ (classify photos), {base}/admin (the operator's console)\n"
        f"  curl -F file=@rose.jpg {base}/predict\n"
        f"  curl {base}/classes\n"
        f"  API docs: {base}/docs\n"
        f"  Open Inference Protocol (Triton and KServe clients): {base}/v2{grpc}\n",
        flush=True,
    )


def _is_ready(url: str) -> bool:
    try:  # url is our own http://127.0.0.1 address (built above), never user input
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
