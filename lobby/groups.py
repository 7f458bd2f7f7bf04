"""Channel-layer group names and event types of the lobby app, shared by the services that send and the consumers
that listen. Our own groups, not the user group: other consumers joined to that would not know our event types."""

from __future__ import annotations

LOBBY_EVENT = "lobby.event"
MATCHMAKING_EVENT = "matchmaking.event"


def lobby_group(code: str) -> str:
    return f"lobby.{code}"


def matchmaking_group(user_id: int) -> str:
    return f"matchmaking.{user_id}"


def match_pointer(match_id: int) -> dict[str, object]:
    """Where the players of a match connect; the match WebSocket and REST detail belong to the games app."""
    return {"id": match_id, "ws": f"/ws/matches/{match_id}/", "api": f"/api/matches/{match_id}/"}
