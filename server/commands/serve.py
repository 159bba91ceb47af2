"""`meterchat serve`: the listening sockets bound first, the app started and served until
SIGINT/SIGTERM, one line on stderr and a non-zero exit when it cannot start or stops; the
event loop chosen (uvloop when installed), the collector and GIL switch tuned for a
long-running server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from meterchat.core.config import Config, ConfigError
from meterchat.core.db import DatabaseError, MigrationError
from meterchat.core.logs import event, setup_logging

if TYPE_CHECKING:  # the server's modules load only when it serves
    from aiohttp import web


class StartupError(Exception):
    """The server cannot start; the message is the one line printed."""


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.server.log_level)
    state = {"serving": False}
    factory, _ = event_loop_factory(config.server.event_loop)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(config, state))
    except (ConfigError, MigrationError, DatabaseError, StartupError):
        raise  # main prints their one line
    except Exception as exc:
        # Anything else: one line on stderr and a non-zero status, so a supervisor
        # (systemd) sees the failure and restarts or reports it.
        text = " ".join(str(exc).split()) or "no details"
        what = "stopped" if state["serving"] else "cannot start"
        print(f"meterchat: {what}: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1
    return 0


def event_loop_factory(
        choice: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop `serve` runs on, as (factory for asyncio.Runner, name): uvloop when
    it is installed (the `fast` extra) and server.event_loop does not ask for asyncio's own.
    Measured with bench/capacity.py; uvloop is the same asyncio API on libuv."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("config key server.event_loop: uvloop is not installed "
                                  "(pip install 'meterchat[fast]')") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return None, "asyncio"


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bind the listening sockets before anything else starts (database, chain, jobs), so a
    port in use stops start-up at once and before any job has run. Like asyncio's
    create_server: every address the host resolves to, SO_REUSEADDR, IPv6 sockets v6-only."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # one port for every address
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


async def _serve(config: Config, state: dict[str, bool] | None = None) -> None:
    """Start the app and serve until SIGINT/SIGTERM. An error while starting undoes what was
    started (the database, the devnet node, jobs) and is raised again, so the process exits
    instead of hanging on a thread left running."""
    from aiohttp import web

    from meterchat.app import create_app

    sockets = _listen(config.server.host, config.server.port)
    runner: web.AppRunner | None = None
    try:
        app = create_app(config)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
    except BaseException:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()  # the cleanup contexts that did start, in reverse
        for sock in sockets:
            sock.close()
        raise
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        tune_gc()
        tune_threads()
        host, port = runner.addresses[0][:2]
        url = config.server.public_url or f"http://{host}:{port}"
        print(f"meterchat is serving on {url} (network: {config.chain.network})", flush=True)
        if state is not None:
            state["serving"] = True
        event(logging.getLogger("meterchat.http"), "serving", url=url,
              network=config.chain.network,
              event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])
        _announce_devnet(app)
        await until_stopped()
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()


async def until_stopped() -> None:
    """Wait for SIGINT or SIGTERM, so cleanup (settling calls, closing the database) runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# Collector thresholds for a long-running server: a young generation of this many objects
# before a collection (CPython's default is 700), and rarer older-generation passes.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Keep the cyclic garbage collector from stopping the event loop for long.

    With thousands of sockets open the heap holds millions of tracked objects, and a full
    collection walks them all: measured with bench/load.py at 5,000 connections, full
    collections took 150 ms to over 500 ms, each one stalling every socket (and found next
    to nothing to free). Objects alive once the server is up (modules, the app) are frozen
    out of collection for good, and collections run far less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# How long one thread may hold the GIL while another waits for it (CPython's default: 5 ms).
SWITCH_INTERVAL_S = 0.001


def tune_threads() -> None:
    """Let the database thread and the event loop hand the GIL over within 1 ms.

    The database thread releases the GIL around every SQLite step and must take it back
    after each; while the event loop is busy with sockets, every take-back waited up to the
    5-ms switch interval, so a billing pass of a few hundred statements took several times
    its own work (bench/capacity.py, 4,900 calls: pass p99 239 -> 148 ms, HTTP p99 210 ->
    130 ms with 1 ms, the sockets' latency unchanged)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _announce_devnet(app: web.Application) -> None:
    from meterchat.chain_ctx import DEVNET

    node = app.get(DEVNET)
    if node is not None:
        print(f"devnet node on {node.url} (USDT contract {node.usdt_contract}, deposit "
              f"address {node.deposit_address}); send test USDT with: meterchat devnet "
              "transfer --to ADDRESS --usdt 10", flush=True)
