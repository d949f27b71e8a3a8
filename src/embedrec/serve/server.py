"""The uvicorn settings `embedrec serve` runs with: limits that keep slow or greedy clients out.

- HTTP/1.1 parsed by h11, with the request line and headers capped at ``MAX_HEADER_BYTES``
  (a larger head gets 400) and at most ``MAX_HEADERS`` header lines (431, see the app);
- a client must send its complete request head within ``HEADER_TIMEOUT`` seconds of connecting
  (or of its previous response), else the connection is closed: no slow-loris;
- idle keep-alive connections close after ``KEEP_ALIVE`` seconds;
- at most ``MAX_CONCURRENCY`` connections and requests at once (more get 503), and a listen
  backlog of ``BACKLOG``;
- no ``server`` banner.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT = 10.0  # seconds
KEEP_ALIVE = 5  # seconds
MAX_CONCURRENCY = 64
BACKLOG = 128
GRACEFUL_SHUTDOWN = 5  # seconds


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is not complete within
    ``header_timeout`` seconds."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # nothing or only part of a request head arrived in time

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a complete request head arrived
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def server_config(app, host: str = "127.0.0.1", port: int = 8000, **overrides):
    """A ``uvicorn.Config`` with embedrec's limits (see the module docstring and SECURITY.md)."""
    import uvicorn

    settings = dict(host=host, port=port, http=GuardedH11Protocol,
                    h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                    timeout_keep_alive=KEEP_ALIVE, limit_concurrency=MAX_CONCURRENCY,
                    backlog=BACKLOG, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
                    server_header=False, log_level="warning", lifespan="on", ws="none",
                    proxy_headers=False)
    return uvicorn.Config(app, **(settings | overrides))
