"""uvicorn's websockets-sansio protocol with a high-water mark: `uvicorn --ws deploy.uvicorn_ws:WebSocketProtocol`.

The stock protocol pauses reading the socket after every message and resumes it when the application has taken the
message: two epoll_ctl calls per input. With an input per player per tick that was ~15% of the server's CPU
(docs/benchmarks.md, "Match capacity"). Here reading pauses only once HIGH_WATER messages wait for the application,
which still bounds what a flooding client can queue. uvicorn is pinned in requirements.txt; tests/deploy/test_uvicorn.py
runs a match over this class.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

HIGH_WATER = 16


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        if self.read_paused:
            super().send_receive_event_to_app()
            return
        # The parent pauses reading after queueing unless it is paused already: say it is, for this one message.
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = False
        if self.queue.qsize() >= HIGH_WATER and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()
