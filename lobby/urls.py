"""REST routes of lobbies, matchmaking, leaderboards and history, mounted under /api/."""

from __future__ import annotations

from django.urls import path

from lobby import api

urlpatterns = [
    path("lobbies/", api.LobbyListCreateView.as_view(), name="api-lobbies"),
    path("lobbies/join/", api.LobbyJoinByCodeView.as_view(), name="api-lobby-join-by-code"),
    path("lobbies/mine/", api.MyLobbyView.as_view(), name="api-lobby-mine"),
    path("lobbies/<str:code>/", api.LobbyDetailView.as_view(), name="api-lobby"),
    path("lobbies/<str:code>/join/", api.LobbyJoinView.as_view(), name="api-lobby-join"),
    path("lobbies/<str:code>/leave/", api.LobbyLeaveView.as_view(), name="api-lobby-leave"),
    path("lobbies/<str:code>/ready/", api.LobbyReadyView.as_view(), name="api-lobby-ready"),
    path("lobbies/<str:code>/kick/", api.LobbyKickView.as_view(), name="api-lobby-kick"),
    path("lobbies/<str:code>/start/", api.LobbyStartView.as_view(), name="api-lobby-start"),
    path("lobbies/<str:code>/rematch/", api.LobbyRematchView.as_view(), name="api-lobby-rematch"),
    path("matchmaking/tickets/", api.TicketCreateView.as_view(), name="api-tickets"),
    path("matchmaking/tickets/<int:ticket_id>/", api.TicketDetailView.as_view(), name="api-ticket"),
    path("leaderboards/<str:game>/", api.LeaderboardView.as_view(), name="api-leaderboard"),
    path("history/", api.HistoryView.as_view(), name="api-history-mine"),
    path("matches/<int:match_id>/ratings/", api.MatchRatingsView.as_view(), name="api-match-ratings"),
    path("history/<int:user_id>/", api.UserHistoryView.as_view(), name="api-history"),
]
