"""The one way the server tells live WebSocket sessions about a change: a channel-layer group send after commit.

Sending on commit means that clients never hear of a change that was rolled back. Group names are built here too,
so that senders and the consumers that join them cannot drift apart.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def credential_group(secret: str) -> str:
    """Group of the sockets opened with one session or token, so that logging it out closes exactly them."""
    return "cred." + hashlib.sha256(secret.encode()).hexdigest()[:32]


def send_on_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)


def send_many_on_commit(messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Many group sends after commit in one trip to the event loop: a matchmaker step that tells ten thousand
    players their ticket was matched must not pay a thread and a loop for each."""
    batch = list(messages)
    if not batch:
        return

    async def send_all(layer) -> None:
        await asyncio.gather(*(layer.group_send(group, message) for group, message in batch))

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(send_all)(layer)

    transaction.on_commit(send)
