"""A WebSocket client on a bare TCP connection, for the frames a real client library will not send (tests of the
servers' direct sockets: tests/deploy/)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import struct


def encode_client_frame(
    opcode: int, payload: bytes, *, declared: int | None = None, masked: bool = True, fin: bool = True
) -> bytes:
    n = len(payload) if declared is None else declared
    flag = 0x80 if masked else 0
    header = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        header += bytes([flag | n])
    elif n < 65536:
        header += bytes([flag | 126]) + struct.pack("!H", n)
    else:
        header += bytes([flag | 127]) + struct.pack("!Q", n)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A WebSocket client on a bare TCP connection, for frames a real client library will not send."""

    async def connect(
        self, port: int, path: str, token: str, subprotocol: str | None = "gs.v1.json", tls: ssl.SSLContext | None = None,
        local_address: str | None = None,
    ) -> None:
        """`local_address`: another loopback address to connect from (127.0.0.2: another client address)."""
        local = (local_address, 0) if local_address else None
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, local_addr=local)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}"
            f"Origin: http://127.0.0.1\r\nAuthorization: Token {token}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_frame(
        self, opcode: int, payload: bytes, *, declared: int | None = None, masked: bool = True, fin: bool = True
    ) -> None:
        """A frame, masked unless told otherwise; `declared` announces another length than the payload's (to send a
        header alone); fin=False for all but the last frame of a fragmented message."""
        self.writer.write(encode_client_frame(opcode, payload, declared=declared, masked=masked, fin=fin))

    async def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def read_close(self, timeout: float = 5) -> tuple[int, str]:
        """Skips data frames up to the server's close frame; then the server must close the TCP connection."""
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.read_frame()
                if opcode == 0x8:
                    break
            assert await self.reader.read() == b""
        self.writer.close()
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    async def read_json(self, timeout: float = 5) -> dict:
        async with asyncio.timeout(timeout):
            opcode, payload = await self.read_frame()
        assert opcode == 0x1, (opcode, payload)
        return json.loads(payload)
