"""URLs of the browser client's pages; gameserver/urls.py includes them at the site root."""

from __future__ import annotations

from django.urls import path

from gameserver import pages

urlpatterns = [
    path("lobbies/", pages.lobbies, name="lobbies"),
    path("lobbies/<str:code>/", pages.lobby_room, name="lobby"),
    path("matches/<int:match_id>/", pages.match, name="match"),
    path("matches/<int:match_id>/replay/", pages.match_replay, name="match-replay"),
    path("watch/", pages.watch, name="watch"),
    path("leaderboard/", pages.leaderboard, name="leaderboard"),
    path("history/", pages.history, name="history"),
    path("profile/", pages.profile, name="profile"),
    path("users/<int:user_id>/", pages.user_profile, name="user-profile"),
    path("favicon.ico", pages.favicon, name="favicon"),
]
