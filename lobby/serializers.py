"""Shapes of the lobby, matchmaking, leaderboard and history API: request validation and documented responses."""

from __future__ import annotations

from rest_framework import serializers

from games.rules import GAMES
from lobby.models import CODE_ALPHABET, CODE_LENGTH

CODE_PATTERN = rf"^[{CODE_ALPHABET}{CODE_ALPHABET.lower()}]{{{CODE_LENGTH}}}\Z"


def _game_field(**kwargs) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=sorted(GAMES), error_messages={"invalid_choice": "There is no game called {input}."}, **kwargs
    )


def _code_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        CODE_PATTERN,
        error_messages={"invalid": f"A lobby code is {CODE_LENGTH} letters and digits."},
        **kwargs,
    )


# --- requests --------------------------------------------------------------------------------------------------------


class LobbyCreateSerializer(serializers.Serializer):
    game = _game_field()
    size = serializers.IntegerField(
        required=False, min_value=1, max_value=64, help_text="Seats; defaults to the game's maximum."
    )
    public = serializers.BooleanField(default=True, help_text="Listed for everyone, or joinable only by code.")


class LobbyListQuerySerializer(serializers.Serializer):
    game = _game_field(required=False)


class LobbyJoinSerializer(serializers.Serializer):
    code = _code_field()


class ReadySerializer(serializers.Serializer):
    ready = serializers.BooleanField(default=True)


class KickSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)


class TicketCreateSerializer(serializers.Serializer):
    game = _game_field()
    lobby = _code_field(required=False, help_text="Queue this lobby's members as one party (host only).")


# --- responses -------------------------------------------------------------------------------------------------------


class UserBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class MatchPointerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ws = serializers.CharField(help_text="The match WebSocket path, /ws/matches/<id>/.")
    api = serializers.CharField(help_text="The match's REST detail, /api/matches/<id>/.")


class LobbyMemberSerializer(UserBriefSerializer):
    ready = serializers.BooleanField()
    host = serializers.BooleanField()


class LobbySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    game = serializers.CharField()
    size = serializers.IntegerField()
    public = serializers.BooleanField()
    status = serializers.ChoiceField(choices=["open", "in_match", "closed"])
    host = UserBriefSerializer(allow_null=True)
    members = LobbyMemberSerializer(many=True)
    match = MatchPointerSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


class MyLobbySerializer(serializers.Serializer):
    lobby = LobbySerializer(allow_null=True, help_text="The lobby you are in, or null.")


class LobbyListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    game = serializers.CharField()
    size = serializers.IntegerField()
    members = serializers.IntegerField(source="member_count")
    host = UserBriefSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


class TicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    game = serializers.CharField()
    status = serializers.ChoiceField(choices=["searching", "matched", "cancelled", "expired"])
    party = UserBriefSerializer(many=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    waited_seconds = serializers.FloatField()
    estimated_wait_seconds = serializers.FloatField(
        allow_null=True, help_text="Typical total wait for this game lately; null once the ticket stopped searching."
    )
    match = MatchPointerSerializer(allow_null=True, help_text="Set once matched: where to connect.")


class LeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    user = UserBriefSerializer()
    rating = serializers.FloatField(help_text="Conservative skill estimate mu - 3 sigma; the order of the board.")
    display_rating = serializers.IntegerField(
        help_text="The rating players see: (mu - 3 sigma) x 100, rounded (0 for a newcomer)."
    )
    mu = serializers.FloatField()
    sigma = serializers.FloatField()
    matches = serializers.IntegerField()
    wins = serializers.IntegerField()


class LeaderboardPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = LeaderboardEntrySerializer(many=True)
    me = LeaderboardEntrySerializer(allow_null=True, help_text="The caller's own entry, null if unrated.")


class RatingChangeSerializer(serializers.Serializer):
    before = serializers.FloatField(help_text="mu - 3 sigma before the match.")
    after = serializers.FloatField(help_text="mu - 3 sigma after the match.")
    delta = serializers.FloatField()
    display_before = serializers.IntegerField(help_text="The shown rating before: (mu - 3 sigma) x 100, rounded.")
    display_after = serializers.IntegerField(help_text="The shown rating after.")
    display_delta = serializers.IntegerField(help_text="display_after - display_before.")


class OpponentSerializer(UserBriefSerializer):
    seat = serializers.IntegerField()
    placing = serializers.IntegerField(allow_null=True)


class MatchRatingSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    rating = RatingChangeSerializer()


class HistoryEntrySerializer(serializers.Serializer):
    match = MatchPointerSerializer()
    game = serializers.CharField()
    finished_at = serializers.DateTimeField()
    players = serializers.IntegerField()
    placing = serializers.IntegerField(allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    abandoned = serializers.BooleanField()
    opponents = OpponentSerializer(many=True, help_text="Everyone else seated in the match, in seat order.")
    rating = RatingChangeSerializer(allow_null=True)
