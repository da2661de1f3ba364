"""``flowers-serve`` / ``python -m app.serve``: the service under uvicorn with production
settings, and the Open Inference Protocol's gRPC server beside it (``FLOWERS_GRPC_PORT``).

This entry point builds and starts the service itself, then serves it over HTTP and gRPC side by
side in one event loop (as MLServer's and KServe's servers do); on SIGTERM both stop taking new
requests at once, drain, and the service stops last.  One worker per process (the model and the
batch queue live in it; scale with processes or containers).  ``--train-if-empty`` first trains
the default model when the store has none.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Final

from app import options
from app.config import Settings, SettingsError, help_epilog, load_settings
from app.http.server import ConnectionLimits, hardened_protocol
from app.inference import memory
from app.main import build_local_service, create_app
from app.observability import logs
from app.observability.metrics import Metrics
from app.store.versions import ModelStore

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI
    from grpc import aio

    from app.http.deps import Service

# Uvicorn timeouts (documented in docs/reliability.md): idle keep-alive connections are closed after
# KEEP_ALIVE_S; on SIGTERM, in-flight requests get shutdown_drain_s + GRACE_S to finish.
KEEP_ALIVE_S: Final = 5
GRACE_S: Final = 5
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # the trainer's, passed on: Ctrl-C
EXIT_TERMINATED: Final = 143  # SIGTERM
NO_MODEL_NOTICE: Final = (
    "training failed (exit status {code}): the server starts without a model, live but not "
    "ready, until a version is published (POST /admin/retrain, or python -m app.train into "
    "the store)"
)
# The ready banner's watcher looks in this process every BANNER_POLL_S (no request: it costs
# nothing), and says once if the server is still not ready after NOT_READY_NOTICE_S.
BANNER_POLL_S: Final = 0.25
NOT_READY_NOTICE_S: Final = 15.0
# How often the gRPC server looks whether uvicorn was told to stop (uvicorn's own tick).
EXIT_POLL_S: Final = 0.1
# Connections the listening socket queues before uvicorn accepts them (uvicorn's default).
BACKLOG: Final = 2048
# Files a server holds beside its connections: the model, the store, logs, the decode pool's.
FILES_BESIDE_CONNECTIONS: Final = 256


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=options.program_name("app.serve"),
        description=(__doc__ or "").replace("``", ""),
        epilog=help_epilog(),
        formatter_class=options.RawHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on")  # noqa: S104
    parser.add_argument(
        "--port", type=options.in_range(int, 1, 65535), default=8000, help="HTTP port to listen on"
    )
    parser.add_argument(
        "--train-if-empty",
        action="store_true",
        help="train the default model first when the model store holds no version",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    # This process forks only to exec (the trainer): gRPC's fork handlers have nothing to do,
    # and with threads in gRPC they logged "skipping fork() handlers" on every retrain.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        _check_free(args.host, args.port, settings.grpc_port)  # before minutes of training
        if args.train_if_empty and ModelStore(settings.model_store).latest() is None:
            print(f"No model in {settings.model_store}: training the default flower model first.")
            code = _train_first(settings)
            if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                return code  # stopped on purpose: the trainer said what it kept
            if code != 0:
                print(NO_MODEL_NOTICE.format(code=code), file=sys.stderr, flush=True)
        listener = _listen(args.host, args.port)  # this process's port, or one clear error
    except PortInUse as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    # uvicorn stops gracefully on SIGTERM/SIGINT (no new connections, requests and the batch
    # queue drained), then re-raises the signal into the handler that was installed before it.
    # Installing a no-op here turns that into a clean exit with status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    logs.configure(settings.log_level, settings.log_format)
    _raise_file_limit(settings)
    with memory.startup():  # the imports; the model loads once the service starts
        service = build_local_service(settings, Metrics())
        http = _http_server(create_app(settings, service=service), settings, args.host, args.port)
    with asyncio.Runner(loop_factory=http.config.get_loop_factory()) as runner:
        runner.run(serve(service, http, listener))
    return 0


class PortInUse(OSError):
    """A port this server must listen on cannot be had (another server holds it)."""


async def serve(service: Service, http: uvicorn.Server, listener: socket.socket) -> None:
    """Start the service, serve it over HTTP (and gRPC) on ``listener`` until told to stop,
    then stop it."""
    settings = service.settings
    await service.start()
    host, port = listener.getsockname()[:2]
    logger.info("HTTP on %s:%d", host, port)
    banner = asyncio.create_task(_announce_when_ready(service, http, settings.grpc_port))
    try:
        if settings.grpc_port is None:
            await http.serve(sockets=[listener])
            return
        from app.v2 import grpc_server  # its messages only in a process that serves gRPC

        parts = (service.dataplane, service.predictor, service.metrics, service.limits)
        connections = grpc_server.ConnectionLimits(
            settings.grpc_max_connections, settings.header_timeout_s
        )
        grpc = await grpc_server.start(*parts, connections, port=settings.grpc_port)
        await _serve_beside(http, grpc, settings.shutdown_drain_s, listener)
    finally:
        banner.cancel()
        await service.stop()


async def _serve_beside(
    http: uvicorn.Server, grpc: aio.Server, drain_s: float, listener: socket.socket
) -> None:
    """uvicorn until it stops; gRPC stops taking calls as soon as uvicorn is told to stop, and
    its calls in flight finish (up to ``drain_s``) while HTTP drains too."""
    stopping = asyncio.create_task(_stop_when_told(http, grpc, drain_s), name="grpc-stop")
    try:
        await http.serve(sockets=[listener])
    finally:
        http.should_exit = True  # also when uvicorn ended on its own (a port already in use)
        await stopping


async def _stop_when_told(http: uvicorn.Server, grpc: aio.Server, drain_s: float) -> None:
    # uvicorn's signal handler sets a plain flag, which its own main loop polls at this rate.
    while not http.should_exit:  # noqa: ASYNC110
        await asyncio.sleep(EXIT_POLL_S)
    await grpc.stop(drain_s)


def _http_server(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Server:
    """uvicorn, hardened for untrusted clients, serving ``app``."""
    import uvicorn

    config = uvicorn.Config(
        app=app,
        http=hardened_protocol(
            ConnectionLimits(settings.header_timeout_s, settings.max_connections)
        ),
        host=host,
        port=port,
        workers=1,
        access_log=False,  # app.access logs each request with its id
        log_config=None,  # app.observability.logs configures logging from the settings
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_drain_s + GRACE_S),
        limit_concurrency=settings.max_connections,
    )
    return uvicorn.Server(config)


def _raise_file_limit(settings: Settings) -> None:
    """Open files up to the hard limit: HTTP's and gRPC's connection caps, each of their own,
    must fit in it beside the store's and the model's files (say so if they cannot)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    grpc = settings.grpc_max_connections if settings.grpc_port else 0
    needed = settings.max_connections + grpc + FILES_BESIDE_CONNECTIONS
    if needed > hard:
        logger.warning(
            "the open-file limit (%d) is below what the connection caps need (%d): lower "
            "FLOWERS_MAX_CONNECTIONS or FLOWERS_GRPC_MAX_CONNECTIONS, or raise the limit",
            hard,
            needed,
        )


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The graceful shutdown already happened; nothing is left to do."""


def _train_first(settings: Settings) -> int:
    """The trainer's exit status.  Ctrl-C reaches it from the terminal and SIGTERM is passed on:
    it says in one line what it kept and exits 130 or 143, and so does this process, quietly.
    With FLOWERS_DATA_DIR set (the image sets /srv/data), an empty folder is first filled with
    the flower_photos dataset, as compose's train service does."""
    seed = ["--seed-dataset"] if settings.data_dir is not None else []
    trainer = subprocess.Popen([sys.executable, "-m", "app.train", *seed])
    handlers = {
        signal.SIGINT: lambda signum, frame: None,  # the terminal sent it to the trainer too
        signal.SIGTERM: lambda signum, frame: trainer.send_signal(signum),
    }
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        return trainer.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _check_free(host: str, port: int, grpc_port: int | None) -> None:
    """PortInUse now, rather than after loading or training, when a port is taken."""
    _listen(host, port).close()
    if grpc_port is not None:  # gRPC listens on every interface, IPv6 and IPv4 where it can
        dual = socket.has_dualstack_ipv6()
        grpc_host = "::" if dual else "0.0.0.0"  # noqa: S104
        _listen(grpc_host, grpc_port, dual, option="FLOWERS_GRPC_PORT").close()


def _listen(host: str, port: int, dualstack: bool = False, option: str = "--port") -> socket.socket:
    """A socket listening on ``host:port`` for uvicorn to serve (bound by this process, so that
    whatever answers on the port from now on is this server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server(
            (host, port), family=family, backlog=BACKLOG, dualstack_ipv6=dualstack
        )
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use (another server?): stop it, or "
                f"choose another port with {option}"
            ) from None
        raise PortInUse(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


async def _announce_when_ready(
    service: Service, http: uvicorn.Server, grpc_port: int | None
) -> None:
    """Print where the server is once this process listens and its model is loaded; say once
    if that takes long."""
    started, noticed = time.monotonic(), False
    while not (http.started and service.control.serving() is not None):
        if not noticed and time.monotonic() - started > NOT_READY_NOTICE_S:
            noticed = True
            print(
                "Not ready yet: no model is loaded (the log says why; an empty store needs "
                "`python -m app.train` or POST /admin/retrain). The banner follows once it is.",
                flush=True,
            )
        await asyncio.sleep(BANNER_POLL_S)
    port = http.config.port
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


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
