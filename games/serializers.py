"""Shapes of the games and matches API."""

from __future__ import annotations

from rest_framework import serializers

from games.models import Match, MatchPlayer


class GameSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    min_players = serializers.IntegerField()
    max_players = serializers.IntegerField()
    tick_rate = serializers.IntegerField()
    match_seconds = serializers.FloatField()
    countdown_seconds = serializers.FloatField()
    reconnect_grace_seconds = serializers.FloatField()
    spectators_allowed = serializers.BooleanField()
    abandon_rule = serializers.CharField()
    input_fields = serializers.ListField(child=serializers.CharField(), help_text="The order of compact v2 inputs.")
    turn_seconds = serializers.FloatField(allow_null=True, help_text="Turn timer of a turn-based game, else null.")
    end_reasons = serializers.ListField(child=serializers.CharField(), help_text="The game's own end reasons.")


class MatchCreateSerializer(serializers.Serializer):
    game = serializers.CharField(max_length=40)
    players = serializers.ListField(
        child=serializers.CharField(max_length=150), min_length=1, max_length=16,
        help_text="Usernames in seat order; must include the caller. The others are invited: the match starts "
        "once every one of them accepted (POST /api/matches/<id>/accept/).",
    )


class MatchPlayerSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = MatchPlayer
        fields = ["seat", "user_id", "username", "placing", "score", "abandoned", "accepted", "connected"]


class MatchSerializer(serializers.ModelSerializer):
    players = MatchPlayerSerializer(many=True)
    ws_path = serializers.SerializerMethodField(help_text="Where players and spectators connect.")

    class Meta:
        model = Match
        fields = ["id", "game", "status", "source", "created_at", "invite_expires_at", "join_deadline", "started_at",
                  "finished_at", "duration_seconds", "ticks", "end_reason", "players", "ws_path"]

    def get_ws_path(self, match: Match) -> str:
        return f"/ws/matches/{match.pk}/"
