"""uvicorn's h11 connection with a deadline for the request's headers, and the HTTP parser's
errors in docs/CONTRACT.md's ``{"error": ...}`` shape.

uvicorn times out idle keep-alive connections, but a connection that sends nothing, or sends
its header lines slowly, is held for ever: 50 such clients hold 50 sockets. Here every
connection must have sent complete request headers within ``header_timeout`` seconds of
opening, or of its last answer; the body has its own limit (``ServeConfig.body_timeout_s``).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol


def protocol_with_deadline(header_timeout: float) -> type[H11Protocol]:
    """The protocol class ``uvicorn.Config(http=...)`` takes, with this header deadline."""

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self._in_request():  # headers complete: the body's own timeout applies
                self._cancel()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            import h11

            body = json.dumps({"error": f"malformed HTTP request: {msg}"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                try:
                    self.transport.write(self.conn.send(event))
                except h11.LocalProtocolError:  # the parser's state allows no answer: close
                    break
            self.transport.close()

        def _in_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._cancel()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self._in_request() and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11Protocol
