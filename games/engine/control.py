"""Reaching a running match from outside its tick loop, wherever it runs: ending it (an admin's cancel, a deadline
sweep, the live-match console's end with a result), kicking a seat, and an operator's notice to its sockets.

The owner of a match listens on the match's control group and its relays on the relay group (host.py); a Stop
message (messages.py) carries the match_end message as the database recorded it. With Redis both groups are on the "relay"
channel layer, so the stop reaches every process; without Redis there is one process, and its hosts (one per event
loop) are called directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

def relay_group(match_id: int) -> str:
    """The processes relaying a match to their players listen here (snapshots, ends, kicks)."""
    return f"gs.m{match_id}"


def control_group(match_id: int) -> str:
    """The process that owns a match listens here."""
    return f"gs.c{match_id}"


def stop_message(match_id: int, end: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message telling a match's processes it ended."""
    from games.engine import messages  # msgspec schemas; lazy like selectors below

    return messages.to_layer(messages.Stop(match_id, end))


def finish_match(*, match_id: int, reason: str) -> None:
    """Ask the match's owner to end play at its next tick and record the result as the rules rank it then."""
    from games.engine import messages

    _tell_match(match_id, messages.Finish(match_id, reason))


def kick_seat(*, match_id: int, seat: int) -> None:
    """Remove a seat at the match's next tick; every process closes that seat's sockets with 4014."""
    from games.engine import messages

    _tell_match(match_id, messages.Remove(match_id, seat))


def send_notice(*, match_id: int, text: str) -> None:
    """An operator's message to every socket of the match ({"type": "notice"}, docs/protocol.md)."""
    from games.engine import messages

    _tell_match(match_id, messages.Notice(match_id, text))


def _tell_match(match_id: int, message: Any) -> None:
    """To the match's owner and relays (sync code only); in-process hosts are called directly without Redis. Raises
    when Redis cannot be reached: the console reports it, nothing was recorded."""
    from games.engine import messages

    if settings.REDIS_URL:
        async_to_sync(_send_to_groups)(get_channel_layer("relay"), match_id, messages.to_layer(message))
        return
    from games.engine.host import local_hosts

    for loop, host in local_hosts():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_spawn_handler, host, message)


def _spawn_handler(host, message: Any) -> None:
    host.spawn(host.handle_control(message))


def stop_match_on_commit(*, match_id: int) -> None:
    transaction.on_commit(lambda: stop_match(match_id=match_id))


def stop_match(*, match_id: int) -> None:
    """Tell the match's owner and relays that it ended (call after the end is committed; sync code only)."""
    from games import selectors  # games.selectors -> games.models; kept lazy so services can import this module

    end = selectors.match_end_message(match_id=match_id)
    try:
        if settings.REDIS_URL:
            async_to_sync(_send_to_groups)(get_channel_layer("relay"), match_id, stop_message(match_id, end))
        else:
            from games.engine.host import local_hosts

            for loop, host in local_hosts():
                with contextlib.suppress(RuntimeError):  # that loop closed meanwhile: the others are still told
                    loop.call_soon_threadsafe(_spawn_stop, host, match_id, end)
    except Exception:
        # The cancel is recorded either way: a process that misses this finds out when its result is refused.
        log.exception("match %s: could not tell its processes to stop", match_id)


async def _send_to_groups(layer, match_id: int, message: dict[str, Any]) -> None:
    await asyncio.gather(
        layer.group_send(control_group(match_id), message), layer.group_send(relay_group(match_id), message)
    )


def _spawn_stop(host, match_id: int, end: dict[str, Any]) -> None:
    host.spawn(host.stop_match(match_id, end))
