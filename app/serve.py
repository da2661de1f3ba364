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
from typing import Any, Final

from app.config import Settings
from app.store import ModelStore

# Uvicorn timeouts (documented in the README): idle keep-alive connections are closed after
# KEEP_ALIVE_S; on SIGTERM, in-flight requests get shutdown_drain_s + GRACE_S to finish.
KEEP_ALIVE_S: Final = 5
GRACE_S: Final = 5
MAX_CONNECTIONS: Final = 2048
MAX_HEADER_BYTES: Final = 64 * 1024


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
    settings = Settings()
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
        http=_http_protocol(),
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,  # app.access logs each request with its id
        log_config=None,  # app.logs configures logging from the settings
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_drain_s + GRACE_S),
        limit_concurrency=MAX_CONNECTIONS,
    )
    return 0


def _http_protocol() -> type[Any] | str:
    """httptools' protocol, hardened for untrusted clients:

    - a connection that never sends a request is closed after the keep-alive timeout (uvicorn
      starts that timer only after a first response, so such a client would hold its file
      descriptor forever);
    - request headers over MAX_HEADER_BYTES get 400 and the connection is closed (httptools
      itself accepts headers of any size, buffering them in memory).
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn picks h11, which limits headers itself
        return "auto"

    class HardenedHttpToolsProtocol(HttpToolsProtocol):
        _reading_head = False
        _head_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._reading_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._reading_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                    self.send_400_response("Request headers are too large.")

    return HardenedHttpToolsProtocol


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The graceful shutdown already happened; nothing is left to do."""


def _announce_when_ready(port: int, grpc_port: int | None, timeout_s: float = 600) -> None:
    url = f"http://127.0.0.1:{port}/health/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        return
    base = f"http://localhost:{port}"
    grpc = f", gRPC localhost:{grpc_port}" if grpc_port else ""
    print(
        f"\nThe flower classifier is ready at {base}\n"
        f"  curl -F file=@rose.jpg {base}/predict\n"
        f"  curl {base}/classes\n"
        f"  API docs: {base}/docs\n"
        f"  Open Inference Protocol (Triton and KServe clients): {base}/v2{grpc}\n",
        flush=True,
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
