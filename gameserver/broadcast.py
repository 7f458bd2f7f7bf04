"""The one way the server tells live WebSocket sessions about a change: a channel-layer group send after commit.

Sending on commit means that clients never hear of a change that was rolled back. A send that fails (Redis away) is
logged and dropped: the change is committed either way, and a failed notice must not turn the request that made it
into an error (clients reconcile with the state they get on their next connect or poll). Group names are built here too,
so that senders and the consumers that join them cannot drift apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def credential_group(secret: str) -> str:
    """Group of the sockets opened with one session or token, so that logging it out closes exactly them."""
    return "cred." + hashlib.sha256(secret.encode()).hexdigest()[:32]


def send_on_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception as exc:
                _dropped(1, exc)

    transaction.on_commit(send)


def _dropped(count: int, exc: BaseException) -> None:
    from gameserver.ws import log_layer_error  # gameserver.ws imports this module

    log_layer_error(f"{count} notice(s) after commit not sent", exc)


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
            try:
                async_to_sync(send_all)(layer)
            except Exception as exc:
                _dropped(len(batch), exc)

    transaction.on_commit(send)
