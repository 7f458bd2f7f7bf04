"""An echo WebSocket application under the real launcher, for Autobahn|Testsuite (tests/security/test_autobahn.py).

Autobahn's cases expect an echo server. The game's sockets answer with messages of their own (welcome, snapshots,
errors), so against them the suite can only judge the closing handshake. Served by `python -m deploy.daphne_ws`, this
application attaches to the same direct-socket extension as every consumer, with the production limits of settings.WS_*,
and echoes every message: the suite's verdicts then judge gameserver/directws.py and the launcher's transport itself.
Only the message-size limit differs (the game's 4096 bytes would make most of cases 9 and 10 about that limit).
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
django.setup()

from gameserver.directws import EXTENSION, DirectSocket, SocketLimits  # noqa: E402

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # Autobahn's largest message (case 9.1.6)


class Echo:
    def __init__(self, socket: DirectSocket):
        self.socket = socket

    def on_message(self, text: str | None, data: bytes | None) -> None:
        self.socket.send_message(text=text, data=data)


async def application(scope, receive, send):
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    socket = scope["extensions"][EXTENSION]["socket"]  # KeyError: the launcher no longer offers direct sockets
    socket.attach(Echo(socket), max_message_bytes=MAX_MESSAGE_BYTES, limits=SocketLimits.from_settings())
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
