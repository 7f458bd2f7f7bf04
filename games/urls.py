from __future__ import annotations

from django.urls import path

from games import api

urlpatterns = [
    path("games/", api.GameListView.as_view(), name="api-games"),
    path("matches/", api.MatchListCreateView.as_view(), name="api-matches"),
    path("matches/<int:pk>/", api.MatchDetailView.as_view(), name="api-match-detail"),
]
