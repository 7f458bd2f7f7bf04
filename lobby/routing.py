"""WebSocket routes of the lobby app: live lobbies and matchmaking status."""

from __future__ import annotations

from django.urls import path

from lobby import consumers

websocket_urlpatterns = [
    path("ws/lobbies/<str:code>/", consumers.LobbyConsumer.as_asgi()),
    path("ws/matchmaking/", consumers.MatchmakingConsumer.as_asgi()),
]
