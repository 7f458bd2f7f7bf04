from __future__ import annotations

from django.urls import path

from games import api

urlpatterns = [
    path("games/", api.GameListView.as_view(), name="api-games"),
    path("matches/", api.MatchListCreateView.as_view(), name="api-matches"),
    path("matches/live/", api.WatchableMatchListView.as_view(), name="api-matches-live"),
    path("matches/invitations/", api.InvitationListView.as_view(), name="api-match-invitations"),
    path("matches/<int:pk>/accept/", api.InvitationAnswerView.as_view(answer="accept"), name="api-match-accept"),
    path("matches/<int:pk>/decline/", api.InvitationAnswerView.as_view(answer="decline"), name="api-match-decline"),
    path("matches/<int:pk>/", api.MatchDetailView.as_view(), name="api-match-detail"),
    path("matches/<int:pk>/replay/", api.MatchReplayView.as_view(), name="api-match-replay"),
    path("matches/<int:pk>/replay/frames/", api.MatchReplayFramesView.as_view(), name="api-match-replay-frames"),
]
