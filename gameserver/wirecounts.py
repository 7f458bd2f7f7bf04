"""Plain per-kind counts of WebSocket traffic and closes, written on the per-message path without a lock and read by
gameserver/metrics.py at scrape time. No imports: the transport (gameserver/directws.py) counts here too."""

from __future__ import annotations


class WireCounts:
    """Messages and bytes of one kind of socket. Incremented in place from the event loop's thread (direct sockets' read
    callbacks, the tick's fan-out); a scrape on the same loop reads them between two callbacks."""

    __slots__ = ("messages_in", "messages_out", "bytes_out")

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_out = 0


SOCKET_KINDS = ("match", "lobby", "matchmaking", "other")
WIRE: dict[str, WireCounts] = {kind: WireCounts() for kind in SOCKET_KINDS}
OPEN_SOCKETS: dict[str, int] = dict.fromkeys(SOCKET_KINDS, 0)
# Close codes this server sent, or dropped a socket with (1006), by code: 4008 rate limited, 4007 too many bad messages,
# 4009 too big, 1002/1007 protocol errors, ... (docs/protocol.md). Closes are rare: a dict is enough.
CLOSES: dict[int, int] = {}


def wire_counts(kind: str) -> WireCounts:
    return WIRE.get(kind) or WIRE["other"]


def closed_with(code: int) -> None:
    CLOSES[code] = CLOSES.get(code, 0) + 1
