"""Serving the dashboard with uvicorn, and the rule about who may reach it.

Theory of operation
-------------------
The dashboard shows prompts, results and costs of every run in a store, so by default it
is reachable from this machine only: :func:`check_bind` lets it bind a loopback address
(``127.0.0.1``, ``::1``, ``localhost``) freely, and refuses any other address — a LAN
address, ``0.0.0.0``, ``::`` — unless a token is set, in which case every request must
carry it (:func:`~paragents.dashboard.app.create_app`).  The refusal is a
:class:`~paragents.core.errors.ParagentsError`, so the command line prints one line.

:func:`serve` blocks, serving until interrupted.  :class:`BackgroundServer` runs the same
server on a daemon thread — ``paragents run --dashboard`` and the tests use it — and
knows its URL once it listens (port 0 picks a free one).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.parse
from typing import Self

import uvicorn

from ..core.errors import ParagentsError
from .app import create_app

__all__ = ["BackgroundServer", "DashboardError", "check_bind", "is_loopback", "serve", "url_of"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class DashboardError(ParagentsError):
    """The dashboard cannot start as asked (an exposed address without a token, a busy port)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the dashboard beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise DashboardError(
            f"refusing to serve the dashboard on {host!r} without a token: it would show every run's "
            "prompts and results to anyone who can reach it; bind 127.0.0.1 or set --token"
        )


def url_of(host: str, port: int, token: str | None = None) -> str:
    """The URL to open the dashboard at (with the token, when one is set)."""
    shown = f"[{host}]" if ":" in host else host
    query = f"?{urllib.parse.urlencode({'token': token})}" if token else ""
    return f"http://{shown}:{port}/{query}"


def _config(host: str, port: int, store_url: str | None, token: str | None) -> uvicorn.Config:
    check_bind(host, token)
    return uvicorn.Config(create_app(store_url, token), host=host, port=port, log_level="warning",
                          access_log=False, lifespan="on")


def serve(host: str = "127.0.0.1", port: int = 8765, store_url: str | None = None, token: str | None = None) -> None:
    """Serve the dashboard of ``store_url`` on ``host:port`` until interrupted."""
    server = uvicorn.Server(_config(host, port, store_url, token))
    _check_port(host, port)
    server.run()


def _check_port(host: str, port: int) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DashboardError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from None


class BackgroundServer:
    """The dashboard served from a daemon thread; :meth:`start` returns once it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store_url: str | None = None,
                 token: str | None = None) -> None:
        _check_port(host, port)
        self.host, self.token = host, token
        self._server = uvicorn.Server(_config(host, port, store_url, token))
        self._thread = threading.Thread(target=self._server.run, name="paragents-dashboard", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on (the one picked, for port 0)."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return url_of(self.host, self.port, self.token)

    def start(self, timeout: float = 10.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DashboardError(f"the dashboard did not start on {self.host}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
